"""Sequence primitives every engine shares, each defined once: the nucleotide alphabet (``alphabet``), 64-bit
hashing (``hashing``), packed sequence buffers (``packing``, and their Numba kernels in ``packed_kernels``) and
the read-id rules (``read_ids``).

``alphabet``, ``packing`` and ``read_ids`` need numpy only, so the Validate Lambda can use them without
importing Numba; ``hashing`` and ``packed_kernels`` are Numba code for the engines.
"""

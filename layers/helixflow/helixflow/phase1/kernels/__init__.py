"""Numba kernels of the Phase 1 engine. Each works on one batch: the raw FASTQ bytes plus per-record offsets.

``records`` (where each record's lines lie), ``quality`` (Phred decoding), ``qc`` (the QC histograms and k-mer counts), ``sampling`` (read hashes and the
mergeable hash sample behind duplication and overrepresentation), ``adapter`` (the adapter scan), ``trim``
(quality, poly-G/X, adapter and overlap trimming and the filters) and ``output`` (trimmed FASTQ text and the
packed columns of the embeddings table).

All kernels are ``nogil`` so the decompression and compression threads run beside them, and ``cache=True`` so
the compile cost is paid once per machine. Bases are read through ``helixflow.seq.alphabet.BASE_CODE``: A, C,
G, T (either case) and N_CODE for every other letter, which counts as N in the statistics and in the N filter.
Output reads keep their original letters.
"""

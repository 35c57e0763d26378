"""Phase 1: clean, QC, trim and embed reads. The runners' API is in ``helixflow.phase1.engine`` (see its
docstring); ``transform`` is the per-batch transform every runner calls, ``params`` its options and the
once-per-sample adapter detection, ``reader`` streams FASTQ batches and plans chunks, ``kernels`` holds the
Numba kernels, ``stats`` the mergeable statistics, ``report`` the fastp JSON and MultiQC custom content, ``cli``
the ``helixflow preprocess`` command and ``simulate`` an Illumina-like read simulator for tests and
benchmarks."""

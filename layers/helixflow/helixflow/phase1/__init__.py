"""Phase 1: clean, QC, trim and embed reads. The API is in ``helixflow.phase1.engine`` (see its docstring);
``reader`` streams FASTQ batches and plans chunks, ``kernels`` holds the Numba kernels, ``stats`` the mergeable
statistics, ``report`` the fastp JSON / MultiQC / HTML outputs, ``cli`` the ``helixflow preprocess`` command and
``simulate`` an Illumina-like read simulator for tests and benchmarks."""

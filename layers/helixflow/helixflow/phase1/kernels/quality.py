"""Phred quality decoding shared by the Phase 1 kernels."""

from __future__ import annotations

import numpy as np
from numba import njit

PHRED_OFFSET = 33
QUAL_BINS = 94  # Phred 0..93, the printable range of Sanger/Illumina 1.8+ FASTQ


@njit(cache=True, nogil=True, inline="always")
def phred(byte):
    v = np.int64(byte) - PHRED_OFFSET
    if v < 0:
        return 0
    if v >= QUAL_BINS:
        return QUAL_BINS - 1
    return v


# ``phred`` of every byte, for kernels that decode a base per table lookup instead of two comparisons.
PHRED_OF_BYTE = np.clip(np.arange(256) - PHRED_OFFSET, 0, QUAL_BINS - 1).astype(np.int64)

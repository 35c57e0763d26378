"""Numba kernels over packed sequences (see ``packing`` for the layout), for the engines' hot paths."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from helixflow.seq.alphabet import COMPLEMENT


@njit(cache=True, parallel=True)
def gather_packed(source, starts, lengths):
    """Copy ``source[starts[i]:starts[i]+lengths[i]]`` back to back; return (buffer, offsets). The parallel
    copy of ``packing.gather``, for buffers of millions of bases."""
    offsets = np.zeros(starts.shape[0] + 1, dtype=np.int64)
    for i in range(starts.shape[0]):
        offsets[i + 1] = offsets[i] + lengths[i]
    out = np.empty(offsets[-1], dtype=np.uint8)
    for i in prange(starts.shape[0]):
        out[offsets[i]:offsets[i + 1]] = source[starts[i]:starts[i] + lengths[i]]
    return out, offsets


@njit(cache=True)
def reverse_complement_packed(seq, offsets):
    """Every packed sequence reverse-complemented in place of the original (same offsets)."""
    out = np.empty_like(seq)
    for r in range(offsets.shape[0] - 1):
        lo = offsets[r]
        hi = offsets[r + 1]
        for i in range(hi - lo):
            out[lo + i] = COMPLEMENT[seq[hi - 1 - i]]
    return out

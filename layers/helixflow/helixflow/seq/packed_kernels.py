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
        # Views indexed by the loop counter: a computed index (lo + i) costs a negative-index check per byte.
        source = seq[offsets[r]:offsets[r + 1]][::-1]
        target = out[offsets[r]:offsets[r + 1]]
        for i in range(target.shape[0]):
            target[i] = COMPLEMENT[source[i]]
    return out


@njit(cache=True, parallel=True)
def gather_into(out, at, source, starts, lengths, table):
    """``gather_packed`` into ``out`` from ``at`` (the caller sized it), each byte mapped through ``table`` (256
    bytes; e.g. upper-casing); returns where the copy ends."""
    ends = np.empty(starts.shape[0], dtype=np.int64)
    end = at
    for i in range(starts.shape[0]):
        end += lengths[i]
        ends[i] = end
    for i in prange(starts.shape[0]):
        target = out[ends[i] - lengths[i]:ends[i]]  # views indexed by the loop counter (see above)
        piece = source[starts[i]:starts[i] + lengths[i]]
        for j in range(target.shape[0]):
            target[j] = table[piece[j]]
    return end

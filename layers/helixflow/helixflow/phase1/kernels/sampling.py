"""Per-read hashes and the bounded, exactly mergeable sample of distinct sequences (``stats.HashSample``)."""

from __future__ import annotations

import numpy as np
from numba import njit

from helixflow.phase1.kernels.output import read_id_end
from helixflow.seq.hashing import hash_bytes


@njit(cache=True, nogil=True)
def hash_sequences(data, seq_start, lengths, out):
    for r in range(seq_start.shape[0]):
        out[r] = hash_bytes(data, seq_start[r], seq_start[r] + lengths[r])


@njit(cache=True, nogil=True)
def hash_names(data, name_start, name_end, out):
    """Hash of the read id (the header up to the first whitespace): a per-read coin that does not depend on
    how the file was cut into chunks."""
    for r in range(name_start.shape[0]):
        out[r] = hash_bytes(data, name_start[r], read_id_end(data, name_start[r], name_end[r]))


@njit(cache=True, nogil=True, inline="always")
def _sampled(h, level):
    return level == 0 or (h >> np.uint64(64 - level)) == np.uint64(0)


@njit(cache=True, nogil=True)
def _table_rebuild(keys, counts, state, cap):
    """Raise the sampling level until the kept distinct keys fit ``cap``, then rehash in place."""
    while state[1] > cap:
        state[0] += 1
        kept = 0
        for j in range(keys.shape[0]):
            if counts[j] != 0 and _sampled(keys[j], state[0]):
                kept += 1
        state[1] = kept
    old_keys = keys.copy()
    old_counts = counts.copy()
    counts[:] = 0
    mask = keys.shape[0] - 1
    for j in range(old_keys.shape[0]):
        if old_counts[j] != 0 and _sampled(old_keys[j], state[0]):
            slot = np.int64(old_keys[j] & np.uint64(mask))
            while counts[slot] != 0:
                slot = (slot + 1) & mask
            keys[slot] = old_keys[j]
            counts[slot] = old_counts[j]


@njit(cache=True, nogil=True)
def count_sampled(hashes, keys, counts, state, cap):
    """Count occurrences of every hash whose top ``state[0]`` bits are zero (a uniform sample of the distinct
    sequences). ``keys``/``counts`` is an open-addressing table of size >= 2 * cap (a power of two);
    ``state`` = [level, distinct keys kept]. Exactly mergeable: see ``stats.HashSample``."""
    mask = keys.shape[0] - 1
    for h in hashes:
        if not _sampled(h, state[0]):
            continue
        slot = np.int64(h & np.uint64(mask))
        while counts[slot] != 0 and keys[slot] != h:
            slot = (slot + 1) & mask
        if counts[slot] == 0:
            keys[slot] = h
            state[1] += 1
        counts[slot] += 1
        if state[1] > cap:
            _table_rebuild(keys, counts, state, cap)

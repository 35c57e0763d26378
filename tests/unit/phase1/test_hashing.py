"""``seq.hashing.hash_bytes``, behind the duplication and read samples: equal byte ranges hash equal wherever
they lie in a buffer, and ranges that differ in any one byte (a word's or the tail's) or in length do not."""

from __future__ import annotations

import numpy as np
from numba import njit

from helixflow.seq.hashing import hash_bytes


@njit(cache=True)
def _hash(data, start, stop):
    return hash_bytes(data, start, stop)


def test_equal_ranges_hash_equal_at_any_offset():
    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 8, 9, 15, 16, 150, 151):
        seq = rng.integers(0, 256, n).astype(np.uint8)
        hashes = set()
        for offset in range(9):  # every alignment of the 8-byte words
            buffer = np.concatenate([rng.integers(0, 256, offset).astype(np.uint8), seq,
                                     rng.integers(0, 256, 5).astype(np.uint8)])
            hashes.add(int(_hash(buffer, offset, offset + n)))
        assert len(hashes) == 1, n


def test_any_one_byte_or_the_length_changes_the_hash():
    rng = np.random.default_rng(4)
    for n in (1, 7, 8, 13, 150):
        seq = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, n)]
        base = int(_hash(seq, 0, n))
        for i in range(n):
            changed = seq.copy()
            changed[i] = ord("N")
            assert int(_hash(changed, 0, n)) != base, (n, i)
        assert int(_hash(np.append(seq, np.uint8(0)), 0, n + 1)) != base  # a zero byte more: the length counts
    # spread: the top bits the samples test are uniform over many distinct reads
    reads = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, (20_000, 150))].copy()
    tops = np.array([int(_hash(reads[r], 0, 150)) >> 60 for r in range(reads.shape[0])])
    counts = np.bincount(tops, minlength=16)
    assert counts.min() > 0.8 * 20_000 / 16 and counts.max() < 1.2 * 20_000 / 16

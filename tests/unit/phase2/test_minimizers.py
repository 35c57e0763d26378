"""The minimizer kernel (index and read-graph seeds) against its definition written out in plain Python."""

from __future__ import annotations

import numpy as np
import pytest

from helixflow.phase2 import index
from helixflow.phase2.index import minimizers
from helixflow.seq.alphabet import BASE_CODE
from helixflow.seq.hashing import mix64


def _definition(seq: bytes, k: int, w: int) -> list[tuple[int, int, int]]:
    """(hash, position, strand) of every window's minimizer: the smallest canonical k-mer hash of the window of w
    consecutive k-mers (the one window of all k-mers when there are fewer), leftmost on ties, none from k-mers
    with an N, each k-mer written once while it stays the minimizer."""
    kmers = []
    for j in range(len(seq) - k + 1):
        codes = [int(BASE_CODE[b]) for b in seq[j:j + k]]
        if max(codes) > 3:
            kmers.append((None, 0))
            continue
        fwd = rev = 0
        for c in codes:
            fwd = (fwd << 2) | c
        for c in reversed(codes):
            rev = (rev << 2) | (3 - c)
        kmers.append((int(mix64(np.uint64(fwd))), 0) if fwd < rev else (int(mix64(np.uint64(rev))), 1))
    out = []
    for start in range(max(len(kmers) - w + 1, 1) if kmers else 0):
        window = [(h, p) for p, (h, _) in enumerate(kmers[start:start + w], start) if h is not None]
        if not window:
            continue
        h, p = min(window)  # the smallest hash, then the smallest position
        if not out or out[-1][1] != p:
            out.append((h, p, kmers[p][1]))
    return out


def _kernel(seq: bytes, k: int, w: int) -> list[tuple[int, int, int]]:
    data = np.frombuffer(seq, np.uint8)
    hashes, positions = np.empty(len(seq), np.uint64), np.empty(len(seq), np.int64)
    strands = np.empty(len(seq), np.uint8)
    n = minimizers(data, k, w, hashes, positions, strands)
    return [(int(h), int(p), int(s)) for h, p, s in zip(hashes[:n], positions[:n], strands[:n])]


@pytest.mark.parametrize("k,w", [(15, 10), (15, 3), (5, 4), (7, 1)])
def test_minimizers_are_the_smallest_hash_of_each_window_leftmost_on_ties(k, w):
    rng = np.random.default_rng(k * 100 + w)
    for length in [0, k - 1, k, k + w - 2, k + w - 1, k + w, 60, 151, 400]:
        for n_rate in (0.0, 0.03):
            alphabet = np.frombuffer(b"ACGTNacgt", np.uint8)
            weights = np.array([1, 1, 1, 1, 0, 0.2, 0.2, 0.2, 0.2]) + np.array([0, 0, 0, 0, n_rate * 40, 0, 0, 0, 0])
            seq = rng.choice(alphabet, size=length, p=weights / weights.sum()).tobytes()
            assert _kernel(seq, k, w) == _definition(seq, k, w), (length, seq)


def test_a_low_complexity_run_keeps_its_leftmost_minimizer_per_window():
    # Equal k-mers everywhere: every window's minimum is a tie, won by its leftmost k-mer.
    seq = b"A" * 40
    assert _kernel(seq, 5, 4) == _definition(seq, 5, 4)
    assert [p for _, p, _ in _kernel(seq, 5, 4)] == list(range(0, 36 - 3))


def _stable_sorted(hashes, positions, strands):
    order = np.argsort(hashes, kind="stable")
    return hashes[order], positions[order], strands[order]


def test_the_index_table_is_sorted_by_hash_with_positions_in_order_within_a_hash():
    rng = np.random.default_rng(5)
    unit, short_unit = (rng.choice(np.frombuffer(b"ACGT", np.uint8), size=n) for n in (300, 200))
    # Random sequence with Ns, and tandem arrays whose hashes repeat hundreds of times (buckets past the
    # insertion sort) and 30 times (within it), as two contigs.
    genome = np.concatenate([rng.choice(np.frombuffer(b"ACGTN", np.uint8), size=20_000,
                                        p=[.245, .245, .245, .245, .02]), np.tile(unit, 400),
                             np.tile(short_unit, 30)]).astype(np.uint8)
    offsets = np.array([0, 12_345, genome.shape[0]], np.int64)
    hashes, positions, strands = index.minimizer_table(genome, offsets)
    raw = index._build(genome, offsets, index.K, index.W)
    for got, expected in zip((hashes, positions, strands), _stable_sorted(*raw)):
        assert np.array_equal(got, expected)
    assert np.all(np.diff(hashes.astype(np.float64)) >= 0) and len(hashes) == len(raw[0])


def test_long_buckets_of_interleaved_hashes_sort_stably():
    """Buckets past the insertion sort's size (a repeat's thousands of copies of a few hashes) sort the same."""
    rng = np.random.default_rng(6)
    hashes = (rng.choice(np.array([5, 3, 9], np.uint64), 5000) << np.uint64(60)) | rng.integers(0, 3, 5000).astype(
        np.uint64)
    positions, strands = np.arange(5000, dtype=np.int64), (np.arange(5000) % 2).astype(np.uint8)
    got = index._sort_by_hash(hashes, positions, strands, index.bucket_shift(5000))
    for a, b in zip(got, _stable_sorted(hashes, positions, strands)):
        assert np.array_equal(a, b)

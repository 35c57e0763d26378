"""The adapter scan (``kernels.adapter_start``, a bit-parallel word scan) returns exactly what the plain
position-by-position search returns, on random reads, adapters and settings.

``_reference`` below is the search as it was before the word scan: kept here, not in the package, as the
definition the kernel must reproduce.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from helixflow.phase1.kernels import adapter as kernels

CASES = 40_000
PAD = 16  # bytes around every read, filled with adapter letters: a scan that reads outside [front, end) shows


@njit(cache=True)
def _reference(data, s, front, end, adapter, min_overlap, max_error_rate):
    alen = adapter.shape[0]
    if alen == 0:
        return end
    full_allowed = int(alen * max_error_rate)
    for p in range(front, end - min_overlap + 1):
        overlap = end - p
        allowed = full_allowed
        if overlap < alen:
            allowed = int(overlap * max_error_rate)
        else:
            overlap = alen
        mismatches = 0
        for i in range(overlap):
            a = adapter[i]
            if (data[s + p + i] & np.uint8(0xDF)) != a and a != 78:
                mismatches += 1
        if mismatches <= allowed:
            return p
    return end


@njit(cache=True)
def _both(data, starts, fronts, ends, adapters, adapter_off, min_overlaps, rates):
    n = starts.shape[0]
    got = np.empty(n, np.int64)
    want = np.empty(n, np.int64)
    for c in range(n):
        adapter = adapters[adapter_off[c]:adapter_off[c + 1]]
        got[c] = kernels.adapter_start(data, starts[c], fronts[c], ends[c], adapter, min_overlaps[c], rates[c],
                                       kernels.adapter_words(adapter, rates[c]))
        want[c] = _reference(data, starts[c], fronts[c], ends[c], adapter, min_overlaps[c], rates[c])
    return got, want


def _letters(rng, n, alphabet: bytes, p=None) -> np.ndarray:
    return np.frombuffer(alphabet, np.uint8)[rng.choice(len(alphabet), n, p=p)]


def _adapter(rng) -> np.ndarray:
    """Mostly ACGT adapters of 1..40 bases; some with N, some the word scan cannot hold (longer than 64 bases,
    IUPAC or lower-case letters: the plain search answers for those)."""
    kind = rng.random()
    n = int(rng.integers(1, 41))
    if kind < 0.6:
        return _letters(rng, n, b"ACGT")
    if kind < 0.85:
        return _letters(rng, n, b"ACGTN", p=[0.22, 0.22, 0.22, 0.22, 0.12])
    if kind < 0.92:
        return _letters(rng, int(rng.integers(60, 80)), b"ACGT")
    return _letters(rng, n, b"ACGTRYacgtn", p=[0.2, 0.2, 0.2, 0.2] + [0.2 / 7] * 7)


def _read(rng, adapter: np.ndarray, rate: float) -> np.ndarray:
    """Random bases (some N, some lower case, a few other bytes), often with the adapter inserted: whole or cut
    short by the 3' end, at a random position, with up to floor(overlap * rate) + 1 substitutions."""
    n = int(rng.integers(0, 201))
    read = _letters(rng, n, b"ACGTacgtN.R", p=[0.2, 0.2, 0.2, 0.2, 0.04, 0.04, 0.04, 0.04, 0.02, 0.01, 0.01])
    if n == 0 or rng.random() < 0.2:
        return read
    if rng.random() < 0.5:
        at = int(rng.integers(max(0, n - adapter.shape[0]), n))  # partial overlap at the 3' end (or whole)
    else:
        at = int(rng.integers(0, n))
    piece = adapter[: n - at].copy()
    piece[piece == ord("N")] = _letters(rng, int((piece == ord("N")).sum()), b"ACGT")
    for _ in range(int(rng.integers(0, int(piece.shape[0] * rate) + 2))):
        piece[rng.integers(0, piece.shape[0])] = _letters(rng, 1, b"ACGTN")[0]
    lower = rng.random(piece.shape[0]) < 0.1
    piece[lower] |= 0x20
    read[at: at + piece.shape[0]] = piece
    return read


def test_word_scan_matches_plain_search():
    rng = np.random.default_rng(20240611)
    parts, adapters = [], []
    starts, fronts, ends, min_overlaps, rates = (np.empty(CASES, t) for t in
                                                 (np.int64, np.int64, np.int64, np.int64, np.float64))
    pos = 0
    for c in range(CASES):
        adapter = _adapter(rng)
        rate = float(rng.choice([0.0, 0.1, 0.2, 0.3], p=[0.3, 0.35, 0.3, 0.05]))
        read = _read(rng, adapter, rate)
        n = read.shape[0]
        # mostly the whole read; sometimes a view [front, end) of it, as after quality and poly-G trimming
        front = 0 if rng.random() < 0.7 else int(rng.integers(0, n + 1))
        end = n if rng.random() < 0.7 else int(rng.integers(front, n + 1))
        pad = np.resize(adapter, PAD)
        parts += [pad, read, pad]
        starts[c], fronts[c], ends[c] = pos + PAD, front, end
        min_overlaps[c] = rng.integers(1, 6)
        rates[c] = rate
        adapters.append(adapter)
        pos += n + 2 * PAD
    data = np.concatenate(parts)
    adapter_off = np.concatenate([[0], np.cumsum([a.shape[0] for a in adapters])]).astype(np.int64)
    got, want = _both(data, starts, fronts, ends, np.concatenate(adapters), adapter_off, min_overlaps, rates)

    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(int(c), int(got[c]), int(want[c])) for c in bad[:10]]
    # the cases must exercise matches, whole and partial, not just "no adapter"
    found = want < ends
    assert found.mean() > 0.3
    assert ((ends - want)[found] < np.array([a.shape[0] for a in adapters])[found]).sum() > 1000


def test_edge_cases():
    """Empty views, adapters longer than the read, min_overlap larger than the adapter, exact rate 0."""
    cases = [
        (b"", b"ACGT", 1, 0.1),
        (b"ACGT", b"", 1, 0.1),
        (b"ACG", b"ACGTACGT", 3, 0.1),
        (b"ACG", b"ACGTACGT", 4, 0.1),
        (b"TTTTACGT", b"ACGT", 5, 0.0),
        (b"TTTTACGTTTTTT", b"ACGT", 5, 0.0),
        (b"TTTTACGTTTTTT", b"ACGT", 4, 0.0),
        (b"TTTTAGGT", b"ACGT", 3, 0.25),
        (b"ttttacgN", b"ACGN", 3, 0.0),
        (b"TTTTNNNN", b"ACGT", 1, 0.0),
        (b"TTTTNNNN", b"NNNN", 1, 0.0),
        (b"GATCGGAAGAGCACACGTCTGAACTCCAGTCAGATCGGAAGAGCACACGTCTGAACTCCAGTCAGATCGGAAGAGCACACG" * 2,
         b"GATCGGAAGAGCACACGTCTGAACTCCAGTCAGATCGGAAGAGCACACGTCTGAACTCCAGTCA", 3, 0.12),
    ]
    for read, adapter, min_overlap, rate in cases:
        data = np.frombuffer(read, np.uint8)
        ad = np.frombuffer(adapter, np.uint8)
        for front in range(0, len(read) + 1, 3):
            got = kernels.adapter_start(data, 0, front, len(read), ad, min_overlap, rate,
                                        kernels.adapter_words(ad, rate))
            want = _reference(data, 0, front, len(read), ad, min_overlap, rate)
            assert got == want, (read, adapter, min_overlap, rate, front)

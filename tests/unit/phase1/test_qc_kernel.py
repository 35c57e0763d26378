"""The one-pass QC kernel gives, after trimming, exactly the histograms of counting every kept span again."""

from __future__ import annotations

import numpy as np

from helixflow.phase1.kernels.quality import PHRED_OFFSET, QUAL_BINS
from helixflow.phase1.stats import ReadStats, add_before_after
from helixflow.seq.alphabet import BASE_CODE


def _counted(data, spans) -> ReadStats:
    """The histograms of ``spans`` (sequence start, quality start, length), counted base by base."""
    rows = max((n for _, _, n in spans), default=0)
    out = ReadStats(np.zeros((rows, 5), np.int64), np.zeros((rows, 5), np.int64), np.zeros((rows, QUAL_BINS), np.int64),
                    np.zeros(rows + 1, np.int64), np.zeros(QUAL_BINS, np.int64))
    for s, q, n in spans:
        out.len_hist[n] += 1
        quals = np.clip(data[q:q + n].astype(np.int64) - PHRED_OFFSET, 0, QUAL_BINS - 1)
        for i in range(n):
            b = BASE_CODE[data[s + i]]
            out.base_counts[i, b] += 1
            out.base_qual_sum[i, b] += quals[i]
            out.qual_hist[i, quals[i]] += 1
        if n:
            out.mean_qual_hist[quals.sum() // n] += 1
    return out


def _batch(rng, n_reads):
    lengths = rng.integers(0, 160, n_reads)
    lengths[:3] = (0, 1, 159)
    parts, seq_start, qual_start, offset = [], [], [], 0
    for n in lengths:
        seq = rng.choice(np.frombuffer(b"ACGTNacgt", np.uint8), n)
        qual = rng.integers(PHRED_OFFSET - 2, PHRED_OFFSET + 100, n).astype(np.uint8)  # out of range both ways
        parts += [seq, qual]
        seq_start.append(offset)
        qual_start.append(offset + n)
        offset += 2 * n
    data = np.concatenate(parts).astype(np.uint8)
    return data, np.array(seq_start, np.int64), np.array(qual_start, np.int64), lengths.astype(np.int64)


def test_stats_after_trimming_equal_counting_the_kept_spans():
    rng = np.random.default_rng(5)
    before, after = ReadStats(), ReadStats()
    expected_before, expected_after = ReadStats(), ReadStats()
    for _ in range(3):  # batches accumulate (their longest reads differ)
        data, seq_start, qual_start, lengths = _batch(rng, 400)
        # Every case: untouched, cut at the 3' end, cut at the 5' end (and the 3'), cut to nothing, filtered out.
        case = rng.integers(0, 5, lengths.size)
        front = np.where(case >= 2, rng.integers(0, 20, lengths.size), 0).clip(max=lengths)
        kept = lengths - front
        kept = np.where(case % 2 == 1, rng.integers(0, kept + 1), kept)
        kept[case == 4] = 0
        selected = rng.random(lengths.size) < 0.85
        add_before_after(before, after, data, seq_start, qual_start, lengths, front, kept, selected)
        expected_before = expected_before.merge(_counted(data, list(zip(seq_start, qual_start, lengths))))
        expected_after = expected_after.merge(_counted(data, [
            (s + f, q + f, m) for s, q, f, m, keep in zip(seq_start, qual_start, front, kept, selected) if keep]))
    for name in ReadStats.ARRAYS:
        assert np.array_equal(getattr(before, name), getattr(expected_before, name)), name
        # The after arrays may hold rows for spans of filtered reads too: those rows stay zero.
        got, want = getattr(after, name), getattr(expected_after, name)
        assert np.array_equal(got[:len(want)], want) and not got[len(want):].any(), name
    assert (before.reads, after.reads) == (expected_before.reads, expected_after.reads) and after.reads < before.reads

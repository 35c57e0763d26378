"""QC histograms of a batch, before and after trimming, in one pass over its bases.

The statistics after trimming are those before it plus a correction per read that trimming changed: a read
trimmed at its 3' end only loses its tail's counts, a read cut at its 5' end (its positions shift) or filtered
out loses all of its counts and a kept one gains its trimmed span's. Reads left as they were (most of a run)
cost nothing more, where a second pass over the trimmed spans read every base again (the two passes were a
quarter of the transform's thread). All counts are integers, so the result is the two passes' exactly."""

from __future__ import annotations

import numpy as np
from numba import njit

from helixflow.phase1.kernels.quality import QUAL_BINS, phred
from helixflow.seq.alphabet import BASE_CODE


@njit(cache=True, nogil=True, inline="always")
def _count(data, s, q, first, stop, shift, sign, base_counts, base_qual_sum, qual_hist):
    """Add ``sign`` (+1/-1) times the bases at read positions [first, stop) (sequence at ``data[s:]``, qualities
    at ``data[q:]``) to the per-position histograms, position i at row i - ``shift``; returns their Phred sum."""
    total = 0
    for i in range(first, stop):
        b = BASE_CODE[data[s + i]]
        qv = phred(data[q + i])
        base_counts[i - shift, b] += sign
        base_qual_sum[i - shift, b] += sign * qv
        qual_hist[i - shift, qv] += sign
        total += qv
    return total


@njit(cache=True, nogil=True)
def qc_before_after(data, seq_start, qual_start, lengths, front, kept, selected,
                    before_base_counts, before_base_qual_sum, before_qual_hist, before_len_hist, before_mean_qual,
                    after_base_counts, after_base_qual_sum, after_qual_hist, after_len_hist, after_mean_qual):
    """Add every read to the ``before`` histograms and each ``selected`` read's trimmed span
    ``[front, front + kept)`` to the ``after`` ones (all int64, in place).

    base_counts/base_qual_sum: (rows, 5); qual_hist: (rows, QUAL_BINS); len_hist: (rows + 1,); mean_qual:
    (QUAL_BINS,) of the per-read mean Phred, rounded down. The before arrays need a row per position of the
    longest read, the after arrays one per position of the longest kept span."""
    rows = before_base_counts.shape[0]
    # This batch's counts before trimming, and what trimming changes in them.
    counts = np.zeros((rows, 5), np.int64)
    qual_sums = np.zeros((rows, 5), np.int64)
    quals = np.zeros((rows, QUAL_BINS), np.int64)
    fix_counts = np.zeros((rows, 5), np.int64)
    fix_qual_sums = np.zeros((rows, 5), np.int64)
    fix_quals = np.zeros((rows, QUAL_BINS), np.int64)
    for r in range(seq_start.shape[0]):
        s = seq_start[r]
        q = qual_start[r]
        n = lengths[r]
        total = _count(data, s, q, 0, n, 0, 1, counts, qual_sums, quals)
        before_len_hist[n] += 1
        if n > 0:
            before_mean_qual[total // n] += 1
        if not selected[r]:
            _count(data, s, q, 0, n, 0, -1, fix_counts, fix_qual_sums, fix_quals)
            continue
        f = front[r]
        m = kept[r]
        after_len_hist[m] += 1
        if f == 0:
            total -= _count(data, s, q, m, n, 0, -1, fix_counts, fix_qual_sums, fix_quals)  # the tail only
        else:
            _count(data, s, q, 0, n, 0, -1, fix_counts, fix_qual_sums, fix_quals)
            total = _count(data, s, q, f, f + m, f, 1, fix_counts, fix_qual_sums, fix_quals)
        if m > 0:
            after_mean_qual[total // m] += 1
    for i in range(rows):
        for j in range(5):
            before_base_counts[i, j] += counts[i, j]
            before_base_qual_sum[i, j] += qual_sums[i, j]
        for j in range(QUAL_BINS):
            before_qual_hist[i, j] += quals[i, j]
    # Rows past the longest kept span net to zero: every base there was taken out again.
    for i in range(after_base_counts.shape[0]):
        for j in range(5):
            after_base_counts[i, j] += counts[i, j] + fix_counts[i, j]
            after_base_qual_sum[i, j] += qual_sums[i, j] + fix_qual_sums[i, j]
        for j in range(QUAL_BINS):
            after_qual_hist[i, j] += quals[i, j] + fix_quals[i, j]

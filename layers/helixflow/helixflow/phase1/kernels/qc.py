"""QC histograms of a batch, before and after trimming, in one pass over its bases.

The statistics after trimming are those before it plus a correction per read that trimming changed: a read
trimmed at its 3' end only loses its tail's counts, a read cut at its 5' end (its positions shift) or filtered
out loses all of its counts and a kept one gains its trimmed span's. Reads left as they were (most of a run)
cost nothing more, where a second pass over the trimmed spans read every base again (the two passes were a
quarter of the transform's thread). All counts are integers, so the result is the two passes' exactly."""

from __future__ import annotations

import numpy as np
from numba import njit

from helixflow.phase1.kernels.quality import PHRED_OF_BYTE, QUAL_BINS
from helixflow.seq.alphabet import BASE_CODE


# The batch's counts are kept as one joint histogram per read position, of (base code, Phred) pairs: a base is
# one increment there instead of three (base count, base quality sum, quality histogram), and the three are its
# sums, formed once per batch (``_fold``). Counts of one batch fit int32, which halves the table's cache lines.
_BASES = 5
_JOINT = _BASES * QUAL_BINS


@njit(cache=True, nogil=True, inline="always")
def _count(seq, qual, joint, sign):
    """Add ``sign`` (+1/-1) times the bases of ``seq`` (qualities ``qual``), base i at row i of ``joint``, to the
    joint histogram; returns their Phred sum. Every operand is a view indexed by the loop's own counter: an index
    computed as offset + i costs a negative-index check per access, which made the loop three times slower."""
    total = 0
    for i in range(seq.shape[0]):
        qv = PHRED_OF_BYTE[qual[i]]
        joint[i, BASE_CODE[seq[i]] * QUAL_BINS + qv] += sign
        total += qv
    return total


@njit(cache=True, nogil=True)
def _fold(joint, rows, base_counts, base_qual_sum, qual_hist):
    """Add the sums of ``joint``'s first ``rows`` rows to the three histograms."""
    for i in range(rows):
        for b in range(_BASES):
            for qv in range(QUAL_BINS):
                c = np.int64(joint[i, b * QUAL_BINS + qv])
                base_counts[i, b] += c
                base_qual_sum[i, b] += c * qv
                qual_hist[i, qv] += c


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
    counts = np.zeros((rows, _JOINT), np.int32)
    fix = np.zeros((rows, _JOINT), np.int32)
    for r in range(seq_start.shape[0]):
        n = lengths[r]
        seq = data[seq_start[r]:seq_start[r] + n]
        qual = data[qual_start[r]:qual_start[r] + n]
        total = _count(seq, qual, counts, 1)
        before_len_hist[n] += 1
        if n > 0:
            before_mean_qual[total // n] += 1
        if not selected[r]:
            _count(seq, qual, fix, -1)
            continue
        f = front[r]
        m = kept[r]
        after_len_hist[m] += 1
        if f == 0:
            total -= _count(seq[m:], qual[m:], fix[m:], -1)  # the tail only
        else:
            _count(seq, qual, fix, -1)
            total = _count(seq[f:f + m], qual[f:f + m], fix, 1)
        if m > 0:
            after_mean_qual[total // m] += 1
    _fold(counts, rows, before_base_counts, before_base_qual_sum, before_qual_hist)
    # Rows past the longest kept span net to zero: every base there was taken out again.
    after_rows = after_base_counts.shape[0]
    fix[:after_rows] += counts[:after_rows]
    _fold(fix, after_rows, after_base_counts, after_base_qual_sum, after_qual_hist)

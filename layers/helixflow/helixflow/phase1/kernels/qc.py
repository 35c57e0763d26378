"""QC histograms of a batch (before and after trimming) and the k-mer counts the embedding sees."""

from __future__ import annotations

import numpy as np
from numba import njit

from helixflow.phase1.kernels.quality import phred
from helixflow.seq.alphabet import BASE_CODE


@njit(cache=True, nogil=True)
def qc_accumulate(data, seq_start, qual_start, lengths, selected, base_counts, base_qual_sum, qual_hist,
                  len_hist, mean_qual_hist):
    """Add reads ``r`` with ``selected[r]`` to the per-position and per-read histograms (all int64, in place).

    base_counts/base_qual_sum: (max_len, 5); qual_hist: (max_len, QUAL_BINS); len_hist: (max_len + 1,);
    mean_qual_hist: (QUAL_BINS,) of the per-read mean Phred, rounded down."""
    for r in range(seq_start.shape[0]):
        if not selected[r]:
            continue
        s = seq_start[r]
        q = qual_start[r]
        n = lengths[r]
        len_hist[n] += 1
        total = 0
        for i in range(n):
            b = BASE_CODE[data[s + i]]
            qv = phred(data[q + i])
            base_counts[i, b] += 1
            base_qual_sum[i, b] += qv
            qual_hist[i, qv] += 1
            total += qv
        if n > 0:
            mean_qual_hist[total // n] += 1

"""Shared pieces of the Smith-Waterman-Gotoh kernels (CPU and CUDA): scoring, input checks, pair order.

Kept free of numba imports that pull in a target, so both twins (``sw_cpu`` and ``sw_cuda``) import it and
neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helixflow.seq.alphabet import N_CODE

# Scores are int32 on output and on the GPU: the best possible score of a pair must stay below this.
SCORE_LIMIT = 1 << 30
# |scoring values| accepted at all (keeps every intermediate of the int32/int64 kernels far from overflow).
SCORING_VALUE_LIMIT = 1 << 16


@dataclass(frozen=True)
class Scoring:
    """Local alignment scoring. Gaps use parasail's convention: a gap of length L costs
    ``gap_open + (L - 1) * gap_extend`` (the defaults equal bwa-mem's ``-O 6 -E 1``)."""

    match: int = 1          # identical bases (A, C, G, T; case-insensitive)
    mismatch: int = -4      # different bases
    n_score: int = -1       # either base is N (or any other non-ACGT symbol), even N against N
    gap_open: int = 7
    gap_extend: int = 1

    def substitution(self, a: int, b: int) -> int:
        """Score of aligning base codes ``a`` and ``b`` (values of ``helixflow.seq.alphabet.BASE_CODE``)."""
        if a == N_CODE or b == N_CODE:
            return self.n_score
        return self.match if a == b else self.mismatch

    def gap(self, length: int) -> int:
        """Cost (positive) of one gap of ``length`` >= 1 bases."""
        return self.gap_open + (length - 1) * self.gap_extend


def check_scoring(scoring: Scoring) -> None:
    """Reject scorings the kernels cannot handle exactly.

    ``gap_open`` must be positive: padding lanes rely on every gap strictly lowering the score (and a free gap
    open makes local alignment degenerate anyway). ``gap_extend`` may not exceed ``gap_open``: otherwise two
    back-to-back gaps cost less than one gap of their joint length, the Gotoh recurrence no longer scores what
    the CIGAR says, and parasail's own kernels disagree with each other (sw 59, sw_scan 57, sw_striped_16 56
    on one 23 x 95 pair with open 3, extend 4)."""
    values = (scoring.match, scoring.mismatch, scoring.n_score, scoring.gap_open, scoring.gap_extend)
    if not all(isinstance(v, (int, np.integer)) for v in values):
        raise TypeError(f"scoring values must be integers, got {scoring}")
    if scoring.gap_open < 1 or not 0 <= scoring.gap_extend <= scoring.gap_open:
        raise ValueError(f"need gap_open >= 1 and 0 <= gap_extend <= gap_open, got {scoring}")
    if max(abs(v) for v in values) >= SCORING_VALUE_LIMIT:
        raise ValueError(f"scoring values must be below {SCORING_VALUE_LIMIT} in magnitude: {scoring}")


def check_packed(query_buf: np.ndarray, query_offsets: np.ndarray, target_buf: np.ndarray,
                 target_offsets: np.ndarray, scoring: Scoring) -> tuple[np.ndarray, ...]:
    """Validate and normalise packed batch inputs; returns contiguous (qbuf, qoff, tbuf, toff)."""
    check_scoring(scoring)
    qbuf = np.ascontiguousarray(query_buf, dtype=np.uint8)
    tbuf = np.ascontiguousarray(target_buf, dtype=np.uint8)
    qoff = np.ascontiguousarray(query_offsets, dtype=np.int64)
    toff = np.ascontiguousarray(target_offsets, dtype=np.int64)
    if qoff.ndim != 1 or toff.ndim != 1 or qoff.shape[0] < 1 or qoff.shape != toff.shape:
        raise ValueError("query_offsets and target_offsets must be 1-D of equal length n + 1")
    for name, off, buf in (("query", qoff, qbuf), ("target", toff, tbuf)):
        if np.any(np.diff(off) < 0) or off[0] < 0 or off[-1] > buf.shape[0]:
            raise ValueError(f"{name}_offsets must be non-decreasing and within the buffer")
    longest = int(max(np.diff(qoff).max(initial=0), np.diff(toff).max(initial=0)))
    top = max(scoring.match, scoring.n_score, 1)
    if top * (longest + 1) >= SCORE_LIMIT:
        raise ValueError(f"sequences of length {longest} may overflow int32 scores")
    return qbuf, qoff, tbuf, toff


def length_order(query_lengths: np.ndarray, target_lengths: np.ndarray) -> np.ndarray:
    """Indices sorting pairs by (query length, target length), so the pairs sharing a SIMD group (CPU) or a
    warp (GPU) have similar lengths and little padding or idling."""
    return np.lexsort((target_lengths, query_lengths)).astype(np.int64)

"""Smith-Waterman-Gotoh on the CPU (Numba): the batched score-only kernels and the single-pair traceback.
The model (scores, ends, tie rules, CIGAR) is in ``sw``'s docstring; ``sw.score_batch`` is the entry point.
(Just over 400 lines on purpose: the int16 SIMD kernel, its int64 fallback and the traceback implement one
recurrence with one tie rule, and keeping them side by side is what keeps them identical.)

Score-only kernel layout (the hot path): inter-sequence SIMD. Pairs are sorted by length and taken LANES at
a time; the DP column of a group is an int16 array [query_len, LANES], so the innermost loop runs over
independent pairs and LLVM vectorises it (32 int16 lanes = two AVX2 / one AVX-512 register). Numba types
int16 arithmetic as int64; every intermediate is cast straight back to int16, which lets LLVM narrow the
operations to 16-bit vector instructions again (measured 5.7 GCUPS vs 2.5 for the same loop in float32).
The cast is exact, not saturating: a pair uses this kernel only when no value can leave int16 (best possible
score below 2**14, target shorter than 2**15, small scoring values); other pairs go to a scalar int64 kernel
with the same recurrences and tie rule. Lanes shorter than the group's longest query/target are padded;
padded target columns score ``-_PAD_PENALTY`` so they can never reach the best score (gap_open >= 1), and
padded query rows are ignored when picking the best cell. The best cell is found from per-row maxima (value,
first column reaching it), which keeps the inner loop branch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from helixflow.phase2._sw_common import Scoring, check_packed, check_scoring, length_order
from helixflow.seq.alphabet import BASE_CODE, N_CODE

# Pairs processed together by one vectorised DP sweep.
LANES = 32
# The int16 kernel: the best possible score of a pair must stay below this, padding scores minus it.
_I16_SCORE_LIMIT = 1 << 14
_PAD_PENALTY = 1 << 14
_I16_MAX_TARGET = (1 << 15) - 1     # target positions are stored as int16
_I16_MAX_SCORING = 1 << 10          # |scoring values| for the int16 kernel
# Query code of N in the score-only kernel: negative, so it never equals a target code (0..3, N_CODE).
_QUERY_N = -1
# Fields of the per-row state: H of the previous column (overwritten in place), E entering this column,
# the best H seen in the row so far and the first column that reached it.
_H, _E, _ROW_BEST, _ROW_BEST_COL = 0, 1, 2, 3
_STATE_FIELDS = 4
# Fields of the per-lane buffer (see _score_group).
_F, _DIAG, _T_CODE, _S_EQUAL, _S_DIFFER, _S_QUERY_N = 0, 1, 2, 3, 4, 5
_LANE_FIELDS = 6

_i16 = np.int16


@njit(cache=True, nogil=True)
def _score_group(qbuf, qoff, tbuf, toff, pairs, code, match, mismatch, n_score, gap_open, gap_extend,
                 out_score, out_qend, out_tend):
    """Score up to LANES pairs (``pairs`` holds their indices) in one vectorised int16 sweep."""
    nl = pairs.shape[0]
    qlen = np.zeros(LANES, dtype=np.int64)
    tlen = np.zeros(LANES, dtype=np.int64)
    for lane in range(nl):
        p = pairs[lane]
        qlen[lane] = qoff[p + 1] - qoff[p]
        tlen[lane] = toff[p + 1] - toff[p]
    rows = qlen.max()
    cols = tlen.max()

    # Query codes per row and lane; padded rows keep code 0 (their cells are never read back).
    qcode = np.zeros((rows, LANES), dtype=np.int16)
    # Per target column and lane: the target code and the three substitution scores the inner loop selects
    # from: query base equal to it, query base different from it, query N.
    tcode = np.zeros((cols, LANES), dtype=np.int16)
    s_equal = np.full((cols, LANES), -_PAD_PENALTY, dtype=np.int16)
    s_differ = np.full((cols, LANES), -_PAD_PENALTY, dtype=np.int16)
    s_query_n = np.full((cols, LANES), -_PAD_PENALTY, dtype=np.int16)
    for lane in range(nl):
        p = pairs[lane]
        for i in range(qlen[lane]):
            c = code[qbuf[qoff[p] + i]]
            qcode[i, lane] = _QUERY_N if c == N_CODE else c
        for j in range(tlen[lane]):
            c = code[tbuf[toff[p] + j]]
            tcode[j, lane] = c
            s_query_n[j, lane] = n_score
            if c == N_CODE:
                s_equal[j, lane] = n_score
                s_differ[j, lane] = n_score
            else:
                s_equal[j, lane] = match
                s_differ[j, lane] = mismatch

    # All per-row state lives in one array and all per-lane carries in another: LLVM must prove that the
    # arrays touched in the lane loop do not overlap before it vectorises it, and with one array per
    # quantity the runtime overlap checks exceed its limit, leaving the loop scalar (8x slower measured).
    state = np.zeros((rows, _STATE_FIELDS, LANES), dtype=np.int16)
    # Per lane: F carried down the column, H(i-1, j-1), then this column's target code and scores.
    lane_buf = np.zeros((_LANE_FIELDS, LANES), dtype=np.int16)
    go = _i16(gap_open)
    ge = _i16(gap_extend)
    zero = _i16(0)
    for j in range(cols):
        col = _i16(j)
        for lane in range(LANES):
            # Boundary E/F start at 0 instead of -inf: they only enter H through max(0, ...), so H is unchanged.
            lane_buf[_F, lane] = 0
            lane_buf[_DIAG, lane] = 0
            lane_buf[_T_CODE, lane] = tcode[j, lane]
            lane_buf[_S_EQUAL, lane] = s_equal[j, lane]
            lane_buf[_S_DIFFER, lane] = s_differ[j, lane]
            lane_buf[_S_QUERY_N, lane] = s_query_n[j, lane]
        for i in range(rows):
            for lane in range(LANES):
                # Every operand is loaded before the selects, so they compile to blends, not branches.
                q = qcode[i, lane]
                equal = lane_buf[_S_EQUAL, lane]
                differ = lane_buf[_S_DIFFER, lane]
                query_n = lane_buf[_S_QUERY_N, lane]
                s = equal if q == lane_buf[_T_CODE, lane] else differ
                s = query_n if q < zero else s
                e = state[i, _E, lane]
                f = lane_buf[_F, lane]
                h = _i16(max(max(_i16(lane_buf[_DIAG, lane] + s), e), max(f, zero)))
                lane_buf[_DIAG, lane] = state[i, _H, lane]
                state[i, _H, lane] = h
                h_open = _i16(h - go)
                state[i, _E, lane] = _i16(max(_i16(e - ge), h_open))
                lane_buf[_F, lane] = _i16(max(_i16(f - ge), h_open))
                row_best = state[i, _ROW_BEST, lane]
                row_best_col = state[i, _ROW_BEST_COL, lane]
                state[i, _ROW_BEST_COL, lane] = col if h > row_best else row_best_col
                state[i, _ROW_BEST, lane] = max(h, row_best)

    for lane in range(nl):
        best = 0
        best_i = -1
        best_j = 0
        for i in range(qlen[lane]):
            v = state[i, _ROW_BEST, lane]
            if v > best or (v == best and best > 0 and state[i, _ROW_BEST_COL, lane] < best_j):
                best = v
                best_i = i
                best_j = state[i, _ROW_BEST_COL, lane]
        p = pairs[lane]
        out_score[p] = best
        out_qend[p] = best_i
        out_tend[p] = best_j if best_i >= 0 else -1


@njit(cache=True, parallel=True, nogil=True)
def _score_narrow(qbuf, qoff, tbuf, toff, order, code, match, mismatch, n_score, gap_open, gap_extend,
                  out_score, out_qend, out_tend):
    groups = (order.shape[0] + LANES - 1) // LANES
    for g in prange(groups):
        stop = min((g + 1) * LANES, order.shape[0])
        _score_group(qbuf, qoff, tbuf, toff, order[g * LANES:stop], code, match, mismatch, n_score,
                     gap_open, gap_extend, out_score, out_qend, out_tend)


@njit(cache=True, nogil=True)
def _score_pair_wide(q, t, code, match, mismatch, n_score, gap_open, gap_extend):
    """One pair in scalar int64 (for pairs whose scores could leave int16). Same recurrences and tie rule:
    columns (target) outer, rows inner, a strictly larger H replaces the best."""
    m = q.shape[0]
    h_col = np.zeros(m, dtype=np.int64)   # H of the previous column
    e_col = np.zeros(m, dtype=np.int64)   # E entering this column (0 boundary, as in the SIMD kernel)
    best = 0
    best_i = -1
    best_j = -1
    for j in range(t.shape[0]):
        b = code[t[j]]
        f = 0
        diag = 0
        for i in range(m):
            a = code[q[i]]
            if a == N_CODE or b == N_CODE:
                s = n_score
            elif a == b:
                s = match
            else:
                s = mismatch
            e = e_col[i]
            h = max(max(diag + s, e), max(f, 0))
            diag = h_col[i]
            h_col[i] = h
            e_col[i] = max(e - gap_extend, h - gap_open)
            f = max(f - gap_extend, h - gap_open)
            if h > best:
                best = h
                best_i = i
                best_j = j
    return best, best_i, best_j


@njit(cache=True, parallel=True, nogil=True)
def _score_wide(qbuf, qoff, tbuf, toff, pairs, code, match, mismatch, n_score, gap_open, gap_extend,
                out_score, out_qend, out_tend):
    for k in prange(pairs.shape[0]):
        p = pairs[k]
        best, best_i, best_j = _score_pair_wide(qbuf[qoff[p]:qoff[p + 1]], tbuf[toff[p]:toff[p + 1]], code,
                                                match, mismatch, n_score, gap_open, gap_extend)
        out_score[p] = best
        out_qend[p] = best_i
        out_tend[p] = best_j


@njit(cache=True, parallel=True, nogil=True)
def _exact_first(qbuf, qoff, tbuf, toff, pairs, code, match, out_score, out_qend, out_tend, out_found):
    """The exact-match fast path: when the whole query occurs in the target base for base (A/C/G/T only),
    the best local score is len(query) x match - no alignment can score more, as each query base adds at
    most ``match`` and gaps only cost - and every cell reaching it ends such an occurrence at the last query
    row, so the tie rule's cell is the end of the first occurrence. One scan with early exit per offset
    (about 1.3 comparisons each on non-repetitive sequence) instead of the query x target DP."""
    for i in prange(pairs.shape[0]):
        p = pairs[i]
        q = qbuf[qoff[p]:qoff[p + 1]]
        t = tbuf[toff[p]:toff[p + 1]]
        n = q.shape[0]
        for start in range(t.shape[0] - n + 1):
            j = 0
            while j < n and code[q[j]] == code[t[start + j]] and code[q[j]] < N_CODE:
                j += 1
            if j == n:
                out_score[p] = n * match
                out_qend[p] = n - 1
                out_tend[p] = start + n - 1
                out_found[p] = True
                break


def _fits_int16(qlen: np.ndarray, tlen: np.ndarray, scoring: Scoring) -> np.ndarray:
    """Pairs the int16 kernel scores exactly (see the module docstring)."""
    values = (scoring.match, scoring.mismatch, scoring.n_score, scoring.gap_open, scoring.gap_extend)
    if max(abs(v) for v in values) > _I16_MAX_SCORING:
        return np.zeros(qlen.shape, dtype=bool)
    top = max(scoring.match, scoring.n_score, 0)
    return (top * np.minimum(qlen, tlen) < _I16_SCORE_LIMIT) & (tlen <= _I16_MAX_TARGET)


def score_batch_cpu(query_buf: np.ndarray, query_offsets: np.ndarray,
                    target_buf: np.ndarray, target_offsets: np.ndarray,
                    scoring: Scoring = Scoring(), *, threads: int | None = None,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sw.score_batch`` on the CPU. ``threads``: Numba worker threads for this call."""
    qbuf, qoff, tbuf, toff = check_packed(query_buf, query_offsets, target_buf, target_offsets, scoring)
    n = qoff.shape[0] - 1
    score = np.zeros(n, dtype=np.int32)
    qend = np.full(n, -1, dtype=np.int32)
    tend = np.full(n, -1, dtype=np.int32)
    if n == 0:
        return score, qend, tend
    qlen = np.diff(qoff)
    tlen = np.diff(toff)
    args = (BASE_CODE, scoring.match, scoring.mismatch, scoring.n_score, scoring.gap_open, scoring.gap_extend,
            score, qend, tend)
    previous_threads = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(threads)
    try:
        todo = np.ones(n, dtype=np.bool_)
        # The fast path's bound holds when a match outscores every other pairing of a query base.
        if scoring.match > max(scoring.mismatch, scoring.n_score, 0):
            found = np.zeros(n, dtype=np.bool_)
            _exact_first(qbuf, qoff, tbuf, toff, np.flatnonzero((qlen > 0) & (qlen <= tlen)), BASE_CODE,
                         scoring.match, score, qend, tend, found)
            todo = ~found
        narrow = _fits_int16(qlen, tlen, scoring)
        narrow_pairs = np.flatnonzero(narrow & todo)
        wide_pairs = np.flatnonzero(~narrow & todo)
        if narrow_pairs.size:
            order = narrow_pairs[length_order(qlen[narrow_pairs], tlen[narrow_pairs])]
            _score_narrow(qbuf, qoff, tbuf, toff, order, *args)
        if wide_pairs.size:
            _score_wide(qbuf, qoff, tbuf, toff, wide_pairs, *args)
    finally:
        numba.set_num_threads(previous_threads)
    return score, qend, tend


# ----------------------------------------------------------------------------------------------------------
# Single pair with traceback

# Trace byte per cell: bits 0-1 say where H came from, bit 2 / bit 3 say E / F extended an existing gap.
_FROM_ZERO, _FROM_DIAG, _FROM_E, _FROM_F = 0, 1, 2, 3
_E_EXTENDS = 4
_F_EXTENDS = 8
# Traceback states (which matrix the walk is in); they reuse the source codes so a source is its next state.
_IN_H, _IN_E, _IN_F = _FROM_DIAG, _FROM_E, _FROM_F
_OP_M, _OP_I, _OP_D = 0, 1, 2
_OP_CHARS = "MID"
_NEG_INF = -(1 << 30)


@njit(cache=True, nogil=True)
def _align_kernel(q, t, match, mismatch, n_score, gap_open, gap_extend):
    """Full DP with trace bytes. Returns (score, query_end, target_end (exclusive), ops reversed as uint8,
    query_start, target_start, matches)."""
    m = q.shape[0]
    n = t.shape[0]
    trace = np.zeros((m, n), dtype=np.uint8)
    h_prev = np.zeros(n + 1, dtype=np.int32)   # row i-1, index j+1 (index 0 is the boundary column)
    h_cur = np.zeros(n + 1, dtype=np.int32)
    f_col = np.full(n, _NEG_INF, dtype=np.int32)  # F(i-1, j) for each column
    best = 0
    best_i = -1
    best_j = -1
    for i in range(m):
        e = _NEG_INF
        h_cur[0] = 0
        for j in range(n):
            a = q[i]
            b = t[j]
            if a == N_CODE or b == N_CODE:
                s = n_score
            elif a == b:
                s = match
            else:
                s = mismatch
            # E(i, j): gap along the target ending at column j, from H(i, j-1) or E(i, j-1).
            e_open = h_cur[j] - gap_open
            e_ext = e - gap_extend
            tb = 0
            if e_ext > e_open:
                e = e_ext
                tb |= _E_EXTENDS
            else:
                e = e_open
            f_open = h_prev[j + 1] - gap_open
            f_ext = f_col[j] - gap_extend
            if f_ext > f_open:
                fv = f_ext
                tb |= _F_EXTENDS
            else:
                fv = f_open
            f_col[j] = fv
            d = h_prev[j] + s
            h = 0
            src = _FROM_ZERO
            if d > h:
                h = d
                src = _FROM_DIAG
            if e > h:
                h = e
                src = _FROM_E
            if fv > h:
                h = fv
                src = _FROM_F
            trace[i, j] = tb | src
            h_cur[j + 1] = h
            # Same tie rule as the score-only kernels: smallest target position, then smallest query one.
            if h > best or (h == best and h > 0 and (j < best_j or (j == best_j and i < best_i))):
                best = h
                best_i = i
                best_j = j
        h_prev, h_cur = h_cur, h_prev

    ops = np.empty(m + n, dtype=np.uint8)
    n_ops = 0
    matches = 0
    if best == 0:
        return 0, 0, 0, ops[:0], 0, 0, 0
    i = best_i
    j = best_j
    state = _IN_H
    while i >= 0 and j >= 0:
        tb = trace[i, j]
        if state == _IN_H:
            src = tb & 3
            if src == _FROM_ZERO:
                break
            if src == _FROM_DIAG:
                ops[n_ops] = _OP_M
                if q[i] == t[j] and q[i] != N_CODE:
                    matches += 1
                i -= 1
                j -= 1
                n_ops += 1
                continue
            state = src
        if state == _IN_E:
            ops[n_ops] = _OP_D
            state = _IN_E if tb & _E_EXTENDS else _IN_H
            j -= 1
        else:
            ops[n_ops] = _OP_I
            state = _IN_F if tb & _F_EXTENDS else _IN_H
            i -= 1
        n_ops += 1
    return best, best_i + 1, best_j + 1, ops[:n_ops], i + 1, j + 1, matches


@dataclass(frozen=True)
class Alignment:
    """A local alignment of one query against one target (spans are 0-based, end exclusive)."""

    score: int
    query_start: int
    query_end: int
    target_start: int
    target_end: int
    cigar: str   # M/I/D with S soft clips; consumes exactly len(query) query bases
    nm: int      # edit distance over the aligned span: M columns that are not identical ACGT bases, + I + D
    matches: int  # M columns with identical A/C/G/T bases


def _as_codes(seq: bytes | bytearray | np.ndarray) -> np.ndarray:
    raw = np.frombuffer(bytes(seq), dtype=np.uint8) if isinstance(seq, (bytes, bytearray)) else \
        np.ascontiguousarray(seq, dtype=np.uint8)
    return BASE_CODE[raw]


def align(query: bytes | np.ndarray, target: bytes | np.ndarray, scoring: Scoring = Scoring()) -> Alignment:
    """Best local alignment of ``query`` against ``target`` with traceback (see the module docstring for the
    tie rules). The score equals ``score_batch``'s for the same pair."""
    check_scoring(scoring)
    q = _as_codes(query)
    t = _as_codes(target)
    score, q_end, t_end, ops_rev, q_start, t_start, matches = _align_kernel(
        q, t, scoring.match, scoring.mismatch, scoring.n_score, scoring.gap_open, scoring.gap_extend)
    ops = ops_rev[::-1]
    parts = [f"{q_start}S"] if q_start else []
    gap_bases = 0
    k = 0
    while k < ops.shape[0]:
        run = k
        while run < ops.shape[0] and ops[run] == ops[k]:
            run += 1
        parts.append(f"{run - k}{_OP_CHARS[ops[k]]}")
        if ops[k] != _OP_M:
            gap_bases += run - k
        k = run
    if q.shape[0] - q_end:
        parts.append(f"{q.shape[0] - q_end}S")
    m_columns = int(np.count_nonzero(ops == _OP_M))
    return Alignment(score=int(score), query_start=int(q_start), query_end=int(q_end),
                     target_start=int(t_start), target_end=int(t_end), cigar="".join(parts),
                     nm=m_columns - int(matches) + gap_bases, matches=int(matches))


def cigar_query_length(cigar: str) -> int:
    """Query bases a CIGAR consumes (M, I, S, =, X)."""
    total = 0
    number = ""
    for ch in cigar:
        if ch.isdigit():
            number += ch
        else:
            if ch in "MIS=X":
                total += int(number)
            number = ""
    return total

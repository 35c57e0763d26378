"""Trimming and filtering of single reads and mate pairs (fastp's rules; see ``phase1.engine``)."""

from __future__ import annotations

import numpy as np
from numba import njit

from helixflow.phase1.kernels.adapter import adapter_start, adapter_words
from helixflow.phase1.kernels.quality import PHRED_OF_BYTE, phred
from helixflow.seq.alphabet import BASE_CODE, COMPLEMENT, N_CODE

# Filter outcomes, ordered by precedence: a pair takes the larger of its mates' codes (as fastp does).
PASS, TOO_MANY_N, TOO_SHORT, TOO_LONG, LOW_QUALITY = 0, 1, 2, 3, 4

# The trimming configuration is one int64 array (a single kernel argument, whatever the number of options);
# these name its slots. 0 turns the quality cuts, poly-G/X and the length cap off; -1 the low-quality and N
# filters. Numba reads module-level ints as compile-time constants, so a named slot costs nothing.
(FRONT_QUALITY, FRONT_WINDOW, TAIL_QUALITY, TAIL_WINDOW, POLY_G_MIN, POLY_X_MIN, ADAPTER_MIN_OVERLAP,
 QUALIFIED_QUALITY, UNQUALIFIED_PERCENT, N_LIMIT, MIN_LENGTH, MAX_LENGTH, OVERLAP_REQUIRE, OVERLAP_DIFF_LIMIT,
 OVERLAP_DIFF_PERCENT, CFG_SIZE) = range(16)


@njit(cache=True, nogil=True, inline="always")
def _cut_tail(data, q, front, end, window, threshold):
    """3' end of the read after a sliding-window cut: the window slides from the 3' end one base at a time
    and stops at the first window whose mean Phred is >= threshold; the read then ends at that window's last
    base of quality >= threshold. Returns the new end (== front when no window passes)."""
    n = end - front
    if n <= 0:
        return front
    w = min(window, n)
    need = w * threshold
    total = 0
    for i in range(end - w, end):
        total += phred(data[q + i])
    stop = end
    while True:
        if total >= need:
            break
        stop -= 1
        if stop - w < front:
            return front
        total += phred(data[q + stop - w]) - phred(data[q + stop])
    while stop > front and phred(data[q + stop - 1]) < threshold:
        stop -= 1
    return stop


@njit(cache=True, nogil=True, inline="always")
def _cut_front(data, q, front, end, window, threshold):
    """Mirror of ``_cut_tail`` from the 5' end; returns the new start (== end when no window passes)."""
    n = end - front
    if n <= 0:
        return end
    w = min(window, n)
    need = w * threshold
    total = 0
    for i in range(front, front + w):
        total += phred(data[q + i])
    start = front
    while True:
        if total >= need:
            break
        if start + w >= end:
            return end
        total += phred(data[q + start + w]) - phred(data[q + start])
        start += 1
    while start < end and phred(data[q + start]) < threshold:
        start += 1
    return start


@njit(cache=True, nogil=True, inline="always")
def _poly_g_start(data, s, front, end, min_len):
    """fastp's poly-G rule: from the 3' end, one mismatch allowed per 8 bases (at most 5), run of >= min_len.
    Returns the new end."""
    n = end - front
    mismatch = 0
    first_g = end
    i = 0
    while i < n:
        base = data[s + end - i - 1]
        if base != 71 and base != 103:
            mismatch += 1
        else:
            first_g = end - i - 1
        if mismatch > 5 or (mismatch > (i + 1) // 8 and i >= min_len - 1):
            break
        i += 1
    if i >= min_len:
        return first_g
    return end


@njit(cache=True, nogil=True, inline="always")
def _poly_x_start(data, s, front, end, min_len):
    """Poly-X: the poly-G rule for each of A, C, G, T; the longest qualifying run is removed. As in fastp's
    poly-X (not its poly-G), an N counts as a match for every letter; the run still ends at the letter itself."""
    best = end
    for letter in (65, 67, 71, 84):
        n = end - front
        mismatch = 0
        first = end
        i = 0
        while i < n:
            base = data[s + end - i - 1] & np.uint8(0xDF)
            if base == letter:
                first = end - i - 1
            elif base != 78:  # 'N'
                mismatch += 1
            if mismatch > 5 or (mismatch > (i + 1) // 8 and i >= min_len - 1):
                break
            i += 1
        if i >= min_len and first < best:
            best = first
    return best


@njit(cache=True, nogil=True, inline="always")
def _filter(data, s, q, front, end, qualified_q, unqualified_pct, n_limit, min_len, max_len):
    n = end - front
    if n <= 0:
        return TOO_SHORT
    low = 0
    ns = 0
    seq = data[s + front:s + end]  # views indexed by the loop counter (see adapter_start)
    qual = data[q + front:q + end]
    for i in range(n):
        if PHRED_OF_BYTE[qual[i]] < qualified_q:
            low += 1
        if BASE_CODE[seq[i]] == N_CODE:
            ns += 1
    if unqualified_pct >= 0 and low > unqualified_pct * n / 100.0:
        return LOW_QUALITY
    if n_limit >= 0 and ns > n_limit:
        return TOO_MANY_N
    if n < min_len:
        return TOO_SHORT
    if max_len > 0 and n > max_len:
        return TOO_LONG
    return PASS


@njit(cache=True, nogil=True, inline="always")
def _quality_and_poly_g(data, s, q, n, cfg):
    front = 0
    end = n
    if cfg[FRONT_QUALITY] > 0:
        front = _cut_front(data, q, front, end, cfg[FRONT_WINDOW], cfg[FRONT_QUALITY])
    if cfg[TAIL_QUALITY] > 0:
        end = _cut_tail(data, q, front, end, cfg[TAIL_WINDOW], cfg[TAIL_QUALITY])
    if cfg[TAIL_QUALITY] > 0 or cfg[FRONT_QUALITY] > 0:
        while end > front and BASE_CODE[data[s + end - 1]] == N_CODE:
            end -= 1
    if cfg[POLY_G_MIN] > 0:
        end = _poly_g_start(data, s, front, end, cfg[POLY_G_MIN])
    return front, end


# cfg layout (int64): 0 front_q (0 = off), 1 front_window, 2 tail_q (0 = off), 3 tail_window, 4 poly_g_min (0 = off),


@njit(cache=True, nogil=True)
def trim_single(data, seq_start, qual_start, lengths, adapter, cfg, error_rate, out_front, out_len, out_adapter,
                out_adapter_bases, out_status):
    """Trim and filter single reads. out_adapter[r] = adapter start relative to the read start, or -1;
    out_adapter_bases[r] = bases the adapter cut removed."""
    words = adapter_words(adapter, error_rate)
    for r in range(seq_start.shape[0]):
        s = seq_start[r]
        q = qual_start[r]
        front, end = _quality_and_poly_g(data, s, q, lengths[r], cfg)
        a = adapter_start(data, s, front, end, adapter, cfg[ADAPTER_MIN_OVERLAP], error_rate, words)
        out_adapter[r] = a if a < end else -1
        out_adapter_bases[r] = end - a
        end = a
        if cfg[POLY_X_MIN] > 0:
            end = _poly_x_start(data, s, front, end, cfg[POLY_X_MIN])
        out_front[r] = front
        out_len[r] = max(end - front, 0)
        out_status[r] = _filter(data, s, q, front, end, cfg[QUALIFIED_QUALITY], cfg[UNQUALIFIED_PERCENT], cfg[N_LIMIT], cfg[MIN_LENGTH], cfg[MAX_LENGTH])


@njit(cache=True, nogil=True, inline="always")
def _overlap(d1, s1, f1, e1, d2, s2, f2, e2, require, diff_limit, diff_pct):
    """fastp's overlap analysis of read 1 and the reverse complement of read 2 (views [f, e)).
    Returns (overlapped, offset, overlap_len)."""
    len1 = e1 - f1
    len2 = e2 - f2
    complete_compare = 50
    offset = 0
    while offset < len1 - require:
        ol = min(len1 - offset, len2)
        limit = min(diff_limit, int(ol * diff_pct / 100.0))
        diff = 0
        i = 0
        while i < ol:
            if (d1[s1 + f1 + offset + i] & np.uint8(0xDF)) != (COMPLEMENT[d2[s2 + e2 - 1 - i]] & np.uint8(0xDF)):
                diff += 1
                if diff > limit and i < complete_compare:
                    break
            i += 1
        if diff <= limit or i > complete_compare:
            return True, offset, ol
        offset += 1
    offset = 0
    while offset > -(len2 - require):
        ol = min(len1, len2 + offset)
        limit = min(diff_limit, int(ol * diff_pct / 100.0))
        diff = 0
        i = 0
        while i < ol:
            if (d1[s1 + f1 + i] & np.uint8(0xDF)) != (COMPLEMENT[d2[s2 + e2 - 1 - (i - offset)]] & np.uint8(0xDF)):
                diff += 1
                if diff > limit and i < complete_compare:
                    break
            i += 1
        if diff <= limit or i > complete_compare:
            return True, offset, ol
        offset -= 1
    return False, 0, 0


@njit(cache=True, nogil=True)
def trim_pairs(d1, ss1, qs1, l1, d2, ss2, qs2, l2, adapter1, adapter2, cfg, error_rate, front1, len1, adapter_at1,
               adapter_bases1, front2, len2, adapter_at2, adapter_bases2, status, insert_size):
    """Trim and filter mate pairs together; status[r] is the pair's outcome (a pair is kept or dropped whole).

    Adapters are found from the overlap of the mates first (insert shorter than the reads: both mates are cut to
    the insert); pairs without such an overlap fall back to the given adapter sequences.
    insert_size[r] = insert length when the mates overlap, else -1."""
    words1 = adapter_words(adapter1, error_rate)
    words2 = adapter_words(adapter2, error_rate)
    for r in range(ss1.shape[0]):
        s1, q1, s2, q2 = ss1[r], qs1[r], ss2[r], qs2[r]
        f1, e1 = _quality_and_poly_g(d1, s1, q1, l1[r], cfg)
        f2, e2 = _quality_and_poly_g(d2, s2, q2, l2[r], cfg)
        ok, offset, ol = _overlap(d1, s1, f1, e1, d2, s2, f2, e2, cfg[OVERLAP_REQUIRE], cfg[OVERLAP_DIFF_LIMIT], cfg[OVERLAP_DIFF_PERCENT])
        insert_size[r] = -1
        a1 = e1
        a2 = e2
        if ok:
            insert_size[r] = (e1 - f1) + (e2 - f2) - ol if offset >= 0 else ol
            if offset < 0:
                a1 = min(e1, f1 + ol + f2)
                a2 = min(e2, f2 + ol + f1)
        if a1 == e1:
            a1 = adapter_start(d1, s1, f1, e1, adapter1, cfg[ADAPTER_MIN_OVERLAP], error_rate, words1)
        if a2 == e2:
            a2 = adapter_start(d2, s2, f2, e2, adapter2, cfg[ADAPTER_MIN_OVERLAP], error_rate, words2)
        adapter_at1[r] = a1 if a1 < e1 else -1
        adapter_at2[r] = a2 if a2 < e2 else -1
        adapter_bases1[r] = e1 - a1
        adapter_bases2[r] = e2 - a2
        e1, e2 = a1, a2
        if cfg[POLY_X_MIN] > 0:
            e1 = _poly_x_start(d1, s1, f1, e1, cfg[POLY_X_MIN])
            e2 = _poly_x_start(d2, s2, f2, e2, cfg[POLY_X_MIN])
        front1[r], len1[r] = f1, max(e1 - f1, 0)
        front2[r], len2[r] = f2, max(e2 - f2, 0)
        st1 = _filter(d1, s1, q1, f1, e1, cfg[QUALIFIED_QUALITY], cfg[UNQUALIFIED_PERCENT], cfg[N_LIMIT], cfg[MIN_LENGTH], cfg[MAX_LENGTH])
        st2 = _filter(d2, s2, q2, f2, e2, cfg[QUALIFIED_QUALITY], cfg[UNQUALIFIED_PERCENT], cfg[N_LIMIT], cfg[MIN_LENGTH], cfg[MAX_LENGTH])
        status[r] = max(st1, st2)

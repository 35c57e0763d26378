"""The adapter scan: where a read runs into a known adapter sequence (substitutions only)."""

from __future__ import annotations

import numpy as np
from numba import njit

from helixflow.seq.alphabet import BASE_CODE, N_CODE
from helixflow.seq.hashing import MASK64

# Read byte -> its base code (BASE_CODE) spread over a 64-bit word: the code's high bit, its low bit, and
# "not A/C/G/T in either case". With the adapter held the same way (one bit per adapter position), one read base is compared
# with every adapter position in a few word operations (see adapter_start).
_CODE_HI = np.zeros(256, dtype=np.uint64)
_CODE_LO = np.zeros(256, dtype=np.uint64)
_CODE_OTHER = np.zeros(256, dtype=np.uint64)
_CODE_HI[(BASE_CODE & 2) != 0] = MASK64
_CODE_LO[(BASE_CODE & 1) != 0] = MASK64
_CODE_OTHER[BASE_CODE == N_CODE] = MASK64
_U0 = np.uint64(0)
_U1 = np.uint64(1)


@njit(cache=True, nogil=True)
def adapter_start_plain(data, s, front, end, adapter, min_overlap, max_error_rate):
    """``adapter_start`` by direct comparison, position by position: for the adapters its word scan cannot
    hold (see there)."""
    alen = adapter.shape[0]
    full_allowed = int(alen * max_error_rate)
    for p in range(front, end - min_overlap + 1):
        overlap = end - p
        allowed = full_allowed
        if overlap < alen:
            allowed = int(overlap * max_error_rate)
        else:
            overlap = alen
        mismatches = 0
        i = 0
        while i < overlap:
            a = adapter[i]
            if (data[s + p + i] & np.uint8(0xDF)) != a and a != 78:
                mismatches += 1
                if mismatches > allowed:
                    break
            i += 1
        if mismatches <= allowed:
            return p
    return end


# The adapter as the word scan holds it (``adapter_words``): one bit per adapter position in each word.
_HI, _LO, _CARE, _HOLDS = range(4)


@njit(cache=True, nogil=True)
def adapter_words(adapter, max_error_rate):
    """(hi, lo, care, holds) of ``adapter``: its 2-bit codes' high and low bits, its positions that are not N,
    and 1 when the word scan can hold it (0: ``adapter_start_plain`` answers)."""
    alen = adapter.shape[0]
    full_allowed = int(alen * max_error_rate)
    words = np.zeros(4, dtype=np.uint64)
    if not (alen <= 64 and 0 <= full_allowed <= 7):
        return words
    wild = _U0
    for i in range(alen):
        a = adapter[i]
        bit = _U1 << np.uint64(i)
        if a == 67:  # C = 01
            words[_LO] |= bit
        elif a == 71:  # G = 10
            words[_HI] |= bit
        elif a == 84:  # T = 11
            words[_HI] |= bit
            words[_LO] |= bit
        elif a == 78:
            wild |= bit
        elif a != 65:  # A = 00
            return np.zeros(4, dtype=np.uint64)
    words[_CARE] = ~wild
    words[_HOLDS] = _U1
    return words


@njit(cache=True, nogil=True, inline="always")
def adapter_start(data, s, front, end, adapter, min_overlap, max_error_rate, words):
    """First position p in [front, end) where the read from p on matches the adapter's prefix (the whole
    adapter, or as much as fits before the 3' end) with at most floor(overlap * max_error_rate) substitutions
    and overlap >= min_overlap. N in the adapter matches any base. Returns ``end`` when there is none.

    Exact bit-parallel scan (no filter, no candidates): bit i of four 64-bit counter planes c0..c3 holds the
    mismatch count of the alignment that started i bases ago (read[q - i .. q] against adapter[0 .. i]). Each
    read base q shifts every alignment one bit up, starts a new one at bit 0, and adds that base's mismatch
    word (bit i set iff read[q] != adapter[i], N in the adapter never mismatching) with a bit-sliced carry. A
    count starts at 7 - full_allowed, so c3 (kept sticky) becomes set exactly when the alignment exceeds
    full_allowed mismatches; bits of alignments not started yet begin with c3 set. Hence:
    - whole-adapter overlaps end at q = p + alen - 1, in increasing p, all before any partial overlap: the
      first q whose bit alen - 1 has c3 clear gives the smallest valid p;
    - after the last base, bit L - 1 is the partial overlap of length L (p = end - L) with its exact count
      (the lower planes minus the start value) or c3 set (more than full_allowed, which is >= int(L * rate)
      for every L < alen once full_allowed >= 0); they are read in increasing p.
    A read base matches an adapter A/C/G/T iff its BASE_CODE code equals the adapter's, which is what the byte
    comparison ``data & 0xDF == adapter`` means for those letters (any other read letter matches only N).
    Adapters the words cannot hold (over 64 bases, more than 7 allowed mismatches, letters other than ACGTN)
    use ``adapter_start_plain``, the same search by direct comparison. ``words`` is the adapter as the scan
    holds it, ``adapter_words(adapter, max_error_rate)``: built once per batch, not per read."""
    alen = adapter.shape[0]
    if alen == 0:
        return end
    if words[_HOLDS] == _U0:
        return adapter_start_plain(data, s, front, end, adapter, min_overlap, max_error_rate)
    hi, lo, care = words[_HI], words[_LO], words[_CARE]
    full_allowed = int(alen * max_error_rate)
    base = 7 - full_allowed
    b0 = np.uint64(base & 1)
    b1 = np.uint64((base >> 1) & 1)
    b2 = np.uint64((base >> 2) & 1)
    c0 = _U0
    c1 = _U0
    c2 = _U0
    c3 = MASK64
    whole = _U1 << np.uint64(alen - 1)
    # The loop indexes a view of the span by its own counter: ``data[s + q]`` cost a negative-index check per base.
    span = data[s + front:s + end]
    for i in range(span.shape[0]):
        d = span[i]
        x = ((hi ^ _CODE_HI[d]) | (lo ^ _CODE_LO[d]) | _CODE_OTHER[d]) & care
        c0 = (c0 << _U1) | b0
        c1 = (c1 << _U1) | b1
        c2 = (c2 << _U1) | b2
        c3 = c3 << _U1
        carry = c0 & x
        c0 ^= x
        nxt = c1 & carry
        c1 ^= carry
        carry = c2 & nxt
        c2 ^= nxt
        c3 |= carry
        if (c3 & whole) == _U0:
            p = front + i - alen + 1
            # p > end - min_overlap only when min_overlap > alen, which rules out every later p as well
            return p if p <= end - min_overlap else end
    for overlap in range(min(alen - 1, end - front), max(min_overlap, 1) - 1, -1):
        at = np.uint64(overlap - 1)
        if ((c3 >> at) & _U1) == _U0:
            count = int(((c0 >> at) & _U1) | (((c1 >> at) & _U1) << _U1) | (((c2 >> at) & _U1) << np.uint64(2)))
            if count - base <= int(overlap * max_error_rate):
                return end - overlap
    return end


@njit(cache=True, nogil=True)
def count_adapter_hits(data, seq_start, lengths, adapter, min_overlap, error_rate):
    """Reads in which the adapter (or its prefix at the 3' end, >= min_overlap bases) is found."""
    words = adapter_words(adapter, error_rate)
    hits = 0
    for r in range(seq_start.shape[0]):
        if adapter_start(data, seq_start[r], 0, lengths[r], adapter, min_overlap, error_rate, words) < lengths[r]:
            hits += 1
    return hits

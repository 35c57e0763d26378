"""Numba kernels of the Phase 1 engine. Each works on one batch: the raw FASTQ bytes plus per-record offsets.

All kernels are ``nogil`` so the decompression and compression threads run beside them, and ``cache=True`` so
the compile cost is paid once per machine.

Base codes: A=0, C=1, G=2, T=3 (either case); every other letter (N and the IUPAC ambiguity codes) is 4 and
counts as N in the statistics and in the N filter. Output reads keep their original letters.
"""

from __future__ import annotations

import numpy as np
from numba import njit

PHRED_OFFSET = 33
QUAL_BINS = 94  # Phred 0..93, the printable range of Sanger/Illumina 1.8+ FASTQ

BASE5 = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    BASE5[_b] = _i
    BASE5[_b + 32] = _i
COMPLEMENT = np.arange(256, dtype=np.uint8)
for _a, _c in zip(b"ACGTNacgtn", b"TGCANtgcan"):
    COMPLEMENT[_a] = _c

# Filter outcomes, ordered by precedence: a pair takes the larger of its mates' codes (as fastp does).
PASS, TOO_MANY_N, TOO_SHORT, TOO_LONG, LOW_QUALITY = 0, 1, 2, 3, 4

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, nogil=True, inline="always")
def _phred(byte):
    v = np.int64(byte) - PHRED_OFFSET
    if v < 0:
        return 0
    if v >= QUAL_BINS:
        return QUAL_BINS - 1
    return v


# ------------------------------------------------------------------------------------------- statistics

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
            b = BASE5[data[s + i]]
            qv = _phred(data[q + i])
            base_counts[i, b] += 1
            base_qual_sum[i, b] += qv
            qual_hist[i, qv] += 1
            total += qv
        if n > 0:
            mean_qual_hist[total // n] += 1


@njit(cache=True, nogil=True, inline="always")
def _mix(x):
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _hash_bytes(data, start, stop):
    h = np.uint64(0xCBF29CE484222325)
    for i in range(start, stop):
        h = ((h ^ np.uint64(data[i])) * np.uint64(0x100000001B3)) & _M64
    return _mix(h ^ np.uint64(stop - start))


@njit(cache=True, nogil=True)
def hash_sequences(data, seq_start, lengths, out):
    for r in range(seq_start.shape[0]):
        out[r] = _hash_bytes(data, seq_start[r], seq_start[r] + lengths[r])


@njit(cache=True, nogil=True)
def hash_names(data, name_start, name_end, out):
    """Hash of the read id (the header up to the first whitespace): a per-read coin that does not depend on
    how the file was cut into chunks."""
    for r in range(name_start.shape[0]):
        e = name_start[r]
        while e < name_end[r] and data[e] != 32 and data[e] != 9:
            e += 1
        out[r] = _hash_bytes(data, name_start[r], e)


@njit(cache=True, nogil=True, inline="always")
def _sampled(h, level):
    return level == 0 or (h >> np.uint64(64 - level)) == np.uint64(0)


@njit(cache=True, nogil=True)
def _table_rebuild(keys, counts, state, cap):
    """Raise the sampling level until the kept distinct keys fit ``cap``, then rehash in place."""
    while state[1] > cap:
        state[0] += 1
        kept = 0
        for j in range(keys.shape[0]):
            if counts[j] != 0 and _sampled(keys[j], state[0]):
                kept += 1
        state[1] = kept
    old_keys = keys.copy()
    old_counts = counts.copy()
    counts[:] = 0
    mask = keys.shape[0] - 1
    for j in range(old_keys.shape[0]):
        if old_counts[j] != 0 and _sampled(old_keys[j], state[0]):
            slot = np.int64(old_keys[j] & np.uint64(mask))
            while counts[slot] != 0:
                slot = (slot + 1) & mask
            keys[slot] = old_keys[j]
            counts[slot] = old_counts[j]


@njit(cache=True, nogil=True)
def count_sampled(hashes, keys, counts, state, cap):
    """Count occurrences of every hash whose top ``state[0]`` bits are zero (a uniform sample of the distinct
    sequences). ``keys``/``counts`` is an open-addressing table of size >= 2 * cap (a power of two);
    ``state`` = [level, distinct keys kept]. Exactly mergeable: see ``stats.HashSample``."""
    mask = keys.shape[0] - 1
    for h in hashes:
        if not _sampled(h, state[0]):
            continue
        slot = np.int64(h & np.uint64(mask))
        while counts[slot] != 0 and keys[slot] != h:
            slot = (slot + 1) & mask
        if counts[slot] == 0:
            keys[slot] = h
            state[1] += 1
        counts[slot] += 1
        if state[1] > cap:
            _table_rebuild(keys, counts, state, cap)


# --------------------------------------------------------------------------------------------- trimming

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
        total += _phred(data[q + i])
    stop = end
    while True:
        if total >= need:
            break
        stop -= 1
        if stop - w < front:
            return front
        total += _phred(data[q + stop - w]) - _phred(data[q + stop])
    while stop > front and _phred(data[q + stop - 1]) < threshold:
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
        total += _phred(data[q + i])
    start = front
    while True:
        if total >= need:
            break
        if start + w >= end:
            return end
        total += _phred(data[q + start + w]) - _phred(data[q + start])
        start += 1
    while start < end and _phred(data[q + start]) < threshold:
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


# Read byte -> its base code (BASE5) spread over a 64-bit word: the code's high bit, its low bit, and "not A/C/G/T
# in either case". With the adapter held the same way (one bit per adapter position), one read base is compared
# with every adapter position in a few word operations (see _adapter_start).
_CODE_HI = np.zeros(256, dtype=np.uint64)
_CODE_LO = np.zeros(256, dtype=np.uint64)
_CODE_OTHER = np.zeros(256, dtype=np.uint64)
_CODE_HI[(BASE5 & 2) != 0] = _M64
_CODE_LO[(BASE5 & 1) != 0] = _M64
_CODE_OTHER[BASE5 == 4] = _M64
_U0 = np.uint64(0)
_U1 = np.uint64(1)


@njit(cache=True, nogil=True)
def _adapter_start_plain(data, s, front, end, adapter, min_overlap, max_error_rate):
    """``_adapter_start`` by direct comparison, position by position: for the adapters its word scan cannot
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


@njit(cache=True, nogil=True, inline="always")
def _adapter_start(data, s, front, end, adapter, min_overlap, max_error_rate):
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
    A read base matches an adapter A/C/G/T iff its BASE5 code equals the adapter's, which is what the byte
    comparison ``data & 0xDF == adapter`` means for those letters (any other read letter matches only N).
    Adapters the words cannot hold (over 64 bases, more than 7 allowed mismatches, letters other than ACGTN)
    use ``_adapter_start_plain``, the same search by direct comparison."""
    alen = adapter.shape[0]
    if alen == 0:
        return end
    full_allowed = int(alen * max_error_rate)
    hi = _U0
    lo = _U0
    wild = _U0
    supported = alen <= 64 and 0 <= full_allowed <= 7
    i = 0
    while supported and i < alen:
        a = adapter[i]
        bit = _U1 << np.uint64(i)
        if a == 67:  # C = 01
            lo |= bit
        elif a == 71:  # G = 10
            hi |= bit
        elif a == 84:  # T = 11
            hi |= bit
            lo |= bit
        elif a == 78:
            wild |= bit
        elif a != 65:  # A = 00
            supported = False
        i += 1
    if not supported:
        return _adapter_start_plain(data, s, front, end, adapter, min_overlap, max_error_rate)
    care = ~wild
    base = 7 - full_allowed
    b0 = np.uint64(base & 1)
    b1 = np.uint64((base >> 1) & 1)
    b2 = np.uint64((base >> 2) & 1)
    c0 = _U0
    c1 = _U0
    c2 = _U0
    c3 = _M64
    whole = _U1 << np.uint64(alen - 1)
    for q in range(front, end):
        d = data[s + q]
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
            p = q - alen + 1
            # p > end - min_overlap only when min_overlap > alen, which rules out every later p as well
            return p if p <= end - min_overlap else end
    for overlap in range(min(alen - 1, end - front), max(min_overlap, 1) - 1, -1):
        at = np.uint64(overlap - 1)
        if ((c3 >> at) & _U1) == _U0:
            count = int(((c0 >> at) & _U1) | (((c1 >> at) & _U1) << _U1) | (((c2 >> at) & _U1) << np.uint64(2)))
            if count - base <= int(overlap * max_error_rate):
                return end - overlap
    return end


@njit(cache=True, nogil=True, inline="always")
def _filter(data, s, q, front, end, qualified_q, unqualified_pct, n_limit, min_len, max_len):
    n = end - front
    if n <= 0:
        return TOO_SHORT
    low = 0
    ns = 0
    for i in range(front, end):
        if _phred(data[q + i]) < qualified_q:
            low += 1
        if BASE5[data[s + i]] == 4:
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
    if cfg[0] > 0:
        front = _cut_front(data, q, front, end, cfg[1], cfg[0])
    if cfg[2] > 0:
        end = _cut_tail(data, q, front, end, cfg[3], cfg[2])
    if cfg[2] > 0 or cfg[0] > 0:
        while end > front and BASE5[data[s + end - 1]] == 4:
            end -= 1
    if cfg[4] > 0:
        end = _poly_g_start(data, s, front, end, cfg[4])
    return front, end


# cfg layout (int64): 0 front_q (0 = off), 1 front_window, 2 tail_q (0 = off), 3 tail_window, 4 poly_g_min (0 = off),
# 5 poly_x_min (0 = off), 6 adapter_min_overlap, 7 qualified_q, 8 unqualified_pct (-1 = off), 9 n_limit (-1 = off),
# 10 min_len, 11 max_len (0 = off), 12 overlap_require, 13 overlap_diff_limit, 14 overlap_diff_pct
CFG_SIZE = 15


@njit(cache=True, nogil=True)
def trim_single(data, seq_start, qual_start, lengths, adapter, cfg, error_rate, out_front, out_len, out_adapter,
                out_adapter_bases, out_status):
    """Trim and filter single reads. out_adapter[r] = adapter start relative to the read start, or -1;
    out_adapter_bases[r] = bases the adapter cut removed."""
    for r in range(seq_start.shape[0]):
        s = seq_start[r]
        q = qual_start[r]
        front, end = _quality_and_poly_g(data, s, q, lengths[r], cfg)
        a = _adapter_start(data, s, front, end, adapter, cfg[6], error_rate)
        out_adapter[r] = a if a < end else -1
        out_adapter_bases[r] = end - a
        end = a
        if cfg[5] > 0:
            end = _poly_x_start(data, s, front, end, cfg[5])
        out_front[r] = front
        out_len[r] = max(end - front, 0)
        out_status[r] = _filter(data, s, q, front, end, cfg[7], cfg[8], cfg[9], cfg[10], cfg[11])


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
    for r in range(ss1.shape[0]):
        s1, q1, s2, q2 = ss1[r], qs1[r], ss2[r], qs2[r]
        f1, e1 = _quality_and_poly_g(d1, s1, q1, l1[r], cfg)
        f2, e2 = _quality_and_poly_g(d2, s2, q2, l2[r], cfg)
        ok, offset, ol = _overlap(d1, s1, f1, e1, d2, s2, f2, e2, cfg[12], cfg[13], cfg[14])
        insert_size[r] = -1
        a1 = e1
        a2 = e2
        if ok:
            insert_size[r] = (e1 - f1) + (e2 - f2) - ol if offset >= 0 else ol
            if offset < 0:
                a1 = min(e1, f1 + ol + f2)
                a2 = min(e2, f2 + ol + f1)
        if a1 == e1:
            a1 = _adapter_start(d1, s1, f1, e1, adapter1, cfg[6], error_rate)
        if a2 == e2:
            a2 = _adapter_start(d2, s2, f2, e2, adapter2, cfg[6], error_rate)
        adapter_at1[r] = a1 if a1 < e1 else -1
        adapter_at2[r] = a2 if a2 < e2 else -1
        adapter_bases1[r] = e1 - a1
        adapter_bases2[r] = e2 - a2
        e1, e2 = a1, a2
        if cfg[5] > 0:
            e1 = _poly_x_start(d1, s1, f1, e1, cfg[5])
            e2 = _poly_x_start(d2, s2, f2, e2, cfg[5])
        front1[r], len1[r] = f1, max(e1 - f1, 0)
        front2[r], len2[r] = f2, max(e2 - f2, 0)
        st1 = _filter(d1, s1, q1, f1, e1, cfg[7], cfg[8], cfg[9], cfg[10], cfg[11])
        st2 = _filter(d2, s2, q2, f2, e2, cfg[7], cfg[8], cfg[9], cfg[10], cfg[11])
        status[r] = max(st1, st2)


# ------------------------------------------------------------------------------------------------ output

@njit(cache=True, nogil=True)
def render_fastq(data, name_start, name_end, seq_start, qual_start, front, lengths, selected):
    """FASTQ text of the selected reads, trimmed to [front, front + length); headers are kept whole."""
    size = 0
    for r in range(seq_start.shape[0]):
        if selected[r]:
            size += (name_end[r] - name_start[r]) + 2 * lengths[r] + 6
    out = np.empty(size, dtype=np.uint8)
    o = 0
    for r in range(seq_start.shape[0]):
        if not selected[r]:
            continue
        out[o] = 64
        o += 1
        for i in range(name_start[r], name_end[r]):
            out[o] = data[i]
            o += 1
        out[o] = 10
        o += 1
        s = seq_start[r] + front[r]
        for i in range(lengths[r]):
            out[o + i] = data[s + i]
        o += lengths[r]
        out[o] = 10
        out[o + 1] = 43
        out[o + 2] = 10
        o += 3
        s = qual_start[r] + front[r]
        for i in range(lengths[r]):
            out[o + i] = data[s + i]
        o += lengths[r]
        out[o] = 10
        o += 1
    return out


@njit(cache=True, nogil=True)
def gather_columns(data, name_start, name_end, seq_start, qual_start, front, lengths, selected):
    """Packed id / sequence / quality strings of the selected reads (Arrow string layout: data + int32
    offsets). The id is the header up to the first whitespace."""
    n = 0
    id_size = 0
    seq_size = 0
    for r in range(seq_start.shape[0]):
        if selected[r]:
            n += 1
            e = name_start[r]
            while e < name_end[r] and data[e] != 32 and data[e] != 9:
                e += 1
            id_size += e - name_start[r]
            seq_size += lengths[r]
    ids = np.empty(id_size, dtype=np.uint8)
    seqs = np.empty(seq_size, dtype=np.uint8)
    quals = np.empty(seq_size, dtype=np.uint8)
    id_off = np.zeros(n + 1, dtype=np.int32)
    seq_off = np.zeros(n + 1, dtype=np.int32)
    k = 0
    io = 0
    so = 0
    for r in range(seq_start.shape[0]):
        if not selected[r]:
            continue
        e = name_start[r]
        while e < name_end[r] and data[e] != 32 and data[e] != 9:
            e += 1
        for i in range(name_start[r], e):
            ids[io] = data[i]
            io += 1
        s = seq_start[r] + front[r]
        q = qual_start[r] + front[r]
        for i in range(lengths[r]):
            seqs[so + i] = data[s + i]
            quals[so + i] = data[q + i]
        so += lengths[r]
        k += 1
        id_off[k] = io
        seq_off[k] = so
    return ids, id_off, seqs, quals, seq_off


@njit(cache=True, nogil=True)
def valid_kmer_counts(seqs, offsets, k):
    """Number of k-mers without N/IUPAC letters in each packed sequence (what the embedding sees)."""
    n = offsets.shape[0] - 1
    out = np.zeros(n, dtype=np.int64)
    for r in range(n):
        run = 0
        c = 0
        for i in range(offsets[r], offsets[r + 1]):
            if BASE5[seqs[i]] < 4:
                run += 1
                if run >= k:
                    c += 1
            else:
                run = 0
        out[r] = c
    return out


@njit(cache=True, nogil=True)
def count_adapter_hits(data, seq_start, lengths, adapter, min_overlap, error_rate):
    """Reads in which the adapter (or its prefix at the 3' end, >= min_overlap bases) is found."""
    hits = 0
    for r in range(seq_start.shape[0]):
        if _adapter_start(data, seq_start[r], 0, lengths[r], adapter, min_overlap, error_rate) < lengths[r]:
            hits += 1
    return hits

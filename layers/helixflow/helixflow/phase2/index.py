"""Minimizer index searcher (the CPU searcher).

Choices:
- k = ``K`` = 15, window w = ``W`` = 10: the minimizer of every w consecutive canonical k-mers (smallest
  64-bit mixed hash, leftmost on ties), about 2/(w+1) of positions. k is odd, so no k-mer is its own reverse
  complement and each minimizer has a defined strand. 15-mers are unique in random sequence up to ~10^9 bp,
  and a 150 bp read with a 1 % error rate keeps most of its ~27 minimizers intact.
- Minimizers occurring more than ``MAX_OCCURRENCES`` = 200 times in the reference (low complexity, high-copy
  repeats) are skipped during search, bounding work per read the way bwa and minimap2 cap seed occurrences.
- Hits vote for a (strand, diagonal = reference position - read position) pair. Hits whose diagonals lie within
  ``MAX_DIAGONAL_GAP`` = 16 of each other join one group, so one locus with indels up to that size stays one
  candidate. A read keeps its ``MAX_CANDIDATES`` = 8 groups with the most votes, and only groups with at
  least ``MIN_VOTE_FRACTION`` = 1/8 of the best group's votes (weaker groups are seed noise, not a
  competing locus; a diverged paralog that loses even these seeds scores far below the true locus anyway).
  A read with more qualifying groups than ``MAX_CANDIDATES`` is flagged ``overflow``.
- Each group becomes the region [first diagonal - ``PAD``, last diagonal + read length + ``PAD``] of its contig
  with ``PAD`` = 16, so Smith–Waterman can place indels and clipped ends near the seeds.
The index is a hash-sorted table (hashes, positions, strands) - three flat arrays, cheap to broadcast over MPI
and deterministic to rebuild. Lookups go through a bucket table over the hashes' top bits (about one entry
per bucket, derived from the hashes where the index is used, never stored or broadcast): a seed costs one
bucket read and a scan of the few hashes of its bucket instead of two binary searches over the whole
table, each a chain of cache misses on a genome of a few Mb.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numba import njit, prange

from helixflow.embedding import roll_kmer
from helixflow.phase2.candidates import Candidates
from helixflow.phase2.reads import ReadBatch
from helixflow.phase2.reference import Reference
from helixflow.seq.alphabet import BASE_CODE
from helixflow.seq.hashing import mix64

K = 15
W = 10
MAX_OCCURRENCES = 200
MAX_DIAGONAL_GAP = 16
MAX_CANDIDATES = 8
MIN_VOTE_FRACTION = 0.125
PAD = 16
LINEAR_BUCKET = 16  # entries of a bucket scanned linearly; longer buckets are binary-searched
SEARCH_BLOCK = 256  # reads per block of the search (one scratch per block; blocks are the parallel items)

_INVALID = np.uint64(0xFFFFFFFFFFFFFFFF)
# Puts the two strands' diagonals in disjoint key ranges, so sorting groups by strand first.
_STRAND_KEY = np.int64(1) << np.int64(52)


@njit(cache=True)
def minimizers(seq, k, w, out_hash, out_pos, out_strand):
    """Write the (w, k) minimizers of ``seq`` into the out arrays (capacity >= len(seq)); return the count.
    ``out_strand`` is 0 when the forward k-mer is the canonical one, 1 when its reverse complement is.
    A window is w consecutive k-mers (one window when there are fewer); its minimizer is its smallest hash,
    the leftmost on ties; k-mers with an N never are one; a k-mer that stays the minimizer of several windows
    is written once."""
    n_kmers = seq.shape[0] - k + 1
    if n_kmers <= 0:
        return 0
    # One pass: each k-mer is hashed as its last base arrives and kept in a ring of the window's w hashes
    # (writing every hash out before a second pass over them cost 60% more).
    ring = 1
    while ring < w:
        ring *= 2
    mask = ring - 1
    ring_hash = np.empty(ring, dtype=np.uint64)
    ring_strand = np.empty(ring, dtype=np.uint8)
    kmask = np.uint64((1 << (2 * k)) - 1)
    shift = np.uint64(2 * (k - 1))
    fwd = np.uint64(0)
    rev = np.uint64(0)
    valid = 0
    best_hash = _INVALID
    best = -1
    best_strand = np.uint8(0)
    count = 0
    last = -1
    for i in range(seq.shape[0]):
        c = BASE_CODE[seq[i]]
        if c > 3:
            valid = 0
            fwd = np.uint64(0)
            rev = np.uint64(0)
        else:
            fwd, rev = roll_kmer(fwd, rev, c, kmask, shift)
            valid += 1
        j = i - k + 1
        if j < 0:
            continue
        # Selects, not branches: which strand is canonical is a coin flip per k-mer, and a mispredicted branch
        # around each side's hash cost more than hashing once. The forward k-mer when strictly smaller.
        s = np.uint8(fwd >= rev)
        h = mix64(rev if s else fwd)  # a bijection: distinct k-mers never collide
        h = _INVALID if valid < k else h
        s = np.uint8(0) if valid < k else s
        ring_hash[j & mask] = h
        ring_strand[j & mask] = s
        # The window of w k-mers ending at j: the entering k-mer wins if strictly smaller (ties keep the
        # leftmost); the window is rescanned only when its minimum has left it.
        start = j - w + 1
        if h < best_hash:
            best_hash, best, best_strand = h, j, s
        elif best < start:
            best = start
            best_hash = ring_hash[start & mask]
            for p in range(start + 1, j + 1):
                if ring_hash[p & mask] < best_hash:
                    best_hash = ring_hash[p & mask]
                    best = p
            best_strand = ring_strand[best & mask]
        if start >= 0 and best != last and best_hash != _INVALID:
            out_hash[count] = best_hash
            out_pos[count] = best
            out_strand[count] = best_strand
            count += 1
            last = best
    if n_kmers < w and best_hash != _INVALID:  # fewer k-mers than a window: they are the one window
        out_hash[0] = best_hash
        out_pos[0] = best
        out_strand[0] = best_strand
        count = 1
    return count


@njit(cache=True)
def _build(buffer, offsets, k, w):
    total = buffer.shape[0]
    hashes = np.empty(total, dtype=np.uint64)
    positions = np.empty(total, dtype=np.int64)
    strands = np.empty(total, dtype=np.uint8)
    count = 0
    for c in range(offsets.shape[0] - 1):
        lo = offsets[c]
        n = minimizers(buffer[lo:offsets[c + 1]], k, w, hashes[count:], positions[count:], strands[count:])
        for j in range(count, count + n):
            positions[j] += lo
        count += n
    return hashes[:count], positions[:count], strands[:count]


def bucket_shift(n_hashes: int) -> np.uint64:
    """The bucket of a hash is its top bits, ``hash >> shift``: ~1 hash per bucket, at most 2**24 buckets (128 MiB
    of table; a human genome's buckets then hold ~36)."""
    return np.uint64(64 - min(max(int(n_hashes).bit_length(), 1), 24))


@njit(cache=True)
def _sort_by_hash(hashes, positions, strands, shift):
    """A stable sort by hash (positions keep their order within a hash): a counting sort on the buckets' top
    bits, then each bucket's few entries in order (an insertion sort; a long bucket, such as a high-copy
    repeat's, by a merge sort). A third of the time of numpy's stable argsort, which has no radix sort for 64-bit
    keys."""
    n = hashes.shape[0]
    n_buckets = (np.uint64(1) << (np.uint64(64) - shift))
    start = np.zeros(np.int64(n_buckets) + 1, dtype=np.int64)
    for i in range(n):
        start[np.int64(hashes[i] >> shift) + 1] += 1
    for b in range(np.int64(n_buckets)):
        start[b + 1] += start[b]
    fill = start[:-1].copy()
    out_hash = np.empty_like(hashes)
    out_pos = np.empty_like(positions)
    out_strand = np.empty_like(strands)
    for i in range(n):
        b = np.int64(hashes[i] >> shift)
        j = fill[b]
        fill[b] += 1
        out_hash[j] = hashes[i]
        out_pos[j] = positions[i]
        out_strand[j] = strands[i]
    for b in range(np.int64(n_buckets)):
        lo, hi = start[b], start[b + 1]
        if hi - lo > 64:
            order = lo + np.argsort(out_hash[lo:hi], kind="mergesort")
            out_hash[lo:hi] = out_hash[order]
            out_pos[lo:hi] = out_pos[order]
            out_strand[lo:hi] = out_strand[order]
            continue
        for i in range(lo + 1, hi):
            h, p, s = out_hash[i], out_pos[i], out_strand[i]
            j = i - 1
            while j >= lo and out_hash[j] > h:
                out_hash[j + 1], out_pos[j + 1], out_strand[j + 1] = out_hash[j], out_pos[j], out_strand[j]
                j -= 1
            out_hash[j + 1], out_pos[j + 1], out_strand[j + 1] = h, p, s
    return out_hash, out_pos, out_strand


def minimizer_table(buffer: np.ndarray, offsets: np.ndarray, k: int = K, w: int = W
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (k, w) minimizers of the sequences stored back to back in ``buffer`` (sequence i at
    ``offsets[i]:offsets[i+1]``), sorted by hash, equal hashes by position: (hashes, positions in ``buffer``,
    strands)."""
    hashes, positions, strands = _build(buffer, offsets, k, w)
    return _sort_by_hash(hashes, positions, strands, bucket_shift(hashes.shape[0]))


@njit(cache=True, parallel=True)
def _search(seq, seq_offsets, entries, buckets, shift, ref_offsets, k, w,
            max_occurrences,
            max_gap, max_candidates, min_vote_fraction, pad, out_strand, out_contig, out_start, out_end,
            out_votes, out_count, out_overflow):
    n_reads = seq_offsets.shape[0] - 1
    longest = 1
    for r in range(n_reads):
        longest = max(longest, seq_offsets[r + 1] - seq_offsets[r])
    # Reads in blocks, each block's scratch allocated once: allocating it per read was a large part of the time.
    n_blocks = (n_reads + SEARCH_BLOCK - 1) // SEARCH_BLOCK
    for block in prange(n_blocks):
        m_hash = np.empty(longest, dtype=np.uint64)
        m_pos = np.empty(longest, dtype=np.int64)
        m_strand = np.empty(longest, dtype=np.uint8)
        lo = np.empty(longest, dtype=np.int64)
        hi = np.empty(longest, dtype=np.int64)
        keys_store = np.empty(4 * longest, dtype=np.int64)
        best_votes = np.zeros(max_candidates, dtype=np.int64)
        best_first = np.zeros(max_candidates, dtype=np.int64)
        best_last = np.zeros(max_candidates, dtype=np.int64)
        for r in range(block * SEARCH_BLOCK, min(n_reads, (block + 1) * SEARCH_BLOCK)):
            keys_store = _search_read(r, seq, seq_offsets, entries, buckets, shift,
                                      ref_offsets, k, w, max_occurrences, max_gap, max_candidates,
                                      min_vote_fraction, pad, out_strand, out_contig, out_start, out_end,
                                      out_votes, out_count, out_overflow, m_hash, m_pos, m_strand, lo, hi,
                                      keys_store, best_votes, best_first, best_last)


@njit(cache=True)
def _sort_small(keys):
    """Sort in place: insertion sort for a read's usual few dozen seed keys, numpy's sort above."""
    n = keys.shape[0]
    if n > 64:
        keys.sort()
        return
    for i in range(1, n):
        value = keys[i]
        j = i - 1
        while j >= 0 and keys[j] > value:
            keys[j + 1] = keys[j]
            j -= 1
        keys[j + 1] = value


@njit(cache=True, inline="always")
def _group_end(keys, g, max_gap):
    """The end of the group of sorted seed diagonals that starts at ``g`` (neighbours at most ``max_gap`` apart)."""
    e = g + 1
    while e < keys.shape[0] and keys[e] - keys[e - 1] <= max_gap:
        e += 1
    return e


@njit(cache=True)
def _search_read(r, seq, seq_offsets, entries, buckets, shift, ref_offsets, k, w,
                 max_occurrences, max_gap, max_candidates, min_vote_fraction, pad, out_strand, out_contig,
                 out_start, out_end, out_votes, out_count, out_overflow, m_hash, m_pos, m_strand, lo, hi,
                 keys_store, best_votes, best_first, best_last):
    """One read's candidates into row ``r`` of the outputs, in the block's scratch; returns the key scratch
    (replaced by a larger one when this read has more seed hits than it holds)."""
    read = seq[seq_offsets[r]:seq_offsets[r + 1]]
    length = read.shape[0]
    out_count[r] = 0
    if length < k:
        return keys_store
    n_min = minimizers(read, k, w, m_hash, m_pos, m_strand)
    # The lookups go in stages over all of the read's minimizers (bucket bounds, then the hashes, then below the
    # positions): each stage's loads are independent, so their cache misses overlap instead of queueing behind
    # the searches' branches (one lookup after another took twice as long on a genome of a few Mb).
    for m in range(n_min):
        bucket = np.int64(m_hash[m] >> shift)
        lo[m] = buckets[bucket]
        hi[m] = buckets[bucket + 1]
    n_hits = 0
    for m in range(n_min):
        # A bucket holds about one hash: a linear scan beats binary searches there; a long bucket (a high-copy
        # repeat's thousands of entries of one hash) is searched.
        x, first, last = m_hash[m], lo[m], hi[m]
        if last - first > LINEAR_BUCKET:
            lo[m] = first + np.searchsorted(entries[first:last, 0], x, side="left")
            hi[m] = first + np.searchsorted(entries[first:last, 0], x, side="right")
        else:
            while first < last and entries[first, 0] < x:
                first += 1
            lo[m] = first
            while first < last and entries[first, 0] == x:
                first += 1
            hi[m] = first
        if hi[m] - lo[m] > max_occurrences:
            hi[m] = lo[m]
        n_hits += hi[m] - lo[m]
    if n_hits == 0:
        return keys_store
    if keys_store.shape[0] < n_hits:
        keys_store = np.empty(2 * n_hits, dtype=np.int64)
    keys = keys_store[:n_hits]
    h = 0
    for m in range(n_min):
        forward = length - m_pos[m]
        # The read's reverse complement carries this k-mer at length - pos - k.
        reverse = _STRAND_KEY + m_pos[m] + k
        for j in range(lo[m], hi[m]):
            # Arithmetic, not a branch: the strands agree at random, and a mispredicted branch per hit cost more
            # than the select.
            flip = np.int64((entries[j, 1] & np.uint64(1)) != m_strand[m])
            keys[h] = np.int64(entries[j, 1] >> np.uint64(1)) + forward + flip * (reverse - forward)
            h += 1
    _sort_small(keys)
    # Best groups so far, kept sorted by votes (descending); ties keep the earlier (smaller) key.
    best_votes[:] = 0
    best_first[:] = 0
    best_last[:] = 0
    n_best = 0
    g = 0
    while g < n_hits:
        e = _group_end(keys, g, max_gap)
        votes = e - g
        if n_best < max_candidates or votes > best_votes[n_best - 1]:
            slot = min(n_best, max_candidates - 1)
            while slot > 0 and best_votes[slot - 1] < votes:
                best_votes[slot] = best_votes[slot - 1]
                best_first[slot] = best_first[slot - 1]
                best_last[slot] = best_last[slot - 1]
                slot -= 1
            best_votes[slot] = votes
            best_first[slot] = keys[g]
            best_last[slot] = keys[e - 1]
            n_best = min(n_best + 1, max_candidates)
        g = e
    # A read with more qualifying groups than it may keep (tandem arrays, high-copy repeats) is flagged,
    # so the mapper does not trust a placement made among a truncated set of loci.
    qualifying = 0
    g = 0
    while g < n_hits:
        e = _group_end(keys, g, max_gap)
        if e - g >= min_vote_fraction * best_votes[0]:
            qualifying += 1
        g = e
    out_overflow[r] = qualifying > max_candidates
    kept = 0
    for b in range(n_best):
        if best_votes[b] < min_vote_fraction * best_votes[0]:
            break
        strand = 1 if best_first[b] >= _STRAND_KEY else 0
        first = best_first[b] - strand * _STRAND_KEY - length
        last = best_last[b] - strand * _STRAND_KEY - length
        middle = min(max((first + last) // 2 + length // 2, 0), ref_offsets[-1] - 1)
        contig = np.searchsorted(ref_offsets, middle, side="right") - 1
        start = max(first - pad, ref_offsets[contig])
        end = min(last + length + pad, ref_offsets[contig + 1])
        if end - start < k:
            continue
        out_strand[r, kept] = strand
        out_contig[r, kept] = contig
        out_start[r, kept] = start - ref_offsets[contig]
        out_end[r, kept] = end - ref_offsets[contig]
        out_votes[r, kept] = best_votes[b]
        kept += 1
    out_count[r] = kept
    return keys_store


@dataclass(frozen=True)
class MinimizerIndex:
    """Hash-sorted minimizers of a reference (positions are global: contig offset + position)."""

    hashes: np.ndarray
    positions: np.ndarray
    strands: np.ndarray
    ref_offsets: np.ndarray

    # The file a built index is cached in (next to the reference's verdict, helixflow.pipeline.reference); the
    # name carries what changes the table, so a build with other constants never reads a stale one.
    CACHE_NAME = f"minimizer-index-k{K}-w{W}-v1.npz"

    @classmethod
    def build(cls, reference: Reference) -> MinimizerIndex:
        hashes, positions, strands = minimizer_table(reference.buffer, reference.offsets)
        return cls(hashes, positions, strands, reference.offsets)

    @classmethod
    def build_or_load(cls, reference: Reference, path: str | None) -> tuple[MinimizerIndex, bool]:
        """The index from ``path`` when it holds this reference's, else built (and saved there when a path is
        given); the flag says it was loaded."""
        if path and os.path.exists(path):
            with np.load(path) as saved:
                if np.array_equal(saved["ref_offsets"], reference.offsets):
                    return cls(saved["hashes"], saved["positions"], saved["strands"], reference.offsets), True
        index = cls.build(reference)
        if path:
            np.savez(path, hashes=index.hashes, positions=index.positions, strands=index.strands,
                     ref_offsets=reference.offsets)
        return index, False

    @cached_property
    def _buckets(self) -> tuple[np.ndarray, np.uint64]:
        """(bucket table, shift): the hashes with top bits b = hash >> shift lie at [table[b], table[b + 1])."""
        shift = bucket_shift(self.hashes.shape[0])
        bits = 64 - int(shift)
        counts = np.bincount((self.hashes >> shift).astype(np.int64), minlength=1 << bits)
        # int32 while the table allows (half the memory: it is the first cache miss of every lookup).
        table = np.zeros((1 << bits) + 1, dtype=np.int32 if self.hashes.shape[0] < 2**31 else np.int64)
        np.cumsum(counts, out=table[1:])
        return table, shift

    @cached_property
    def _entries(self) -> np.ndarray:
        """The table as (n, 2) uint64 rows (hash, position << 1 | strand), as the search reads it: a seed's hash
        and where it lies share a cache line (three arrays cost a miss each, most of a lookup on a genome of a
        few Mb)."""
        entries = np.empty((self.hashes.shape[0], 2), dtype=np.uint64)
        entries[:, 0] = self.hashes
        entries[:, 1] = (self.positions.astype(np.uint64) << np.uint64(1)) | self.strands
        return entries

    def search(self, batch: ReadBatch) -> Candidates:
        seq, seq_offsets = batch.seq, batch.seq_offsets
        n = len(batch)
        shape = (n, MAX_CANDIDATES)
        strand = np.zeros(shape, np.int8)
        contig = np.zeros(shape, np.int32)
        start = np.zeros(shape, np.int64)
        end = np.zeros(shape, np.int64)
        votes = np.zeros(shape, np.float32)
        count = np.zeros(n, np.int64)
        overflow = np.zeros(n, np.bool_)
        buckets, shift = self._buckets
        _search(seq, seq_offsets, self._entries, buckets, shift, self.ref_offsets, K,
                W, MAX_OCCURRENCES, MAX_DIAGONAL_GAP, MAX_CANDIDATES, MIN_VOTE_FRACTION, PAD, strand, contig,
                start, end, votes, count, overflow)
        keep = np.arange(MAX_CANDIDATES)[None, :] < count[:, None]
        return Candidates(np.repeat(np.arange(n, dtype=np.int64), count), strand[keep], contig[keep], start[keep],
                          end[keep], votes[keep], overflow)

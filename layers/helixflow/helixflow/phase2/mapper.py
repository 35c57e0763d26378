"""Read mapping: candidate search -> Smith–Waterman verification -> best hit, MAPQ, pairing, CIGAR.

Every candidate a searcher proposes is scored with ``sw.score_batch`` (local alignment of the read, or its
reverse complement, against the candidate region of the forward reference). Per read:
- the best hit is the highest score; ties go to the lower contig, then the lower reference end, then the
  forward strand, so the choice never depends on searcher order (MPI rank counts and searchers agree);
- the second-best score (SAM tag XS) is the best among hits at a different locus: another contig or strand,
  or a reference end more than ``SAME_LOCUS`` = 10 bp away (two candidate regions covering one locus are one
  hit, not a repeat);
- a read is unmapped when its best score is below ``MIN_SCORE`` = 30 (bwa mem's -T default);
- MAPQ = min(60, ``MAPQ_PER_SCORE`` x (AS - max(XS, MIN_SCORE - 1))) with ``MAPQ_PER_SCORE`` = 3. With
  match 1 / mismatch -4 one mismatch costs 5 points, so a locus that wins by a single mismatch gets MAPQ 15
  (a single sequencing error at that base would flip it), by two mismatches 30, by four or more 60; a hit with
  no competitor is capped by how far it clears the noise floor MIN_SCORE, so short, weak local hits stay low.

CIGAR: hits whose optimum is ungapped (most reads) get their CIGAR from ``ungapped_tracebacks`` (provably the
same alignment ``sw.align`` returns; the tests compare the two), the others from ``sw.align``'s traceback.

Paired-end (mates from ``reads.fragments``): every combination of the two mates' verified hits is scored as
AS1 + AS2, minus ``UNPAIRED_PENALTY`` = 17 (bwa mem's -U) unless the pair is proper. Proper pair rule: same
contig, opposite strands, the forward mate starts at or before the reverse mate's end (FR orientation), and the
fragment (leftmost start to rightmost end) is at most ``max_insert`` (default ``MAX_INSERT`` = 1000 bp; a fixed
bound rather than one estimated from the batch, so MPI ranks decide identically). A mate in a proper pair gets
MAPQ = min(single-end formula without competitor, 3 x (best pair score - best pair score with this mate at
another locus)): a mate in a repeat is rescued by a uniquely placed partner, while a fragment lying wholly in a
repeat keeps MAPQ 0. A mate whose searcher list overflowed (more equally good loci than candidates, e.g. a
tandem array) keeps its single-end MAPQ: the competing loci it would be compared with were not all scored. Mates are not searched for near their partner (no mate
rescue by local search): a mate without its own candidates stays unmapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from helixflow.phase2 import sw
from helixflow.phase2._sw_common import BASE_CODE as _SW_CODE
from helixflow.phase2.candidates import Candidates
from helixflow.phase2.reads import Fragments, ReadBatch, fragments
from helixflow.phase2.reference import Reference

MIN_SCORE = 30
MAPQ_PER_SCORE = 3
MAX_MAPQ = 60
SAME_LOCUS = 10
UNPAIRED_PENALTY = 17
MAX_INSERT = 1000
# Reads mapped per step: bounds memory for the packed candidate buffers and paces the progress bar.
CHUNK_READS = 20_000

_COMPLEMENT = np.arange(256, dtype=np.uint8)
for _a, _b in zip(b"ACGTNacgtn", b"TGCANtgcan"):
    _COMPLEMENT[_a] = _b


@njit(cache=True)
def reverse_complement_packed(seq, offsets, complement):
    out = np.empty_like(seq)
    for r in range(offsets.shape[0] - 1):
        lo = offsets[r]
        hi = offsets[r + 1]
        for i in range(hi - lo):
            out[lo + i] = complement[seq[hi - 1 - i]]
    return out


@njit(cache=True, parallel=True)
def gather_packed(source, starts, lengths):
    """Copy ``source[starts[i]:starts[i]+lengths[i]]`` back to back; return (buffer, offsets)."""
    offsets = np.zeros(starts.shape[0] + 1, dtype=np.int64)
    for i in range(starts.shape[0]):
        offsets[i + 1] = offsets[i] + lengths[i]
    out = np.empty(offsets[-1], dtype=np.uint8)
    for i in prange(starts.shape[0]):
        out[offsets[i]:offsets[i + 1]] = source[starts[i]:starts[i] + lengths[i]]
    return out, offsets


@njit(cache=True)
def _cigar_length(clip_start, matched, clip_end):
    n = 0
    for value, op in ((clip_start, 0), (matched, 1), (clip_end, 0)):
        if value > 0 or op == 1:
            n += 2
            while value >= 10:
                n += 1
                value //= 10
    return n


@njit(cache=True)
def pack_cigars(n, rows, clip_start, matched, clip_end, gapped, gapped_cigar, gapped_offsets):
    """Packed CIGAR text of ``n`` reads: "*" for rows not in ``rows``; ``rows[h]`` gets gapped CIGAR
    ``gapped[h]`` (its text at ``gapped_offsets[g]:gapped_offsets[g+1]``) when that is >= 0, else the ungapped
    "{clip_start}S{matched}M{clip_end}S" with zero-length clips left out."""
    lengths = np.ones(n, dtype=np.int64)
    for h in range(rows.shape[0]):
        g = gapped[h]
        if g >= 0:
            lengths[rows[h]] = gapped_offsets[g + 1] - gapped_offsets[g]
        else:
            lengths[rows[h]] = _cigar_length(clip_start[h], matched[h], clip_end[h])
    offsets = np.zeros(n + 1, dtype=np.int64)
    for r in range(n):
        offsets[r + 1] = offsets[r] + lengths[r]
    out = np.full(offsets[n], 42, dtype=np.uint8)  # '*'
    for h in range(rows.shape[0]):
        at = offsets[rows[h]]
        g = gapped[h]
        if g >= 0:
            out[at:offsets[rows[h] + 1]] = gapped_cigar[gapped_offsets[g]:gapped_offsets[g + 1]]
            continue
        for value, op in ((clip_start[h], 83), (matched[h], 77), (clip_end[h], 83)):  # 'S', 'M', 'S'
            if value == 0 and op == 83:
                continue
            digits = 1
            scale = 10
            while scale <= value:
                digits += 1
                scale *= 10
            for i in range(digits):
                out[at + digits - 1 - i] = 48 + value % 10
                value //= 10
            out[at + digits] = op
            at += digits + 1
    return out, offsets


@njit(cache=True, inline="always")
def _same_locus(strand, contig, ref_end, a, b, same_locus):
    return strand[a] == strand[b] and contig[a] == contig[b] and abs(ref_end[a] - ref_end[b]) <= same_locus


@njit(cache=True)
def _better(score, contig, ref_end, strand, a, b):
    """True when hit a ranks above hit b (score, then lower contig, lower end, forward strand)."""
    if score[a] != score[b]:
        return score[a] > score[b]
    if contig[a] != contig[b]:
        return contig[a] < contig[b]
    if ref_end[a] != ref_end[b]:
        return ref_end[a] < ref_end[b]
    return strand[a] < strand[b]


@njit(cache=True)
def rank_hits(first_candidate, score, strand, contig, ref_end, same_locus, out_best, out_second):
    """Per read (candidates ``first_candidate[r]:first_candidate[r+1]``): best hit index (-1 none) and the
    best score at another locus (-1 none)."""
    for r in range(first_candidate.shape[0] - 1):
        best = -1
        for c in range(first_candidate[r], first_candidate[r + 1]):
            if score[c] > 0 and (best < 0 or _better(score, contig, ref_end, strand, c, best)):
                best = c
        second = -1
        if best >= 0:
            for c in range(first_candidate[r], first_candidate[r + 1]):
                if score[c] > second and score[c] > 0 and not _same_locus(strand, contig, ref_end, c, best,
                                                                         same_locus):
                    second = score[c]
        out_best[r] = best
        out_second[r] = second


@njit(cache=True, inline="always")
def _proper(strand, contig, ref_start, ref_end, a, b, max_insert):
    if contig[a] != contig[b] or strand[a] == strand[b]:
        return False
    fwd, rev = (a, b) if strand[a] == 0 else (b, a)
    if ref_start[fwd] > ref_end[rev]:
        return False
    return max(ref_end[a], ref_end[b]) - min(ref_start[a], ref_start[b]) <= max_insert


@njit(cache=True)
def pair_hits(first_candidate, mate_a, mate_b, score, strand, contig, ref_start, ref_end, same_locus,
              max_insert, unpaired_penalty, min_score, out_best, out_pair_margin, out_proper):
    """For fragments (rows ``mate_a[f]``, ``mate_b[f]``): choose the hit pair with the highest pair score.
    Writes each mate's chosen hit into ``out_best[row]``, its pair-score margin over the best pair with that
    mate elsewhere into ``out_pair_margin[row]`` (-1 when no such pair) and ``out_proper[row]``."""
    for f in range(mate_a.shape[0]):
        ra = mate_a[f]
        rb = mate_b[f]
        best_a = -1
        best_b = -1
        best_pair = -(1 << 30)
        best_is_proper = False
        for a in range(first_candidate[ra], first_candidate[ra + 1]):
            if score[a] < min_score:
                continue
            for b in range(first_candidate[rb], first_candidate[rb + 1]):
                if score[b] < min_score:
                    continue
                proper = _proper(strand, contig, ref_start, ref_end, a, b, max_insert)
                pair = score[a] + score[b] - (0 if proper else unpaired_penalty)
                better = pair > best_pair
                if pair == best_pair:
                    # Same tie rule as single-end ranking, mate a first.
                    if a != best_a:
                        better = _better(score, contig, ref_end, strand, a, best_a)
                    else:
                        better = _better(score, contig, ref_end, strand, b, best_b)
                if better:
                    best_pair = pair
                    best_a = a
                    best_b = b
                    best_is_proper = proper
        if best_a < 0:
            continue  # fewer than two mapped mates: single-end choices stand
        second_a = -(1 << 30)
        second_b = -(1 << 30)
        for a in range(first_candidate[ra], first_candidate[ra + 1]):
            if score[a] < min_score:
                continue
            for b in range(first_candidate[rb], first_candidate[rb + 1]):
                if score[b] < min_score:
                    continue
                proper = _proper(strand, contig, ref_start, ref_end, a, b, max_insert)
                pair = score[a] + score[b] - (0 if proper else unpaired_penalty)
                if not _same_locus(strand, contig, ref_end, a, best_a, same_locus):
                    second_a = max(second_a, pair)
                if not _same_locus(strand, contig, ref_end, b, best_b, same_locus):
                    second_b = max(second_b, pair)
        out_best[ra] = best_a
        out_best[rb] = best_b
        out_pair_margin[ra] = best_pair - second_a if second_a > -(1 << 30) else -1
        out_pair_margin[rb] = best_pair - second_b if second_b > -(1 << 30) else -1
        out_proper[ra] = best_is_proper
        out_proper[rb] = best_is_proper


@njit(cache=True)
def ungapped_tracebacks(query, query_offsets, target, target_offsets, hits, score, query_end, target_end, code,
                        match, mismatch, n_score, out_ok, out_query_start, out_target_start, out_nm):
    """For each hit, the best ungapped local segment on the diagonal through its best cell (Kadane's scan).
    When that segment scores the Smith–Waterman optimum, ``sw.align`` would trace back exactly along it: every
    cell of the segment then has H equal to the segment's running score (a higher H anywhere would carry through
    to the best cell), so the diagonal-first traceback follows the segment and stops where the running score
    restarted from 0. Those hits get their CIGAR without a traceback (``out_ok``); the rest go to ``sw.align``."""
    for h in range(hits.shape[0]):
        c = hits[h]
        q0 = query_offsets[c]
        t0 = target_offsets[c]
        qe = query_end[c]
        diagonal = target_end[c] - qe
        running = 0
        start = max(0, -diagonal)
        for i in range(max(0, -diagonal), qe + 1):
            a = code[query[q0 + i]]
            b = code[target[t0 + i + diagonal]]
            s = n_score if a > 3 or b > 3 else (match if a == b else mismatch)
            if running + s <= 0:
                running = 0
                start = i + 1
            else:
                running += s
        out_ok[h] = running == score[c]
        if out_ok[h]:
            nm = 0
            for i in range(start, qe + 1):
                a = code[query[q0 + i]]
                if a > 3 or a != code[target[t0 + i + diagonal]]:
                    nm += 1
            out_query_start[h] = start
            out_target_start[h] = start + diagonal
            out_nm[h] = nm


def mapq(score: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.minimum(MAX_MAPQ, MAPQ_PER_SCORE * (score - np.maximum(second, MIN_SCORE - 1)))


@dataclass
class Mapping:
    """Per-read result, indexed like the batch's rows."""

    mapped: np.ndarray  # bool
    strand: np.ndarray  # int8 (1: the read aligned as its reverse complement)
    contig: np.ndarray  # int32
    pos: np.ndarray  # int64, 0-based leftmost reference base
    end: np.ndarray  # int64, exclusive reference end
    mapq: np.ndarray  # int32
    score: np.ndarray  # int32 (AS)
    second: np.ndarray  # int32 (XS, -1 none)
    nm: np.ndarray  # int32
    proper: np.ndarray  # bool
    cigar: np.ndarray  # uint8 packed CIGAR text ("*" when unmapped)
    cigar_offsets: np.ndarray  # int64 (n + 1,)

    @classmethod
    def unmapped(cls, n: int) -> Mapping:
        return cls(np.zeros(n, bool), np.zeros(n, np.int8), np.full(n, -1, np.int32), np.full(n, -1, np.int64),
                   np.full(n, -1, np.int64), np.zeros(n, np.int32), np.zeros(n, np.int32),
                   np.full(n, -1, np.int32), np.zeros(n, np.int32), np.zeros(n, bool), np.full(n, ord("*"), np.uint8),
                   np.arange(n + 1, dtype=np.int64))


@dataclass(frozen=True)
class MapOptions:
    scoring: sw.Scoring = sw.Scoring()
    max_insert: int = MAX_INSERT
    threads: int | None = None
    device: str = "cpu"  # "cpu" or "cuda" (resolved by the caller)


def _map_chunk(batch: ReadBatch, frags: Fragments, reference: Reference, searcher, options: MapOptions,
               out: Mapping) -> None:
    n = len(batch)
    lengths = np.diff(batch.seq_offsets)
    candidates: Candidates = searcher.search(batch)
    both_strands = np.concatenate([batch.seq, reverse_complement_packed(batch.seq, batch.seq_offsets,
                                                                        _COMPLEMENT)])
    query_start = batch.seq_offsets[candidates.read] + candidates.strand.astype(np.int64) * batch.seq.shape[0]
    query, query_offsets = gather_packed(both_strands, query_start, lengths[candidates.read])
    target_start = reference.offsets[candidates.contig] + candidates.start
    target, target_offsets = gather_packed(reference.buffer, target_start, candidates.end - candidates.start)
    score, query_end, target_end = sw.score_batch(query, query_offsets, target, target_offsets, options.scoring,
                                                  threads=options.threads, device=options.device)
    score = np.asarray(score, dtype=np.int32)
    # Reference span of each hit: its end is exact; its start is estimated from the query end (only used
    # for pairing and loci, the reported position comes from the traceback).
    ref_end = np.where(score > 0, candidates.start + target_end + 1, -1).astype(np.int64)
    ref_start = ref_end - (np.asarray(query_end, dtype=np.int64) + 1)
    first_candidate = np.searchsorted(candidates.read, np.arange(n + 1)).astype(np.int64)
    best = np.full(n, -1, np.int64)
    second = np.full(n, -1, np.int64)
    rank_hits(first_candidate, score, candidates.strand, candidates.contig, ref_end, SAME_LOCUS, best, second)
    pair_margin = np.full(n, -1, np.int64)
    proper = np.zeros(n, bool)
    paired = frags.second >= 0
    if paired.any():
        pair_hits(first_candidate, frags.first[paired], frags.second[paired], score, candidates.strand,
                  candidates.contig, ref_start, ref_end, SAME_LOCUS, options.max_insert, UNPAIRED_PENALTY,
                  MIN_SCORE, best, pair_margin, proper)

    rows = np.flatnonzero(best >= 0)
    rows = rows[score[best[rows]] >= MIN_SCORE]
    hits = best[rows]
    fast = np.zeros(rows.size, np.bool_)
    fast_query_start = np.zeros(rows.size, np.int64)
    fast_target_start = np.zeros(rows.size, np.int64)
    fast_nm = np.zeros(rows.size, np.int64)
    scoring = options.scoring
    ungapped_tracebacks(query, query_offsets, target, target_offsets, hits, score, query_end, target_end,
                        _SW_CODE, scoring.match, scoring.mismatch, scoring.n_score, fast, fast_query_start,
                        fast_target_start, fast_nm)
    c = hits
    t_start = candidates.start[c] + fast_target_start
    t_end = candidates.start[c] + target_end[c] + 1
    row_score = score[c]
    nm = fast_nm
    gapped = np.full(rows.size, -1, np.int64)
    gapped_cigars = []
    for g, h in enumerate(np.flatnonzero(~fast).tolist()):
        lo, hi = query_offsets[c[h]], query_offsets[c[h] + 1]
        tlo, thi = target_offsets[c[h]], target_offsets[c[h] + 1]
        alignment = sw.align(query[lo:hi], target[tlo:thi], scoring)
        t_start[h] = candidates.start[c[h]] + alignment.target_start
        t_end[h] = candidates.start[c[h]] + alignment.target_end
        row_score[h], nm[h] = alignment.score, alignment.nm
        gapped[h] = g
        gapped_cigars.append(alignment.cigar)
    q_end = query_end[c] + 1
    out.cigar, out.cigar_offsets = pack_cigars(
        n, rows, fast_query_start, q_end - fast_query_start, query_offsets[c + 1] - query_offsets[c] - q_end,
        gapped, np.frombuffer("".join(gapped_cigars).encode(), dtype=np.uint8),
        np.cumsum([0] + [len(cigar) for cigar in gapped_cigars], dtype=np.int64))
    single_end_mapq = mapq(score[c].astype(np.int64), second[rows])
    paired_mapq = np.minimum(mapq(score[c].astype(np.int64), -1), MAPQ_PER_SCORE * pair_margin[rows])
    use_pair = proper[rows] & (pair_margin[rows] >= 0) & ~candidates.overflow[rows]
    out.mapped[rows] = True
    out.strand[rows] = candidates.strand[c]
    out.contig[rows] = candidates.contig[c]
    out.pos[rows] = t_start
    out.end[rows] = t_end
    out.score[rows] = row_score
    out.second[rows] = second[rows]
    out.mapq[rows] = np.where(use_pair, paired_mapq, single_end_mapq)
    out.nm[rows] = nm
    out.proper[rows] = proper[rows]


def map_reads(batch: ReadBatch, reference: Reference, searcher, options: MapOptions = MapOptions(),
              progress=None) -> tuple[Mapping, Fragments]:
    """Map every read of ``batch``. ``progress(n_reads_done)`` is called after each chunk."""
    frags = fragments(batch.ids, batch.mates)
    result = Mapping.unmapped(len(batch))
    fragment_rows = np.stack([frags.first, frags.second], axis=1)
    reads_per_fragment = 1 + (frags.second >= 0)
    boundaries = np.searchsorted(np.cumsum(reads_per_fragment),
                                 np.arange(CHUNK_READS, len(batch) + CHUNK_READS, CHUNK_READS), side="right")
    # Each chunk's packed CIGARs are kept whole and put in batch row order once at the end.
    cigar_chunks = []
    cigar_total = 0
    cigar_start = np.zeros(len(batch), np.int64)
    cigar_length = np.zeros(len(batch), np.int64)
    start = 0
    for stop in np.unique(np.append(boundaries, len(frags))).tolist():
        if stop <= start:
            continue
        rows = fragment_rows[start:stop].ravel()
        rows = rows[rows >= 0]
        chunk = batch.take(rows)
        chunk_frags = fragments(chunk.ids, chunk.mates)
        chunk_result = Mapping.unmapped(len(chunk))
        _map_chunk(chunk, chunk_frags, reference, searcher, options, chunk_result)
        for name, values in vars(chunk_result).items():
            if name not in ("cigar", "cigar_offsets"):
                getattr(result, name)[rows] = values
        cigar_start[rows] = cigar_total + chunk_result.cigar_offsets[:-1]
        cigar_length[rows] = np.diff(chunk_result.cigar_offsets)
        cigar_chunks.append(chunk_result.cigar)
        cigar_total += len(chunk_result.cigar)
        if progress is not None:
            progress(len(rows))
        start = stop
    if cigar_chunks:
        result.cigar, result.cigar_offsets = gather_packed(np.concatenate(cigar_chunks), cigar_start, cigar_length)
    return result, frags

"""Read mapping, the driver: candidate search -> Smith–Waterman verification -> best hit, MAPQ, pairing, CIGAR.

Every candidate a searcher proposes is scored with ``sw.score_batch`` (local alignment of the read, or its
reverse complement, against the candidate region of the forward reference). Which hit wins, its MAPQ and the
pairing rules are ``policy``; the CIGAR comes from ``cigar.ungapped_tracebacks`` for hits whose optimum is
ungapped and from ``sw.align``'s traceback for the others. Reads are mapped ``CHUNK_READS`` at a time, whole
fragments per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helixflow.phase2 import sw
from helixflow.phase2.candidates import Candidates
from helixflow.phase2.cigar import pack_cigars, ungapped_tracebacks
from helixflow.phase2.policy import (MAPQ_PER_SCORE, MAX_INSERT, MIN_SCORE, SAME_LOCUS, UNPAIRED_PENALTY, mapq,
                                     pair_hits, rank_hits)
from helixflow.phase2.reads import Fragments, ReadBatch, fragments
from helixflow.phase2.reference import Reference
from helixflow.seq.alphabet import BASE_CODE
from helixflow.seq.packed_kernels import gather_packed, reverse_complement_packed

# Reads mapped per step: bounds memory for the packed candidate buffers and paces the progress bar.
CHUNK_READS = 20_000


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
    both_strands = np.concatenate([batch.seq, reverse_complement_packed(batch.seq, batch.seq_offsets)])
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
                        BASE_CODE, scoring.match, scoring.mismatch, scoring.n_score, fast, fast_query_start,
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

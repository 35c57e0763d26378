"""Mapping policy: which verified hit a read (or a pair) gets, its MAPQ, and what a proper pair is.

Per read:
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

Paired-end (mates from ``reads.fragments``): every combination of the two mates' verified hits is scored as
AS1 + AS2, minus ``UNPAIRED_PENALTY`` = 17 (bwa mem's -U) unless the pair is proper. Proper pair rule: same
contig, opposite strands, the forward mate starts at or before the reverse mate's end (FR orientation), and the
fragment (leftmost start to rightmost end) is at most ``max_insert`` (default ``MAX_INSERT`` = 1000 bp; a fixed
bound rather than one estimated from the batch, so MPI ranks decide identically). A mate in a proper pair gets
MAPQ = min(single-end formula without competitor, 3 x (best pair score - best pair score with this mate at
another locus)): a mate in a repeat is rescued by a uniquely placed partner, while a fragment lying wholly in a
repeat keeps MAPQ 0. A mate whose searcher list overflowed (more equally good loci than candidates, e.g. a
tandem array) keeps its single-end MAPQ: the competing loci it would be compared with were not all scored.
Mates are not searched for near their partner (no mate rescue by local search): a mate without its own
candidates stays unmapped.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MIN_SCORE = 30
MAPQ_PER_SCORE = 3
MAX_MAPQ = 60
SAME_LOCUS = 10
UNPAIRED_PENALTY = 17
MAX_INSERT = 1000


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


def mapq(score: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.minimum(MAX_MAPQ, MAPQ_PER_SCORE * (score - np.maximum(second, MIN_SCORE - 1)))

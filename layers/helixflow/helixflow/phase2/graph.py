"""Read-graph clustering: reads that overlap on the genome end up in one cluster.

1. Neighbours: each read's ``K_NEIGHBOURS`` = 16 most similar reads by embedding cosine among the reads that
   share one of its (``SEED_K``, ``SEED_W``) = (15, 3)-minimizers (``index.minimizers``; half of a read's
   15-mers), keeping pairs with cosine >= ``MIN_SIMILARITY`` = 0.1; ties go to the lower read index (the dense
   searcher's order, from the same exact cosines). An exhaustive search of all reads is O(n^2) (~40 min
   for 200 k reads on 2 cores) and worse: past a few thousand reads, reads that share nothing reach cosine 0.1
   by chance (signed hashing into 256 dimensions) and push real overlaps out of the top 16. Measured on 3,000
   reads of a genome with repeats at 1 % errors: of the 17,088 pairs the exhaustive top-k sends on and
   Smith–Waterman confirms, the seeded search misses 6 (w = 10 missed 122) and confirms 1,191 more; on 40 k
   ART reads it is 16x faster. 15-mers keep the seeds specific up to genomes of ~10^9 bp. The search is the
   same on every device, so clusters never depend on the partition. The most similar reads are the most
   overlapping ones, so a read's k nearest all lie close to it; where coverage changes, a read can have all k
   on its denser side and a chain breaks. With k = 8 this split simulated 10x islands; 16 keeps them whole up
   to roughly 2 x 16 reads per read length (~30x for 150 bp reads), at twice the alignment work. Higher
   coverage needs a larger k (a known limit of k-NN read graphs). Minimizers in more than
   ``SEED_MAX_OCCURRENCES`` = 256 reads (high-copy repeats, low complexity, coverage past ~250x) seed nothing,
   as the minimizer index skips its high-copy minimizers for mapping.
2. Confirmation: each candidate pair is aligned with Smith–Waterman (read i against read j and against j's
   reverse complement, since the embedding is strand-blind); the edge is kept when the better score reaches
   ``MIN_OVERLAP_SCORE`` = 40, i.e. an overlap of at least 40 identical bases or a longer one with a few
   differences - enough to rule out a shared 11-mer by chance.
3. Graph: confirmed edges, symmetrised, in CSR (``indptr``, ``indices``).
4. Clusters: connected components (Numba union-find over the CSR edges with path halving; every component is
   labelled by its smallest read index, so the result does not depend on edge order). Cluster ids are numbered
   0, 1, ... in order of each cluster's first read. A cluster's representative is its read with the most
   confirmed edges (ties: the earliest read) - the read that overlaps most of the others.

Output ``<sample>.clusters.tsv``: header ``read_id cluster_id representative``, one row per read in input order;
mates of a pair are named ``<id>/1`` and ``<id>/2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from helixflow.phase2 import sw
from helixflow.phase2._dense_common import NO_INDEX
from helixflow.phase2.dense import SearchVectors, search_vectors
from helixflow.phase2.dense_cpu import insert_top, similarity
from helixflow.phase2.index import minimizers
from helixflow.phase2.reads import ReadBatch
from helixflow.seq.packed_kernels import gather_packed, reverse_complement_packed

K_NEIGHBOURS = 16
MIN_SIMILARITY = 0.1
MIN_OVERLAP_SCORE = 40
SEED_K, SEED_W = 15, 3
SEED_MAX_OCCURRENCES = 256


def neighbour_pairs(batch: ReadBatch, rows: np.ndarray) -> np.ndarray:
    """Candidate pairs (i, j), i < j, from the top-k neighbours of the given query ``rows`` (int64 (m, 2),
    sorted, unique)."""
    vectors = search_vectors(batch.embedding_codes())
    k = min(K_NEIGHBOURS + 1, len(vectors))  # +1: a read is its own nearest neighbour
    value, nearest = seeded_top_k(batch, vectors, rows, k)
    i = np.repeat(rows, k)
    j = nearest.ravel()
    keep = (value.ravel() >= MIN_SIMILARITY) & (j != i)
    return unique_pairs(np.minimum(i, j)[keep], np.maximum(i, j)[keep], len(batch))


def unique_pairs(first: np.ndarray, second: np.ndarray, n: int) -> np.ndarray:
    """The distinct (first, second) pairs of read indexes below ``n``, sorted (int64 (m, 2)); one integer key
    per pair, since ``np.unique(axis=0)`` is several times slower on millions of rows."""
    key = np.unique(first.astype(np.int64) * n + second)
    return np.stack([key // n, key % n], axis=1)


def seeded_top_k(batch: ReadBatch, vectors: SearchVectors, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k reads per query row among the reads sharing a minimizer with it (and itself), by the exact cosine of
    ``vectors`` (``batch``'s), ties to the lower index - ``dense.top_k``'s values and order."""
    hashes, read_start = _read_minimizers(batch.seq, batch.seq_offsets, SEED_K, SEED_W)
    # One sorted array of keys = the hash's high bits | the read it came from (a plain sort, no argsort and no
    # gather: several times faster). The bits given to the read number shorten the hash; two minimizers that
    # then collide only add a candidate, which its cosine ranks like any other.
    owner_bits = max(1, int(len(batch) - 1).bit_length())
    owner = np.repeat(np.arange(len(batch), dtype=np.uint64), np.diff(read_start))
    keys = np.sort((hashes >> np.uint64(owner_bits) << np.uint64(owner_bits)) | owner)
    return _seeded_top_k(np.ascontiguousarray(rows, dtype=np.int64), hashes, read_start, keys, owner_bits,
                         vectors.codes, vectors.inverse_norms, k, SEED_MAX_OCCURRENCES)


@njit(cache=True, parallel=True)
def _read_minimizers(buffer, offsets, k, w):
    """Every read's (k, w) minimizer hashes, read after read, and where each read's start (n + 1 offsets)."""
    n = offsets.shape[0] - 1
    hashes = np.empty(buffer.shape[0], dtype=np.uint64)
    positions = np.empty(buffer.shape[0], dtype=np.int64)
    strands = np.empty(buffer.shape[0], dtype=np.uint8)
    counts = np.zeros(n + 1, dtype=np.int64)
    for r in prange(n):
        lo, hi = offsets[r], offsets[r + 1]  # a read has at most as many minimizers as bases
        counts[r + 1] = minimizers(buffer[lo:hi], k, w, hashes[lo:hi], positions[lo:hi], strands[lo:hi])
    start = np.cumsum(counts)
    out = np.empty(start[n], dtype=np.uint64)
    for r in prange(n):
        for j in range(counts[r + 1]):
            out[start[r] + j] = hashes[offsets[r] + j]
    return out, start


@njit(cache=True, parallel=True)
def _seeded_top_k(rows, hashes, read_start, keys, owner_bits, codes, inverse_norms, k, max_occurrences):
    top_value = np.full((rows.shape[0], k), -np.inf)
    top_index = np.full((rows.shape[0], k), NO_INDEX, dtype=np.int64)
    shift = np.uint64(owner_bits)
    owner_mask = (np.uint64(1) << shift) - np.uint64(1)
    for q in prange(rows.shape[0]):
        i = rows[q]
        m = read_start[i + 1] - read_start[i]
        lows = np.empty(m, dtype=np.int64)
        highs = np.empty(m, dtype=np.int64)
        total = 1
        for e in range(m):
            prefix = hashes[read_start[i] + e] >> shift
            lows[e] = np.searchsorted(keys, prefix << shift)
            highs[e] = lows[e]
            while highs[e] < keys.shape[0] and (keys[highs[e]] >> shift) == prefix:
                highs[e] += 1
                if highs[e] - lows[e] > max_occurrences:
                    break
            if highs[e] - lows[e] > max_occurrences:
                highs[e] = lows[e]  # a high-copy minimizer seeds nothing
            total += highs[e] - lows[e]
        candidates = np.empty(total, dtype=np.int64)
        candidates[0] = i
        c = 1
        for e in range(m):
            for f in range(lows[e], highs[e]):
                candidates[c] = np.int64(keys[f] & owner_mask)
                c += 1
        for j in np.unique(candidates):
            dot = np.float32(0.0)  # exact in any order: integer codes (see dense)
            for d in range(codes.shape[1]):
                dot += codes[i, d] * codes[j, d]
            insert_top(similarity(dot, inverse_norms[i], inverse_norms[j]), j, top_value[q], top_index[q])
    return top_value, top_index


def confirm_pairs(batch: ReadBatch, pairs: np.ndarray, scoring: sw.Scoring = sw.Scoring(), *,
                  threads: int | None = None, device: str = "cpu") -> np.ndarray:
    """Boolean mask: Smith–Waterman confirms the overlap of pair (i, j) on either strand."""
    if len(pairs) == 0:
        return np.zeros(0, dtype=bool)
    lengths = np.diff(batch.seq_offsets)
    both = np.concatenate([batch.seq, reverse_complement_packed(batch.seq, batch.seq_offsets)])
    i = np.repeat(pairs[:, 0], 2)
    j = np.repeat(pairs[:, 1], 2)
    strand = np.tile(np.array([0, 1], np.int64), len(pairs))
    query, query_offsets = gather_packed(both, batch.seq_offsets[i], lengths[i])
    target, target_offsets = gather_packed(both, batch.seq_offsets[j] + strand * batch.seq.shape[0], lengths[j])
    score, _, _ = sw.score_batch(query, query_offsets, target, target_offsets, scoring, threads=threads,
                                 device=device)
    return score.reshape(-1, 2).max(axis=1) >= MIN_OVERLAP_SCORE


@dataclass(frozen=True)
class CSRGraph:
    indptr: np.ndarray  # int64 (n + 1,)
    indices: np.ndarray  # int64

    @classmethod
    def from_edges(cls, n: int, edges: np.ndarray) -> CSRGraph:
        """Undirected graph from (m, 2) edges: each edge stored in both directions, neighbours ascending."""
        source = np.concatenate([edges[:, 0], edges[:, 1]]).astype(np.int64)
        target = np.concatenate([edges[:, 1], edges[:, 0]]).astype(np.int64)
        order = np.lexsort((target, source))
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(source, minlength=n), out=indptr[1:])
        return cls(indptr, target[order])

    @property
    def degree(self) -> np.ndarray:
        return np.diff(self.indptr)


@njit(cache=True)
def connected_components(indptr, indices):
    """Component label of every vertex = the smallest vertex index in its component."""
    n = indptr.shape[0] - 1
    parent = np.arange(n)
    for v in range(n):
        for e in range(indptr[v], indptr[v + 1]):
            a = v
            b = indices[e]
            while parent[a] != a:  # find with path halving
                parent[a] = parent[parent[a]]
                a = parent[a]
            while parent[b] != b:
                parent[b] = parent[parent[b]]
                b = parent[b]
            if a < b:  # union by smaller index: the root is always the component's smallest vertex
                parent[b] = a
            elif b < a:
                parent[a] = b
    for v in range(n):
        root = v
        while parent[root] != root:
            root = parent[root]
        parent[v] = root
    return parent


@njit(cache=True)
def number_clusters(labels, degree):
    """Cluster id per vertex (0.. in order of first vertex) and the representative vertex per vertex."""
    n = labels.shape[0]
    cluster_of_root = np.full(n, -1, dtype=np.int64)
    best = np.full(n, -1, dtype=np.int64)  # per root: member with the highest degree, earliest on ties
    cluster = np.empty(n, dtype=np.int64)
    count = 0
    for v in range(n):
        root = labels[v]
        if cluster_of_root[root] < 0:
            cluster_of_root[root] = count
            count += 1
        cluster[v] = cluster_of_root[root]
        if best[root] < 0 or degree[v] > degree[best[root]]:
            best[root] = v
    representative = np.empty(n, dtype=np.int64)
    for v in range(n):
        representative[v] = best[labels[v]]
    return cluster, representative


def read_names(batch: ReadBatch) -> list[str]:
    return [f"{read_id}/{mate}" if mate else read_id for read_id, mate in zip(batch.ids, batch.mates.tolist())]


def clusters_tsv(batch: ReadBatch, edges: np.ndarray) -> str:
    graph = CSRGraph.from_edges(len(batch), edges)
    labels = connected_components(graph.indptr, graph.indices)
    cluster, representative = number_clusters(labels, graph.degree)
    names = read_names(batch)
    lines = ["read_id\tcluster_id\trepresentative\n"]
    lines += [f"{names[v]}\t{c}\t{names[r]}\n" for v, (c, r) in enumerate(zip(cluster.tolist(),
                                                                           representative.tolist()))]
    return "".join(lines)


"""Read-graph clustering: reads that overlap on the genome end up in one cluster.

1. Neighbours: each read's ``K_NEIGHBOURS`` = 16 most similar reads by embedding cosine (the dense searcher's
   blocked top-k, reads against reads; BLAS on CPU, the tiled CUDA kernel on GPU), keeping pairs with cosine
   >= ``MIN_SIMILARITY`` = 0.1 (below that two 150 bp reads share almost no 11-mers). The most similar reads
   are the most overlapping ones, so a read's k nearest all lie close to it; where coverage changes, a read
   can have all k on its denser side and a chain breaks. With k = 8 this split simulated 10x islands; 16 keeps
   them whole up to roughly 2 x 16 reads per read length (~30x for 150 bp reads), at twice the alignment
   work. Higher coverage needs a larger k (a known limit of k-NN read graphs).
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
from numba import njit

from helixflow.phase2 import dense, sw
from helixflow.phase2.reads import ReadBatch
from helixflow.seq.packed_kernels import gather_packed, reverse_complement_packed

K_NEIGHBOURS = 16
MIN_SIMILARITY = 0.1
MIN_OVERLAP_SCORE = 40


def neighbour_pairs(vectors: np.ndarray, rows: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Candidate pairs (i, j), i < j, from the top-k neighbours of the given query ``rows`` (int64 (m, 2),
    sorted, unique)."""
    queries = vectors[rows]
    k = min(K_NEIGHBOURS + 1, vectors.shape[0])  # +1: a read is its own nearest neighbour
    value, index = dense.top_k(queries, vectors, k, device)
    i = np.repeat(rows, k)
    j = index.ravel()
    keep = (value.ravel() >= MIN_SIMILARITY) & (j != i)
    pairs = np.stack([np.minimum(i, j)[keep], np.maximum(i, j)[keep]], axis=1)
    return np.unique(pairs, axis=0) if pairs.size else np.zeros((0, 2), np.int64)


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


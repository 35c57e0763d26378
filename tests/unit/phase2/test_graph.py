"""Read-graph clustering: the components kernel, the CSR graph and `helixflow cluster` on reads from known
genome islands."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from helixflow.phase2 import dense, simulate
from helixflow.phase2.graph import (K_NEIGHBOURS, MIN_SIMILARITY, CSRGraph, confirm_pairs, connected_components,
                                    neighbour_pairs, number_clusters, seeded_top_k)
from helixflow.phase2.reads import read_reads
from helixflow_local.commands.phase2 import cluster_command


def test_components_are_labelled_by_their_smallest_vertex_whatever_the_edge_order():
    edges = np.array([[5, 6], [0, 2], [2, 4], [6, 8], [1, 7], [8, 5]])
    expected = np.array([0, 1, 0, 3, 0, 5, 5, 1, 5, 9])
    rng = np.random.default_rng(0)
    for _ in range(5):
        shuffled = edges[rng.permutation(len(edges))][:, ::rng.choice([1, -1])]
        graph = CSRGraph.from_edges(10, shuffled)
        np.testing.assert_array_equal(connected_components(graph.indptr, graph.indices), expected)


def test_csr_stores_each_edge_both_ways_with_sorted_neighbours():
    graph = CSRGraph.from_edges(4, np.array([[2, 0], [0, 1], [3, 2]]))
    assert graph.indptr.tolist() == [0, 2, 3, 5, 6]
    assert graph.indices.tolist() == [1, 2, 0, 0, 3, 2]
    assert graph.degree.tolist() == [2, 1, 2, 1]


def test_cluster_ids_follow_first_appearance_and_representative_has_most_edges():
    labels = np.array([0, 1, 0, 0, 1, 5])
    degree = np.array([1, 1, 3, 1, 1, 0])
    cluster, representative = number_clusters(labels, degree)
    assert cluster.tolist() == [0, 1, 0, 0, 1, 2]
    assert representative.tolist() == [2, 1, 2, 2, 1, 5]


def test_reads_from_separate_genome_islands_form_one_cluster_per_island(tmp_path, lambda_sequence):
    rng = np.random.default_rng(4)
    islands = [(1000, 3000), (20000, 22500), (40000, 41500)]
    reads = []
    for number, (lo, hi) in enumerate(islands):
        island = {f"island{number}": lambda_sequence[lo:hi]}
        island_reads = simulate.simulate_reads(island, (hi - lo) // 15, rng=rng, error_rate=0.003)  # ~10x
        # Precondition: consecutive reads overlap by >= 60 bp, so the island is one connected stretch.
        starts = np.sort([read.position for read in island_reads])
        assert starts[0] < 50 and np.diff(starts).max() <= 90 and starts[-1] > hi - lo - 200
        reads += island_reads
    noise = simulate.SimulatedRead("noise", rng.choice(list(b"ACGT"), 150).astype(np.uint8).tobytes(),
                                   b"I" * 150, "none", 0, False)
    order = rng.permutation(len(reads))
    reads = [reads[i] for i in order] + [noise]
    path = tmp_path / "S2.fastq"
    simulate.write_fastq(path, reads)
    out = tmp_path / "S2.clusters.tsv"
    result = CliRunner().invoke(cluster_command, [str(path), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "read_id\tcluster_id\trepresentative"
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == [read.name for read in reads]
    cluster_of = {r[0]: r[1] for r in rows}
    by_island: dict[str, set[str]] = {}
    for read in reads[:-1]:
        by_island.setdefault(read.contig, set()).add(cluster_of[read.name])
    assert all(len(ids) == 1 for ids in by_island.values()), by_island
    assert len({next(iter(ids)) for ids in by_island.values()}) == len(islands)
    assert cluster_of["noise"] not in {c for ids in by_island.values() for c in ids}
    assert [int(r[1]) for r in rows][0] == 0
    for name, cluster, representative in rows:
        assert cluster_of[representative] == cluster


def test_the_seeded_search_finds_every_overlap_the_exhaustive_one_confirms(tmp_path, repeat_genome):
    """The CPU's candidate pairs come from shared minimizers, not from all reads: on reads of a genome with
    repeats, every pair an exhaustive dense top-k would send on and Smith-Waterman confirms is found too."""
    reads = simulate.simulate_reads(repeat_genome, 3000, rng=np.random.default_rng(9), error_rate=0.01)
    path = tmp_path / "reads.fastq"
    simulate.write_fastq(path, reads)
    batch = read_reads([str(path)])
    vectors = dense.search_vectors(batch.embedding_codes())
    rows = np.arange(len(batch), dtype=np.int64)
    k = K_NEIGHBOURS + 1
    value, nearest = dense.top_k(vectors, vectors, k, "cpu")
    i, j = np.repeat(rows, k), nearest.ravel()
    keep = (value.ravel() >= MIN_SIMILARITY) & (j != i)
    exhaustive = np.unique(np.stack([np.minimum(i, j)[keep], np.maximum(i, j)[keep]], axis=1), axis=0)
    seeded = neighbour_pairs(batch, rows)
    confirmed = {tuple(p) for p in exhaustive[confirm_pairs(batch, exhaustive)].tolist()}
    found = {tuple(p) for p in seeded[confirm_pairs(batch, seeded)].tolist()}
    assert len(confirmed) > 2000  # ~6x coverage of 150 bp reads: most reads overlap several others
    assert len(confirmed - found) <= len(confirmed) // 500, sorted(confirmed - found)[:10]
    # Each seeded neighbour's similarity is the exact cosine of the codes, as the dense searcher computes it.
    seeded_value, seeded_nearest = seeded_top_k(batch, vectors, rows, k)
    shown = np.flatnonzero(seeded_nearest[:, 1] != np.iinfo(np.int64).max)
    other = seeded_nearest[shown, 1]
    codes = batch.embedding_codes().astype(np.int64)
    dots = np.einsum("ij,ij->i", codes[shown], codes[other])
    assert np.array_equal(seeded_value[shown, 1], (dots * vectors.inverse_norms[shown]) * vectors.inverse_norms[other])

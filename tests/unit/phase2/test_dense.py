"""Dense (embedding similarity) searcher: top-k correctness on CPU, the CUDA kernels under Numba's simulator,
and mapping accuracy when it feeds the mapper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from phase2_truth import placed_correctly, sam_records

from helixflow.phase2 import _dense_common, dense, dense_cpu, simulate
from helixflow_local.commands.phase2 import align_command


def brute_force_top_k(queries, targets, k):
    """The top-k from the definition: integer dot products of the codes (int64), then the cosine."""
    dots = queries.astype(np.int64) @ targets.astype(np.int64).T
    scores = (dots * inverse_norms(queries)[:, None]) * inverse_norms(targets)[None, :]
    # Best first, ties to the lower index: sort by (-score, index).
    order = np.lexsort((np.broadcast_to(np.arange(targets.shape[0]), scores.shape), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def inverse_norms(codes):
    norms = np.sqrt((codes.astype(np.int64) ** 2).sum(axis=1).astype(np.float64))
    return np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)


def random_codes(rng, n, dims=256):
    """Codes as reads and windows have them: mostly 0 and +-1, a few larger counts."""
    return np.clip(np.rint(rng.standard_normal((n, dims)) * 1.5), -127, 127).astype(np.int8)


def search(queries, targets, k):
    return dense_cpu.top_k_cpu(dense.search_vectors(queries), dense.search_vectors(targets), k)


def test_blocked_cpu_top_k_equals_a_full_sort_exactly(monkeypatch):
    rng = np.random.default_rng(1)
    queries, targets = random_codes(rng, 50), random_codes(rng, 90)
    targets[7] = targets[3]  # an exact tie: the lower window index must win
    queries[0] = targets[3]
    # Small blocks so the running merge crosses block boundaries in both directions.
    monkeypatch.setattr(_dense_common, "BLOCK_READS", 16)
    monkeypatch.setattr(_dense_common, "BLOCK_WINDOWS", 32)
    values, indices = search(queries, targets, 5)
    expected_values, expected_indices = brute_force_top_k(queries, targets, 5)
    np.testing.assert_array_equal(indices, expected_indices)
    # Integer codes multiply exactly in float32 BLAS, so blocking cannot change a single bit.
    np.testing.assert_array_equal(values, expected_values)
    assert indices[0, 0] == 3 and indices[0, 1] == 7


def test_float32_dot_products_stay_exact_at_the_largest_codes():
    """The bound the search's exactness rests on: codes at +-127 in all 256 dimensions give the largest dot
    products (256 x 127^2 = 4,129,024), and float32 BLAS still returns them to the last unit, as the cosine of a
    read with itself (1) and of opposite codes (-1) show."""
    rng = np.random.default_rng(5)
    signs = np.where(rng.random((6, 256)) < 0.5, -127, 127).astype(np.int8)
    codes = np.concatenate([signs, -signs, random_codes(rng, 40)])
    vectors = dense.search_vectors(codes)
    dots = vectors.codes @ vectors.codes.T
    np.testing.assert_array_equal(dots.astype(np.int64), codes.astype(np.int64) @ codes.astype(np.int64).T)
    values, indices = dense_cpu.top_k_cpu(vectors, vectors, 2)
    assert indices[:6, 0].tolist() == list(range(6)) and values[:6, 0].tolist() == [1.0] * 6
    np.testing.assert_array_equal(values, brute_force_top_k(codes, codes, 2)[0])


def test_cpu_top_k_ties_go_to_the_lower_index_and_empty_slots_stay_empty(monkeypatch):
    """Exact ties (a duplicated reference window, a read without k-mers that ties with everything) and k larger
    than the number of targets: random vectors never tie, so only constructed ties can tell the tie rule."""
    rng = np.random.default_rng(3)
    queries, targets = random_codes(rng, 12), random_codes(rng, 21)
    for copy in (5, 6, 12, 17, 20):
        targets[copy] = targets[3]
    queries[0], queries[1], queries[2] = targets[3], 0, targets[20]
    monkeypatch.setattr(_dense_common, "BLOCK_READS", 4)
    monkeypatch.setattr(_dense_common, "BLOCK_WINDOWS", 11)
    values, indices = search(queries, targets, 4)
    expected_values, expected_indices = brute_force_top_k(queries, targets, 4)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(values, expected_values)
    assert indices[0].tolist() == [3, 5, 6, 12] and indices[2].tolist() == [3, 5, 6, 12]
    assert indices[1].tolist() == [0, 1, 2, 3] and values[1].tolist() == [0.0] * 4
    # k = 8 over 5 targets: the 5 ranked, then 3 empty slots (-inf, int64 max) that the searcher drops.
    values, indices = search(queries, targets[[3, 5, 9, 10, 11]], 8)
    expected_values, expected_indices = brute_force_top_k(queries, targets[[3, 5, 9, 10, 11]], 5)
    np.testing.assert_array_equal(indices[:, :5], expected_indices)
    np.testing.assert_array_equal(values[:, :5], expected_values)
    assert np.all(values[:, 5:] == -np.inf) and np.all(indices[:, 5:] == np.iinfo(np.int64).max)
    assert indices[0, :2].tolist() == [0, 1]


SIMULATOR_SCRIPT = Path(__file__).parent / "cudasim" / "dense_cuda_vs_cpu.py"


@pytest.fixture(scope="module")
def simulator_report() -> dict:
    """The GPU paths under numba's CUDA simulator, in a subprocess (see the script's docstring); ~20 s."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, str(SIMULATOR_SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["top_k_ties", "top_k_k_exceeds_targets"])
def test_cuda_top_k_equals_the_cpu_on_ties_and_short_target_lists(simulator_report, case):
    result = simulator_report[case]
    assert result["gpu_indices"] == result["cpu_indices"]
    assert result["values_equal"]   # exact: see dense.py
    if case == "top_k_ties":
        assert result["cpu_indices"][0] == [3, 5, 6, 12]   # the case really has ties across window blocks
        assert result["cpu_indices"][4] == [3, 5, 6, 12]   # ... and in the second read block


def test_cuda_score_batch_over_several_launches_equals_the_cpu(simulator_report):
    result = simulator_report["score_batch_multi_launch"]
    assert result["launches"] == 3 and result["target_length"] == 300
    assert result["equal"] and result["positive"] == result["pairs"]


def test_auto_device_picks_the_gpu_when_one_is_there(simulator_report):
    assert simulator_report["auto_device"] == {"resolved": "cuda", "score_batch_used_cuda": True}


@pytest.mark.parametrize("command", ["align_dense", "cluster"])
def test_cli_with_device_cuda_writes_what_device_cpu_writes(simulator_report, command):
    result = simulator_report[command]
    assert result["equal"]
    if command == "align_dense":
        assert result["records"] == 4 and result["mapped"] == 4
    else:
        assert result["rows"] == 4


def test_windows_cover_every_read_sized_stretch(repeat_fasta):
    from helixflow.phase2.reference import read_fasta, windows

    reference = read_fasta(repeat_fasta)
    table = windows(reference)
    for contig, length in enumerate(reference.lengths.tolist()):
        mine = table.contig == contig
        starts, ends = table.start[mine], table.end[mine]
        for position in range(0, length - 151, 97):
            assert np.any((starts <= position) & (ends >= position + 151))
        assert ends.max() == length


@pytest.fixture(scope="module")
def dense_sam(tmp_path_factory, repeat_fasta, single_reads):
    directory = tmp_path_factory.mktemp("dense")
    reads = directory / "S1.fastq"
    simulate.write_fastq(reads, single_reads[:1500])
    out = directory / "S1.sam"
    result = CliRunner().invoke(align_command, [str(reads), "--reference", str(repeat_fasta), "--out", str(out),
                                                "--searcher", "dense", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return out


def test_dense_searcher_places_reads_at_their_true_origin(dense_sam, single_reads):
    records = sam_records(dense_sam)
    truth = single_reads[:1500]
    assert [r[0] for r in records] == [t.name for t in truth]
    correct = np.array([placed_correctly(rec, t) for rec, t in zip(records, truth)])
    confident = np.array([int(rec[4]) >= 20 for rec in records])
    assert correct.mean() >= 0.88  # the rest are reads inside exact repeat copies (see test_mapping)
    assert confident.mean() >= 0.8
    assert correct[confident].mean() >= 0.99


def test_threads_option_limits_the_dense_searchs_blas_matmul_too(tmp_path, monkeypatch, repeat_fasta, single_reads):
    """`--threads 1` used to limit only Numba: the dense search's float matmul still ran on every core, so the
    benchmark's one-thread figure was really two. The BLAS pool must follow the option too."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")

    seen = []
    search = dense.DenseSearcher.top_k

    def recording(self, queries):
        seen.append(blas_threads())
        return search(self, queries)

    monkeypatch.setattr(dense.DenseSearcher, "top_k", recording)
    reads = tmp_path / "S1.fastq"
    simulate.write_fastq(reads, single_reads[:50])
    before = blas_threads()
    threadpool_limits(2, user_api="blas")  # as on any machine with 2 cores or more
    try:
        result = CliRunner().invoke(align_command, [str(reads), "--reference", str(repeat_fasta), "--out",
                                                    str(tmp_path / "S1.sam"), "--searcher", "dense", "--device",
                                                    "cpu", "--threads", "1"])
    finally:
        threadpool_limits(before, user_api="blas")
    assert result.exit_code == 0, result.output
    assert seen and set(seen) == {1}

"""Dense (embedding similarity) searcher: top-k correctness on CPU, the CUDA kernels under Numba's simulator,
and mapping accuracy when it feeds the mapper."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from phase2_truth import placed_correctly, sam_records

from helixflow.phase2 import _dense_common, dense, dense_cpu, simulate
from helixflow_local.commands.phase2 import align_command


def brute_force_top_k(queries, targets, k):
    scores = queries @ targets.T
    # Best first, ties to the lower index: sort by (-score, index).
    order = np.lexsort((np.broadcast_to(np.arange(targets.shape[0]), scores.shape), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def unit_vectors(rng, n, dims=256):
    v = rng.standard_normal((n, dims))
    return dense.storage_precision(v / np.linalg.norm(v, axis=1, keepdims=True))


def test_blocked_cpu_top_k_equals_a_full_sort_exactly(monkeypatch):
    rng = np.random.default_rng(1)
    queries, targets = unit_vectors(rng, 50), unit_vectors(rng, 90)
    targets[7] = targets[3]  # an exact tie: the lower window index must win
    queries[0] = targets[3]
    # Small blocks so the running merge crosses block boundaries in both directions.
    monkeypatch.setattr(_dense_common, "BLOCK_READS", 16)
    monkeypatch.setattr(_dense_common, "BLOCK_WINDOWS", 32)
    values, indices = dense_cpu.top_k_cpu(queries, targets, 5)
    expected_values, expected_indices = brute_force_top_k(queries, targets, 5)
    np.testing.assert_array_equal(indices, expected_indices)
    # Storage-precision vectors multiply exactly in float64, so blocking cannot change a single bit.
    np.testing.assert_array_equal(values, expected_values)
    assert indices[0, 0] == 3 and indices[0, 1] == 7


def test_cuda_kernels_give_bit_identical_top_k_under_the_simulator():
    script = textwrap.dedent("""
        import numpy as np
        from helixflow.phase2 import _dense_common, dense, dense_cpu, dense_cuda
        rng = np.random.default_rng(2)
        def unit(n):
            v = rng.standard_normal((n, 256))
            return dense.storage_precision(v / np.linalg.norm(v, axis=1, keepdims=True))
        queries, targets = unit(21), unit(37)   # not multiples of TILE: exercises the bounds guards
        _dense_common.BLOCK_READS, _dense_common.BLOCK_WINDOWS = 16, 20   # several read and window blocks
        gpu_values, gpu_indices = dense_cuda.top_k_cuda(queries, targets, 4)
        cpu_values, cpu_indices = dense_cpu.top_k_cpu(queries, targets, 4)
        assert (gpu_indices == cpu_indices).all(), (gpu_indices, cpu_indices)
        assert (gpu_values == cpu_values).all()   # exact: see dense.py
        print("ok")
    """)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


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

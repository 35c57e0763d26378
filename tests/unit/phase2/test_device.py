"""Device choice: one test for a usable GPU, --device resolution, and which GPU an MPI rank takes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from helixflow.errors import DeviceUnavailable
from helixflow.phase2 import device


@pytest.mark.parametrize(("rank", "gpus", "expected"), [
    (0, 1, 0), (3, 1, 0), (0, 4, 0), (3, 4, 3), (4, 4, 0), (9, 4, 1), (0, 0, None), (5, 0, None),
])
def test_ranks_are_dealt_round_robin_over_the_gpus(rank, gpus, expected):
    assert device.gpu_for_rank(rank, gpus) == expected


def test_one_rank_per_gpu_gives_every_rank_its_own():
    assert sorted(device.gpu_for_rank(rank, 8) for rank in range(8)) == list(range(8))


def test_without_a_gpu_auto_is_cpu_and_cuda_is_a_named_error(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    assert device.resolve_device("auto") == "cpu"
    assert device.resolve_device("cpu") == "cpu"
    with pytest.raises(DeviceUnavailable):
        device.resolve_device("cuda")


def test_with_a_gpu_auto_is_cuda(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    assert device.resolve_device("auto") == "cuda"


def test_cuda_available_answers_without_raising():
    assert isinstance(device.cuda_available(), bool)


def test_without_a_driver_numba_cuda_is_not_imported(monkeypatch, tmp_path):
    """A CPU machine answers "no GPU" from the driver's absence, without paying numba.cuda's import."""
    import builtins

    real_import = builtins.__import__
    imported = []

    def watched(name, *args, **kwargs):
        if name == "numba" and "cuda" in (args[2] if len(args) > 2 and args[2] else ()):
            imported.append(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    monkeypatch.setattr(device, "DRIVER_PATHS", (tmp_path / "no-driver", tmp_path / "no-nvidiactl"))
    monkeypatch.setattr(builtins, "__import__", watched)
    assert device.cuda_available() is False and imported == []


def test_the_simulator_counts_as_a_gpu_without_a_driver(tmp_path):
    """In its own process: numba reads NUMBA_ENABLE_CUDASIM when numba.cuda is first imported."""
    import subprocess
    import sys

    script = ("from pathlib import Path\nfrom helixflow.phase2 import device\n"
              f"device.DRIVER_PATHS = (Path({str(tmp_path / 'no-driver')!r}),)\nprint(device.cuda_available())")
    found = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, NUMBA_ENABLE_CUDASIM="1"),
                           capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "True"


@pytest.mark.gpu
def test_the_gpu_kernels_equal_the_cpu_kernels_on_a_real_device():
    from helixflow.phase2 import dense, sw
    from helixflow.seq.packing import pack

    assert device.resolve_device("auto") == "cuda"
    rng = np.random.default_rng(3)
    letters = np.frombuffer(b"ACGTN", np.uint8)
    reads = [letters[rng.integers(0, 5, int(rng.integers(20, 200)))].tobytes() for _ in range(500)]
    query, query_offsets = pack(reads[:250])
    target, target_offsets = pack(reads[250:])
    for cpu, gpu in zip(sw.score_batch(query, query_offsets, target, target_offsets, device="cpu"),
                        sw.score_batch(query, query_offsets, target, target_offsets, device="cuda")):
        np.testing.assert_array_equal(cpu, gpu)
    codes = np.rint(rng.standard_normal((300, 256)) * 2).astype(np.int8)
    vectors, queries = dense.search_vectors(codes), dense.search_vectors(codes[:100])
    for cpu, gpu in zip(dense.top_k(queries, vectors, 4, "cpu"), dense.top_k(queries, vectors, 4, "cuda")):
        np.testing.assert_array_equal(cpu, gpu)

"""Device choice: one test for a usable GPU, --device resolution, and which GPU an MPI rank takes."""

from __future__ import annotations

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
    vectors = dense.storage_precision(rng.standard_normal((300, 256)))
    for cpu, gpu in zip(dense.top_k(vectors[:100], vectors, 4, "cpu"), dense.top_k(vectors[:100], vectors, 4, "cuda")):
        np.testing.assert_array_equal(cpu, gpu)

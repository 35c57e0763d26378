"""The ``gpu`` marker: a test that needs a real CUDA device runs only where there is one. CUDA kernels are
otherwise tested under ``NUMBA_ENABLE_CUDASIM=1`` against their CPU twins, which needs no device."""

from __future__ import annotations

import os

import pytest


def _real_gpu() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False  # the simulator is not a device
    from helixflow.phase2.device import cuda_available

    return cuda_available()


def pytest_collection_modifyitems(config, items):
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_tests and not _real_gpu():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (marker 'gpu')")
        for item in gpu_tests:
            item.add_marker(skip)

"""CUDA Smith-Waterman kernel == CPU kernel, under numba's CUDA simulator (in a subprocess, see the script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "cudasim" / "sw_cuda_vs_cpu.py"


@pytest.fixture(scope="module")
def simulator_report() -> dict:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, str(SCRIPT), "3"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cuda_target_is_numba_cuda_package(simulator_report):
    assert "numba_cuda" in simulator_report["cuda_file"]


@pytest.mark.parametrize("case", ["default", "cheap_gaps", "ties", "n0"])
def test_cuda_kernel_equals_cpu_kernel(simulator_report, case):
    result = simulator_report["cases"][case]
    assert result["differ"] == 0
    assert result["positive"] > result["pairs"] // 3   # the sample really aligns something
    assert result["dtypes"] == ["int32", "int32", "int32"]

"""The sbatch template passes every parameter to `srun --mpi=pmi2` as its own argument, unmodified."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[3] / "batch_jobs" / "slurm_simulation" / "phase2.sbatch"


def test_user_strings_reach_the_driver_verbatim_and_are_never_run(tmp_path):
    fake_srun = tmp_path / "srun"
    # Records its argv as JSON instead of launching anything.
    fake_srun.write_text('#!/usr/bin/env python3\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n')
    fake_srun.chmod(0o755)
    hostile = ["align", "my reads; $(touch PWNED).parquet", "--reference", "`touch PWNED`", "--out", "a b'\"c.sam"]
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}", SLURM_CPUS_PER_TASK="3",
               HELIXFLOW_PYTHON="/opt/venv/bin/python")
    done = subprocess.run(["bash", str(TEMPLATE), *hostile], cwd=tmp_path, env=env, capture_output=True,
                          text=True, check=True)
    argv = json.loads(done.stdout)
    assert argv == ["--mpi=pmi2", "/opt/venv/bin/python", "-m", "helixflow.phase2.mpi", *hostile, "--threads", "3"]
    assert not (tmp_path / "PWNED").exists()


def test_without_arguments_it_prints_usage_and_fails(tmp_path):
    done = subprocess.run(["bash", str(TEMPLATE)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 64 and "usage" in done.stderr

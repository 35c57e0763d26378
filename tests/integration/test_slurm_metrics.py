"""The metrics publisher's Slurm half against a real local Slurm through slurmrestd (v0.0.38): a one-CPU node with
one job running and two queued reads as 1 running, 2 pending, 3 in flight and the node allocated."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helixflow.pipeline.slurm_jobs import rest_client
from helixflow.scaling.observe import slurm_data
from helixflow_local.slurm import LocalSlurm
from tests.helpers import require_tool

pytestmark = pytest.mark.integration


def _read(client) -> dict:
    jobs = client.slurm("GET", "jobs").get("jobs", [])
    nodes = client.slurm("GET", "nodes").get("nodes", [])
    partitions = [p["name"] for p in client.slurm("GET", "partitions").get("partitions", [])]
    data = slurm_data(jobs, nodes, partitions, client.api.state, datetime.now(timezone.utc))
    return {(d["MetricName"], d["Dimensions"][1]["Value"]): d["Value"] for d in data}


def test_queue_and_nodes_per_partition_from_slurmrestd():
    require_tool(all(shutil.which(d) for d in ("munged", "slurmctld", "slurmd", "slurmrestd", "sbatch")),
                 "Slurm (slurm-wlm, slurmrestd, slurm-wlm-jwt-plugin, munge)")
    # /tmp, not pytest's private tmp_path: slurmrestd runs as nobody and must reach slurm.conf.
    state = Path(tempfile.mkdtemp(prefix="helixflow-slurm-metrics-"))
    with LocalSlurm(state, cpus=1) as slurm:
        env = slurm.environment()
        client = rest_client(env)
        idle = _read(client)
        assert idle[("SlurmIdleNodes", "cpu")] == 1 and idle[("SlurmJobsInFlight", "cpu")] == 0
        ids = [subprocess.run(["sbatch", "--parsable", "-p", "cpu", "-n", "1", f"--chdir={state / 'jobs'}",
                               "--wrap", "sleep 30"], env={**os.environ, **env}, capture_output=True, text=True,
                              check=True).stdout.strip() for _ in range(3)]
        try:
            deadline = time.monotonic() + 30
            values = _read(client)
            while values[("SlurmRunningJobs", "cpu")] < 1 and time.monotonic() < deadline:
                time.sleep(0.5)
                values = _read(client)
            assert values[("SlurmRunningJobs", "cpu")] == 1
            assert values[("SlurmPendingJobs", "cpu")] == 2
            assert values[("SlurmJobsInFlight", "cpu")] == 3
            assert values[("SlurmAllocatedNodes", "cpu")] == 1 and values[("SlurmIdleNodes", "cpu")] == 0
        finally:
            subprocess.run(["scancel", *ids], env={**os.environ, **env}, check=False)
    # Stopped with a job still being cancelled: nothing of this Slurm is left running (its slurmstepd was).
    assert slurm.job_step_processes() == []
    shutil.rmtree(state, ignore_errors=True)

"""The Slurm adapter against a real local Slurm (munged, slurmctld, slurmd, slurmrestd with JWT) started here.

Jobs run ``helixflow.cluster.probe`` under ``srun --mpi=pmi2`` with this venv's python, so the tests
cover the same path a Phase 2 job takes: REST submit with argv, the fixed job script, PMI-2 ranks, polling.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from helixflow.errors import ClusterNotConfigured, ClusterUnavailable
from helixflow.pipeline import slurm_jobs
from helixflow.pipeline.jobs import TERMINAL_STATES, JobHandle, JobSpec, backend_for
from helixflow_local.slurm import LocalSlurm
from tests.helpers import require_tool

pytestmark = pytest.mark.integration
LAYER = Path(__file__).resolve().parents[2] / "layers" / "helixflow"
HOSTILE = ["plain", "; rm -rf /", "$(touch /tmp/helixflow-pwned)", "`id`", "it's \"quoted\"", "two\nlines",
           "tab\there", "*", "$HOME", "--not-an-option"]


@pytest.fixture(scope="module")
def slurm():
    require_tool(all(shutil.which(d) for d in ("munged", "slurmctld", "slurmd", "slurmrestd")),
                 "Slurm (slurm-wlm, slurmrestd, slurm-wlm-jwt-plugin, munge)")
    # /tmp, not pytest's private tmp_path: slurmrestd runs as nobody and must reach slurm.conf.
    state = Path(tempfile.mkdtemp(prefix="helixflow-slurm-"))
    local = LocalSlurm(state, cpus=2)
    local.start()
    yield local
    local.stop()
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def backend(slurm):
    return slurm_jobs.factory("slurm-cpu", {**os.environ, **slurm.environment()})


def spec(*arguments: str, ranks: int = 1, sample: str = "S1") -> JobSpec:
    # PYTHONPATH: the job imports helixflow from this checkout (the venv may be installed from another one).
    return JobSpec(stage="phase2", placement="slurm-cpu", run_id="run-1", sample=sample, bucket="bucket",
                   work_prefix=f"work/{sample}/run-1/phase2/", module="helixflow.cluster.probe",
                   arguments=list(arguments), environment={"PYTHONPATH": str(LAYER)},
                   resources={"ranks": ranks, "time_limit_minutes": 5})


def wait(backend, handle: JobHandle, states=TERMINAL_STATES, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.status(handle)
        if status.state in states:
            return status
        time.sleep(0.3)
    pytest.fail(f"job {handle.job_id} not in {sorted(states)} after {timeout} s: {status}")


def test_starts_fast_and_reports_the_cluster(slurm):
    assert slurm.start_seconds < 5
    status = slurm.status()
    assert status["api"] == "v0.0.38"
    assert status["partitions"] == ["cpu"]  # no GPU on this machine: no gpu partition
    assert [n["state"] for n in status["nodes"]] == ["idle"]


def test_job_succeeds_with_details_and_argv_arrives_verbatim(slurm, backend):
    handle = backend.submit(spec(*HOSTILE, ranks=2))
    status = wait(backend, handle)
    assert (status.state, status.native_state, status.exit_code) == ("SUCCEEDED", "COMPLETED", 0)
    assert status.details["partition"] == status.details["queue"] == "cpu"
    assert status.details["nodes"] == "helixflow"
    assert status.details["submit_time"] <= status.details["start_time"] <= status.details["end_time"]
    out = Path(slurm.environment()["HELIXFLOW_SLURM_WORKDIR"]) / f"helixflow-phase2-S1-{handle.job_id}.out"
    ranks = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["rank"] for r in ranks) == ["0", "1"] and {r["size"] for r in ranks} == {"2"}
    assert all(r["args"] == HOSTILE for r in ranks)
    assert not Path("/tmp/helixflow-pwned").exists()


def test_failing_job_reports_exit_code_and_stderr_tail(backend):
    handle = backend.submit(spec("--fail", "rank could not read READS.parquet", "--exit-code", "3", sample="S2"))
    status = wait(backend, handle)
    assert (status.state, status.native_state, status.exit_code) == ("FAILED", "FAILED", 3)
    assert "rank could not read READS.parquet" in status.log_tail


def test_scancel_and_adapter_cancel_end_cancelled(slurm, backend):
    by_scancel = backend.submit(spec("--sleep", "60", sample="S3"))
    by_adapter = backend.submit(spec("--sleep", "60", sample="S4"))
    wait(backend, by_scancel, {"RUNNING"})
    subprocess.run(["scancel", by_scancel.job_id], env={**os.environ, **slurm.environment()}, check=True)
    backend.cancel(by_adapter)
    assert wait(backend, by_scancel).state == "CANCELLED"
    assert wait(backend, by_adapter).state == "CANCELLED"
    backend.cancel(by_adapter)  # cancelling an ended job again is harmless


def test_a_job_slurm_forgot_is_not_running_forever(backend):
    gone = JobHandle(backend="slurm", job_id="987654", stage="phase2", placement="slurm-cpu",
                     work_prefix="work/S/run/phase2/", submitted="2026-01-01T00:00:00+00:00")
    status = backend.status(gone)
    assert (status.state, status.native_state) == ("FAILED", "UNKNOWN_JOB")


def test_bad_token_is_cluster_unavailable(slurm, tmp_path):
    wrong_key = tmp_path / "wrong.key"
    wrong_key.write_bytes(os.urandom(32))
    backend = slurm_jobs.factory("slurm-cpu", {**slurm.environment(), "SLURM_JWT_KEY_FILE": str(wrong_key)})
    with pytest.raises(ClusterUnavailable) as caught:
        backend.submit(spec("never-runs"))
    assert caught.value.code == "SLURM_AUTH_REJECTED"


def test_no_configuration_is_cluster_not_configured(monkeypatch):
    for name in ("SLURM_REST_URL", "PCS_CLUSTER_ID", "HELIXFLOW_JOB_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ClusterNotConfigured) as caught:
        backend_for("slurm-gpu")
    assert caught.value.code == "SLURM_NOT_CONFIGURED"


def test_the_consoles_job_log_is_the_jobs_stderr_tail_limited_to_its_last_lines(slurm, backend):
    """What the console's execution page shows for a Slurm job: its stderr's last lines, through the adapter."""
    from helixflow_local.console.job_logs import JobLogs
    from helixflow_local.history import Job

    handle = backend.submit(spec("--fail", "<b>rank 0</b> could not read READS.parquet", "--exit-code", "2",
                                 sample="S6"))
    wait(backend, handle)
    job = Job(stage="phase2", backend="slurm", job_id=handle.job_id, state="FAILED", placement="slurm-cpu",
              work_prefix=handle.work_prefix)
    logs = JobLogs({**os.environ, **slurm.environment()})
    full, last = logs.tail(job), logs.tail(job, lines=1)
    assert any("<b>rank 0</b> could not read READS.parquet" in line for line in full.lines), full
    assert last.lines == full.lines[-1:] and full.problem is None
    # A console that reaches no Slurm says so instead of failing the page.
    assert JobLogs({}).tail(job).problem == "this console reaches no slurm cluster"

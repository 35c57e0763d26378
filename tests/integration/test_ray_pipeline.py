"""Phase 1 on Ray through the whole state machine: the local stack with a real Ray head (token auth on) as its
Ray cluster. A run placed on Ray goes Submit -> Wait -> Poll -> Merge over the Jobs REST API and publishes
outputs equal to `helixflow preprocess` on the same input; a job stopped mid-run ends the run
Phase1JobFailed with no manifest."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from helixflow.phase1.engine import process_file
from helixflow.phase1.simulate import write_sample
from helixflow.pipeline.params import RunParameters
from helixflow.pipeline.phase1_lambda import engine_params
from helixflow_local.client import collect, submit, wait_for_run
from helixflow_local.stack import LocalStack
from tests.helpers import poll_until, relative_files, same_outputs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # 1 MiB chunks, so the Ray Data job has several read tasks.
    with LocalStack(tmp_path_factory.mktemp("stack"), parameters={"Phase1ChunkMiB": "1"}, ray=True) as running:
        yield running


def _paired(tmp_path: Path, name: str, pairs: int) -> list[Path]:
    return [Path(p) for p in write_sample(tmp_path / "in", pairs, paired=True, fmt="gzip", name=name,
                                          fragment_mean=180.0)]


def test_phase1_on_ray_equals_preprocess(stack, tmp_path):
    reads = _paired(tmp_path, "rayrun", 9000)
    described = wait_for_run(stack.info, submit(stack.info, reads, {"phase1": "ray"}), timeout=600)
    outcome = collect(stack.info, described, tmp_path / "out")
    assert outcome.succeeded, outcome.error_document
    stages = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())["stages"]
    assert stages["plan"]["phase1"]["placement"] == "ray"
    assert stages["phase1_job"]["backend"] == "ray" and stages["phase1_job"]["state"] == "SUCCEEDED"
    assert stages["phase1"]["chunks"] >= 3
    local = tmp_path / "local"
    process_file(str(reads[0]), str(reads[1]), str(local), "rayrun", engine_params(RunParameters().model_dump()))
    expected = relative_files(local)
    assert set(expected) <= {entry["path"] for entry in outcome.manifest["files"]}
    same_outputs(outcome.local_dir, local, [p for p in expected if not p.endswith(".html")])


def test_a_ray_job_stopped_mid_run_fails_the_run_with_phase1_job_failed(stack, tmp_path):
    reads = _paired(tmp_path, "raystop", 30000)
    uploaded = submit(stack.info, reads, {"phase1": "ray"})
    token = (stack.state_dir / "ray-head" / "ray-token").read_text().strip()

    def running_job():
        request = urllib.request.Request(f"{stack.info.ray_url}/api/jobs/",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            jobs = json.loads(response.read())
        return next((j["submission_id"] for j in jobs if j["status"] == "RUNNING"
                     and j["submission_id"].endswith("-phase1")), None)

    job = poll_until(running_job, timeout=300, what="the Phase 1 Ray job to run")
    stop = urllib.request.Request(f"{stack.info.ray_url}/api/jobs/{job}/stop", method="POST",
                                  headers={"Authorization": f"Bearer {token}"})
    urllib.request.urlopen(stop, timeout=10).close()  # what `ray job stop` sends
    outcome = collect(stack.info, wait_for_run(stack.info, uploaded, timeout=300), tmp_path / "out")
    assert (outcome.status, outcome.error) == ("FAILED", "Phase1JobFailed")
    assert outcome.error_document["code"] == "JOB_CANCELLED"
    assert outcome.error_document["details"]["job_id"] == job
    assert outcome.manifest is None

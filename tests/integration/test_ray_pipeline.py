"""Phase 1 on Ray through the whole state machine: the local stack with a real Ray head (token auth on) as its
Ray cluster. A run placed on Ray goes Submit -> Wait -> Poll -> Merge over the Jobs REST API and publishes
outputs equal to `helixflow preprocess` on the same input (placed there by "auto": the input does not fit
Lambda); a job stopped mid-run ends the run Phase1JobFailed with no manifest."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from helixflow.phase1.engine import process_file
from helixflow.phase1.simulate import write_sample
from helixflow.pipeline.params import RunParameters
from helixflow.pipeline.phase1_lambda import engine_params
from helixflow.pipeline.profiles import load_profile
from helixflow_local.client import collect, submit, wait_for_run
from helixflow_local.stack import LocalStack
from tests.helpers import poll_until, relative_files, same_outputs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # A profile whose Lambda has 1 MB of scratch: this module's few-MB inputs do not fit the Lambda path, as a
    # 40 GB one does not fit AWS's 10 GB, so "phase1": "auto" must place them on Ray.
    profile = load_profile()
    profile["platforms"]["lambda"]["scratch_mb"] = 1
    state = tmp_path_factory.mktemp("stack")
    (state / "profile.json").write_text(json.dumps(profile))
    # 1 MiB chunks, so the Ray Data job has several read tasks.
    with LocalStack(state, parameters={"Phase1ChunkMiB": "1"}, ray=True,
                    environment={"HELIXFLOW_PROFILE": str(state / "profile.json")}) as running:
        yield running


def _paired(tmp_path: Path, name: str, pairs: int) -> list[Path]:
    return [Path(p) for p in write_sample(tmp_path / "in", pairs, paired=True, fmt="gzip", name=name,
                                          fragment_mean=180.0)]


def test_an_input_past_lambdas_limits_goes_to_ray_by_itself_and_equals_preprocess(stack, tmp_path):
    reads = _paired(tmp_path, "rayrun", 9000)
    described = wait_for_run(stack.info, submit(stack.info, reads), timeout=600)  # "phase1": "auto"
    outcome = collect(stack.info, described, tmp_path / "out")
    assert outcome.succeeded, outcome.error_document
    stages = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())["stages"]
    plan = stages["plan"]["phase1"]
    (on_lambda,) = [p for p in plan["predictions"] if p["placement"] == "lambda"]
    assert not on_lambda["feasible"] and "MB of scratch over 1 MB" in on_lambda["limit"]
    assert plan["placement"] == "ray" and on_lambda["limit"] in plan["reason"]
    assert plan["validation"] == "distributed"  # on the cluster the chunk runners validate as they transform
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

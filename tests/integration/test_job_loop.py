"""The state machine's cluster-job loop (Submit -> Wait -> Poll -> Choice) on moto's interpreter with the job
seam's test double: placement routes by a Choice, a job's states are followed to the end, a failed or
cancelled job fails the run with its named error, and RecordFailure stops a job a failed run leaves behind."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from helixflow_local.client import collect, submit, wait_for_run
from helixflow_local.stack import LocalStack
from tests.helpers import ROOT

pytestmark = pytest.mark.integration

RECORDS = b"".join(b"@read%d\n%s\n+\n%s\n" % (i, b"ACGTTGCAAC" * 8, b"I" * 80) for i in range(1, 201))


@pytest.fixture(scope="module")
def double_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, double_dir):
    environment = {"HELIXFLOW_JOB_BACKEND": "tests.doubles.jobs:factory", "HELIXFLOW_DOUBLE_DIR": str(double_dir),
                   "PYTHONPATH": str(ROOT)}
    with LocalStack(tmp_path_factory.mktemp("stack"), environment=environment) as running:
        yield running


def _run(stack, tmp_path, name: str, double_dir: Path, script: str):
    (double_dir / "script").write_text(script)
    reads = tmp_path / name
    reads.write_bytes(gzip.compress(RECORDS))
    described = wait_for_run(stack.info, submit(stack.info, [reads], {"phase1": "ray"}), timeout=180)
    return described, collect(stack.info, described, tmp_path / "out")


def _entered(stack, arn: str) -> list[str]:
    sfn = stack.client("stepfunctions")
    return [e["stateEnteredEventDetails"]["name"] for page in
            sfn.get_paginator("get_execution_history").paginate(executionArn=arn) for e in page["events"]
            if "stateEnteredEventDetails" in e]


def test_a_ray_placement_follows_the_job_to_success_and_publishes(stack, tmp_path, double_dir):
    described, outcome = _run(stack, tmp_path, "loopok.fastq.gz", double_dir, "PENDING,RUNNING,RUNNING,SUCCEEDED")
    assert outcome.succeeded, outcome.error_document
    entered = _entered(stack, described["executionArn"])
    assert "ProcessChunks" not in entered  # routed by the Choice, not the Lambda map
    assert entered.count("PollPhase1Job") == 4 and entered.count("WaitForPhase1Job") == 4
    # On the cluster the chunk runners validate (no single Validate, no re-blocking Split): ValidateChunks judges
    # them before the merge. Phase 2 is planned after the merge and, with no Slurm here, routed off to Publish.
    assert "Validate" not in entered and "ScanMates" in entered
    assert entered[entered.index("IsPhase1JobDone"):][-11:] == [
        "IsPhase1JobDone", "RouteChunkVerdicts", "ValidateChunks", "MergeChunks", "PlanPhase2", "RoutePhase2",
        "BuildReport", "Publish", "RouteBatchReport", "RunOutcome", "RunSucceeded"]  # no samplesheet: no batch report
    params = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())
    job = params["stages"]["phase1_job"]
    assert (job["state"], job["backend"], job["polls"]) == ("SUCCEEDED", "double", 4)
    # The Wait doubles from the local first interval (1 s) to the local cap (5 s).
    assert params["stages"]["plan"]["phase1"]["placement"] == "ray"
    assert {entry["path"] for entry in outcome.manifest["files"]} >= {"qc/loopok.fastp.json",
                                                                       "embeddings/loopok.parquet"}


@pytest.mark.parametrize(("script", "code"), [("PENDING,RUNNING,FAILED", "JOB_FAILED"),
                                              ("RUNNING,CANCELLED", "JOB_CANCELLED")])
def test_a_job_that_fails_or_is_cancelled_fails_the_run_with_its_named_error(stack, tmp_path, double_dir, script,
                                                                             code):
    name = f"loop{code.split('_')[1].lower()}.fastq.gz"
    described, outcome = _run(stack, tmp_path, name, double_dir, script)
    assert (outcome.status, outcome.error) == ("FAILED", "Phase1JobFailed")
    document = outcome.error_document
    assert document["code"] == code and document["details"]["job_id"].endswith("-phase1")
    if code == "JOB_FAILED":
        assert document["details"]["log_tail"][-1] == "RuntimeError: worker lost"
        assert document["details"]["exit_code"] == 1
    assert outcome.manifest is None
    s3 = stack.client("s3")
    sample = name.split(".")[0]
    assert s3.list_objects_v2(Bucket=stack.info.bucket, Prefix=f"results/{sample}/").get("KeyCount", 0) == 0
    run_scratch = s3.list_objects_v2(Bucket=stack.info.bucket, Prefix=f"work/{sample}/{outcome.run_id}/")
    assert run_scratch.get("KeyCount", 0) == 0


def test_record_failure_stops_a_job_the_failed_run_left_running(stack, tmp_path, double_dir):
    # The job runs forever; MergeChunks is never reached because a fault kills every PollJob attempt.
    stack.runtime.inject_fault("PollJobFunction", "ServiceException", times=4)
    described, outcome = _run(stack, tmp_path, "loopstuck.fastq.gz", double_dir, "RUNNING")
    assert (outcome.status, outcome.error) == ("FAILED", "Lambda.ServiceException")
    assert outcome.error_document["cleanup"]["cancelled_jobs"] == [f"{outcome.run_id}-phase1"]
    record = json.loads((double_dir / f"{outcome.run_id}-phase1.json").read_text())
    assert record["cancelled"] is True

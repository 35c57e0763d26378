"""Fault injection per Task on the local stack: a Lambda worker killed mid-request once is retried and the run
succeeds; killed every time, the run fails with a named error, publishes nothing, leaves no scratch of its own
under work/ and never touches its inputs. A run that failed after Phase 1 resumes from its checkpoint."""

from __future__ import annotations

import csv
import gzip
import json

import pytest

from helixflow_local.client import collect, submit, wait_for_run
from helixflow_local.runtime import KILL_WORKER
from helixflow_local.stack import LocalStack

pytestmark = pytest.mark.integration

RECORDS = b"".join(b"@read%d\n%s\n+\n%s\n" % (i, b"ACGTTGCAAC" * 8, b"I" * 80) for i in range(1, 301))
TASKS = {"ResolveSample": "ResolveSampleFunction", "Validate": "ValidateFunction", "PlanPhase1": "PlanFunction",
         "SplitIntoChunks": "SplitIntoChunksFunction", "ProcessChunk": "ProcessChunkFunction",
         "MergeChunks": "MergeChunksFunction", "BuildReport": "BuildReportFunction", "Publish": "PublishFunction"}

# The default run kills the Tasks whose recovery differs (ResolveSample's idempotency record, a Distributed Map
# item, the last Task, the first Task that reads the input); `make test-extended` kills every other Task too.
DEFAULT_TIER = {"once": {"ResolveSample", "ProcessChunk", "Publish"}, "always": {"Validate", "ProcessChunk", "Publish"}}


def tasks(kind: str) -> list:
    return [pytest.param(task, marks=() if task in DEFAULT_TIER[kind] else pytest.mark.extended)
            for task in sorted(TASKS)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with LocalStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(autouse=True)
def faults_are_used_up(stack):
    """Each test's injected kills all hit their function (none leaks into the next test)."""
    stack.runtime.faults.clear()
    yield
    assert {name: left for name, left in stack.runtime.faults.items() if left} == {}


def _run(stack, tmp_path, name):
    reads = tmp_path / name
    if not reads.exists():  # the same bytes when a test runs a file again (gzip stamps the time in its header)
        reads.write_bytes(gzip.compress(RECORDS))
    uploaded = submit(stack.info, [reads])
    described = wait_for_run(stack.info, uploaded, timeout=240)
    return collect(stack.info, described, tmp_path / "out"), uploaded


def _keys(stack, prefix):
    s3 = stack.client("s3")
    return [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.info.bucket,
                                                                                 Prefix=prefix)
            for obj in page.get("Contents", [])]


@pytest.mark.parametrize("task", tasks("once"))
def test_a_worker_killed_once_is_retried_and_the_run_succeeds(stack, tmp_path, task):
    stack.runtime.inject_fault(TASKS[task], KILL_WORKER, times=1)
    outcome, _ = _run(stack, tmp_path, f"once{task.lower()}.fastq.gz")
    assert outcome.succeeded, outcome.error_document
    if task != "ProcessChunk":  # a map item's attempts are in its child execution, not this trace
        with open(outcome.local_dir / "pipeline_info/trace.tsv") as trace:
            attempts = {row["name"]: int(row["attempts"]) for row in csv.DictReader(trace, delimiter="\t")}
        # ResolveSample's killed attempt leaves Powertools' idempotency record in progress, so its retries see
        # IdempotencyAlreadyInProgressError (retried with backoff) until that record's Lambda timeout passes.
        assert attempts[task] >= 2 if task == "ResolveSample" else attempts[task] == 2


@pytest.mark.parametrize("task", tasks("always"))
def test_a_worker_killed_every_time_fails_the_run_cleanly(stack, tmp_path, task):
    sample = f"always{task.lower()}"
    stack.runtime.inject_fault(TASKS[task], KILL_WORKER, times=3)
    outcome, uploaded = _run(stack, tmp_path, f"{sample}.fastq.gz")
    assert outcome.status == "FAILED"
    # A map whose item fails fails as a whole; every other Task's error is the runtime's own.
    expected = {"States.ExceedToleratedFailureThreshold", "IncompleteResults"} if task == "ProcessChunk" \
        else {"Runtime.ExitError"}
    assert outcome.error in expected
    assert outcome.error_document is not None and outcome.error_document["error"] == outcome.error
    assert _keys(stack, f"results/{sample}/") == []
    assert _keys(stack, f"work/{sample}/{outcome.run_id}/") == []
    s3 = stack.client("s3")
    for upload in uploaded:  # the inputs: same single version, same bytes
        versions = s3.list_object_versions(Bucket=stack.info.bucket, Prefix=upload.key)["Versions"]
        assert [(v["VersionId"], v["ETag"].strip('"')) for v in versions] == [(upload.version_id, upload.etag)]


def test_a_run_that_failed_after_phase1_resumes_from_its_checkpoint(stack, tmp_path):
    stack.runtime.inject_fault("PublishFunction", KILL_WORKER, times=3)
    failed, _ = _run(stack, tmp_path, "resumed.fastq.gz")
    assert (failed.status, failed.error) == ("FAILED", "Runtime.ExitError")
    assert any("/_checkpoints/" in key for key in _keys(stack, "work/resumed/"))
    again, _ = _run(stack, tmp_path, "resumed.fastq.gz")
    assert again.succeeded and again.run_id != failed.run_id
    sfn = stack.client("stepfunctions")
    entered = [e["stateEnteredEventDetails"]["name"] for page in
               sfn.get_paginator("get_execution_history").paginate(executionArn=again.execution_arn)
               for e in page["events"] if "stateEnteredEventDetails" in e]
    assert "ResumeAfterPhase1" in entered and "SplitIntoChunks" not in entered and "Validate" not in entered
    assert {"qc/resumed.fastp.json", "embeddings/resumed.parquet"} <= {f["path"] for f in again.manifest["files"]}
    assert _keys(stack, "work/resumed/") == []  # published: the checkpoint is gone

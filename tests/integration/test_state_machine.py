"""statemachines/pipeline.asl.json run end to end by moto's Step Functions interpreter, with our real Lambda
handlers, resources created from template.yaml, and S3 events delivered through the local poller."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from pathlib import Path

import pytest

from helixflow.pipeline.run_report import DATA_ZIP, REPORT_NAME, multiqc_data
from helixflow_local.client import Upload, collect, submit, wait_for_run
from helixflow_local.stack import LocalStack
from tests.helpers import poll_until

pytestmark = pytest.mark.integration

RECORDS = b"".join(b"@read%d\n%s\n+\n%s\n" % (i, b"ACGTTGCA" * 10, b"I" * 80) for i in range(1, 41))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # A short mate wait, so a lone first mate's execution ends within the test.
    with LocalStack(tmp_path_factory.mktemp("stack"), parameters={"MateWaitSeconds": "4"}) as running:
        yield running


def _write(directory: Path, name: str, body: bytes) -> Path:
    path = directory / name
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    return path


def _run(stack, tmp_path, reads, params=None):
    uploaded = submit(stack.info, reads, params)
    # A bound on waiting, not a speed check: the first run also pays every worker's cold start and MultiQC
    # (BuildReport) on a machine the suite may share.
    described = wait_for_run(stack.info, uploaded, timeout=240)
    return collect(stack.info, described, tmp_path / "out"), uploaded


def _history(stack, arn):
    sfn = stack.client("stepfunctions")
    return [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
            for e in page["events"]]


def _runs_of(stack, sample: str) -> set[str]:
    s3 = stack.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.info.bucket, Prefix=f"results/{sample}/").get(
        "Contents", [])]
    return {key.split("/")[2] for key in keys}


def test_valid_file_is_published_with_a_verifiable_manifest(stack, tmp_path):
    reads = _write(tmp_path, "happy.fastq.gz", RECORDS)
    outcome, _ = _run(stack, tmp_path, [reads])
    assert outcome.succeeded, outcome.error_document
    paths = {entry["path"] for entry in outcome.manifest["files"]}
    assert {"pipeline_info/params.json", "pipeline_info/trace.tsv", "pipeline_info/software_versions.yml"} <= paths
    for entry in outcome.manifest["files"]:
        data = (outcome.local_dir / entry["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])
    params = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())
    assert params["stages"]["validation"]["records"] == 40
    # The run's MultiQC report (BuildReport), listed in the manifest: MultiQC's fastp module read our JSON.
    assert {REPORT_NAME, DATA_ZIP} <= paths
    data = multiqc_data(outcome.local_dir / DATA_ZIP)
    assert set(data["report_data_sources"]["fastp"]["all_sections"]) == {"happy"}
    assert {"helixflow_timeline_plot", "helixflow_placement_table"} <= set(data["report_plot_data"])
    assert params["stages"]["report"]["modules"] == ["fastp"]
    # The input is still there, byte for byte.
    body = stack.client("s3").get_object(Bucket=stack.info.bucket, Key="incoming/happy.fastq.gz")["Body"].read()
    assert gzip.decompress(body) == RECORDS


def test_invalid_file_fails_with_its_named_error_and_publishes_nothing(stack, tmp_path):
    broken = RECORDS + b"@read41\nACGT\n+\nII\n"
    reads = _write(tmp_path, "broken.fastq", broken)
    outcome, _ = _run(stack, tmp_path, [reads])
    assert outcome.status == "FAILED" and outcome.error == "InvalidFastq"
    document = outcome.error_document
    assert (document["code"], document["record"], document["line"]) == ("SEQ_QUAL_LENGTH_MISMATCH", 41, 164)
    assert document["byte_offset"] == len(RECORDS) + len(b"@read41\nACGT\n+\n")
    assert document["file"] == "incoming/broken.fastq"
    assert _runs_of(stack, "broken") == set()
    history = _history(stack, outcome.execution_arn)
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    # A sample no samplesheet declared has no batch: past RecordFailure the run goes straight to FailRun.
    assert entered[-4:] == ["RecordFailure", "RouteBatchReport", "RunOutcome", "FailRun"]


def test_a_duplicate_event_does_not_start_a_second_run(stack, tmp_path):
    reads = _write(tmp_path, "dup.fastq", RECORDS)
    outcome, _ = _run(stack, tmp_path, [reads])
    assert outcome.succeeded
    sfn = stack.client("stepfunctions")
    original = sfn.describe_execution(executionArn=outcome.execution_arn)["input"]
    # EventBridge delivers at least once: the same event again, in a new execution.
    again = sfn.start_execution(stateMachineArn=stack.info.state_machine_arn, name="redelivered-dup",
                                input=original)["executionArn"]
    described = poll_until(lambda: (d := sfn.describe_execution(executionArn=again))["status"] != "RUNNING" and d,
                           timeout=60, what="the redelivered execution to end")
    assert described["status"] == "SUCCEEDED"
    assert _entered(stack, again)[-1] == "SkipDuplicateEvent"
    # Its output says it was skipped, so no client mistakes it for the run.
    assert json.loads(described["output"]) == {"skipped": "duplicate_event", "run_id": "redelivered-dup",
                                               "duplicate_of": outcome.run_id}
    assert _runs_of(stack, "dup") == {outcome.run_id}


def _drop(stack, path: Path) -> Upload:
    """Upload one file as a user with the AWS CLI would: no sidecar, no declaration."""
    s3 = stack.client("s3")
    key = f"incoming/{path.name}"
    s3.upload_file(str(path), stack.info.bucket, key)
    head = s3.head_object(Bucket=stack.info.bucket, Key=key)
    return Upload(key=key, etag=head["ETag"].strip('"'), version_id=head["VersionId"])


def _execution_of(stack, upload: Upload) -> dict:
    sfn = stack.client("stepfunctions")

    def find():
        for execution in sfn.list_executions(stateMachineArn=stack.info.state_machine_arn)["executions"]:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            obj = json.loads(described["input"])["detail"]["object"]
            if (obj["key"], obj.get("version-id")) == (upload.key, upload.version_id):
                return described
        return None

    return poll_until(find, timeout=60, what=f"the execution of {upload.key}")


def _entered(stack, arn) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in _history(stack, arn) if "stateEnteredEventDetails" in e]


def test_first_mate_waits_and_the_second_starts_one_paired_run(stack, tmp_path):
    r1 = _write(tmp_path, "pair_R1.fastq.gz", RECORDS)
    r2 = _write(tmp_path, "pair_R2.fastq.gz", RECORDS)
    first = _execution_of(stack, _drop(stack, r1))
    poll_until(lambda: "WaitForMate" in _entered(stack, first["executionArn"]), timeout=60, what="WaitForMate")
    described = wait_for_run(stack.info, [_drop(stack, r2)], timeout=240)
    outcome = collect(stack.info, described, tmp_path / "out")
    assert outcome.succeeded
    params = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())
    assert [i["key"] for i in params["inputs"]] == ["incoming/pair_R1.fastq.gz", "incoming/pair_R2.fastq.gz"]
    assert params["stages"]["validation"]["paired"] is True
    assert _runs_of(stack, "pair") == {outcome.run_id}
    # The first mate's execution ends once its wait is over, handing the sample to the pair's run.
    sfn = stack.client("stepfunctions")
    poll_until(lambda: sfn.describe_execution(executionArn=first["executionArn"])["status"] != "RUNNING",
               timeout=60, what="the first mate's execution to end")
    assert _entered(stack, first["executionArn"])[-1] == "MateArrived"


def test_a_lone_first_mate_fails_with_mate_missing_and_is_forgotten(stack, tmp_path):
    lone = _write(tmp_path, "lone_R1.fastq", RECORDS)
    described = wait_for_run(stack.info, [_drop(stack, lone)], timeout=120)
    outcome = collect(stack.info, described, tmp_path / "out")
    assert (outcome.status, outcome.error) == ("FAILED", "MateMissing")
    assert outcome.error_document["code"] == "MATE_MISSING"
    assert "lone_R2" in outcome.error_document["message"]
    # A later, unrelated R2 does not pair with the stale R1: it waits (and fails) on its own.
    later = _write(tmp_path, "lone_R2.fastq", RECORDS[: len(RECORDS) // 2])
    again = wait_for_run(stack.info, [_drop(stack, later)], timeout=120)
    assert (again["status"], again["error"]) == ("FAILED", "MateMissing")


def test_a_file_named_like_a_mate_runs_single_end_through_the_client(stack, tmp_path):
    reads = _write(tmp_path, "solo_R1.fastq", RECORDS)
    outcome, _ = _run(stack, tmp_path, [reads])
    assert outcome.succeeded, outcome.error_document
    params = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())
    assert [(i["key"], i["mate"]) for i in params["inputs"]] == [("incoming/solo_R1.fastq", 0)]
    assert params["params"]["single_end"] is True


def test_a_transient_lambda_failure_is_retried_and_the_run_succeeds(stack, tmp_path):
    stack.runtime.inject_fault("ValidateFunction", "ServiceException", times=1)
    reads = _write(tmp_path, "flaky.fastq", RECORDS)
    outcome, _ = _run(stack, tmp_path, [reads])
    assert outcome.succeeded
    with open(outcome.local_dir / "pipeline_info/trace.tsv") as trace:
        attempts = {row["name"]: int(row["attempts"]) for row in csv.DictReader(trace, delimiter="\t")}
    assert attempts["Validate"] == 2 and attempts["ResolveSample"] == 1
    failures = [e for e in _history(stack, outcome.execution_arn) if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failures] == ["Lambda.ServiceException"]


def test_a_key_that_is_not_a_safe_name_fails_with_invalid_key(stack, tmp_path):
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.info.bucket, Key="incoming/bad name.fastq", Body=RECORDS)
    head = s3.head_object(Bucket=stack.info.bucket, Key="incoming/bad name.fastq")
    upload = Upload(key="incoming/bad name.fastq", etag=head["ETag"].strip('"'), version_id=head["VersionId"])
    described = wait_for_run(stack.info, [upload], timeout=60)
    assert (described["status"], described["error"]) == ("FAILED", "InvalidKey")
    outcome = collect(stack.info, described, tmp_path / "out")
    assert outcome.error_document["code"] == "UNSAFE_KEY"
    assert outcome.local_dir.parts[-2] == "_unresolved"


def test_uploads_that_are_not_fastq_under_incoming_start_nothing(stack, tmp_path):
    """Only incoming/*.fastq[.gz] and *.fq[.gz] start a run: other names, and FASTQ outside incoming/, are left
    alone. A FASTQ uploaded after them finishing shows their events were delivered and ignored, not pending."""
    s3 = stack.client("s3")
    ignored = ["incoming/notes.txt", "incoming/sample.fastq.bak", "incoming/sample.json", "other/late.fastq",
               "incoming/archive.fastq.zip"]
    for key in ignored:
        s3.put_object(Bucket=stack.info.bucket, Key=key, Body=RECORDS)
    reads = _write(tmp_path, "after_ignored.fastq", RECORDS)
    outcome, _ = _run(stack, tmp_path, [reads])
    assert outcome.succeeded
    started = {execution["key"] for execution in stack.started_executions}
    assert "incoming/after_ignored.fastq" in started
    assert started.isdisjoint(ignored)
    sfn = stack.client("stepfunctions")
    inputs = [sfn.describe_execution(executionArn=e["executionArn"])["input"]
              for e in sfn.list_executions(stateMachineArn=stack.info.state_machine_arn)["executions"]]
    assert not any(key in text for key in ignored for text in inputs)
    for key in ignored:  # inputs are never modified or deleted
        assert s3.get_object(Bucket=stack.info.bucket, Key=key)["Body"].read() == RECORDS


def test_a_ray_placement_without_a_ray_cluster_fails_before_any_chunk_is_prepared(stack, tmp_path):
    reads = _write(tmp_path, "noray.fastq", RECORDS)
    outcome, _ = _run(stack, tmp_path, [reads], {"phase1": "ray"})
    assert (outcome.status, outcome.error) == ("FAILED", "ClusterNotConfigured")
    assert outcome.error_document["code"] == "RAY_NOT_CONFIGURED"
    entered = _entered(stack, outcome.execution_arn)
    assert "PlanPhase1" in entered and "SplitIntoChunks" not in entered

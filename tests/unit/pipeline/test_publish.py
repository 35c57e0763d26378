import csv
import hashlib
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT
from helixflow.errors import IncompleteResults
from helixflow.pipeline.failure import describe_failure
from helixflow.pipeline.publish import TRACE_COLUMNS, publish_run, trace_rows
from helixflow.pipeline import storage
from helixflow.versions import VALIDATE, environment_versions
from helixflow.pipeline.state import SampleRequest

BUCKET = "helixflow-publish-test"
REQUEST = SampleRequest(status="ready", bucket=BUCKET, sample="S1", run_id="run-1", results_prefix="results/S1/run-1/",
                        inputs=[{"key": "incoming/S1.fastq", "etag": "e", "size": 1, "mate": 0}], params={})


class RecordingS3:
    """Delegates to a real (moto) client and remembers the order of writes."""

    def __init__(self, client):
        self.client = client
        self.puts = []

    def put_object(self, **kwargs):
        self.puts.append(kwargs["Key"])
        return self.client.put_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.fixture
def s3(moto_s3):
    moto_s3.create_bucket(Bucket=BUCKET)
    return RecordingS3(moto_s3)


def test_manifest_is_written_last_and_lists_every_output_with_its_checksum(s3):
    s3.client.put_object(Bucket=BUCKET, Key="results/S1/run-1/qc/S1.fastp.json", Body=b'{"summary": {}}')
    manifest = publish_run(s3=s3, request=REQUEST, stages={}, history_events=[],
                           expected_outputs=["qc/S1.fastp.json"])
    assert s3.puts[-1] == "results/S1/run-1/manifest.json"
    files = {f["path"]: f for f in manifest["files"]}
    assert files["qc/S1.fastp.json"]["sha256"] == hashlib.sha256(b'{"summary": {}}').hexdigest()
    assert files["qc/S1.fastp.json"]["size"] == len(b'{"summary": {}}')
    stored = json.loads(s3.client.get_object(Bucket=BUCKET, Key="results/S1/run-1/manifest.json")["Body"].read())
    assert stored["files"] == manifest["files"]


def test_staged_outputs_are_listed_with_the_digest_their_stage_recorded_without_reading_them_back(s3, tmp_path):
    from helixflow.pipeline.storage import upload

    body = b"@r1\nACGT\n+\nIIII\n" * 1000
    (tmp_path / "trimmed.fastq").write_bytes(body)
    digest = upload(s3.client, BUCKET, tmp_path / "trimmed.fastq", "work/S1/stage/reads/S1.trimmed.fastq")
    assert digest == hashlib.sha256(body).hexdigest()
    reads = []
    s3.client.meta.events.register("provide-client-params.s3.GetObject",
                                   lambda params, **_: reads.append(params["Key"]))
    manifest = publish_run(s3=s3, request=REQUEST, stages={}, history_events=[],
                           staged={"work/S1/stage/": ["reads/S1.trimmed.fastq"]})
    assert reads == []  # Publish read no output back to hash it
    files = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert files["reads/S1.trimmed.fastq"] == digest
    assert files["pipeline_info/params.json"] == hashlib.sha256(s3.client.get_object(
        Bucket=BUCKET, Key="results/S1/run-1/pipeline_info/params.json")["Body"].read()).hexdigest()


def test_a_missing_promised_output_publishes_nothing(s3):
    with pytest.raises(IncompleteResults) as caught:
        publish_run(s3=s3, request=REQUEST, stages={}, history_events=[],
                    expected_outputs=["reads/S1.trimmed.fastq.gz"])
    assert "reads/S1.trimmed.fastq.gz" in caught.value.message
    assert s3.puts == []


def test_trace_counts_attempts_and_durations_per_task():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    at = lambda seconds: t0 + timedelta(seconds=seconds)  # noqa: E731
    events = [
        {"type": "TaskStateEntered", "timestamp": at(0), "stateEnteredEventDetails": {"name": "Validate"}},
        {"type": "TaskScheduled", "timestamp": at(0)},
        {"type": "TaskStarted", "timestamp": at(1)},
        {"type": "TaskFailed", "timestamp": at(2)},
        {"type": "TaskScheduled", "timestamp": at(3)},
        {"type": "TaskStarted", "timestamp": at(3)},
        {"type": "TaskSucceeded", "timestamp": at(5)},
        {"type": "TaskStateExited", "timestamp": at(5)},
    ]
    (row,) = trace_rows(events)
    assert (row["name"], row["status"], row["attempts"], row["duration_ms"]) == ("Validate", "COMPLETED", 2, 4000)


def test_failure_description_keeps_code_and_position_of_named_errors():
    message = json.dumps({"error": "InvalidFastq", "code": "BAD_HEADER", "message": "record 2: ...",
                          "file": "incoming/a.fastq", "record": 2, "line": 5, "byte_offset": 40})
    cause = json.dumps({"errorType": "InvalidFastq", "errorMessage": message, "stackTrace": ["..."]})
    document = describe_failure({"Error": "InvalidFastq", "Cause": cause})
    assert (document["code"], document["record"], document["line"], document["byte_offset"]) == (
        "BAD_HEADER", 2, 5, 40)
    assert "stack_trace" not in document


def test_failure_description_of_an_unexpected_error_keeps_its_trace():
    cause = json.dumps({"errorType": "KeyError", "errorMessage": "'x'", "stackTrace": ["line 1"]})
    document = describe_failure({"Error": "KeyError", "Cause": cause})
    assert (document["error"], document["message"], document["stack_trace"]) == ("KeyError", "'x'", ["line 1"])
    service = describe_failure({"Error": "States.Timeout", "Cause": "timed out"})
    assert (service["code"], service["message"]) == ("States.Timeout", "timed out")


def _saved_history() -> list[dict]:
    return json.loads((ROOT / "tests" / "events" / "history_lambda_path_at_publish.json").read_text())


def test_trace_has_a_row_for_every_state_that_does_work_including_the_distributed_map():
    finished = datetime.fromisoformat(_saved_history()[-1]["timestamp"]) + timedelta(milliseconds=250)
    rows = trace_rows(_saved_history(), item_counts={"ProcessChunks": 3}, running_until=finished)
    assert [(r["name"], r["type"], r["status"], r["attempts"]) for r in rows] == [
        ("ResolveSample", "Task", "COMPLETED", 1), ("Validate", "Task", "COMPLETED", 1),
        ("PlanPhase1", "Task", "COMPLETED", 1), ("SplitIntoChunks", "Task", "COMPLETED", 1),
        ("ProcessChunks", "Map", "COMPLETED", 1), ("MergeChunks", "Task", "COMPLETED", 1),
        ("Publish", "Task", "COMPLETED", 1)]
    by_name = {r["name"]: r for r in rows}
    chunks = by_name["ProcessChunks"]
    assert chunks["items"] == 3 and chunks["start"] and chunks["complete"]
    assert chunks["duration_ms"] == max(r["duration_ms"] for r in rows)  # the longest step is now visible
    assert by_name["Publish"]["complete"] == finished.isoformat()
    assert all(r["items"] == "" for r in rows if r["type"] == "Task")


def test_a_state_still_running_reads_running_unless_the_caller_says_it_finished():
    (*_, publish) = trace_rows(_saved_history())
    assert (publish["name"], publish["status"], publish["complete"], publish["duration_ms"]) == (
        "Publish", "RUNNING", "", "")


def test_a_failed_map_run_fails_the_map_row():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    events = [
        {"id": 1, "previousEventId": 0, "type": "MapStateEntered", "timestamp": t0,
         "stateEnteredEventDetails": {"name": "ProcessChunks"}},
        {"id": 2, "previousEventId": 1, "type": "MapStateStarted", "timestamp": t0,
         "mapStateStartedEventDetails": {"length": 4}},
        {"id": 3, "previousEventId": 2, "type": "MapRunStarted", "timestamp": t0 + timedelta(seconds=1)},
        {"id": 4, "previousEventId": 3, "type": "MapRunFailed", "timestamp": t0 + timedelta(seconds=9)},
        {"id": 5, "previousEventId": 4, "type": "MapStateFailed", "timestamp": t0 + timedelta(seconds=9)},
        {"id": 6, "previousEventId": 5, "type": "MapStateExited", "timestamp": t0 + timedelta(seconds=9),
         "stateExitedEventDetails": {"name": "ProcessChunks"}},
    ]
    (row,) = trace_rows(events, running_until=t0 + timedelta(seconds=30))
    assert (row["status"], row["items"], row["duration_ms"]) == ("FAILED", 4, 8000)


def test_publish_writes_its_own_completed_row_as_the_last_file_before_the_manifest(s3):
    before = datetime.now(timezone.utc)
    publish_run(s3=s3, request=REQUEST, stages={}, history_events=_saved_history(), item_counts={"ProcessChunks": 1})
    assert s3.puts[-2:] == ["results/S1/run-1/pipeline_info/trace.tsv", "results/S1/run-1/manifest.json"]
    body = s3.client.get_object(Bucket=BUCKET, Key="results/S1/run-1/pipeline_info/trace.tsv")["Body"].read()
    rows = list(csv.DictReader(io.StringIO(body.decode()), delimiter="\t"))
    assert list(rows[0]) == list(TRACE_COLUMNS)
    assert (rows[-1]["name"], rows[-1]["status"]) == ("Publish", "COMPLETED")
    assert datetime.fromisoformat(rows[-1]["complete"]) >= before
    assert [r["items"] for r in rows if r["type"] == "Map"] == ["1"]


def test_software_versions_lists_each_stage_with_the_versions_of_its_own_environment(s3):
    phase1_image = {"helixflow": "0.1.0", "python": "3.11.9", "numba": "0.67.0", "pyarrow": "20.0.0"}
    stages = {"validation": {"records": 1, "versions": environment_versions(VALIDATE)},
              "plan": {"phase1": {"placement": "lambda"}}, "phase1": {"chunks": 1, "versions": phase1_image}}
    publish_run(s3=s3, request=REQUEST, stages=stages, history_events=[])
    body = s3.client.get_object(Bucket=BUCKET, Key="results/S1/run-1/pipeline_info/software_versions.yml")["Body"]
    versions = yaml.safe_load(body.read())
    # nf-core's layout: process -> tool -> version, one process per stage that reported, Publish last.
    assert list(versions) == ["Validate", "Phase1", "Publish"]
    assert versions["Phase1"] == phase1_image  # what the stage reported, not Publish's environment
    assert versions["Validate"]["numpy"] == environment_versions(["numpy"])["numpy"]
    assert {"helixflow", "python", "boto3"} <= versions["Publish"].keys()


def test_a_stage_that_did_not_run_or_report_is_not_in_software_versions(s3):
    publish_run(s3=s3, request=REQUEST, stages={"phase1": {"chunks": 1, "versions": {}}}, history_events=[])
    body = s3.client.get_object(Bucket=BUCKET, Key="results/S1/run-1/pipeline_info/software_versions.yml")["Body"]
    assert list(yaml.safe_load(body.read())) == ["Publish"]


def test_environment_versions_name_the_installed_distributions_and_skip_absent_ones():
    versions = environment_versions(["numpy", "no-such-distribution-helixflow"])
    assert {"helixflow", "python", "numpy"} == versions.keys()
    assert all(isinstance(v, str) and v for v in versions.values())


def test_a_cluster_job_gets_its_own_trace_row_with_its_id_queue_and_queue_and_run_times():
    from helixflow.pipeline.jobs import JobHandle

    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    events = [
        {"id": 1, "previousEventId": 0, "type": "TaskStateEntered", "timestamp": t0,
         "stateEnteredEventDetails": {"name": "SubmitPhase2Job"}},
        {"id": 2, "previousEventId": 1, "type": "TaskScheduled", "timestamp": t0},
        {"id": 3, "previousEventId": 2, "type": "TaskSucceeded", "timestamp": t0 + timedelta(seconds=1)},
        {"id": 4, "previousEventId": 3, "type": "TaskStateExited", "timestamp": t0 + timedelta(seconds=1),
         "stateExitedEventDetails": {"name": "SubmitPhase2Job"}},
    ]
    job = JobHandle(backend="slurm", job_id="42", stage="phase2", placement="slurm-cpu", work_prefix="w/",
                    submitted=(t0 + timedelta(seconds=1)).isoformat(), state="SUCCEEDED",
                    details={"partition": "cpu", "submit_time": (t0 + timedelta(seconds=1)).isoformat(),
                             "start_time": (t0 + timedelta(seconds=13)).isoformat(),
                             "end_time": (t0 + timedelta(seconds=73)).isoformat()})
    submit, row = trace_rows(events, jobs=[job])
    assert submit["name"] == "SubmitPhase2Job" and (submit["native_id"], submit["queue"]) == ("", "")
    assert (row["task_id"], row["name"], row["type"], row["status"]) == (2, "Phase2Job", "slurm job", "COMPLETED")
    assert (row["native_id"], row["queue"], row["duration_ms"]) == ("42", "cpu", 60000)  # run time, not queue
    assert datetime.fromisoformat(row["start"]) - datetime.fromisoformat(row["submit"]) == timedelta(seconds=12)


def test_a_ray_job_row_reads_the_jobs_api_epoch_milliseconds():
    from helixflow.pipeline.jobs import JobHandle

    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    job = JobHandle(backend="ray", job_id="run-1-phase1", stage="phase1", placement="ray", work_prefix="w/",
                    submitted=t0.isoformat(), state="SUCCEEDED",
                    details={"start_time": int((t0 + timedelta(seconds=2)).timestamp() * 1000),
                             "end_time": int((t0 + timedelta(seconds=32)).timestamp() * 1000)})
    (row,) = trace_rows([], jobs=[job])
    assert (row["name"], row["native_id"], row["queue"], row["duration_ms"]) == ("Phase1Job", "run-1-phase1", "", 30000)


@pytest.mark.parametrize("limit", [storage.COPY_OBJECT_MAX_BYTES, 1024])
def test_a_published_copy_has_the_staged_bytes_and_their_recorded_digest_whichever_copy_it_takes(
        s3, tmp_path, monkeypatch, limit):
    # A 6 MB output: one CopyObject under the 5 GB limit; above the (lowered) limit, a multipart copy.
    monkeypatch.setattr(storage, "COPY_OBJECT_MAX_BYTES", limit)
    body = bytes(range(256)) * (6 * 4096)
    (tmp_path / "part").write_bytes(body)
    digest = storage.upload(s3.client, BUCKET, tmp_path / "part", "work/S1/stage/reads/S1.trimmed.fastq.gz")
    storage.copy(s3.client, BUCKET, "work/S1/stage/reads/S1.trimmed.fastq.gz", "results/S1/run-1/reads/x.gz")
    assert s3.client.get_object(Bucket=BUCKET, Key="results/S1/run-1/reads/x.gz")["Body"].read() == body
    assert storage.recorded_sha256(s3.client, BUCKET, "results/S1/run-1/reads/x.gz") == digest

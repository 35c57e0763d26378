import hashlib
import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from helixflow.errors import IncompleteResults
from helixflow.pipeline.failure import describe_failure
from helixflow.pipeline.publish import publish_run, trace_rows
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
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield RecordingS3(client)


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

"""A chunk whose invocation outlives its failed Map (AWS stops the Map's child executions, not a Lambda
invocation already running) must not leave its parts behind the cleanup: RecordFailure marks the run failed,
then cleans work/; a chunk that sees the mark after its writes withdraws them."""

from __future__ import annotations

import boto3
import pytest
from isal import igzip
from moto import mock_aws

from helixflow.pipeline import runs
from helixflow.pipeline.failure import record_failure
from helixflow.pipeline.phase1_lambda import process_chunk_item, split_into_chunks
from helixflow.pipeline.storage import get_json, list_objects

BUCKET = "helixflow-late-writer-test"
RECORDS = b"".join(b"@r%d\n%s\n+\n%s\n" % (i, b"ACGTTGCAAC" * 8, b"I" * 80) for i in range(4000))


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        table = boto3.resource("dynamodb").create_table(
            TableName="runs", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        yield s3, table


def _run(s3, table, tmp_path):
    put = s3.put_object(Bucket=BUCKET, Key="incoming/s.fastq.gz", Body=igzip.compress(RECORDS))
    request = {"bucket": BUCKET, "sample": "s", "run_id": "run-1", "identity": "id-1",
               "inputs": [{"key": "incoming/s.fastq.gz", "etag": put["ETag"].strip('"'), "mate": 0,
                           "size": s3.head_object(Bucket=BUCKET, Key="incoming/s.fastq.gz")["ContentLength"]}],
               "params": {"adapter": None, "adapter2": None, "quality": 20, "min_length": 15}}
    runs.claim(table, identity="id-1", run_id="run-1", execution_arn="arn:x", results_prefix="results/s/run-1/",
               force=False, execution_running=lambda arn: True)
    chunks = split_into_chunks(s3=s3, request=request, scratch=tmp_path / "split", chunk_bytes=1 << 20)
    item = get_json(s3, BUCKET, chunks["manifest_key"])[0]
    return request, chunks, item


def _parts(s3):
    return [obj["Key"] for obj in list_objects(s3, BUCKET, "work/s/run-1/") if "/parts/" in obj["Key"]]


def test_a_chunk_of_a_running_run_keeps_its_parts(aws, tmp_path):
    s3, table = aws
    request, chunks, item = _run(s3, table, tmp_path)
    done = process_chunk_item(s3=s3, item=item, request=request, params=chunks["params"],
                              scratch=tmp_path / "chunk", runs_table=table)
    assert done["result_key"] in _parts(s3) and len(_parts(s3)) >= 3  # result document, reads, embeddings


class FailsTheRunMidway:
    """The chunk's S3 client: before the ``after``-th upload of a part, the run fails elsewhere (another chunk)
    and RecordFailure marks it and cleans work/, while this chunk, its input already read, still works."""

    def __init__(self, s3, table, request, after):
        self.s3, self.table, self.request, self.uploads, self.after = s3, table, request, 0, after

    def upload_file(self, *args, **kwargs):
        self.uploads += 1
        if self.uploads == self.after:
            record_failure(s3=self.s3, bucket=BUCKET, runs_table=self.table, state={
                "run_id": "run-1", "execution_arn": "arn:x", "sample": self.request,
                "failure": {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "chunk 1 failed"}})
        return self.s3.upload_file(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.s3, name)


@pytest.mark.parametrize("after", [1, 2], ids=["before its first part", "after its first part"])
def test_a_chunk_that_ends_after_its_run_failed_and_was_cleaned_withdraws_what_it_wrote(aws, tmp_path, after):
    s3, table = aws
    request, chunks, item = _run(s3, table, tmp_path)
    process_chunk_item(s3=FailsTheRunMidway(s3, table, request, after), item=item, request=request,
                       params=chunks["params"], scratch=tmp_path / "chunk", runs_table=table)
    assert runs.has_failed(table, identity="id-1", run_id="run-1")
    assert _parts(s3) == []
    assert [obj["Key"] for obj in list_objects(s3, BUCKET, "incoming/")] == ["incoming/s.fastq.gz"]


def test_a_newer_claim_is_not_this_runs_failure(aws, tmp_path):
    s3, table = aws
    _run(s3, table, tmp_path)
    runs.finish(table, identity="id-1", run_id="run-1", status="FAILED")
    runs.claim(table, identity="id-1", run_id="run-2", execution_arn="arn:y", results_prefix="results/s/run-2/",
               force=False, execution_running=lambda arn: True)
    assert runs.has_failed(table, identity="id-1", run_id="run-2") is False

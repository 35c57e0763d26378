"""The Lambda handlers over moto's S3/DynamoDB/Step Functions, with saved events and a fake context."""

from __future__ import annotations

import gzip
import json

import boto3
import pytest
from moto import mock_aws

from helixflow.errors import InvalidFastq, InvalidKey, InvalidParameters, MateMissing, Position
from helixflow_local.events import eventbridge_object_created
from tests.helpers import load_event, load_handler, pipeline_state

BUCKET = "helixflow-data"
GOOD = b"@r1\nACGTACGT\n+\nIIIIIIII\n@r2\nTTGGCCAA\n+\nIIIIIIII\n"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "HelixflowTest")
    monkeypatch.setenv("PAIRING_TABLE", "pairing")
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "idempotency")
    monkeypatch.setenv("RUNS_TABLE", "runs")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        dynamodb = boto3.client("dynamodb")
        for table, key in (("pairing", "pk"), ("idempotency", "id"), ("runs", "pk")):
            dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                  AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                                  KeySchema=[{"AttributeName": key, "KeyType": "HASH"}])
        yield s3


def _state_for(s3, key: str, body: bytes, run_id: str = "run-1") -> dict:
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
    record = load_event("s3_put_sample1_R1.json")["Records"][0]
    record["s3"]["bucket"]["name"] = BUCKET
    record["s3"]["object"].update({"key": key, "eTag": etag, "size": len(body)})
    return {"run_id": run_id, "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:p:{run_id}",
            "event": eventbridge_object_created(record, account="123456789012")}


def test_resolve_single_end_sample_is_ready_with_its_prefixes(aws, lambda_context):
    handler = load_handler("resolve_sample")
    request = handler.lambda_handler(_state_for(aws, "incoming/S9.fastq", GOOD), lambda_context)
    assert request["status"] == "ready"
    assert request["sample"] == "S9"
    assert request["results_prefix"] == "results/S9/run-1/"
    assert [i["key"] for i in request["inputs"]] == ["incoming/S9.fastq"]


def test_first_mate_waits_and_second_mate_starts_the_paired_run(aws, lambda_context):
    handler = load_handler("resolve_sample")
    first = handler.lambda_handler(_state_for(aws, "incoming/S1_R2.fastq.gz", GOOD, "run-a"), lambda_context)
    second = handler.lambda_handler(_state_for(aws, "incoming/S1_R1.fastq.gz", GOOD, "run-b"), lambda_context)
    assert first["status"] == "waiting_for_mate"
    assert second["status"] == "ready" and second["run_id"] == "run-b"
    assert [(i["mate"], i["key"]) for i in second["inputs"]] == [
        (1, "incoming/S1_R1.fastq.gz"), (2, "incoming/S1_R2.fastq.gz")]


def _check_mate(request: dict, lambda_context) -> dict:
    return load_handler("check_mate").lambda_handler(pipeline_state(sample=request), lambda_context)


def test_a_pair_uploaded_again_runs_on_its_new_files_only(aws, lambda_context):
    """Both mates replaced under the same names, R1 first: the new R1 waits for the new R2 instead of starting a
    run at once with the R2 that the earlier run already used (found by distributed_validation.py --defects:
    the mixed pair ran first and reported the old R2's defect)."""
    handler = load_handler("resolve_sample")
    waited = handler.lambda_handler(_state_for(aws, "incoming/S7_R1.fastq.gz", GOOD, "run-1"), lambda_context)
    paired = handler.lambda_handler(_state_for(aws, "incoming/S7_R2.fastq.gz", GOOD, "run-2"), lambda_context)
    assert (waited["status"], paired["status"]) == ("waiting_for_mate", "ready")
    assert _check_mate(waited, lambda_context) == {"paired": True}  # its upload ran in run-2
    new = GOOD.replace(b"ACGTACGT", b"ACGTACGA")
    again = handler.lambda_handler(_state_for(aws, "incoming/S7_R1.fastq.gz", new, "run-3"), lambda_context)
    assert again["status"] == "waiting_for_mate"
    rerun = handler.lambda_handler(_state_for(aws, "incoming/S7_R2.fastq.gz", new + b"@r3\nA\n+\nI\n", "run-4"),
                                   lambda_context)
    assert rerun["status"] == "ready" and rerun["run_id"] == "run-4"
    current = {key: aws.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')
               for key in ("incoming/S7_R1.fastq.gz", "incoming/S7_R2.fastq.gz")}
    assert {i["key"]: i["etag"] for i in rerun["inputs"]} == current
    assert _check_mate(again, lambda_context) == {"paired": True}


def test_one_mate_uploaded_again_waits_for_the_other_and_says_so(aws, lambda_context):
    """Each upload pairs once: a replaced R2 alone does not rerun with the R1 an earlier run used; after the wait it
    ends MateMissing, naming the mate to upload again."""
    handler = load_handler("resolve_sample")
    handler.lambda_handler(_state_for(aws, "incoming/S8_R1.fastq.gz", GOOD, "run-1"), lambda_context)
    handler.lambda_handler(_state_for(aws, "incoming/S8_R2.fastq.gz", GOOD, "run-2"), lambda_context)
    alone = handler.lambda_handler(_state_for(aws, "incoming/S8_R2.fastq.gz", GOOD + GOOD, "run-3"), lambda_context)
    assert alone["status"] == "waiting_for_mate"
    with pytest.raises(MateMissing) as caught:
        _check_mate(alone, lambda_context)
    assert "incoming/S8_R1.fastq" in str(caught.value) and "again" in str(caught.value)


def test_a_repeated_event_returns_the_first_runs_request(aws, lambda_context):
    handler = load_handler("resolve_sample")
    state = _state_for(aws, "incoming/S3.fastq", GOOD, "run-first")
    first = handler.lambda_handler(state, lambda_context)
    repeated = handler.lambda_handler({**state, "run_id": "run-second"}, lambda_context)
    assert first["run_id"] == repeated["run_id"] == "run-first"


def test_sidecar_parameters_are_applied_and_bad_ones_are_named(aws, lambda_context):
    handler = load_handler("resolve_sample")
    aws.put_object(Bucket=BUCKET, Key="incoming/S4.json", Body=b'{"quality": 28}')
    request = handler.lambda_handler(_state_for(aws, "incoming/S4.fastq", GOOD), lambda_context)
    assert request["params"]["quality"] == 28
    aws.put_object(Bucket=BUCKET, Key="incoming/S5.json", Body=b'{"qualty": 28}')
    with pytest.raises(InvalidParameters):
        handler.lambda_handler(_state_for(aws, "incoming/S5.fastq", GOOD), lambda_context)


def test_key_escaping_the_prefix_is_rejected(aws, lambda_context):
    handler = load_handler("resolve_sample")
    record = load_event("s3_put_escape.json")["Records"][0]
    state = {"run_id": "run-x", "execution_arn": "arn", "event": eventbridge_object_created(record, account="1")}
    with pytest.raises(InvalidKey) as caught:
        handler.lambda_handler(state, lambda_context)
    assert caught.value.code == "UNSAFE_KEY"


def _request(s3, keys_and_bodies, run_id="run-v"):
    inputs = []
    for mate, (key, body) in enumerate(keys_and_bodies, start=1 if len(keys_and_bodies) == 2 else 0):
        etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
        inputs.append({"key": key, "etag": etag, "size": len(body), "mate": mate})
    return {"status": "ready", "run_id": run_id, "bucket": BUCKET, "sample": "S1", "inputs": inputs,
            "params": {"allow_phred64": False}, "results_prefix": f"results/S1/{run_id}/",
            "errors_prefix": f"errors/S1/{run_id}/", "identity": f"identity-of-{run_id}"}


def test_validate_streams_gzip_objects_and_counts_records(aws, lambda_context):
    handler = load_handler("validate")
    request = _request(aws, [("incoming/S1_R1.fastq.gz", gzip.compress(GOOD)),
                             ("incoming/S1_R2.fastq.gz", gzip.compress(GOOD))])
    summary = handler.lambda_handler(pipeline_state(sample=request), lambda_context)
    assert summary["records"] == 2 and summary["bases"] == 32 and summary["paired"] is True  # bases of both mates
    assert {"helixflow", "python", "numpy", "isal"} <= summary["versions"].keys()  # for software_versions.yml


def test_validate_names_the_first_defect_with_its_position(aws, lambda_context):
    handler = load_handler("validate")
    broken = GOOD + b"@r3\nACGT\n+\nIII\n"
    request = _request(aws, [("incoming/S1.fastq", broken)])
    with pytest.raises(InvalidFastq) as caught:
        handler.lambda_handler(pipeline_state(sample=request), lambda_context)
    error = caught.value
    assert error.code == "SEQ_QUAL_LENGTH_MISMATCH"
    assert (error.position.record, error.position.line) == (3, 12)
    # The exception text is what Step Functions shows as the cause; RecordFailure reads it back.
    assert json.loads(str(error))["code"] == "SEQ_QUAL_LENGTH_MISMATCH"


def test_inputs_are_never_modified_or_deleted(aws, lambda_context):
    request = _request(aws, [("incoming/S1.fastq", GOOD)])
    before = aws.head_object(Bucket=BUCKET, Key="incoming/S1.fastq")
    load_handler("validate").lambda_handler(pipeline_state(sample=request), lambda_context)
    after = aws.head_object(Bucket=BUCKET, Key="incoming/S1.fastq")
    assert (before["ETag"], before["LastModified"]) == (after["ETag"], after["LastModified"])


def test_record_failure_writes_error_json_with_code_and_position(aws, lambda_context):
    request = _request(aws, [("incoming/S1.fastq", GOOD)], run_id="run-f")
    error = InvalidFastq("record 3: sequence has 4 bases but quality has 3 characters",
                         code="SEQ_QUAL_LENGTH_MISMATCH",
                         position=Position(file="incoming/S1.fastq", record=3, line=12, byte_offset=70))
    cause = json.dumps({"errorType": "InvalidFastq", "errorMessage": str(error), "stackTrace": []})
    state = {"run_id": "run-f", "sample": request, "failure": {"Error": "InvalidFastq", "Cause": cause}}
    result = load_handler("record_failure").lambda_handler(state, lambda_context)
    assert result["error_key"] == "errors/S1/run-f/error.json"
    document = json.loads(aws.get_object(Bucket=BUCKET, Key=result["error_key"])["Body"].read())
    assert (document["error"], document["code"], document["record"], document["line"], document["byte_offset"]) == (
        "InvalidFastq", "SEQ_QUAL_LENGTH_MISMATCH", 3, 12, 70)
    assert document["file"] == "incoming/S1.fastq"


def test_publish_writes_pipeline_info_then_the_manifest(aws, lambda_context):
    request = _request(aws, [("incoming/S1.fastq", GOOD)], run_id="run-p")
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(name="p", roleArn="arn:aws:iam::123456789012:role/r",
                                       definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="run-p", input="{}")
    state = {**pipeline_state("run-p", sample=request,
                              validation={"records": 2, "bases": 16, "paired": False, "reports": []}),
             "execution_arn": execution["executionArn"]}
    result = load_handler("publish").lambda_handler(state, lambda_context)
    assert result["manifest_key"] == "results/S1/run-p/manifest.json"
    manifest = json.loads(aws.get_object(Bucket=BUCKET, Key=result["manifest_key"])["Body"].read())
    assert {f["path"] for f in manifest["files"]} == {
        "pipeline_info/params.json", "pipeline_info/trace.tsv", "pipeline_info/software_versions.yml",
        "pipeline_info/cost.json"}


def test_a_refused_1000_character_name_gets_an_error_key_within_s3_limits(aws, lambda_context):
    name = "x" * 1000 + ".fastq"
    event = load_event("eventbridge_object_created.json")
    event["detail"]["bucket"]["name"] = BUCKET
    event["detail"]["object"]["key"] = "incoming/" + name
    cause = json.dumps({"errorType": "InvalidKey", "errorMessage": str(InvalidKey("too long")), "stackTrace": []})
    state = {**pipeline_state("run-long"), "event": event, "failure": {"Error": "InvalidKey", "Cause": cause}}
    result = load_handler("record_failure").lambda_handler(state, lambda_context)
    assert len(result["error_key"].encode()) < 200
    assert aws.head_object(Bucket=BUCKET, Key=result["error_key"])["ContentLength"] > 0

"""Samplesheets: every defect is InvalidSamplesheet with its code, row and column; a declared file takes its sample,
mate and parameters from the sheet, in whichever order sheet and files land; a file in no sheet follows the name
rules."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from helixflow.errors import InvalidKey, InvalidSamplesheet, MateMissing
from helixflow.pipeline import samplesheet
from helixflow.pipeline.resolve import check_mate, resolve_sample
from helixflow.pipeline.runs import state_machine_of
from helixflow.pipeline.samplesheet import parse_samplesheet
from helixflow.pipeline.state import SampleRequest

BUCKET = "helixflow-data"
SHEET = "incoming/batch1.samplesheet.csv"
HEADER = "sample,fastq_1,fastq_2"


def _error(text: str, bucket: str | None = BUCKET) -> InvalidSamplesheet:
    with pytest.raises(InvalidSamplesheet) as caught:
        parse_samplesheet(text.encode() if isinstance(text, str) else text, source=SHEET, bucket=bucket)
    return caught.value


def test_rows_give_keys_under_incoming_strict_parameters_and_single_end_for_an_empty_fastq_2():
    rows = parse_samplesheet(
        b"\xef\xbb\xbfsample,fastq_1,fastq_2,quality,allow_phred64,phase1\n"
        b"A,A_R1.fastq.gz,A_R2.fastq.gz,30,true,lambda\n\n"
        b"B,./run7/B_R1.fq,,,,\n"
        b"C,s3://helixflow-data/incoming/C.fastq,,,,\n,,,,,\n", source=SHEET, bucket=BUCKET)
    assert [(r.row, r.line, r.sample, r.files) for r in rows] == [
        (1, 2, "A", ("incoming/A_R1.fastq.gz", "incoming/A_R2.fastq.gz")),
        (2, 4, "B", ("incoming/run7/B_R1.fq",)),
        (3, 5, "C", ("incoming/C.fastq",))]
    assert rows[0].params.model_dump(exclude_unset=True) == {"quality": 30, "allow_phred64": True, "phase1": "lambda"}
    # A row without fastq_2 is single-end although B_R1 is named like a first mate.
    assert [r.params.single_end for r in rows] == [False, True, True]


@pytest.mark.parametrize("text, code, row, column", [
    ("sample,fastq_1\nA,a.fq\n", "MISSING_COLUMN", None, "fastq_2"),
    ("sample,fastq_1,fastq_2,qualty\nA,a.fq,,30\n", "UNKNOWN_COLUMN", None, "qualty"),
    ("sample,fastq_1,fastq_2,fastq_1\nA,a.fq,,b.fq\n", "DUPLICATE_COLUMN", None, "fastq_1"),
    (f"{HEADER}\nA,a.fq\n", "BAD_ROW", 1, None),
    (f"{HEADER}\nA,a.fq,\n,b.fq,\n", "MISSING_VALUE", 2, "sample"),
    (f"{HEADER}\nA,,b_R2.fq\n", "MISSING_VALUE", 1, "fastq_1"),
    (f"{HEADER}\nA/../x,a.fq,\n", "BAD_SAMPLE", 1, "sample"),
    (f"{HEADER}\nA,a.fq,\nB,b.fq,\nA,c.fq,\n", "DUPLICATE_SAMPLE", 3, "sample"),
    (f"{HEADER}\nA,a.fq,\nB,b_R1.fq,a.fq\n", "FILE_LISTED_TWICE", 2, "fastq_2"),
    (f"{HEADER}\nA,a.fq,a.fq\n", "FILE_LISTED_TWICE", 1, "fastq_2"),
    (f"{HEADER}\nA,../secret.fq,\n", "PATH_OUTSIDE_PREFIX", 1, "fastq_1"),
    (f"{HEADER}\nA,/etc/a.fq,\n", "PATH_OUTSIDE_PREFIX", 1, "fastq_1"),
    (f"{HEADER}\nA,a_R1.fq,s3://other-bucket/incoming/a_R2.fq\n", "PATH_OUTSIDE_PREFIX", 1, "fastq_2"),
    (f"{HEADER}\nA,s3://helixflow-data/results/a.fq,\n", "PATH_OUTSIDE_PREFIX", 1, "fastq_1"),
    (f"{HEADER}\nA,a.bam,\n", "BAD_PATH", 1, "fastq_1"),
    (f"{HEADER}\nA,my reads.fq,\n", "BAD_PATH", 1, "fastq_1"),
    (f"{HEADER},quality\nA,a.fq,,true\n", "BAD_VALUE", 1, "quality"),
    (f"{HEADER},quality\nA,a.fq,,30.0\n", "BAD_VALUE", 1, "quality"),
    (f"{HEADER},quality\nA,a.fq,,{'9' * 5000}\n", "BAD_VALUE", 1, "quality"),
    (f"{HEADER},quality\nA,a.fq,,99\n", "BAD_VALUE", 1, "quality"),
    (f"{HEADER},allow_phred64\nA,a.fq,,yes\n", "BAD_VALUE", 1, "allow_phred64"),
    (f"{HEADER},phase1\nA,a.fq,,gpu\n", "BAD_VALUE", 1, "phase1"),
    (f"{HEADER},single_end\nA,a_R1.fq,a_R2.fq,true\n", "BAD_VALUE", 1, "single_end"),
    (f"{HEADER},single_end\nA,a_R1.fq,,false\n", "BAD_VALUE", 1, "single_end"),
    (f"{HEADER}\n", "NO_SAMPLES", None, None),
    ("", "NO_SAMPLES", None, None),
    (f'{HEADER}\n"A,a.fq,\n', "NOT_CSV", None, None),
    (b"sample,fastq_1,fastq_2\nA\xff,a.fq,\n", "SAMPLESHEET_NOT_UTF8", None, None),
    (HEADER + "\n" + "".join(f"S{i},s{i}.fq,\n" for i in range(samplesheet.MAX_SAMPLES + 1)),
     "SAMPLESHEET_TOO_LARGE", None, None),
    (b"x" * (samplesheet.MAX_SHEET_BYTES + 1), "SAMPLESHEET_TOO_LARGE", None, None),
])
def test_every_defect_is_named_with_its_row_and_column(text, code, row, column):
    error = _error(text)
    assert error.code == code, error.message
    assert error.position.file == SHEET and error.position.record == row
    assert error.details.get("column") == column
    if row is not None:
        assert f"row {row} " in error.message and (column is None or f"column {column}" in error.message)


def test_a_local_sheet_takes_no_s3_paths():
    assert _error(f"{HEADER}\nA,s3://helixflow-data/incoming/a.fq,\n", bucket=None).code == "PATH_OUTSIDE_PREFIX"


def test_samplesheet_keys_follow_the_key_rules():
    with pytest.raises(InvalidKey) as caught:
        resolve_sample(bucket=BUCKET, key="incoming/../x.samplesheet.csv", etag="e", size=1, run_id="r",
                       execution_arn="a", s3=None, pairing_table=None, runs_table=None,
                       execution_running=lambda _: False, mate_wait_seconds=5)
    assert caught.value.code == "UNSAFE_KEY"


def test_a_samplesheets_execution_starts_runs_on_its_own_state_machine():
    assert state_machine_of("arn:aws:states:eu-west-1:123456789012:execution:hf-pipeline:run-1") == \
        "arn:aws:states:eu-west-1:123456789012:stateMachine:hf-pipeline"


# ---------------------------------------------------------------- declarations over moto's S3 and DynamoDB

@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.resource("dynamodb")
        tables = {}
        for name in ("pairing", "runs"):
            tables[name] = dynamodb.create_table(
                TableName=name, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        yield s3, tables


class Pipeline:
    """ResolveSample as the state machine calls it, one event per object, with the executions it starts kept."""

    def __init__(self, s3, tables, name="a"):
        self.s3, self.tables, self.started, self.count, self.name = s3, tables, [], 0, name

    def put(self, key: str, body: bytes) -> dict:
        put = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return {"id": f"event-{key}-{put['VersionId']}", "detail": {"bucket": {"name": BUCKET}, "object": {
            "key": key, "size": len(body), "etag": put["ETag"].strip('"'), "version-id": put["VersionId"]}}}

    def resolve(self, event: dict) -> SampleRequest:
        self.count += 1
        run_id = f"run-{self.name}-{self.count}"
        obj = event["detail"]["object"]

        def start(replayed: dict) -> str:
            self.started.append(replayed)
            return f"started-{len(self.started)}"

        return resolve_sample(bucket=BUCKET, key=obj["key"], etag=obj["etag"], size=obj["size"], run_id=run_id,
                              execution_arn=f"arn:aws:states:us-east-1:1:execution:p:{run_id}", s3=self.s3,
                              pairing_table=self.tables["pairing"], runs_table=self.tables["runs"],
                              execution_running=lambda _: True, mate_wait_seconds=5, event=event,
                              start_execution=start)


READS = b"@r1\nACGTACGT\n+\nIIIIIIII\n"
SHEET_BODY = (f"{HEADER},quality\nP1,P1_R1.fastq,P1_R2.fastq,30\nS1,S1_R1.fastq,,\n").encode()


def test_sheet_first_then_files_pair_as_declared_with_the_sheets_parameters(aws):
    pipeline = Pipeline(*aws)
    sheet = pipeline.resolve(pipeline.put(SHEET, SHEET_BODY))
    assert sheet.status == "samplesheet" and sheet.sample == "batch1" and not pipeline.started
    assert [(s.sample, s.present, s.started) for s in sheet.samplesheet.samples] == [("P1", [], None), ("S1", [], None)]
    first = pipeline.resolve(pipeline.put("incoming/P1_R2.fastq", READS))
    assert first.status == "waiting_for_mate" and first.awaiting == "incoming/P1_R1.fastq"
    assert samplesheet.is_pair_item(first.pairing_item)
    second = pipeline.resolve(pipeline.put("incoming/P1_R1.fastq", READS))
    assert second.status == "ready" and second.sample == "P1" and second.params["quality"] == 30
    assert [(i.mate, i.key) for i in second.inputs] == [(1, "incoming/P1_R1.fastq"), (2, "incoming/P1_R2.fastq")]
    # Named like a first mate, declared single-end: it runs at once, nothing waits for an S1_R2.
    alone = pipeline.resolve(pipeline.put("incoming/S1_R1.fastq", READS))
    assert alone.status == "ready" and [(i.mate, i.key) for i in alone.inputs] == [(0, "incoming/S1_R1.fastq")]
    assert alone.params["single_end"] is True and alone.params["quality"] == 20


def test_files_first_then_sheet_starts_each_sample_once_from_a_replayed_event(aws):
    pipeline = Pipeline(*aws)
    for key in ("incoming/P1_R1.fastq", "incoming/P1_R2.fastq", "incoming/S1_R1.fastq"):
        pipeline.put(key, READS)  # landed before the sheet (their own events followed the name rules)
    sheet_event = pipeline.put(SHEET, SHEET_BODY)
    sheet = pipeline.resolve(sheet_event)
    assert [(s.sample, s.started) for s in sheet.samplesheet.samples] == [("P1", "started-1"), ("S1", "started-2")]
    assert [e["detail"]["object"]["key"] for e in pipeline.started] == ["incoming/P1_R2.fastq", "incoming/S1_R1.fastq"]
    runs = [pipeline.resolve(event) for event in pipeline.started]
    assert [(r.status, r.sample, len(r.inputs)) for r in runs] == [("ready", "P1", 2), ("ready", "S1", 1)]
    assert runs[0].params["quality"] == 30
    # The same sheet event again (EventBridge delivers at least once) replays under the same event ids, which the
    # replays' ResolveSample is idempotent on; and their run identity is claimed already.
    again = Pipeline(*aws, name="b")
    again.resolve(sheet_event)
    assert [e["id"] for e in again.started] == [e["id"] for e in pipeline.started]
    assert {again.resolve(event).status for event in again.started} == {"already_running"}


def test_a_sheet_landing_between_the_mates_pairs_the_one_already_there(aws):
    pipeline = Pipeline(*aws)
    pipeline.put("incoming/P1_R1.fastq", READS)
    pipeline.resolve(pipeline.put(SHEET, SHEET_BODY))
    waiting = pipeline.resolve(pipeline.started[0])  # the replay of P1_R1 waits for its declared mate
    assert waiting.status == "waiting_for_mate" and waiting.awaiting == "incoming/P1_R2.fastq"
    assert pipeline.resolve(pipeline.put("incoming/P1_R2.fastq", READS)).status == "ready"
    check_mate(request=waiting, pairing_table=aws[1]["pairing"])  # the pair ran: no MateMissing


def test_a_declared_mate_that_never_comes_fails_naming_the_declared_file(aws):
    pipeline = Pipeline(*aws)
    pipeline.resolve(pipeline.put(SHEET, SHEET_BODY))
    waiting = pipeline.resolve(pipeline.put("incoming/P1_R1.fastq", READS))
    with pytest.raises(MateMissing) as caught:
        check_mate(request=waiting, pairing_table=aws[1]["pairing"])
    assert caught.value.details["awaiting"] == "incoming/P1_R2.fastq"


def test_a_file_in_no_sheet_follows_the_name_rules_and_a_sheet_during_its_wait_takes_it(aws):
    pipeline = Pipeline(*aws)
    pipeline.resolve(pipeline.put(SHEET, SHEET_BODY))
    named = pipeline.resolve(pipeline.put("incoming/Q9_R1.fastq", READS))
    assert (named.status, named.sample, named.inputs[0].mate) == ("waiting_for_mate", "Q9", 1)
    assert "Q9_R2" in named.awaiting
    # P1_R1 lands before any sheet: name rules, waiting for P1_R2; then a sheet declares it.
    other = Pipeline(*aws, name="b")
    lone = other.resolve(other.put("incoming/P2_R1.fastq", READS))
    other.resolve(other.put("incoming/b2.samplesheet.csv", f"{HEADER}\nP2,P2_R1.fastq,\n".encode()))
    check_mate(request=lone, pairing_table=aws[1]["pairing"])  # handed to the sheet: no MateMissing
    assert other.resolve(other.started[0]).status == "ready"


def test_expired_declarations_are_ignored(aws):
    table = aws[1]["pairing"]
    rows = parse_samplesheet(SHEET_BODY, source=SHEET, bucket=BUCKET)
    samplesheet.declare(table, bucket=BUCKET, sheet_key=SHEET, sheet_etag="e", rows=rows, now=1_000)
    assert samplesheet.declaration_for(table, BUCKET, "incoming/S1_R1.fastq", now=2_000).sample == "S1"
    assert samplesheet.declaration_for(table, BUCKET, "incoming/S1_R1.fastq",
                                       now=1_000 + samplesheet.DECLARATION_TTL_S) is None


def test_a_declared_mate_already_in_the_bucket_pairs_even_after_an_earlier_wait_failed(aws):
    pipeline = Pipeline(*aws)
    pipeline.resolve(pipeline.put(SHEET, SHEET_BODY))
    waiting = pipeline.resolve(pipeline.put("incoming/P1_R1.fastq", READS))
    with pytest.raises(MateMissing):
        check_mate(request=waiting, pairing_table=aws[1]["pairing"])  # forgets the lone P1_R1
    late = pipeline.resolve(pipeline.put("incoming/P1_R2.fastq", READS))
    assert late.status == "ready" and [i.key for i in late.inputs] == ["incoming/P1_R1.fastq", "incoming/P1_R2.fastq"]


# ---------------------------------------------------------------- the batch: complete when every declared sample ended

def test_the_batch_is_complete_once_every_declared_sample_has_ended_however():
    samples = ["P1", "S1", "X9"]
    assert samplesheet.pending_samples(samples, {}) == samples
    assert samplesheet.pending_samples(samples, {"S1": {"status": "SUCCEEDED"}}) == ["P1", "X9"]
    # A failed sample has ended: it does not hold the batch back. An outcome of a sample the sheet did not declare
    # completes nothing.
    ended = {"P1": {"status": "FAILED"}, "S1": {"status": "SUCCEEDED"}, "other": {"status": "SUCCEEDED"}}
    assert samplesheet.pending_samples(samples, ended) == ["X9"]
    assert samplesheet.pending_samples(samples, {**ended, "X9": {"status": "SUCCEEDED"}}) == []


def test_declared_runs_carry_their_batch_and_outcomes_survive_a_repeated_sheet_event(aws):
    pipeline = Pipeline(*aws)
    sheet_event = pipeline.put(SHEET, SHEET_BODY)
    pipeline.resolve(sheet_event)
    etag = sheet_event["detail"]["object"]["etag"]
    alone = pipeline.resolve(pipeline.put("incoming/S1_R1.fastq", READS))
    assert alone.batch.model_dump() == {"sheet_key": SHEET, "sheet_etag": etag, "batch": "batch1"}
    free = pipeline.resolve(pipeline.put("incoming/free.fastq", READS))
    assert free.status == "ready" and free.batch is None  # in no sheet: no batch
    table = aws[1]["pairing"]
    record = dict(bucket=BUCKET, sheet_key=SHEET, sheet_etag=etag)
    assert samplesheet.record_outcome(table, **record, sample="S1", outcome={"status": "SUCCEEDED", "run_id": "r1"}) \
        == (["P1", "S1"], {"S1": {"status": "SUCCEEDED", "run_id": "r1"}})
    pipeline.resolve(sheet_event)  # delivered again: the declarations are renewed, S1's outcome is kept
    samples, outcomes = samplesheet.record_outcome(table, **record, sample="P1", outcome={"status": "FAILED"})
    assert samplesheet.pending_samples(samples, outcomes) == [] and set(outcomes) == {"P1", "S1"}
    # Another version of the sheet is another batch; an unknown (expired) batch records nothing.
    assert samplesheet.record_outcome(table, bucket=BUCKET, sheet_key=SHEET, sheet_etag="other", sample="P1",
                                      outcome={"status": "FAILED"}) is None

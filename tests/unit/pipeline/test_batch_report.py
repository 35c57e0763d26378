"""A samplesheet's batch report (BatchReport) built by real MultiQC over moto's S3 and DynamoDB: each declared
sample's run records its outcome, the last to end builds one report across what the samples published, which
names the failed sample, and a repeated outcome does not build it again."""

from __future__ import annotations

import json
import zipfile

import boto3
import pytest
from moto import mock_aws

from helixflow.pipeline import batch_report, samplesheet
from helixflow.pipeline.keys import batch_prefix
from helixflow.pipeline.run_report import DATA_ZIP, REPORT_NAME, multiqc_data
from helixflow.pipeline.state import PipelineState
from tests.helpers import ROOT, pipeline_state

pytestmark = pytest.mark.slow  # one MultiQC run, a few seconds
SAVED = ROOT / "tests" / "fixtures" / "report" / "S1" / "qc"  # a published run's qc/ (see its README.md)
BUCKET = "helixflow-batch-test"
SHEET = "incoming/lab/week7.samplesheet.csv"
BODY = b"sample,fastq_1,fastq_2\nS1,S1.fastq,\nS2,S2.fastq,\nS3,S3.fastq,\n"


def _publish(s3, sample: str, run_id: str) -> str:
    """results/<sample>/<run_id>/ as Publish leaves it: the qc/ files (the saved S1's, renamed) and the manifest."""
    prefix = f"results/{sample}/{run_id}/"
    files = []
    for saved in sorted(SAVED.iterdir()):
        path = "qc/" + saved.name.replace("S1", sample)
        body = saved.read_bytes().replace(b"S1", sample.encode())
        s3.put_object(Bucket=BUCKET, Key=prefix + path, Body=body)
        files.append({"path": path, "size": len(body), "sha256": "-"})
    s3.put_object(Bucket=BUCKET, Key=prefix + "reads/x.fastq.gz", Body=b"not read by the report")
    files.append({"path": "reads/x.fastq.gz", "size": 22, "sha256": "-"})
    s3.put_object(Bucket=BUCKET, Key=prefix + "manifest.json", Body=json.dumps({"files": files}).encode())
    return prefix


def _state(sample: str, run_id: str, etag: str, **slots) -> PipelineState:
    request = {"status": "ready", "run_id": run_id, "bucket": BUCKET, "sample": sample, "inputs": [],
               "results_prefix": f"results/{sample}/{run_id}/", "errors_prefix": f"errors/{sample}/{run_id}/",
               "batch": {"sheet_key": SHEET, "sheet_etag": etag, "batch": "week7"}}
    return PipelineState.model_validate(pipeline_state(run_id, sample=request, **slots))


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("batch")
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        table = boto3.resource("dynamodb").create_table(
            TableName="pairing", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        etag = s3.put_object(Bucket=BUCKET, Key=SHEET, Body=BODY)["ETag"].strip('"')
        samplesheet.declare(table, bucket=BUCKET, sheet_key=SHEET, sheet_etag=etag,
                            rows=samplesheet.parse_samplesheet(BODY, source=SHEET))
        for sample in ("S1", "S2"):
            _publish(s3, sample, f"run-{sample}")
        failure = {"failure": {"Error": "InvalidFastq", "Cause": "{}"},
                   "failure_record": {"error_key": "errors/S3/run-S3/error.json", "code": "TRUNCATED_RECORD"}}
        summaries = [batch_report.batch_report(s3=s3, table=table, state=state, scratch=scratch / str(i))
                     for i, state in enumerate([_state("S1", "run-S1", etag), _state("S3", "run-S3", etag, **failure),
                                                _state("S2", "run-S2", etag)])]
        prefix = batch_prefix("week7", etag)
        versions = lambda: [(v["Key"], v["VersionId"]) for v in  # noqa: E731
                            s3.list_object_versions(Bucket=BUCKET, Prefix=prefix).get("Versions", [])]
        built = versions()
        # S2's outcome again (a retried invocation): the report of these outcomes exists, nothing is rebuilt.
        again = batch_report.batch_report(s3=s3, table=table, state=_state("S2", "run-S2", etag),
                                          scratch=scratch / "again")
        rebuilt = versions()
        out = scratch / "downloaded"
        out.mkdir()
        for name in (REPORT_NAME, DATA_ZIP, batch_report.BATCH_JSON):
            s3.download_file(BUCKET, prefix + name, str(out / name))
    return summaries, again, prefix, built, rebuilt, out


def test_the_last_sample_to_end_builds_the_report_and_earlier_ones_say_what_is_pending(batch):
    summaries, again, prefix, built, rebuilt, _ = batch
    assert prefix.startswith("results/_batches/week7/")
    assert [(s.complete, s.pending, s.failed, s.report_key) for s in summaries] == [
        (False, ["S2", "S3"], [], None), (False, ["S2"], ["S3"], None),
        (True, [], ["S3"], prefix + REPORT_NAME)]
    assert sorted(key for key, _ in built) == sorted(prefix + n for n in (REPORT_NAME, DATA_ZIP, "batch.json"))
    assert again.report_key == prefix + REPORT_NAME and rebuilt == built  # idempotent: no second build


def test_the_report_spans_the_published_samples_and_names_the_failed_one(batch):
    *_, out = batch
    data = multiqc_data(out / DATA_ZIP)
    general = {name for table in data["report_general_stats_data"].values() for name in table}
    assert {"S1", "S2"} <= general and "S3" not in general  # the failed sample published nothing
    sources = {module: sorted({n for files in kinds.values() for n in files})
               for module, kinds in data["report_data_sources"].items()}
    assert sources["fastp"] == ["S1", "S2"] and sources["Samtools"] == ["S1", "S2"]
    document = json.loads((out / batch_report.BATCH_JSON).read_text())
    assert document["samples"] == ["S1", "S2", "S3"]
    assert document["outcomes"]["S3"] == {"status": "FAILED", "run_id": "run-S3", "error": "InvalidFastq",
                                          "code": "TRUNCATED_RECORD", "error_key": "errors/S3/run-S3/error.json"}
    page = (out / REPORT_NAME).read_text()
    assert "helixflow: batch week7" in page and "1 failed (S3)" in page and "TRUNCATED_RECORD" in page
    assert "helixflow_batch_samples_table" in data["report_plot_data"]

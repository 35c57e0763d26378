"""infra/catalog.yaml's Glue tables, created in moto's Glue exactly as the template defines them, describe the files
a real run publishes: the fastp JSON and the embeddings Parquet from the Phase 1 engine, the trace from Publish over
a saved execution history. The catalog function's links name those files, and only for published runs.
(Athena itself does not run locally: moto stores queries but executes none, so the SerDes are not exercised.)"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cfnlint.decode import decode
from moto import mock_aws

from helixflow import embedding
from helixflow.phase1 import engine, simulate
from helixflow.pipeline.catalog import TABLE_FILES, register_run, symlinks
from helixflow.pipeline.publish import TRACE_COLUMNS, publish_run
from helixflow.pipeline.state import SampleRequest

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "helixflow-catalog-test"
SAMPLE, RUN_ID = "S1", "run-1"
PREFIX = f"results/{SAMPLE}/{RUN_ID}/"
# fastp.json sections the qc table leaves out (per-cycle curves per mate; the run's parameters), with why in the
# template; every other top-level key is a column.
QC_LEFT_OUT = {"read1_before_filtering", "read1_after_filtering", "read2_before_filtering",
               "read2_after_filtering", "helixflow"}


def _resolve(node, bucket: str):
    """The template's intrinsics in TableInput: only Location's Fn::Sub of the imported bucket name."""
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"}:
            text, variables = node["Fn::Sub"]
            assert set(variables) == {"Bucket"}
            return text.replace("${Bucket}", bucket)
        return {k: _resolve(v, bucket) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, bucket) for v in node]
    return node


def _tables() -> dict[str, dict]:
    template, errors = decode(str(ROOT / "infra" / "catalog.yaml"))
    assert not errors
    return {r["Properties"]["TableInput"]["Name"]: _resolve(r["Properties"]["TableInput"], BUCKET)
            for r in template["Resources"].values() if r["Type"] == "AWS::Glue::Table"}


@pytest.fixture(scope="module")
def phase1_outputs(tmp_path_factory):
    work = tmp_path_factory.mktemp("catalog")
    r1, r2 = simulate.write_sample(work, 400, paired=True, fmt="gzip", seed=5)[:2]
    engine.process_file(r1, r2, str(work / "out"), SAMPLE)
    return work / "out"


@pytest.fixture
def published(phase1_outputs, monkeypatch):
    """A run published to moto's S3 by the real Publish: Phase 1's files, then pipeline_info/ and the manifest."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        outputs = []
        for relative in ("qc/S1.fastp.json", "embeddings/S1.parquet"):
            s3.put_object(Bucket=BUCKET, Key=PREFIX + relative, Body=(phase1_outputs / relative).read_bytes())
            outputs.append(relative)
        request = SampleRequest(status="ready", bucket=BUCKET, sample=SAMPLE, run_id=RUN_ID, results_prefix=PREFIX,
                                inputs=[{"key": "incoming/S1_R1.fastq.gz", "etag": "e", "size": 1, "mate": 1}],
                                params={})
        history = json.loads((ROOT / "tests" / "events" / "history_lambda_path_at_publish.json").read_text())
        publish_run(s3=s3, request=request, stages={}, history_events=history, expected_outputs=outputs,
                    item_counts={"ProcessChunks": 1})
        glue = boto3.client("glue")
        glue.create_database(DatabaseInput={"Name": "helixflow"})
        for table in _tables().values():
            glue.create_table(DatabaseName="helixflow", TableInput=table)
        yield s3, glue


def _glue_columns(glue, table: str) -> dict[str, str]:
    descriptor = glue.get_table(DatabaseName="helixflow", Name=table)["Table"]["StorageDescriptor"]
    return {c["Name"]: c["Type"] for c in descriptor["Columns"]}


def _hive_type(value) -> str:
    """The Hive type of a JSON value as the OpenX JSON SerDe maps it (keys lower-cased: case.insensitive)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        (element,) = {_hive_type(v) for v in value}
        return f"array<{element}>"
    return "struct<" + ",".join(f"{k.lower()}:{_hive_type(v)}" for k, v in value.items()) + ">"


ARROW_TO_HIVE = {pa.string(): "string", pa.int8(): "tinyint", pa.int32(): "int", pa.int64(): "bigint",
                 pa.float32(): "float", pa.float64(): "double", pa.bool_(): "boolean",
                 pa.binary(embedding.DIMS): "binary"}


def test_there_is_a_table_per_linked_file_and_its_location_is_where_the_links_go(published):
    _, glue = published
    assert set(_tables()) == set(TABLE_FILES)
    for name in TABLE_FILES:
        table = glue.get_table(DatabaseName="helixflow", Name=name)["Table"]["StorageDescriptor"]
        assert table["Location"] == f"s3://{BUCKET}/catalog/{name}/"
        assert table["InputFormat"] == "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"


def test_qc_table_columns_are_the_fastp_json_keys_with_their_types(published):
    s3, glue = published
    body = s3.get_object(Bucket=BUCKET, Key=PREFIX + "qc/S1.fastp.json")["Body"].read().decode()
    assert body.count("\n") == 1  # one object on one line, as the JSON SerDe reads records
    document = json.loads(body)
    assert QC_LEFT_OUT <= set(document)
    expected = {key.lower(): _hive_type(value) for key, value in document.items() if key not in QC_LEFT_OUT}
    assert _glue_columns(glue, "qc") == expected


def test_embeddings_table_columns_are_the_parquet_schema(published):
    s3, glue = published
    data = s3.get_object(Bucket=BUCKET, Key=PREFIX + "embeddings/S1.parquet")["Body"].read()
    schema = pq.read_schema(pa.BufferReader(data))
    expected = {f.name: ARROW_TO_HIVE[f.type] for f in schema}  # every column, the embedding codes included
    assert _glue_columns(glue, "embeddings") == expected
    assert pq.read_table(pa.BufferReader(data)).num_rows > 0


def test_trace_table_columns_are_the_trace_header_and_each_cell_parses_as_its_column_type(published):
    s3, glue = published
    text = s3.get_object(Bucket=BUCKET, Key=PREFIX + "pipeline_info/trace.tsv")["Body"].read().decode()
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    columns = _glue_columns(glue, "trace")
    assert rows[0] == list(columns) == list(TRACE_COLUMNS)
    parameters = glue.get_table(DatabaseName="helixflow", Name="trace")["Table"]["Parameters"]
    assert parameters["skip.header.line.count"] == "1"
    assert len(rows) > 2
    for row in rows[1:]:
        for value, (name, kind) in zip(row, columns.items(), strict=True):
            if kind == "bigint":
                assert re.fullmatch(r"-?\d*", value), (name, value)  # empty reads as NULL


def test_the_function_links_each_table_to_the_published_runs_file_once_the_manifest_exists(published):
    s3, _ = published
    written = register_run(s3, BUCKET, PREFIX + "manifest.json")
    assert written == sorted(f"catalog/{t}/{SAMPLE}.{RUN_ID}.txt" for t in TABLE_FILES)
    for table, pattern in TABLE_FILES.items():
        link = s3.get_object(Bucket=BUCKET, Key=f"catalog/{table}/{SAMPLE}.{RUN_ID}.txt")["Body"].read().decode()
        assert link == f"s3://{BUCKET}/{PREFIX}{pattern.format(sample=SAMPLE)}\n"
        target = link.strip().removeprefix(f"s3://{BUCKET}/")
        s3.head_object(Bucket=BUCKET, Key=target)  # names a file that exists
    # Any other object under results/ (a report, a file of a run still publishing) registers nothing.
    assert register_run(s3, BUCKET, PREFIX + "qc/S1.fastp.json") == []


def test_a_run_without_embeddings_gets_no_embeddings_link():
    manifest = {"bucket": BUCKET, "prefix": PREFIX, "sample": SAMPLE, "run_id": RUN_ID,
                "files": [{"path": "qc/S1.fastp.json"}, {"path": "pipeline_info/trace.tsv"}]}
    assert sorted(symlinks(manifest)) == [f"catalog/qc/{SAMPLE}.{RUN_ID}.txt", f"catalog/trace/{SAMPLE}.{RUN_ID}.txt"]

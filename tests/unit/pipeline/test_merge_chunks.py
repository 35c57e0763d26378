"""MergeChunks on moto: the chunks' parts become the staged outputs without ever landing on the function's scratch
disk (Lambda's /tmp bounds the largest merge), the outputs equal a one-chunk run's, and the checkpoint is
marked complete only after every output is staged."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from isal import igzip
from moto import mock_aws

from helixflow.phase1 import engine
from helixflow.pipeline import phase1_lambda
from helixflow.pipeline.phase1_lambda import merge_chunks, process_chunk_item, split_into_chunks
from helixflow.pipeline.runs import SUMMARY_NAME, checkpoint_prefix
from helixflow.pipeline.storage import get_json, list_objects
from helixflow.phase1.simulate import fastq_bytes, random_genome, simulate_pairs

BUCKET = "helixflow-merge-test"


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _reads(n: int = 12_000) -> bytes:
    _, seqs, quals, _, _ = simulate_pairs(n, 150, seed=5, genome=random_genome(200_000, 5), paired=False)
    return fastq_bytes([f"m{i}" for i in range(n)], seqs, quals)


def _chunked_run(s3, tmp_path: Path, text: bytes) -> tuple[dict, dict]:
    put = s3.put_object(Bucket=BUCKET, Key="incoming/s.fastq.gz", Body=igzip.compress(text))
    request = {"bucket": BUCKET, "sample": "s", "run_id": "run-1", "identity": "id-1",
               "inputs": [{"key": "incoming/s.fastq.gz", "etag": put["ETag"].strip('"'), "mate": 0,
                           "size": s3.head_object(Bucket=BUCKET, Key="incoming/s.fastq.gz")["ContentLength"]}],
               "params": {"adapter": None, "adapter2": None, "quality": 20, "min_length": 15}}
    chunks = split_into_chunks(s3=s3, request=request, scratch=tmp_path / "split", chunk_bytes=512 << 10)
    for item in get_json(s3, BUCKET, chunks["manifest_key"]):
        process_chunk_item(s3=s3, item=item, request=request, params=chunks["params"], scratch=tmp_path / "chunk")
    return request, chunks


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_the_merge_holds_the_outputs_on_scratch_once_not_the_parts_as_well(s3, tmp_path, monkeypatch):
    text = _reads()
    request, chunks = _chunked_run(s3, tmp_path, text)
    assert chunks["chunk_count"] >= 4
    scratch, peak = tmp_path / "merge", [0]
    staged_when_marked: list[int] = []
    upload, put_json = phase1_lambda.upload, phase1_lambda.put_json

    def measuring_upload(client, bucket, path, key):
        peak[0] = max(peak[0], _disk_bytes(scratch))
        return upload(client, bucket, path, key)

    def marking(client, bucket, key, document):
        if key.endswith(SUMMARY_NAME):
            staged_when_marked.append(sum(1 for _ in list_objects(client, bucket, document["staged_prefix"])))
        return put_json(client, bucket, key, document)

    monkeypatch.setattr(phase1_lambda, "upload", measuring_upload)
    monkeypatch.setattr(phase1_lambda, "put_json", marking)
    summary = merge_chunks(s3=s3, request=request, chunk_count=chunks["chunk_count"], scratch=scratch)

    staged = {obj["Key"][len(summary["staged_prefix"]):]: obj["Size"]
              for obj in list_objects(s3, BUCKET, summary["staged_prefix"])}
    assert set(staged) == set(summary["outputs"]) and staged_when_marked == [len(staged)]
    # The parts alone are about the size of the outputs: holding both (as a download-then-merge does) is 2x.
    assert peak[0] <= 1.05 * sum(staged.values())
    assert not scratch.exists()  # cleaned after the merge
    assert summary["staged_prefix"].startswith(checkpoint_prefix("s", "id-1", "phase1"))

    # Same outputs as the engine on the whole file in one chunk.
    whole = tmp_path / "whole.fastq"
    whole.write_bytes(text)
    engine.process_file(str(whole), None, str(tmp_path / "one"), "s", engine.Params(**chunks["params"]))
    fetched = tmp_path / "fetched"
    for relative in staged:
        target = fetched / relative
        os.makedirs(target.parent, exist_ok=True)
        s3.download_file(BUCKET, summary["staged_prefix"] + relative, str(target))
    reads = "reads/s.trimmed.fastq.gz"
    assert gzip.decompress((fetched / reads).read_bytes()) == gzip.decompress((tmp_path / "one" / reads).read_bytes())
    embeddings = "embeddings/s.parquet"
    assert pq.read_table(fetched / embeddings).equals(pq.read_table(tmp_path / "one" / embeddings))

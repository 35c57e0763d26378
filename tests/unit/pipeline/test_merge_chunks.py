"""MergeChunks on moto: the chunks' parts become the staged outputs without ever landing on the function's scratch
disk (Lambda's /tmp bounds the largest merge), the outputs equal a one-chunk run's, and the checkpoint is
marked complete only after every output is staged."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from isal import igzip

from helixflow.phase1 import engine
from helixflow.pipeline import phase1_lambda
from helixflow.pipeline.phase1_lambda import merge_chunks, process_chunk_item, split_into_chunks
from helixflow.pipeline.runs import SUMMARY_NAME, checkpoint_prefix
from helixflow.pipeline.storage import get_json, list_objects
from helixflow.phase1.simulate import fastq_bytes, random_genome, simulate_pairs

BUCKET = "helixflow-merge-test"


@pytest.fixture
def s3(moto_s3):
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


def _reads(n: int = 12_000) -> bytes:
    _, seqs, quals, _, _ = simulate_pairs(n, 150, seed=5, genome=random_genome(200_000, 5), paired=False)
    return fastq_bytes([f"m{i}" for i in range(n)], seqs, quals)


def _chunked_run(s3, tmp_path: Path, text: bytes, chunk_bytes: int = 512 << 10) -> tuple[dict, dict]:
    put = s3.put_object(Bucket=BUCKET, Key="incoming/s.fastq.gz", Body=igzip.compress(text))
    request = {"bucket": BUCKET, "sample": "s", "run_id": "run-1", "identity": "id-1",
               "inputs": [{"key": "incoming/s.fastq.gz", "etag": put["ETag"].strip('"'), "mate": 0,
                           "size": s3.head_object(Bucket=BUCKET, Key="incoming/s.fastq.gz")["ContentLength"]}],
               "params": {"adapter": None, "adapter2": None, "quality": 20, "min_length": 15}}
    chunks = split_into_chunks(s3=s3, request=request, scratch=tmp_path / "split", chunk_bytes=chunk_bytes)
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


class _RecordingS3:
    """The moto client, recording which keys received bytes from this process and by which call."""

    WRITES = ("put_object", "upload_file", "upload_fileobj", "upload_part", "upload_part_copy")

    def __init__(self, client, fail_copy_of_part: int | None = None) -> None:
        self._client, self._fail = client, fail_copy_of_part
        self.writes: list[tuple[str, str]] = []

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if name not in self.WRITES:
            return method

        def recorded(*args, **kwargs):
            key = kwargs.get("Key") or (args[2] if name == "upload_file" else None)
            self.writes.append((name, key))
            if name == "upload_part_copy" and kwargs["PartNumber"] == self._fail:
                raise ConnectionError("the copy of a part failed")
            return method(*args, **kwargs)

        return recorded


def _large_chunked_run(s3, tmp_path: Path) -> tuple[bytes, dict, dict, dict[str, list[int]]]:
    """Chunks whose trimmed-reads and embeddings parts pass S3's 5 MiB multipart minimum (as real chunks' do: 256 MiB
    of reads make ~56 MB of embeddings), but the last embeddings part, which stays below it."""
    text = _reads(200_000)
    request, chunks = _chunked_run(s3, tmp_path, text, chunk_bytes=28 << 20)
    sizes: dict[str, list[int]] = {".fastq.gz": [], ".parquet": []}
    for obj in list_objects(s3, BUCKET, "work/"):
        for suffix in sizes:
            sizes[suffix] += [obj["Size"]] if obj["Key"].endswith(suffix) else []
    return text, request, chunks, sizes


def test_large_parts_are_joined_by_s3_with_their_sha256_and_never_pass_through_the_merge(s3, tmp_path, monkeypatch):
    import hashlib

    from helixflow.pipeline import storage

    text, request, chunks, part_sizes = _large_chunked_run(s3, tmp_path)
    reads_sizes, embeddings_sizes = part_sizes[".fastq.gz"], part_sizes[".parquet"]
    assert len(reads_sizes) >= 3 and min(reads_sizes[:-1]) >= storage.MIN_PART_BYTES, reads_sizes
    assert min(embeddings_sizes[:-1]) > storage.MIN_PART_BYTES > embeddings_sizes[-1], embeddings_sizes
    scratch, peak = tmp_path / "merge", [0]
    upload = phase1_lambda.upload

    def measuring_upload(client, bucket, path, key):
        peak[0] = max(peak[0], _disk_bytes(scratch))
        return upload(client, bucket, path, key)

    monkeypatch.setattr(phase1_lambda, "upload", measuring_upload)
    recording = _RecordingS3(s3)
    summary = merge_chunks(s3=recording, request=request, chunk_count=chunks["chunk_count"], scratch=scratch)
    reads_key = summary["staged_prefix"] + "reads/s.trimmed.fastq.gz"
    embeddings_key = summary["staged_prefix"] + "embeddings/s.parquet"
    # The reads were written by part copies alone: one per chunk, no byte uploaded from the function.
    assert [name for name, key in recording.writes if key == reads_key] == ["upload_part_copy"] * len(reads_sizes)
    # The embeddings: each chunk's pages copied by S3; only the last small part goes up with the joined footer.
    assert [name for name, key in recording.writes if key == embeddings_key] == (
        ["upload_part_copy"] * (len(embeddings_sizes) - 1) + ["upload_part"])
    # Scratch held the reports alone, never the reads or the embeddings.
    assert peak[0] < min(embeddings_sizes) / 10
    whole = tmp_path / "whole.fastq"
    whole.write_bytes(text)
    engine.process_file(str(whole), None, str(tmp_path / "one"), "s", engine.Params(**chunks["params"]))
    for key in (reads_key, embeddings_key):
        body = s3.get_object(Bucket=BUCKET, Key=key)
        joined = body["Body"].read()
        assert body["Metadata"][storage.SHA256_METADATA] == hashlib.sha256(joined).hexdigest()
        if key == reads_key:
            assert gzip.decompress(joined) == gzip.decompress((tmp_path / "one/reads/s.trimmed.fastq.gz").read_bytes())
            assert len(joined) == sum(reads_sizes)
        else:
            one = pq.ParquetFile(tmp_path / "one/embeddings/s.parquet")
            assert pq.read_table(pa.BufferReader(joined)).equals(one.read())
            assert pq.ParquetFile(pa.BufferReader(joined)).metadata.num_rows == one.metadata.num_rows


def test_a_join_that_fails_leaves_no_multipart_upload_and_no_marked_checkpoint(s3, tmp_path):
    _, request, chunks, _ = _large_chunked_run(s3, tmp_path)
    with pytest.raises(ConnectionError):
        merge_chunks(s3=_RecordingS3(s3, fail_copy_of_part=2), request=request, chunk_count=chunks["chunk_count"],
                     scratch=tmp_path / "merge")
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    checkpoint = checkpoint_prefix("s", "id-1", "phase1")
    assert not any(obj["Key"].endswith(SUMMARY_NAME) for obj in list_objects(s3, BUCKET, checkpoint))


@pytest.mark.parametrize("rows", [(30_000, 0, 50), (0, 30_000, 0, 40), (0, 0)])
def test_parquet_parts_without_rows_are_joined_as_no_rows(s3, rows):
    """A chunk whose reads were all filtered out leaves a part with no row group: the join skips its (absent)
    pages, whichever part it is, and a join of such parts alone is a valid file with no rows."""
    import io

    import numpy as np

    from helixflow import embedding
    from helixflow.pipeline.storage import join_objects

    tables, keys, sizes = [], [], {}
    for index, n in enumerate(rows):
        rng = np.random.default_rng(index)  # random codes do not compress: 30 k rows make a part past 5 MiB
        table = pa.table([pa.array([f"c{index}r{i}" for i in range(n)], pa.string()), pa.array(np.ones(n, np.int8)),
                          pa.array([rng.integers(-128, 128, embedding.DIMS, dtype=np.int8).tobytes()
                                    for _ in range(n)], pa.binary(embedding.DIMS))], schema=embedding.parquet_schema())
        buffer = io.BytesIO()
        with engine._parquet_writer(buffer, table.schema) as writer:
            for start in range(0, n, 10_000):
                writer.write_table(table.slice(start, 10_000))
        keys.append(f"work/parts/part-{index}.parquet")
        s3.put_object(Bucket=BUCKET, Key=keys[-1], Body=buffer.getvalue())
        sizes[keys[-1]] = len(buffer.getvalue())
        tables.append(table)
    sources = phase1_lambda._parquet_join(s3, BUCKET, keys, sizes)
    assert sources is not None  # joined by copies, not rewritten
    join_objects(s3, BUCKET, sources, "joined.parquet")
    joined = pq.read_table(pa.BufferReader(s3.get_object(Bucket=BUCKET, Key="joined.parquet")["Body"].read()))
    assert joined.equals(pa.concat_tables(tables)) and joined.num_rows == sum(rows)

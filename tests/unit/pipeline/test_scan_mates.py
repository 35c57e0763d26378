"""The distributed path's Split: each mate's pass (ScanMate) runs alone, in any order, and the join puts both
mates' chunks on the same records, at the byte where each mate's record starts."""

from __future__ import annotations

import boto3
import pytest
from isal import igzip
from moto import mock_aws

from helixflow.pipeline.phase1_lambda import scan_mate, split_into_chunks
from helixflow.pipeline.storage import get_json

BUCKET = "helixflow-scan-test"
CHUNK = 128 << 10  # a grid of 2 records: cuts must land on even record numbers


def mate_text(mate: int, n: int = 3000) -> bytes:
    return b"".join(b"@p%d/%d%s\n%s\n+\n%s\n" % (i, mate, b" x" * (mate == 2), b"ACGT" * (30 + i % 9),
                                                 b"I" * (4 * (30 + i % 9))) for i in range(n))


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_mates_scanned_in_any_order_are_cut_on_the_same_records(tmp_path, order):
    texts = [mate_text(1), mate_text(2)]
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        inputs = []
        for mate, text in enumerate(texts, start=1):
            key = f"incoming/s_R{mate}.fastq.gz"
            put = s3.put_object(Bucket=BUCKET, Key=key, Body=igzip.compress(text))
            inputs.append({"key": key, "etag": put["ETag"].strip('"'), "size": s3.head_object(
                Bucket=BUCKET, Key=key)["ContentLength"], "mate": mate})
        request = {"bucket": BUCKET, "sample": "s", "run_id": "run-1", "inputs": inputs,
                   "params": {"adapter": None, "adapter2": None, "quality": 20, "min_length": 15}}
        for m in order:
            found = scan_mate(s3=s3, request=request, mate_index=m, chunk_bytes=CHUNK, scratch=tmp_path)
            assert found == {"mate": m + 1, "records": 3000, "decompressed_bytes": len(texts[m])}
        chunks = split_into_chunks(s3=s3, request=request, scratch=tmp_path, chunk_bytes=CHUNK, distributed=True)
        items = get_json(s3, BUCKET, chunks["manifest_key"])
    assert chunks["chunk_count"] == len(items) >= 4 and chunks["params"]["adapter"] is None
    for item in items:
        (one, two) = item["mates"]
        assert one["first_record"] == two["first_record"] and one["first_record"] % 2 == 0
        for mate, text in zip(item["mates"], texts):  # each starts where that mate's record starts
            assert text[:mate["start"]].count(b"\n") == 4 * mate["first_record"]
            assert mate["index_key"] and mate["compression"] == "gzip"
    assert items[0]["mates"][0]["start"] == 0 and items[-1]["stop_after"] is None
    starts = [item["mates"][0]["start"] for item in items]
    assert all(b >= k * CHUNK for k, b in enumerate(starts))


def test_a_large_gzip_mate_is_indexed_by_a_second_process_that_reads_s3_itself(tmp_path, monkeypatch):
    """Past ``PARALLEL_INDEX_BYTES`` (lowered here) the seek index is built by a spawned process with its own
    client, from the environment's endpoint (a moto server, as in the local stack), while the handler's process
    hashes and inflates: the index, the record count and the scan files are those of the one-process pass."""
    from moto.server import ThreadedMotoServer

    from helixflow.fastq import access

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for name, value in (("AWS_ENDPOINT_URL", f"http://{host}:{port}"), ("AWS_ACCESS_KEY_ID", "testing"),
                            ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        text = mate_text(1, 20_000)
        key = "incoming/big_R1.fastq.gz"
        put = s3.put_object(Bucket=BUCKET, Key=key, Body=igzip.compress(text))
        request = {"bucket": BUCKET, "sample": "big", "run_id": "run-1", "params": {
            "adapter": None, "adapter2": None, "quality": 20, "min_length": 15}, "inputs": [{
                "key": key, "etag": put["ETag"].strip('"'), "mate": 1,
                "size": s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]}]}
        found = scan_mate(s3=s3, request=request, mate_index=0, chunk_bytes=CHUNK, scratch=tmp_path)
        in_one = s3.get_object(Bucket=BUCKET, Key="work/big/run-1/phase1/index/mate1.gzidx")["Body"].read()
        monkeypatch.setattr(access, "PARALLEL_INDEX_BYTES", 0)
        monkeypatch.setattr(access, "_zran_index", lambda *_: pytest.fail("zran ran in the handler's process"))
        assert scan_mate(s3=s3, request=request, mate_index=0, chunk_bytes=CHUNK, scratch=tmp_path) == found
        beside = s3.get_object(Bucket=BUCKET, Key="work/big/run-1/phase1/index/mate1.gzidx")["Body"].read()
    finally:
        server.stop()
    assert found == {"mate": 1, "records": 20_000, "decompressed_bytes": len(text)} and beside == in_one

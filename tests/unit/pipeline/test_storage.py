"""S3 helpers on moto: the manifest's sha256 of joined sources (whole objects, byte ranges, bytes held) is the sha256
of the bytes a user downloads, however many ranged GETs the hash is fetched with."""

from __future__ import annotations

import hashlib
import os

import pytest

from helixflow.pipeline import storage
from helixflow.pipeline.storage import ByteRange, join_objects, sha256_of_object

BUCKET = "helixflow-storage-test"


@pytest.fixture
def s3(moto_s3):
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


def test_the_hash_of_sources_fetched_by_many_ranged_gets_is_the_hash_of_their_bytes_in_order(s3, monkeypatch):
    monkeypatch.setattr(storage, "COPY_BYTES", 1000)  # windows of 1,000 bytes: dozens of GETs, three in flight
    a, b = os.urandom(25_500), os.urandom(7_001)
    s3.put_object(Bucket=BUCKET, Key="a", Body=a)
    s3.put_object(Bucket=BUCKET, Key="b", Body=b)
    expected = hashlib.sha256(a + b[10:6_010] + b"tail").hexdigest()
    assert sha256_of_object(s3, BUCKET, "a", ByteRange("b", 10, 6_010), b"tail", streams=3) == expected
    assert sha256_of_object(s3, BUCKET, "a", streams=1) == hashlib.sha256(a).hexdigest()
    s3.put_object(Bucket=BUCKET, Key="empty", Body=b"")
    assert sha256_of_object(s3, BUCKET, "empty") == hashlib.sha256(b"").hexdigest()
    # An empty range (a Parquet part whose reads were all filtered out has no pages) is no bytes, not the object.
    assert storage.read_range(s3, BUCKET, ByteRange("a", 4, 4)) == b""


def test_a_join_of_ranges_and_held_bytes_is_those_bytes_with_their_sha256_recorded(s3):
    big = os.urandom(storage.MIN_PART_BYTES + 123)
    s3.put_object(Bucket=BUCKET, Key="big", Body=big)
    sources = [ByteRange("big", 0, storage.MIN_PART_BYTES + 100), b"the footer"]
    digest = join_objects(s3, BUCKET, sources, "joined")
    joined = s3.get_object(Bucket=BUCKET, Key="joined")
    body = joined["Body"].read()
    assert body == big[:storage.MIN_PART_BYTES + 100] + b"the footer"
    assert digest == hashlib.sha256(body).hexdigest() == joined["Metadata"][storage.SHA256_METADATA]


def test_a_read_ahead_reader_returns_the_object_s_bytes_whatever_it_seeks_and_pins_the_version(s3, monkeypatch):
    import io

    monkeypatch.setattr(storage, "COPY_BYTES", 1000)
    data = os.urandom(25_500)
    etag = s3.put_object(Bucket=BUCKET, Key="obj", Body=data)["ETag"].strip('"')
    with storage.open_object(s3, BUCKET, "obj", size=len(data), if_match=etag, read_ahead=True,
                             buffer_bytes=300) as reader:
        assert reader.read(4_321) == data[:4_321]
        reader.seek(4_000)  # a step back into the window behind (zran re-reads around its checkpoints)
        assert reader.read(2_000) == data[4_000:6_000]
        reader.seek(-8, io.SEEK_END)  # the gzip trailer
        assert reader.read(8) == data[-8:]
        reader.seek(1)
        assert reader.read() == data[1:]
    s3.put_object(Bucket=BUCKET, Key="obj", Body=b"overwritten meanwhile")
    with storage.open_object(s3, BUCKET, "obj", size=len(data), if_match=etag, read_ahead=True) as reader:
        with pytest.raises(Exception, match="PreconditionFailed|412"):
            reader.read(10)

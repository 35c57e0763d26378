"""S3 I/O for every stage: one home for downloads (whole or byte range, pinned to a version), uploads, listing
with pagination, JSON documents, hashing and prefix removal. Stages pass the boto3 client in, so tests and the
local stack hand them moto's."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

COPY_BYTES = 8 * 1024 * 1024


class S3Reader(io.RawIOBase):
    """A seekable read-only file over one version of an object: each read is a ranged GET (wrap it in
    ``open_object``'s buffer), so a chunk runner or the index pass never needs the object on local disk."""

    def __init__(self, s3: Any, bucket: str, key: str, *, size: int, if_match: str | None = None) -> None:
        self._s3, self._bucket, self._key, self._size = s3, bucket, key, size
        self._extra = {"IfMatch": if_match} if if_match else {}
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _get(self, start: int, end: int) -> bytes:
        return self._s3.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{end - 1}",
                                   **self._extra)["Body"].read()

    def readinto(self, buffer) -> int:
        end = min(self._pos + len(buffer), self._size)
        if end <= self._pos:
            return 0
        data = self._get(self._pos, end)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


# Ranged GETs in flight for a reader that goes through a whole object (the scan of a mate, the hash of an output):
# one GET stream is bounded by the per-connection rate (tens of MB/s), below what the reader consumes (the scan
# ~100 MB/s of gzip, SHA-256 ~1.6 GB/s with the CPU's SHA extensions), so the next windows are fetched meanwhile.
READ_STREAMS = 8


class ReadAheadReader(S3Reader):
    """``S3Reader`` for a reader that goes forward through the object: each read is served from ``COPY_BYTES``
    windows fetched ``streams`` at a time ahead of it (and one behind kept, for the small steps back zran makes
    around its checkpoints); a seek elsewhere just starts fetching there. Memory: ``streams`` + 1 windows."""

    def __init__(self, s3: Any, bucket: str, key: str, *, size: int, if_match: str | None = None,
                 streams: int = READ_STREAMS) -> None:
        from concurrent.futures import ThreadPoolExecutor

        super().__init__(s3, bucket, key, size=size, if_match=if_match)
        self._streams = streams
        self._pool = ThreadPoolExecutor(max_workers=streams, thread_name_prefix="read-ahead")
        self._windows: dict[int, Any] = {}

    def _fetch(self, window: int) -> bytes:
        start = window * COPY_BYTES
        return self._get(start, min(start + COPY_BYTES, self._size))

    def readinto(self, buffer) -> int:
        if self._pos >= self._size:
            return 0
        current = self._pos // COPY_BYTES
        last = (self._size - 1) // COPY_BYTES
        for window in [w for w in self._windows if not current - 1 <= w <= current + self._streams]:
            self._windows.pop(window).cancel()
        for window in range(current, min(last, current + self._streams - 1) + 1):
            if window not in self._windows:
                self._windows[window] = self._pool.submit(self._fetch, window)
        data = self._windows[current].result()
        offset = self._pos - current * COPY_BYTES
        n = min(len(buffer), len(data) - offset)
        buffer[:n] = data[offset:offset + n]
        self._pos += n
        return n

    def close(self) -> None:
        for future in self._windows.values():
            future.cancel()
        self._windows.clear()
        self._pool.shutdown(wait=True)
        super().close()


def open_object(s3: Any, bucket: str, key: str, *, size: int, if_match: str | None = None,
                buffer_bytes: int = COPY_BYTES, read_ahead: bool = False) -> io.BufferedReader:
    """A buffered file over the object; ``read_ahead`` for a reader that goes through all of it (``ReadAheadReader``)."""
    raw = (ReadAheadReader if read_ahead else S3Reader)(s3, bucket, key, size=size, if_match=if_match)
    return io.BufferedReader(raw, buffer_bytes)


@dataclass(frozen=True)
class ObjectOpener:
    """``open_object`` as a picklable call for a second process, which makes its own client (clients are not
    shared across processes; the endpoint and credentials come from the environment, as the first one's do)."""

    bucket: str
    key: str
    size: int
    if_match: str | None = None
    read_ahead: bool = False

    def __call__(self) -> io.BufferedReader:
        import boto3

        return open_object(boto3.client("s3"), self.bucket, self.key, size=self.size, if_match=self.if_match,
                           read_ahead=self.read_ahead)


def download(s3: Any, bucket: str, key: str, target: Path, byte_range: tuple[int, int | None] | None = None,
             if_match: str | None = None) -> Path:
    """Stream an object (or the half-open byte range [start, end) of it) to ``target``; ``if_match`` pins the
    version the run validated, so a concurrent overwrite fails the read instead of mixing versions."""
    target.parent.mkdir(parents=True, exist_ok=True)
    extra = {"IfMatch": if_match} if if_match else {}
    if byte_range is not None:
        start, end = byte_range
        extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
    body = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"]
    with open(target, "wb") as out:
        for piece in iter(lambda: body.read(COPY_BYTES), b""):
            out.write(piece)
    return target


# A stage that writes an output records its sha256 as object metadata while the bytes are on its disk, so
# Publish's manifest never reads a sample's outputs back through a Lambda to hash them (S3's own SHA256
# checksum of a multipart upload is a checksum of part checksums, not the file's sha256 that users compare).
SHA256_METADATA = "sha256"


def sha256_of_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(COPY_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def upload(s3: Any, bucket: str, path: Path | str, key: str) -> str:
    """Upload a file with its sha256 recorded (see ``recorded_sha256``); returns the digest."""
    digest = sha256_of_file(path)
    s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {SHA256_METADATA: digest}})
    return digest


# CopyObject's limit: one request copies up to 5 GB server-side; larger objects need a multipart copy.
COPY_OBJECT_MAX_BYTES = 5 * 1024**3
# A multipart upload's smallest part but the last (S3 refuses the completion otherwise: EntityTooSmall); the
# largest part is COPY_OBJECT_MAX_BYTES.
MIN_PART_BYTES = 5 * 1024**2


def joinable(sizes: list[int]) -> bool:
    """Whether objects of these sizes, in this order, can be joined server-side by ``join_objects``."""
    return bool(sizes) and all(MIN_PART_BYTES <= size for size in sizes[:-1]) and max(sizes) <= COPY_OBJECT_MAX_BYTES


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` (exclusive) of one object: a source ``join_objects`` copies part of."""

    key: str
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def header(self) -> str:  # the HTTP Range (CopySourceRange) form: both ends inclusive
        return f"bytes={self.start}-{self.end - 1}"


# What join_objects joins: a whole object (its key), part of one, or bytes this function holds (a small tail such as
# a joined Parquet footer: uploaded, where the others are copied by S3).
Source = str | ByteRange | bytes


def join_objects(s3: Any, bucket: str, sources: list[Source], target_key: str, *, threads: int = 8) -> str:
    """``target_key`` = the sources concatenated in order, joined by S3 itself (one UploadPartCopy per object or
    byte range: those bytes are never written through this function; ``bytes`` sources are uploaded as parts),
    with the sha256 of the whole recorded (see ``recorded_sha256``). SHA-256 does not compose, so the sources are
    read once to hash them, before the upload that records it starts. Every source but the last must be at least
    ``MIN_PART_BYTES`` (see ``joinable``). Returns the digest."""
    from concurrent.futures import ThreadPoolExecutor

    digest = sha256_of_object(s3, bucket, *sources)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=target_key,
                                           Metadata={SHA256_METADATA: digest})["UploadId"]

    def write_part(numbered: tuple[int, Source]) -> dict[str, Any]:
        number, source = numbered
        common = {"Bucket": bucket, "Key": target_key, "UploadId": upload_id, "PartNumber": number}
        if isinstance(source, bytes):
            return {"PartNumber": number, "ETag": s3.upload_part(Body=source, **common)["ETag"]}
        if isinstance(source, ByteRange):
            answer = s3.upload_part_copy(CopySource={"Bucket": bucket, "Key": source.key},
                                         CopySourceRange=source.header, **common)
        else:
            answer = s3.upload_part_copy(CopySource={"Bucket": bucket, "Key": source}, **common)
        return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

    try:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="join") as pool:
            parts = list(pool.map(write_part, enumerate(sources, start=1)))
        s3.complete_multipart_upload(Bucket=bucket, Key=target_key, UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=target_key, UploadId=upload_id)  # no orphaned parts billed
        raise
    return digest


def read_range(s3: Any, bucket: str, source: ByteRange) -> bytes:
    if not source.size:  # "bytes=4-3" is no range: S3 would answer with the whole object
        return b""
    return s3.get_object(Bucket=bucket, Key=source.key, Range=source.header)["Body"].read()


def copy(s3: Any, bucket: str, source_key: str, target_key: str) -> str | None:
    """Copy an object within the bucket, metadata (the recorded sha256) included: one CopyObject up to 5 GB, a
    managed multipart copy above (many UploadPartCopy requests, each a request of its own: for the sizes a run
    publishes, the single request is the cheaper one, and on the local stack ~8x faster). Returns the sha256
    the writing stage recorded (see ``recorded_sha256``), read from the same HEAD that sized the copy."""
    head = s3.head_object(Bucket=bucket, Key=source_key)
    if head["ContentLength"] <= COPY_OBJECT_MAX_BYTES:
        s3.copy_object(Bucket=bucket, Key=target_key, CopySource={"Bucket": bucket, "Key": source_key})
    else:
        s3.copy({"Bucket": bucket, "Key": source_key}, bucket, target_key)
    return _recorded(head)


def recorded_sha256(s3: Any, bucket: str, key: str) -> str | None:
    """The sha256 the writing stage recorded, or None for an object written without one."""
    return _recorded(s3.head_object(Bucket=bucket, Key=key))


def _recorded(head: dict[str, Any]) -> str | None:
    return head.get("Metadata", {}).get(SHA256_METADATA)


def put_json(s3: Any, bucket: str, key: str, document: Any, *, indent: int | None = None) -> str:
    body = json.dumps(document, indent=indent, default=str) + ("\n" if indent else "")
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json")
    return key


def get_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def sha256_of_object(s3: Any, bucket: str, *sources: Source, streams: int = READ_STREAMS) -> str:
    """The sha256 of the object, or of several ``join_objects`` sources concatenated in order, streamed (never on
    disk): ``COPY_BYTES`` windows fetched by up to ``streams`` ranged GETs at once and hashed in order (memory:
    ``streams`` windows)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    def windows(source: Source) -> Iterator[ByteRange | bytes]:
        if isinstance(source, bytes):
            yield source
            return
        if isinstance(source, str):
            source = ByteRange(source, 0, s3.head_object(Bucket=bucket, Key=source)["ContentLength"])
        for start in range(source.start, source.end, COPY_BYTES):
            yield ByteRange(source.key, start, min(start + COPY_BYTES, source.end))

    def fetch(window: ByteRange | bytes) -> bytes:
        return window if isinstance(window, bytes) else read_range(s3, bucket, window)

    digest = hashlib.sha256()
    with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="hash") as pool:
        in_flight: deque = deque()
        for window in (w for source in sources for w in windows(source)):
            if len(in_flight) == streams:
                digest.update(in_flight.popleft().result())
            in_flight.append(pool.submit(fetch, window))
        while in_flight:
            digest.update(in_flight.popleft().result())
    return digest.hexdigest()


def delete_prefix(s3: Any, bucket: str, prefix: str) -> int:
    """Remove every object under ``prefix`` (scratch only: callers never pass incoming/ or results/)."""
    removed = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            removed += len(keys)
    return removed

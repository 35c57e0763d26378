"""A run's reference genome: validated once per content, its index cached next to it.

The reference a run names (``"reference": "references/<name>.fa[.gz]"``) is checked by the Validate stage
before Phase 1 starts, so a bad FASTA ends the run ``InvalidReference`` (code, line, byte offset) before any
job is submitted. The verdict is cached per content - the object's ETag - under
``references/_cache/<etag>/``: ``reference.json`` (contig names and lengths) here, and the Phase 2 job's
minimizer index (``helixflow.phase2.index``) beside it, built by the first job that needs it and read by every
later one. ``_cache`` cannot be a user's reference (params require a first segment starting with a letter or
digit), and no input is ever modified: the cache only adds objects. PlanPhase2 calls the same function; on a
resumed run (Validate skipped) that validates a reference seen for the first time, otherwise it reads the
cache.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from helixflow.errors import InvalidReference, Position
from helixflow.pipeline import storage
from helixflow.pipeline.state import ReferenceSummary
from helixflow.seq.fasta import fasta_lines, scan_fasta

CACHE_ROOT = "references/_cache/"
CACHE_VERSION = 1  # bump when reference.json's fields change


def cache_prefix(etag: str) -> str:
    return f"{CACHE_ROOT}{etag}/"


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def prepare_reference(*, s3: Any, bucket: str, key: str) -> ReferenceSummary:
    """The reference's summary, validating it unless its content was validated before."""
    try:
        etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    except ClientError as error:
        if _missing(error):
            raise InvalidReference(f"the reference {key} does not exist in the bucket", code="REFERENCE_NOT_FOUND",
                                   position=Position(file=key)) from None
        raise
    prefix = cache_prefix(etag)
    try:
        cached = storage.get_json(s3, bucket, prefix + "reference.json")
        if cached.get("cache_version") == CACHE_VERSION:
            return ReferenceSummary(key=key, etag=etag, cache_prefix=prefix, cached=True,
                                    contigs=cached["contigs"], lengths=cached["lengths"])
    except ClientError as error:
        if not _missing(error):
            raise
    body = s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"]
    contigs = list(scan_fasta(fasta_lines(body, name=key), name=key, keep=False))
    summary = ReferenceSummary(key=key, etag=etag, cache_prefix=prefix, cached=False,
                               contigs=[c.name for c in contigs], lengths=[c.length for c in contigs])
    storage.put_json(s3, bucket, prefix + "reference.json",
                     {"cache_version": CACHE_VERSION, "source_key": key, "etag": etag,
                      "contigs": summary.contigs, "lengths": summary.lengths})
    return summary

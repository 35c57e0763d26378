"""Validate stage: stream the sample's object(s) from S3 through the FASTQ validator, and check the reference
the run names (``helixflow.pipeline.reference``).

Objects are read with IfMatch on the etag the event carried, so a run validates exactly the version that
started it (a concurrent overwrite fails the read instead of mixing versions).
"""

from __future__ import annotations

from typing import Any

from helixflow.fastq.validator import validate_fastq
from helixflow.pipeline.reference import prepare_reference
from helixflow.pipeline.state import SampleInput, SampleRequest, ValidationSummary
from helixflow.versions import VALIDATE, environment_versions


def _open(s3: Any, bucket: str, item: SampleInput) -> Any:
    return s3.get_object(Bucket=bucket, Key=item.key, IfMatch=item.etag)["Body"]


def validate_sample(*, s3: Any, request: SampleRequest) -> ValidationSummary:
    """The sample's reads and, first (it is cached per content, so usually one small read), its reference."""
    bucket, inputs = request.bucket, request.inputs
    reference = request.params.get("reference")
    checked_reference = prepare_reference(s3=s3, bucket=bucket, key=reference) if reference else None
    allow_phred64 = bool(request.params.get("allow_phred64", False))
    first = inputs[0]
    mate = inputs[1] if len(inputs) > 1 else None
    report = validate_fastq(
        _open(s3, bucket, first), name=first.key,
        mate_source=_open(s3, bucket, mate) if mate else None, mate_name=mate.key if mate else None,
        allow_phred64=allow_phred64)
    summary = report.to_dict()
    return ValidationSummary(records=summary["records"], bases=summary["bases"], paired=summary["paired"],
                             reports=summary["files"], reference=checked_reference,
                             versions=environment_versions(VALIDATE))

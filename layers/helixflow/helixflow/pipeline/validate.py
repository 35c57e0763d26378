"""Validate stage: stream the sample's object(s) from S3 through the FASTQ validator, or (the distributed path,
``ValidateChunks``) combine the verdicts the chunk runners wrote into the same answer; both check the reference
the run names (``helixflow.pipeline.reference``).

Objects are read with IfMatch on the etag the event carried, so a run validates exactly the version that
started it (a concurrent overwrite fails the read instead of mixing versions).
"""

from __future__ import annotations

from typing import Any

from helixflow.fastq.chunked import ChunkVerdict, FileFacts, combine_verdicts
from helixflow.fastq.validator import ValidationReport, validate_fastq
from helixflow.pipeline import keys
from helixflow.pipeline.reference import prepare_reference
from helixflow.pipeline.state import SampleInput, SampleRequest, ValidationSummary
from helixflow.pipeline.storage import get_json
from helixflow.versions import VALIDATE, environment_versions


def _open(s3: Any, bucket: str, item: SampleInput) -> Any:
    return s3.get_object(Bucket=bucket, Key=item.key, IfMatch=item.etag)["Body"]


def _reference(s3: Any, request: SampleRequest):
    reference = request.params.get("reference")
    return prepare_reference(s3=s3, bucket=request.bucket, key=reference) if reference else None


def validate_sample(*, s3: Any, request: SampleRequest) -> ValidationSummary:
    """The sample's reads and, first (it is cached per content, so usually one small read), its reference."""
    bucket, inputs = request.bucket, request.inputs
    checked_reference = _reference(s3, request)
    allow_phred64 = bool(request.params.get("allow_phred64", False))
    first = inputs[0]
    mate = inputs[1] if len(inputs) > 1 else None
    report = validate_fastq(
        _open(s3, bucket, first), name=first.key,
        mate_source=_open(s3, bucket, mate) if mate else None, mate_name=mate.key if mate else None,
        allow_phred64=allow_phred64)
    return _summary(report, checked_reference)


def validate_chunks(*, s3: Any, request: SampleRequest, chunk_count: int) -> ValidationSummary:
    """The first defect (input order) of the chunks' verdicts as ``InvalidFastq``, else the sample's report; the
    reference is checked as by ``validate_sample`` (here after Phase 1, still before anything is merged)."""
    checked_reference = _reference(s3, request)
    bucket, sample, run_id = request.bucket, request.sample, request.run_id
    files = [FileFacts(**facts) for facts in get_json(s3, bucket, keys.phase1_files(sample, run_id))]
    verdicts = [ChunkVerdict.from_dict(get_json(s3, bucket, keys.phase1_part(sample, run_id, k, ".validation.json")))
                for k in range(chunk_count)]
    report = combine_verdicts(verdicts, files, allow_phred64=bool(request.params.get("allow_phred64", False)))
    return _summary(report, checked_reference)


def _summary(report: ValidationReport, checked_reference) -> ValidationSummary:
    summary = report.to_dict()
    return ValidationSummary(records=summary["records"], bases=summary["bases"], paired=summary["paired"],
                             reports=summary["files"], reference=checked_reference,
                             versions=environment_versions(VALIDATE))

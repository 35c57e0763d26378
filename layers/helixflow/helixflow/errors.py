"""Named errors of the pipeline.

Step Functions sees a Lambda exception's class name as the error name, so every failure a user can act on is
its own class and the state machine can Catch it by name. Each carries a stable machine code and, where it
applies, a position in the offending file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Position:
    """Where in a file a defect is. All counts are 1-based except the byte offset (0-based, into the
    decompressed stream)."""

    file: str | None = None
    record: int | None = None
    line: int | None = None
    byte_offset: int | None = None


class HelixflowError(Exception):
    """Base of every named error. ``code`` is stable across releases; ``message`` is for people."""

    default_code = "ERROR"

    def __init__(self, message: str, *, code: str | None = None, position: Position | None = None,
                 details: dict[str, Any] | None = None) -> None:
        self.code = code or self.default_code
        self.message = message
        self.position = position or Position()
        self.details = details or {}
        # The Lambda runtime reports str(exception) as errorMessage, and RecordFailure reads the code and
        # position back from it, so the exception's text is its JSON form; describe() is the human form.
        super().__init__(json.dumps(self.to_dict(), separators=(",", ":")))

    @property
    def name(self) -> str:
        return type(self).__name__

    def describe(self) -> str:
        return f"{self.code}: {self.message}{self.where()}"

    def where(self) -> str:
        """`` (file, record N, line N, byte N)`` for the parts of the position that are known, else ``""``."""
        where = []
        p = self.position
        if p.file:
            where.append(p.file)
        if p.record is not None:
            where.append(f"record {p.record}")
        if p.line is not None:
            where.append(f"line {p.line}")
        if p.byte_offset is not None:
            where.append(f"byte {p.byte_offset}")
        return f" ({', '.join(where)})" if where else ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.name, "code": self.code, "message": self.message}
        out.update({k: v for k, v in asdict(self.position).items()})
        if self.details:
            out["details"] = self.details
        return out


class InvalidFastq(HelixflowError):
    default_code = "INVALID_FASTQ"


class InvalidKey(HelixflowError):
    """An object key that is not a FASTQ name under incoming/ or would escape its prefix."""

    default_code = "INVALID_KEY"


class InvalidParameters(HelixflowError):
    """A sidecar parameters file or --params that does not match the schema."""

    default_code = "INVALID_PARAMETERS"


class InputTooLarge(HelixflowError):
    """No placement can run this input (e.g. above what the Lambda path handles while no cluster is set)."""

    default_code = "INPUT_TOO_LARGE"


class IncompleteResults(HelixflowError):
    """Publish found an expected output missing; nothing is published."""

    default_code = "INCOMPLETE_RESULTS"


class DeviceUnavailable(HelixflowError):
    """``--device cuda`` was asked for on a machine without a usable CUDA GPU."""

    default_code = "CUDA_UNAVAILABLE"


class InvalidReads(HelixflowError):
    """Reads that cannot be used: no reads, or embeddings built with another construction.

    Codes: READS_NOT_FOUND, NO_READS, EMBEDDING_MISMATCH, UNSUPPORTED_FORMAT."""

    default_code = "INVALID_READS"


class InvalidReference(HelixflowError):
    """The reference FASTA is missing, empty or malformed.

    Codes: REFERENCE_NOT_FOUND, NO_SEQUENCES, SEQUENCE_BEFORE_HEADER, EMPTY_NAME, DUPLICATE_NAME,
    EMPTY_SEQUENCE, INVALID_SYMBOL."""

    default_code = "INVALID_REFERENCE"


class BamConversionFailed(HelixflowError):
    """samtools could not sort or index the alignments (or is not installed)."""

    default_code = "BAM_CONVERSION_FAILED"


class ClusterNotConfigured(HelixflowError):
    """The plan placed a stage on a cluster (Ray, Slurm/PCS) that this deployment has not configured.

    Codes: RAY_NOT_CONFIGURED, SLURM_NOT_CONFIGURED, NOT_A_CLUSTER_PLACEMENT, NO_ADAPTER."""

    default_code = "CLUSTER_NOT_CONFIGURED"


class ClusterUnavailable(HelixflowError):
    """A configured cluster's API refused or did not answer (authentication, network, server error)."""

    default_code = "CLUSTER_UNAVAILABLE"


class Phase1JobFailed(HelixflowError):
    """The Phase 1 cluster job ended FAILED or CANCELLED; details carry the job id, state and log tail."""

    default_code = "PHASE1_JOB_FAILED"


class Phase2JobFailed(HelixflowError):
    """The Phase 2 Slurm job ended FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY or CANCELLED."""

    default_code = "PHASE2_JOB_FAILED"


class MateMissing(HelixflowError):
    """A file named like one mate (S1_R1) waited the mate-wait time and its pair never arrived."""

    default_code = "MATE_MISSING"

"""Named errors of the pipeline.

Step Functions sees a Lambda exception's class name as the error name, so every failure a user can act on is
its own class and the state machine can Catch it by name. Each carries a stable machine code and, where it
applies, a position in the offending file.

Every code a class can carry is in its ``codes`` (code -> meaning): this module is the one home of the codes,
README's error tables are rendered from ``registry()`` and a test checks that every code the package raises is
registered on the class that raises it.
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
    codes: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # An unregistered default would be raised whenever a caller gives no code: refuse it at import time.
        if cls.default_code not in cls.codes:
            raise TypeError(f"{cls.__name__}.codes lacks its default_code {cls.default_code!r}")

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
    """The first defect of a FASTQ file or mate pair; every code comes with file, record, line and byte offset
    into the decompressed stream (the policies are in ``helixflow.fastq.validator``)."""

    default_code = "INVALID_FASTQ"
    codes = {
        "INVALID_FASTQ": "the input is not valid FASTQ (no more specific code applies)",
        "EMPTY_FILE": "the input has no data (after decompression)",
        "NOT_FASTQ": "the input does not start with '@' (FASTA, BAM, SAM, a byte-order mark...)",
        "UNSUPPORTED_COMPRESSION": "bzip2, xz, zstd, lz4 or zip input",
        "TRUNCATED_GZIP": "the gzip stream ends inside a member",
        "TRAILING_GARBAGE": "bytes after the last gzip member that are not another member",
        "CORRUPT_GZIP": "invalid deflate data, bad gzip header, or CRC/length mismatch",
        "BGZF_BAD_BLOCK": "a file taken for BGZF holds a block without a BGZF header",
        "BAD_HEADER": "header line without '@' or with an empty read id",
        "HEADER_NOT_UTF8": "a header line that is not valid UTF-8 (read ids are stored as UTF-8 text)",
        "BAD_SEQUENCE_CHAR": "a character outside the IUPAC nucleotide codes (A C G T U N R Y S W K M B D H V)",
        "MISSING_PLUS_LINE": "the third line of a record does not start with '+'",
        "PLUS_HEADER_MISMATCH": "text on the '+' line that is neither the header nor the read id",
        "BAD_QUALITY_CHAR": "a quality character outside '!'..'~'",
        "SEQ_QUAL_LENGTH_MISMATCH": "sequence and quality lengths differ",
        "TRUNCATED_RECORD": "the input ends inside a record",
        "BLANK_LINE": "an empty line where a header or '+' line belongs, or after the last record",
        "MULTILINE_FASTQ": "a wrapped sequence (multi-line FASTQ)",
        "MIXED_LINE_ENDINGS": "a line ends with LF in a CRLF file or the other way round",
        "BINARY_DATA": "a control character (NUL, ESC, lone CR...)",
        "LINE_TOO_LONG": "a line longer than the limit (16 MiB)",
        "PHRED64_NOT_SUPPORTED": "Phred+64 qualities while `allow_phred64` is false",
        "PAIR_COUNT_MISMATCH": "the mates have different numbers of records",
        "PAIR_NAME_MISMATCH": "the mates' read ids differ at the same record (after removing `/1`, `/2`)",
        "CHUNK_OUT_OF_RANGE": "a Phase 1 chunk starts past the end of its file (the file changed after it was split)",
    }


class InvalidKey(HelixflowError):
    """An object key that is not a FASTQ name under incoming/ or would escape its prefix."""

    default_code = "INVALID_KEY"
    codes = {
        "INVALID_KEY": "the key is longer than 512 bytes",
        "OUTSIDE_PREFIX": "the key is not under `incoming/`",
        "UNSAFE_KEY": "an empty or relative path segment, or a character outside `A-Z a-z 0-9 . _ -`",
        "NOT_FASTQ_NAME": "the file name does not end in .fastq.gz, .fq.gz, .fastq or .fq",
        "BAD_SAMPLE_NAME": "no usable sample id in the file name",
        "NOT_A_PAIR": "two files given to the CLI that are not mates of one sample",
        "SAME_FILE": "the CLI was given one file as both mates",
    }


class InvalidParameters(HelixflowError):
    """A sidecar parameters file or --params that does not match the schema."""

    default_code = "INVALID_PARAMETERS"
    codes = {
        "INVALID_PARAMETERS": "the parameters cannot be used (no more specific code applies)",
        "PARAMS_TOO_LARGE": "the parameters are over 64 KiB",
        "PARAMS_NOT_UTF8": "the parameters are not UTF-8",
        "PARAMS_NOT_JSON": "the parameters are not JSON (also an integer past Python's digit limit)",
        "PARAMS_TOO_DEEP": "the JSON nests too deeply to be a parameters object",
        "PARAMS_NOT_OBJECT": "the JSON is not an object",
        "PARAMS_SCHEMA": "an unknown field, a wrong type or a value out of range",
        "MANIFEST_OUTSIDE_RUN": "a cluster job was given a chunk manifest outside its run's work prefix",
        "EMPTY_MANIFEST": "a cluster job was given a chunk manifest without chunks",
    }


class InvalidSamplesheet(HelixflowError):
    """A samplesheet (``incoming/<batch>.samplesheet.csv``) that cannot declare its samples; the position names the
    sheet, its row (``record``, 1 = the first sample) and line, and ``details`` the column."""

    default_code = "INVALID_SAMPLESHEET"
    codes = {
        "INVALID_SAMPLESHEET": "the samplesheet cannot be used (no more specific code applies)",
        "SAMPLESHEET_TOO_LARGE": "the samplesheet is over 1 MiB or declares more than 500 samples",
        "SAMPLESHEET_NOT_UTF8": "the samplesheet is not UTF-8 text",
        "NOT_CSV": "the samplesheet is not well-formed CSV (e.g. an unclosed quote)",
        "NO_SAMPLES": "the samplesheet has a header but no sample rows",
        "MISSING_COLUMN": "a required column (`sample`, `fastq_1`, `fastq_2`) is absent from the header",
        "UNKNOWN_COLUMN": "a header column that is neither a required column nor a run parameter",
        "DUPLICATE_COLUMN": "a column appears twice in the header",
        "BAD_ROW": "a row with more or fewer cells than the header",
        "MISSING_VALUE": "an empty `sample` or `fastq_1` cell",
        "BAD_SAMPLE": "a sample id outside `A-Z a-z 0-9 . _ -` (starting alphanumeric, at most 128 characters)",
        "DUPLICATE_SAMPLE": "a sample declared by two rows (one row per sample)",
        "PATH_OUTSIDE_PREFIX": "a file path that escapes `incoming/` (`..`, absolute, or `s3://` to another bucket or prefix)",
        "BAD_PATH": "a file path that is not a FASTQ name or uses characters outside `A-Z a-z 0-9 . _ -`",
        "FILE_LISTED_TWICE": "one file named twice (in two rows, or as both fastq_1 and fastq_2)",
        "BAD_VALUE": "a parameter cell of the wrong type or out of range (types are strict: `1`, `true`/`false`)",
        "FILE_NOT_FOUND": "a file the samplesheet names does not exist (checked by `helixflow run --samplesheet`)",
    }


class InputTooLarge(HelixflowError):
    """No placement can run this input (e.g. above what the Lambda path handles while no cluster is set)."""

    default_code = "INPUT_TOO_LARGE"
    codes = {
        "INPUT_TOO_LARGE": "no placement can run this input",
        "TOO_LARGE_FOR_LAMBDA": "Phase 1 was placed on Lambda and the input does not fit its time or scratch disk",
    }


class IncompleteResults(HelixflowError):
    """An expected output is missing; nothing is published."""

    default_code = "INCOMPLETE_RESULTS"
    codes = {
        "INCOMPLETE_RESULTS": "an expected output is missing; nothing is published",
        "MISSING_OUTPUTS": "a stage's promised output (a Phase 1 chunk part, a staged result) is absent",
    }


class DeviceUnavailable(HelixflowError):
    """``--device cuda`` was asked for on a machine without a usable CUDA GPU."""

    default_code = "CUDA_UNAVAILABLE"
    codes = {"CUDA_UNAVAILABLE": "`--device cuda` on a machine without a usable CUDA GPU"}


class InvalidReads(HelixflowError):
    """Reads that cannot be used: no reads, or embeddings built with another construction."""

    default_code = "INVALID_READS"
    codes = {
        "INVALID_READS": "the reads cannot be used (no more specific code applies)",
        "READS_NOT_FOUND": "the reads file does not exist (for a Parquet alone: its trimmed FASTQ beside it)",
        "NO_READS": "the input holds no reads",
        "EMBEDDING_MISMATCH": "the Parquet embeddings were built with another construction than this build's",
        "READS_EMBEDDINGS_MISMATCH": "the Parquet's rows are not the FASTQ's reads (read id, mate or sequence at a row)",
        "UNSUPPORTED_FORMAT": "not one Parquet file (with its one or two FASTQ files) or one or two FASTQ files",
    }


class InvalidReference(HelixflowError):
    """The reference FASTA is missing, empty or malformed."""

    default_code = "INVALID_REFERENCE"
    codes = {
        "INVALID_REFERENCE": "the reference cannot be used (no more specific code applies)",
        "REFERENCE_NOT_FOUND": "the reference FASTA does not exist",
        "NO_SEQUENCES": "the reference holds no sequence",
        "SEQUENCE_BEFORE_HEADER": "sequence text before the first '>' header",
        "EMPTY_NAME": "a '>' header without a name",
        "DUPLICATE_NAME": "a contig name appears twice",
        "EMPTY_SEQUENCE": "a contig has no bases",
        "INVALID_SYMBOL": "a character that is not a nucleotide code in a sequence line",
        "DAMAGED_GZIP": "the reference is gzip but its stream is damaged or truncated",
    }


class BamConversionFailed(HelixflowError):
    """samtools could not sort or index the alignments (or is not installed)."""

    default_code = "BAM_CONVERSION_FAILED"
    codes = {
        "BAM_CONVERSION_FAILED": "samtools could not sort or index the alignments",
        "NO_SAMTOOLS": "BAM output was asked for and samtools is not on PATH",
        "ALIGNMENT_STATS_FAILED": "samtools flagstat or stats could not read the BAM",
    }


class ClusterNotConfigured(HelixflowError):
    """The plan placed a stage on a cluster (Ray, Slurm/PCS) that this deployment has not configured."""

    default_code = "CLUSTER_NOT_CONFIGURED"
    codes = {
        "CLUSTER_NOT_CONFIGURED": "a stage is placed on a cluster this deployment has not configured",
        "RAY_NOT_CONFIGURED": "Phase 1 is placed on Ray and the stack has no RayJobsUrl",
        "SLURM_NOT_CONFIGURED": "a stage is placed on Slurm and neither slurmrestd nor a PCS cluster is configured",
        "NOT_A_CLUSTER_PLACEMENT": "a job was asked for on a placement that is not a cluster (e.g. lambda)",
        "NO_ADAPTER": "the job adapter of the placement's cluster is not installed or did not register",
        "SCALING_NOT_CONFIGURED": "an alarm asks to scale a cluster this deployment gives the scaling Lambda no "
                                  "handle on (node group, Ray head or worker shape)",
        "SCALING_METRIC_UNKNOWN": "an alarm invoking the scaling Lambda watches a metric that drives no scaling",
    }


class ClusterUnavailable(HelixflowError):
    """A configured cluster's API refused or did not answer (authentication, network, server error)."""

    default_code = "CLUSTER_UNAVAILABLE"
    codes = {
        "CLUSTER_UNAVAILABLE": "a configured cluster's API refused or did not answer",
        "SLURM_UNREACHABLE": "slurmrestd did not answer",
        "SLURM_AUTH_REJECTED": "slurmrestd rejected the token (slurmctld's log has the reason)",
        "SLURM_API_ERROR": "slurmrestd answered with an error",
        "SLURM_API_UNSUPPORTED": "slurmrestd offers none of the API versions this adapter speaks",
        "SLURM_SUBMIT_REJECTED": "slurmrestd accepted no job",
        "PCS_CLUSTER_UNAVAILABLE": "the AWS PCS cluster could not be described",
        "PCS_REST_DISABLED": "the AWS PCS cluster has no slurmrestd endpoint",
        "PCS_JWT_KEY_UNAVAILABLE": "the AWS PCS cluster's JWT signing key could not be read",
        "RAY_UNAUTHENTICATED": "the Ray Jobs API wants a token (HTTP 401)",
        "RAY_FORBIDDEN": "the Ray Jobs API refused the token (HTTP 403)",
        "RAY_UNREACHABLE": "the Ray head did not answer",
        "RAY_SUBMIT_REJECTED": "the Ray Jobs API accepted no job",
        "RAY_SERVER_ERROR": "the Ray Jobs API answered with a server error",
        "RAY_UNKNOWN_STATE": "the Ray Jobs API reported a job state this adapter does not know",
        "RAY_JOB_NOT_FOUND": "the Ray head does not know the job (HTTP 404)",
        "PCS_SCALING_FAILED": "the AWS PCS node group's scaling bounds could not be read or updated",
        "RAY_SCALING_FAILED": "the Ray resource request job did not succeed",
        "SLURM_SCALING_FAILED": "the local Slurm's power-saving floor could not be set (scontrol failed)",
    }


# The job seam ends every cluster stage with the same states, so these codes are shared on purpose: the error
# class names the stage, the code the way its job ended.
SHARED_CODES = {
    "JOB_FAILED": "the cluster job ended FAILED (details carry the job id, state and log tail)",
    "JOB_CANCELLED": "the cluster job was cancelled",
}


class Phase1JobFailed(HelixflowError):
    """The Phase 1 cluster job ended FAILED or CANCELLED; details carry the job id, state and log tail."""

    default_code = "PHASE1_JOB_FAILED"
    codes = {"PHASE1_JOB_FAILED": "the Phase 1 cluster job did not succeed", **SHARED_CODES}


class Phase2JobFailed(HelixflowError):
    """The Phase 2 Slurm job ended FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY or CANCELLED."""

    default_code = "PHASE2_JOB_FAILED"
    codes = {"PHASE2_JOB_FAILED": "the Phase 2 Slurm job did not succeed", **SHARED_CODES}


class MateMissing(HelixflowError):
    """A file named like one mate (S1_R1) waited the mate-wait time and its pair never arrived."""

    default_code = "MATE_MISSING"
    codes = {"MATE_MISSING": "a file named like one mate waited the mate-wait time and its pair never arrived"}


class ReportFailed(HelixflowError):
    """The run's MultiQC report could not be built; nothing is published."""

    default_code = "REPORT_FAILED"
    codes = {
        "REPORT_FAILED": "the run's report could not be built; nothing is published",
        "MULTIQC_FAILED": "MultiQC exited with an error or ran past its time limit (its last lines are in details)",
    }


def error_classes() -> list[type[HelixflowError]]:
    """Every named error, in the order this module defines them."""
    found, pending = [], list(HelixflowError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def registry() -> dict[str, dict[str, str]]:
    """Error name -> {code: meaning}: the contract Step Functions Catches and error.json carry."""
    return {cls.__name__: dict(cls.codes) for cls in error_classes()}

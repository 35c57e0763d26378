"""Object keys: the only user-controlled strings that reach S3 paths.

Policy (stated, and tested):
- A key arrives decoded: EventBridge carries keys as stored, and the local stack's S3 -> SQS poller decodes the
  notification's percent-encoding once, where that event format requires it. Nothing here decodes again, so
  ``incoming/con%66.fastq`` is that literal name (and refused: '%' is not a key character), never ``conf``.
- It must be ``incoming/`` + optional sub-folders + a file name ending in .fastq, .fq, .fastq.gz or .fq.gz
  (case-sensitive, as aligners and fastp expect), using only ``A-Z a-z 0-9 . _ -`` in each path segment, no
  empty, ``.`` or ``..`` segment, at most ``MAX_KEY_LENGTH`` bytes. Anything else is ``InvalidKey``: such a key
  could escape its prefix once joined into results/<sample>/ or could not be a FASTQ name.
- The sample id is the file name without the FASTQ suffix and without a mate marker: ``_R1``/``_R2`` or
  ``_1``/``_2``, each optionally followed by Illumina's ``_001`` chunk number (``S1_L001_R1_001.fastq.gz`` is
  sample ``S1_L001``, mate 1). A name without a marker is single-end (mate 0).
- Two mates pair when they share folder and sample id; ``pairing_key`` is that shared identity.
- A file named in a samplesheet takes its sample and mate from the sheet instead (helixflow.pipeline.samplesheet);
  the key rules above still apply to it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from helixflow.errors import InvalidKey

INCOMING_PREFIX = "incoming/"
RESULTS_PREFIX = "results/"
ERRORS_PREFIX = "errors/"
WORK_PREFIX = "work/"
FASTQ_SUFFIXES = (".fastq.gz", ".fq.gz", ".fastq", ".fq")
# incoming/<batch>.samplesheet.csv declares samples (helixflow.pipeline.samplesheet); its event starts the pipeline
# too, so the EventBridge rule (and the local stack's notifications) match these suffixes.
SAMPLESHEET_SUFFIX = ".samplesheet.csv"
EVENT_SUFFIXES = (*FASTQ_SUFFIXES, SAMPLESHEET_SUFFIX)
MAX_KEY_LENGTH = 512

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_MATE = re.compile(r"^(?P<sample>.+?)_(?:R(?P<r>[12])|(?P<n>[12]))(?:_001)?$")
_SAMPLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class IncomingKey:
    key: str
    folder: str  # "incoming/" or "incoming/<sub>/"
    file_name: str
    sample: str
    mate: int  # 0 single-end, 1 or 2

    @property
    def pairing_key(self) -> str:
        return f"{self.folder}{self.sample}"

    @property
    def sidecar_key(self) -> str:
        return f"{self.folder}{self.sample}.json"


def parse_incoming_key(key: str) -> IncomingKey:
    if len(key.encode()) > MAX_KEY_LENGTH:
        raise InvalidKey(f"key is longer than {MAX_KEY_LENGTH} bytes", details={"key": key[:80]})
    if not key.startswith(INCOMING_PREFIX):
        raise InvalidKey(f"key {key!r} is not under {INCOMING_PREFIX}", code="OUTSIDE_PREFIX",
                         details={"key": key})
    segments = _safe_segments(key)
    file_name = segments[-1]
    suffix = next((s for s in FASTQ_SUFFIXES if file_name.endswith(s)), None)
    if suffix is None:
        raise InvalidKey(f"{file_name!r} is not a FASTQ name (expected one of {', '.join(FASTQ_SUFFIXES)})",
                         code="NOT_FASTQ_NAME", details={"key": key})
    stem = file_name[: -len(suffix)]
    sample, mate = sample_and_mate(stem)
    if not is_sample_name(sample):
        raise InvalidKey(f"sample id {sample!r} derived from {file_name!r} is not a valid sample name",
                         code="BAD_SAMPLE_NAME", details={"key": key})
    folder = INCOMING_PREFIX + "".join(f"{s}/" for s in segments[:-1])
    return IncomingKey(key=key, folder=folder, file_name=file_name, sample=sample, mate=mate)


def _safe_segments(key: str) -> list[str]:
    segments = key[len(INCOMING_PREFIX):].split("/")
    for segment in segments:
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
            raise InvalidKey(
                f"key {key!r} has a path segment {segment!r} that is empty, relative, or uses characters "
                "outside A-Z a-z 0-9 . _ -", code="UNSAFE_KEY", details={"key": key})
    return segments


def is_samplesheet_key(key: str) -> bool:
    """Whether an event's object is a samplesheet (it then declares samples instead of being one)."""
    return key.startswith(INCOMING_PREFIX) and key.endswith(SAMPLESHEET_SUFFIX)


def parse_samplesheet_key(key: str) -> str:
    """The batch name of ``incoming/[<folder>/]<batch>.samplesheet.csv`` (same key rules as a FASTQ key)."""
    if len(key.encode()) > MAX_KEY_LENGTH:
        raise InvalidKey(f"key is longer than {MAX_KEY_LENGTH} bytes", details={"key": key[:80]})
    if not key.startswith(INCOMING_PREFIX):
        raise InvalidKey(f"key {key!r} is not under {INCOMING_PREFIX}", code="OUTSIDE_PREFIX", details={"key": key})
    batch = _safe_segments(key)[-1][: -len(SAMPLESHEET_SUFFIX)]
    if not is_sample_name(batch):
        raise InvalidKey(f"batch name {batch!r} of samplesheet {key!r} is not a valid name", code="BAD_SAMPLE_NAME",
                         details={"key": key})
    return batch


def is_sample_name(name: str) -> bool:
    return bool(_SAMPLE.fullmatch(name))


def bounded_component(value: str, limit: int = 64) -> str:
    """A safe segment (see ``safe_component``) bounded to ``limit`` characters: a long one keeps a readable head
    and a hash of the whole, so distinct values stay distinct and keys stay far below S3's 1,024-byte limit."""
    if len(value) <= limit:
        return value
    return f"{value[: limit - 13]}-{hashlib.sha256(value.encode()).hexdigest()[:12]}"


def sample_and_mate(stem: str) -> tuple[str, int]:
    """The one sample-name rule (pipeline, `helixflow preprocess`, `align`, `cluster`, the MPI driver): a file
    name's stem without its mate marker ``_R1``/``_R2``/``_1``/``_2`` (optionally followed by Illumina's
    ``_001``); mate 0 when there is none."""
    match = _MATE.match(stem)
    return (match["sample"], int(match["r"] or match["n"])) if match else (stem, 0)


def sample_from_path(path: str) -> str:
    """The sample a local reads file belongs to: its name without a FASTQ (or Phase 1 Parquet) suffix and
    without the mate marker (``S1_L001_R1_001.fastq.gz`` and ``embeddings/S1_L001.parquet`` -> ``S1_L001``)."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    stem = next((name[: -len(s)] for s in (*FASTQ_SUFFIXES, ".parquet") if name.endswith(s)), name)
    return sample_and_mate(stem)[0] or "sample"


def results_prefix(sample: str, run_id: str) -> str:
    return f"{RESULTS_PREFIX}{safe_component(sample)}/{safe_component(run_id)}/"


# A samplesheet's batch report (helixflow.pipeline.batch_report): beside the samples' results, under a name no
# sample id can take (sample ids start alphanumeric).
BATCHES_PREFIX = f"{RESULTS_PREFIX}_batches/"


def batch_prefix(batch: str, batch_id: str) -> str:
    """results/_batches/<batch>/<batch_id>/: the report of one version of incoming/<batch>.samplesheet.csv."""
    return f"{BATCHES_PREFIX}{safe_component(batch)}/{safe_component(batch_id)}/"


def errors_prefix(sample: str, run_id: str) -> str:
    return f"{ERRORS_PREFIX}{safe_component(sample)}/{safe_component(run_id)}/"


def run_work_prefix(sample: str, run_id: str) -> str:
    """Scratch of one run; removed when the run publishes or fails."""
    return f"{WORK_PREFIX}{safe_component(sample)}/{safe_component(run_id)}/"


def work_prefix(sample: str, run_id: str, stage: str) -> str:
    """Scratch of one stage of one run (chunks, parts, staged outputs, cluster job outputs)."""
    return f"{run_work_prefix(sample, run_id)}{safe_component(stage)}/"


def phase1_part_name(index: int) -> str:
    return f"part-{index:05d}"


def phase1_part(sample: str, run_id: str, index: int, suffix: str) -> str:
    """A Phase 1 chunk's object under work/: its result (``.json``) or, on the distributed path, its
    validation verdict (``.validation.json``), which ValidateChunks reads."""
    return f"{work_prefix(sample, run_id, 'phase1')}parts/{phase1_part_name(index)}{suffix}"


def phase1_files(sample: str, run_id: str) -> str:
    """The distributed path's facts of each input file as stored (helixflow.fastq.chunked.FileFacts)."""
    return f"{work_prefix(sample, run_id, 'phase1')}files.json"


def safe_component(value: str) -> str:
    """A single path segment built from a value we did not fully choose (sample id, execution name)."""
    if value in (".", "..") or not _SEGMENT.fullmatch(value or ""):
        raise InvalidKey(f"{value!r} is not a safe path segment", code="UNSAFE_KEY")
    return value

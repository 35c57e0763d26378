"""Object keys: the only user-controlled strings that reach S3 paths.

Policy (stated, and tested):
- A key is URL-decoded once (S3 notifications percent-encode keys; EventBridge and direct calls do not, and a
  valid key never contains '%' or '+', so decoding is a no-op for every key we accept).
- It must be ``incoming/`` + optional sub-folders + a file name ending in .fastq, .fq, .fastq.gz or .fq.gz
  (case-sensitive, as aligners and fastp expect), using only ``A-Z a-z 0-9 . _ -`` in each path segment, no
  empty, ``.`` or ``..`` segment, at most ``MAX_KEY_LENGTH`` bytes. Anything else is ``InvalidKey``: such a key
  could escape its prefix once joined into results/<sample>/ or could not be a FASTQ name.
- The sample id is the file name without the FASTQ suffix and without a mate marker: ``_R1``/``_R2`` or
  ``_1``/``_2``, each optionally followed by Illumina's ``_001`` chunk number (``S1_L001_R1_001.fastq.gz`` is
  sample ``S1_L001``, mate 1). A name without a marker is single-end (mate 0).
- Two mates pair when they share folder and sample id; ``pairing_key`` is that shared identity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from helixflow.errors import InvalidKey

INCOMING_PREFIX = "incoming/"
RESULTS_PREFIX = "results/"
ERRORS_PREFIX = "errors/"
WORK_PREFIX = "work/"
FASTQ_SUFFIXES = (".fastq.gz", ".fq.gz", ".fastq", ".fq")
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


def parse_incoming_key(raw_key: str) -> IncomingKey:
    key = unquote_plus(raw_key)
    if len(key.encode()) > MAX_KEY_LENGTH:
        raise InvalidKey(f"key is longer than {MAX_KEY_LENGTH} bytes", details={"key": key[:80]})
    if not key.startswith(INCOMING_PREFIX):
        raise InvalidKey(f"key {key!r} is not under {INCOMING_PREFIX}", code="OUTSIDE_PREFIX",
                         details={"key": key})
    segments = key[len(INCOMING_PREFIX):].split("/")
    for segment in segments:
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
            raise InvalidKey(
                f"key {key!r} has a path segment {segment!r} that is empty, relative, or uses characters "
                "outside A-Z a-z 0-9 . _ -", code="UNSAFE_KEY", details={"key": key})
    file_name = segments[-1]
    suffix = next((s for s in FASTQ_SUFFIXES if file_name.endswith(s)), None)
    if suffix is None:
        raise InvalidKey(f"{file_name!r} is not a FASTQ name (expected one of {', '.join(FASTQ_SUFFIXES)})",
                         code="NOT_FASTQ_NAME", details={"key": key})
    stem = file_name[: -len(suffix)]
    match = _MATE.match(stem)
    sample, mate = (match["sample"], int(match["r"] or match["n"])) if match else (stem, 0)
    if not _SAMPLE.fullmatch(sample):
        raise InvalidKey(f"sample id {sample!r} derived from {file_name!r} is not a valid sample name",
                         code="BAD_SAMPLE_NAME", details={"key": key})
    folder = INCOMING_PREFIX + "".join(f"{s}/" for s in segments[:-1])
    return IncomingKey(key=key, folder=folder, file_name=file_name, sample=sample, mate=mate)


def results_prefix(sample: str, run_id: str) -> str:
    return f"{RESULTS_PREFIX}{safe_component(sample)}/{safe_component(run_id)}/"


def errors_prefix(sample: str, run_id: str) -> str:
    return f"{ERRORS_PREFIX}{safe_component(sample)}/{safe_component(run_id)}/"


def run_work_prefix(sample: str, run_id: str) -> str:
    """Scratch of one run; removed when the run publishes or fails."""
    return f"{WORK_PREFIX}{safe_component(sample)}/{safe_component(run_id)}/"


def work_prefix(sample: str, run_id: str, stage: str) -> str:
    """Scratch of one stage of one run (chunks, parts, staged outputs, cluster job outputs)."""
    return f"{run_work_prefix(sample, run_id)}{safe_component(stage)}/"


def safe_component(value: str) -> str:
    """A single path segment built from a value we did not fully choose (sample id, execution name)."""
    if value in (".", "..") or not _SEGMENT.fullmatch(value or ""):
        raise InvalidKey(f"{value!r} is not a safe path segment", code="UNSAFE_KEY")
    return value

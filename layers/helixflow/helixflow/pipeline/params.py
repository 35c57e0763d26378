"""Run parameters: the optional sidecar ``incoming/<sample>.json`` (or ``helixflow run --params``).

Unknown fields are rejected rather than ignored, so a typo ("min_lenght") fails loudly instead of silently
running with the default. Types are strict: ``"quality": true`` is not 1 and ``"allow_phred64": "yes"`` is not
true, because a sidecar is written by hand and a coerced value would run with something nobody asked for.

The document comes from a user's bucket, so everything the JSON parser can raise is a named error, never a
crash of ResolveSample:

================== ==========================================================================================
PARAMS_TOO_LARGE   over ``MAX_DOCUMENT_BYTES`` (a parameters file is a few hundred bytes)
PARAMS_NOT_UTF8    bytes that are not UTF-8 (JSON is UTF-8, RFC 8259 section 8.1)
PARAMS_NOT_JSON    not JSON, including an integer past Python's digit limit
PARAMS_TOO_DEEP    nesting deeper than the parser's recursion limit
PARAMS_NOT_OBJECT  valid JSON that is not an object
PARAMS_SCHEMA      an unknown field, a wrong type or a value out of range (each field named)
================== ==========================================================================================
"""

from __future__ import annotations

import json
import re
from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helixflow.errors import InvalidParameters

MAX_DOCUMENT_BYTES = 64 * 1024
_ADAPTER = r"^[ACGTacgt]{6,64}$"
# A key of the data bucket under references/: segments start alphanumeric, so no "..", no option-like value.
_REFERENCE = r"^references/[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*\.(fa|fasta|fna)(\.gz)?$"


class RunParameters(BaseModel):
    """The one schema of run parameters: the sidecar, ``--params`` and ``helixflow preprocess`` options."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    adapter: str | None = Field(None, pattern=_ADAPTER, description="3' adapter of read 1 (auto-detect if unset)")
    adapter2: str | None = Field(None, pattern=_ADAPTER, description="3' adapter of read 2")
    quality: int = Field(20, ge=0, le=60, description="sliding-window 3' quality threshold (Phred)")
    min_length: int = Field(15, ge=1, le=10_000, description="drop reads (pairs) shorter than this after trimming")
    allow_phred64: bool = Field(False, description="accept Phred+64 input (converted on the way in)")
    phase1: Literal["auto", "lambda", "ray"] = Field("auto", description="Phase 1 placement override")
    validation: Literal["auto", "single", "distributed"] = Field(
        "auto", description="who validates: one Validate Lambda, or each Phase 1 chunk runner (auto: by size)")
    phase2: Literal["auto", "slurm-cpu", "slurm-gpu", "off"] = Field(
        "auto", description="Phase 2 placement (auto: Slurm when this deployment has it, else off)")
    reference: str | None = Field(None, pattern=_REFERENCE,
                                  description="reference FASTA(.gz) in the data bucket: Phase 2 also aligns")
    single_end: bool = Field(False, description="run a file named like a mate (S1_R1) alone, without waiting for R2")
    force: bool = Field(False, description="run even when a run with the same inputs and parameters succeeded")


def describe_validation_error(exc: ValidationError) -> str:
    """``field: message; ...`` with every offending field named (shared with the CLI's option checks)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())


def parse_parameters(document: bytes | str | dict | None, *, source: str) -> RunParameters:
    """Parse and validate a parameters document; ``source`` names it in the error."""
    if document is None:
        return RunParameters()
    details = {"source": source}
    data = _load_json(document, source, details) if isinstance(document, (bytes, str)) else document
    if not isinstance(data, dict):
        raise InvalidParameters(f"{source} must hold a JSON object", code="PARAMS_NOT_OBJECT", details=details)
    try:
        return RunParameters.model_validate(data)
    except ValidationError as exc:
        raise InvalidParameters(f"{source}: {describe_validation_error(exc)}", code="PARAMS_SCHEMA",
                                details=details) from None


def _load_json(document: bytes | str, source: str, details: dict) -> object:
    raw = document.encode() if isinstance(document, str) else document
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidParameters(f"{source} is {len(raw):,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}",
                                code="PARAMS_TOO_LARGE", details=details)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParameters(f"{source} is not UTF-8 (byte {exc.start}: {exc.reason})", code="PARAMS_NOT_UTF8",
                                details=details) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParameters(f"{source} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                                code="PARAMS_NOT_JSON", details=details) from None
    except RecursionError:
        raise InvalidParameters(f"{source} nests too deeply to be a parameters object", code="PARAMS_TOO_DEEP",
                                details=details) from None
    except ValueError as exc:  # an integer literal past sys.get_int_max_str_digits()
        raise InvalidParameters(f"{source} is not usable JSON: {exc}", code="PARAMS_NOT_JSON",
                                details=details) from None


def field_range(name: str) -> str:
    """The accepted values of one field, as the README's parameter table and the CLI's help state them."""
    info = RunParameters.model_fields[name]
    if get_origin(info.annotation) is Literal:
        return ", ".join(get_args(info.annotation))
    if info.annotation is bool:
        return "true, false"
    bounds = {type(m).__name__: m for m in info.metadata}
    if "Ge" in bounds and "Le" in bounds:
        return f"{bounds['Ge'].ge}-{bounds['Le'].le}"
    if "Ge" in bounds:
        return f">= {bounds['Ge'].ge}"
    pattern = next((m.pattern for m in info.metadata if getattr(m, "pattern", None)), None)
    if pattern == _REFERENCE:
        return "a key under references/ ending .fa, .fasta or .fna (.gz)"
    if pattern is not None:
        letters, low, high = re.fullmatch(r"\^\[(\w+)\]\{(\d+),(\d+)\}\$", pattern).groups()
        return f"{low}-{high} of {''.join(dict.fromkeys(letters.upper()))}"
    raise ValueError(f"no range is stated for field {name!r}")

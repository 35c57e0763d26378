"""Run parameters: the optional sidecar ``incoming/<sample>.json`` (or ``helixflow run --params``).

Unknown fields are rejected rather than ignored, so a typo ("min_lenght") fails loudly instead of silently
running with the default.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helixflow.errors import InvalidParameters

_ADAPTER = r"^[ACGTacgt]{6,64}$"


class RunParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: str | None = Field(None, pattern=_ADAPTER, description="3' adapter of read 1 (auto-detect if unset)")
    adapter2: str | None = Field(None, pattern=_ADAPTER, description="3' adapter of read 2")
    quality: int = Field(20, ge=0, le=60, description="sliding-window 3' quality threshold (Phred)")
    min_length: int = Field(15, ge=1, le=10_000, description="drop reads (pairs) shorter than this after trimming")
    allow_phred64: bool = Field(False, description="accept Phred+64 input (converted on the way in)")
    phase1: Literal["auto", "lambda", "ray"] = Field("auto", description="Phase 1 placement override")
    single_end: bool = Field(False, description="run a file named like a mate (S1_R1) alone, without waiting for R2")
    force: bool = Field(False, description="run even when a run with the same inputs and parameters succeeded")


def parse_parameters(document: bytes | str | dict | None, *, source: str) -> RunParameters:
    """Parse and validate a parameters document; ``source`` names it in the error."""
    if document is None:
        return RunParameters()
    try:
        data = json.loads(document) if isinstance(document, (bytes, str)) else document
    except json.JSONDecodeError as exc:
        raise InvalidParameters(f"{source} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                                code="PARAMS_NOT_JSON", details={"source": source}) from None
    if not isinstance(data, dict):
        raise InvalidParameters(f"{source} must hold a JSON object", code="PARAMS_NOT_OBJECT",
                                details={"source": source})
    try:
        return RunParameters.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())
        raise InvalidParameters(f"{source}: {problems}", code="PARAMS_SCHEMA",
                                details={"source": source}) from None

"""RecordFailure: the Catch branch's error document, errors/<sample>/<run_id>/error.json.

Step Functions hands the caught error as {"Error": name, "Cause": text}. For a Lambda error the Cause is the
runtime's JSON (errorType, errorMessage, stackTrace); for our named errors errorMessage is itself the JSON of
``HelixflowError.to_dict()``, so the code and the position survive the trip.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from helixflow.errors import HelixflowError, InvalidKey
from helixflow.pipeline.keys import (FASTQ_SUFFIXES, bounded_component, errors_prefix, run_work_prefix, safe_component,
                                     sample_and_mate)
from helixflow.pipeline import runs
from helixflow.pipeline.stage_jobs import cancel_running_jobs
from helixflow.pipeline.state import PipelineState
from helixflow.pipeline.storage import delete_prefix

_UNRESOLVED_SAMPLE = "_unresolved"
_POSITION_FIELDS = ("file", "record", "line", "byte_offset")


def describe_failure(failure: dict[str, Any]) -> dict[str, Any]:
    error = failure.get("Error", "States.Runtime")
    cause_text = failure.get("Cause") or ""
    document: dict[str, Any] = {"error": error, "code": error, "message": cause_text}
    try:
        cause = json.loads(cause_text)
    except (json.JSONDecodeError, TypeError):
        return document
    if not isinstance(cause, dict):
        return document
    message = cause.get("errorMessage", cause_text)
    document["message"] = message
    try:
        named = json.loads(message)
    except (json.JSONDecodeError, TypeError):
        named = None
    if isinstance(named, dict) and named.get("error") == error:
        document.update({k: v for k, v in named.items() if k in ("code", "message", "details", *_POSITION_FIELDS)})
    elif cause.get("stackTrace"):  # an unexpected error: the trace is what a maintainer needs
        document["stack_trace"] = cause["stackTrace"]
    return document


def record_failure(*, s3: Any, bucket: str, state: dict[str, Any], runs_table: Any = None) -> dict[str, Any]:
    """Write error.json for a failed run and return it. ``state`` is the execution's state at the Catch.

    Before writing, the run's cluster jobs still running are cancelled and its scratch under work/ is removed;
    either step failing is recorded in the document rather than losing the error itself. The state is read as a
    plain dict first: a failure recorder must work on whatever state the failing stage left."""
    run_id = state["run_id"]
    request = state.get("sample") or {}
    sample = request.get("sample") or _sample_hint(state)
    document = describe_failure(state.get("failure", {}))
    document.update({"sample": sample, "run_id": run_id, "execution_arn": state.get("execution_arn"),
                     "recorded": datetime.now(timezone.utc).isoformat()})
    identity = request.get("identity")
    # Marked first: a writer that outlived its failed Map checks the mark after writing (runs.has_failed), so
    # what the cleanup below does not list is withdrawn by its writer. A failed identity never blocks a re-run;
    # its checkpoints stay.
    if runs_table is not None and identity:
        runs.finish(runs_table, identity=identity, run_id=run_id, status="FAILED")
    document["cleanup"] = _clean_up(s3, bucket, state, sample, run_id)
    for field in _POSITION_FIELDS:
        document.setdefault(field, None)
    key = errors_prefix(sample, run_id) + "error.json"
    s3.put_object(Bucket=bucket, Key=key, Body=(json.dumps(document, indent=2) + "\n").encode(),
                  ContentType="application/json")
    return {"error_key": key, **document}


def _clean_up(s3: Any, bucket: str, state: dict[str, Any], sample: str, run_id: str) -> dict[str, Any]:
    outcome: dict[str, Any] = {"cancelled_jobs": [], "scratch_objects_removed": 0}
    try:
        outcome["cancelled_jobs"] = cancel_running_jobs(PipelineState.model_validate(state))
    except (ValidationError, HelixflowError) as exc:
        outcome["cancel_error"] = str(exc)[:500]
    if sample != _UNRESOLVED_SAMPLE:
        outcome["scratch_objects_removed"] = delete_prefix(s3, bucket, run_work_prefix(sample, run_id))
    return outcome


def _sample_hint(state: dict[str, Any]) -> str:
    """The sample folder when ResolveSample itself failed: the file name's stem when it is a safe segment (bounded
    in length, so a 1,000-character name cannot push the error key past S3's limit), else ``_unresolved`` (an
    unsafe name must not become a path)."""
    key = ((state.get("event") or {}).get("detail") or {}).get("object", {}).get("key", "")
    name = key.rsplit("/", 1)[-1]
    stem = next((name[: -len(s)] for s in FASTQ_SUFFIXES if name.endswith(s)), name)
    try:
        return bounded_component(safe_component(sample_and_mate(stem)[0]))
    except InvalidKey:
        return _UNRESOLVED_SAMPLE


def bucket_of(state: dict[str, Any]) -> str:
    request = state.get("sample") or {}
    return request.get("bucket") or state["event"]["detail"]["bucket"]["name"]

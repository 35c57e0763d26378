"""Publish: pipeline_info/ and, last, manifest.json.

The manifest is the commit point of a run: a consumer that sees results/<sample>/<run_id>/manifest.json can
trust every file it lists (size and sha256 checked at publish time). If an output a stage promised is
missing, nothing is written and the run fails with IncompleteResults.
"""

from __future__ import annotations

import csv
import io
import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Iterable

from helixflow import __version__
from helixflow.errors import IncompleteResults
from helixflow.pipeline.state import SampleRequest
from helixflow.pipeline.storage import list_objects, sha256_of_object

MANIFEST_NAME = "manifest.json"
# Distributions whose versions a reader of the results needs to reproduce them.
_REPORTED_DISTRIBUTIONS = ("aws-lambda-powertools", "boto3", "numpy", "numba", "pyarrow", "isal", "pydantic")
TRACE_COLUMNS = ("task_id", "name", "status", "attempts", "submit", "start", "complete", "duration_ms")


def software_versions() -> dict[str, dict[str, str]]:
    versions = {"helixflow": __version__, "python": platform.python_version()}
    for dist in _REPORTED_DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return {"helixflow": versions}


def render_yaml(versions: dict[str, dict[str, str]]) -> str:
    """software_versions.yml in nf-core's layout (process -> tool -> version); values are quoted strings."""
    lines = []
    for process, tools in versions.items():
        lines.append(f"{process}:")
        lines.extend(f"  {tool}: {json.dumps(version)}" for tool, version in tools.items())
    return "\n".join(lines) + "\n"


def trace_rows(history_events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per Task state visit, from a Step Functions execution history (Nextflow-trace-like)."""
    rows: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for event in history_events:
        kind = event["type"]
        stamp = event["timestamp"]
        if kind == "TaskStateEntered":
            current = {"task_id": len(rows) + 1, "name": event["stateEnteredEventDetails"]["name"],
                       "status": "RUNNING", "attempts": 0, "submit": stamp, "start": None, "complete": None}
            rows.append(current)
        elif current is None:
            continue
        elif kind in ("TaskScheduled", "LambdaFunctionScheduled"):
            current["attempts"] += 1
        elif kind in ("TaskStarted", "LambdaFunctionStarted") and current["start"] is None:
            current["start"] = stamp
        elif kind in ("TaskSucceeded", "LambdaFunctionSucceeded"):
            current["status"] = "COMPLETED"
        elif kind in ("TaskFailed", "LambdaFunctionFailed", "TaskTimedOut", "LambdaFunctionTimedOut"):
            current["status"] = "FAILED"
        elif kind == "TaskStateExited":
            current["complete"] = stamp
            current = None
    for row in rows:
        end, begin = row["complete"], row["start"] or row["submit"]
        row["duration_ms"] = int((end - begin).total_seconds() * 1000) if end and begin else ""
        for column in ("submit", "start", "complete"):
            row[column] = row[column].isoformat() if row[column] else ""
    return rows


def render_trace(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TRACE_COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def publish_run(*, s3: Any, request: SampleRequest, stages: dict[str, Any], history_events: Iterable[dict],
                expected_outputs: Iterable[str] = ()) -> dict[str, Any]:
    """Write pipeline_info/ and the manifest for one run; return the manifest.

    ``request`` is ResolveSample's sample request, ``stages`` what the earlier stages returned (validation
    report, later Phase 1/2 summaries), ``expected_outputs`` paths relative to the run's results prefix that
    earlier stages wrote and must be present."""
    bucket, prefix = request.bucket, request.results_prefix
    present = {obj["Key"][len(prefix):] for obj in list_objects(s3, bucket, prefix)}
    missing = sorted(set(expected_outputs) - present)
    if missing:
        raise IncompleteResults(f"{len(missing)} expected output(s) missing under {prefix}: {', '.join(missing)}",
                                code="MISSING_OUTPUTS", details={"missing": missing})

    inputs = [item.model_dump() for item in request.inputs]
    params = {"sample": request.sample, "run_id": request.run_id, "inputs": inputs, "params": request.params,
              "stages": stages}
    info = {
        "pipeline_info/params.json": json.dumps(params, indent=2, sort_keys=True, default=str) + "\n",
        "pipeline_info/trace.tsv": render_trace(trace_rows(history_events)),
        "pipeline_info/software_versions.yml": render_yaml(software_versions()),
    }
    for name, text in info.items():
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=text.encode(), ContentType=_content_type(name))

    files = []
    for obj in sorted(list_objects(s3, bucket, prefix), key=lambda o: o["Key"]):
        relative = obj["Key"][len(prefix):]
        if relative == MANIFEST_NAME:
            continue
        files.append({"path": relative, "size": obj["Size"], "sha256": sha256_of_object(s3, bucket, obj["Key"])})
    manifest = {
        "sample": request.sample, "run_id": request.run_id, "bucket": bucket, "prefix": prefix,
        "created": datetime.now(timezone.utc).isoformat(), "inputs": inputs, "files": files,
    }
    s3.put_object(Bucket=bucket, Key=prefix + MANIFEST_NAME, ContentType="application/json",
                  Body=(json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def _content_type(name: str) -> str:
    return {"json": "application/json", "tsv": "text/tab-separated-values", "yml": "application/yaml"}[
        name.rsplit(".", 1)[-1]]

"""Publish: pipeline_info/ and, last, manifest.json.

The manifest is the commit point of a run: a consumer that sees results/<sample>/<run_id>/manifest.json can
trust every file it lists (size and sha256 checked at publish time). If an output a stage promised is
missing, nothing is written and the run fails with IncompleteResults.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import datetime, timezone
from typing import Any, Iterable

from helixflow.errors import IncompleteResults
from helixflow.pipeline import cost as costing
from helixflow.pipeline.jobs import JobHandle
from helixflow.pipeline.state import PipelineState, SampleRequest
from helixflow.pipeline import runs
from helixflow.pipeline.keys import run_work_prefix
from helixflow.pipeline.storage import copy, delete_prefix, list_objects, sha256_of_object
from helixflow.versions import PUBLISH, environment_versions

MANIFEST_NAME = "manifest.json"
# native_id and queue are a cluster job's own id and queue (Slurm partition); empty for Step Functions states.
TRACE_COLUMNS = ("task_id", "name", "type", "status", "attempts", "items", "native_id", "queue", "submit", "start",
                 "complete", "duration_ms")


# The stage results (keys of ``stages``) that carry the versions of their environment, by process name.
VERSIONED_STAGES = {"validation": "Validate", "phase1": "Phase1", "phase2": "Phase2", "report": "BuildReport"}
# What pipeline_info/params.json records of each stage: its result, the placement and any cluster job.
RECORDED_STAGES = ("validation", "plan", "phase1_job", "phase1", "plan2", "phase2_job", "phase2", "report")


def recorded_stages(state: PipelineState) -> dict[str, Any]:
    return state.model_dump(include=set(RECORDED_STAGES), exclude_none=True)


def reported_versions(stages: dict[str, Any]) -> dict[str, dict[str, str]]:
    """process -> tool -> version for every stage that reported its environment."""
    return {process: stages[stage]["versions"] for stage, process in VERSIONED_STAGES.items()
            if stages.get(stage, {}).get("versions")}


def software_versions(stages: dict[str, Any]) -> dict[str, dict[str, str]]:
    """process -> tool -> version for every stage that reported its environment, and Publish's own."""
    return {**reported_versions(stages), "Publish": environment_versions(PUBLISH)}


def render_yaml(versions: dict[str, dict[str, str]]) -> str:
    """software_versions.yml in nf-core's layout (process -> tool -> version); values are quoted strings."""
    lines = []
    for process, tools in versions.items():
        lines.append(f"{process}:")
        lines.extend(f"  {tool}: {json.dumps(version)}" for tool, version in tools.items())
    return "\n".join(lines) + "\n"


# What each history event means for the row of the state it belongs to. Task states and the (Distributed)
# Map state do the work of a run; Pass, Choice, Wait, Succeed and Fail states get no row.
_ENTERED = {"TaskStateEntered": "Task", "MapStateEntered": "Map"}
_EXITED = {"TaskStateExited", "MapStateExited"}
_SCHEDULED = {"TaskScheduled", "LambdaFunctionScheduled", "MapRunStarted"}  # one per attempt (Retry re-runs)
_STARTED = {"TaskStarted", "LambdaFunctionStarted", "MapRunStarted"}
_SUCCEEDED = {"TaskSucceeded", "LambdaFunctionSucceeded", "MapRunSucceeded", "MapStateSucceeded"}
_FAILED = {"TaskFailed", "LambdaFunctionFailed", "TaskTimedOut", "LambdaFunctionTimedOut", "MapRunFailed",
           "MapRunAborted", "MapStateFailed", "MapStateAborted"}


def trace_rows(history_events: Iterable[dict[str, Any]], *, item_counts: dict[str, int] | None = None,
               running_until: datetime | None = None, jobs: Iterable[JobHandle] = ()) -> list[dict[str, Any]]:
    """One row per visit of a state that does work (Task, Map), from a Step Functions execution history
    (Nextflow-trace-like).

    ``item_counts`` gives a Map state's item count by state name where the history cannot: a Distributed Map
    with an ItemReader has no count in its events (its MapStateStarted says length 0). ``running_until`` is
    for the state that reads its own execution's history (Publish): its row is still open in that history, so
    the caller says when its work ended, and the row reads COMPLETED at that time instead of RUNNING forever.
    """
    rows: list[dict[str, Any]] = []
    owner: dict[int, dict[str, Any]] = {}  # event id -> the row it belongs to (via previousEventId)
    last_open: dict[str, Any] | None = None
    for event in history_events:
        kind, stamp = event["type"], _timestamp(event["timestamp"])
        if kind in _ENTERED:
            row = {"task_id": len(rows) + 1, "name": event["stateEnteredEventDetails"]["name"],
                   "type": _ENTERED[kind], "status": "RUNNING", "attempts": 0, "items": "", "submit": stamp,
                   "start": None, "complete": None}
            rows.append(row)
            last_open = row
        else:
            row = owner.get(event.get("previousEventId")) if event.get("previousEventId") else last_open
            if row is None:
                continue
        owner[event.get("id", -1)] = row
        if kind in _SCHEDULED:
            row["attempts"] += 1
        if kind in _STARTED and row["start"] is None:
            row["start"] = stamp
        if kind == "MapStateStarted" and event.get("mapStateStartedEventDetails", {}).get("length"):
            row["items"] = event["mapStateStartedEventDetails"]["length"]
        if kind in _SUCCEEDED:  # the last attempt decides: a retried task that then succeeds is COMPLETED
            row["status"] = "COMPLETED"
        elif kind in _FAILED:
            row["status"] = "FAILED"
        elif kind in _EXITED:
            row["complete"] = stamp
            if last_open is row:
                last_open = None
    for row in rows:
        if row["type"] == "Map" and row["items"] == "" and item_counts and row["name"] in item_counts:
            row["items"] = item_counts[row["name"]]
    if running_until is not None and rows and rows[-1]["complete"] is None and rows[-1]["status"] == "RUNNING":
        rows[-1]["status"], rows[-1]["complete"] = "COMPLETED", running_until
    for handle in jobs:  # each cluster job right after the state that submitted it
        at = next((i for i, row in enumerate(rows) if row["name"] == f"Submit{handle.stage.title()}Job"), len(rows) - 1)
        rows.insert(at + 1, _job_row(handle))
    for task_id, row in enumerate(rows, start=1):
        row["task_id"] = task_id
        row.setdefault("native_id", "")
        row.setdefault("queue", "")
    for row in rows:
        end, begin = row["complete"], row["start"] or row["submit"]
        row["duration_ms"] = int((end - begin).total_seconds() * 1000) if end and begin else ""
        for column in ("submit", "start", "complete"):
            row[column] = row[column].isoformat() if row[column] else ""
    return rows


_JOB_STATUS = {"SUCCEEDED": "COMPLETED", "FAILED": "FAILED", "CANCELLED": "FAILED"}


def execution_history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution so far (a state reading its own execution's history)."""
    return [event for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
            for event in page["events"]]


def trace_inputs(state: PipelineState) -> dict[str, Any]:
    """What trace_rows needs of the execution state besides the history: the Distributed Map's item count,
    which its history lacks (the ItemReader makes MapStateStarted say 0; the chunk plan has it, and the map
    lets the run go on only when every chunk succeeded), and the cluster jobs' handles."""
    return {"item_counts": {"ProcessChunks": state.chunks.chunk_count} if state.chunks else None,
            "jobs": [job for job in (state.phase1_job, state.phase2_job) if job]}


def _job_row(handle: JobHandle) -> dict[str, Any]:
    """A cluster job as the cluster saw it: its own id, queue (Slurm partition), and queue/run times (submit ->
    start is the time it waited in the queue), not the Step Functions states that followed it."""
    details = handle.details

    def when(key: str) -> datetime | None:
        value = details.get(key)
        if isinstance(value, (int, float)) and value:  # the Ray Jobs API reports epoch milliseconds
            return datetime.fromtimestamp(value / 1000, timezone.utc)
        return _timestamp(value) if value else None

    return {"task_id": 0, "name": f"{handle.stage.title()}Job", "type": f"{handle.backend} job",
            "status": _JOB_STATUS.get(handle.state, "RUNNING"), "attempts": 1, "items": "",
            "native_id": handle.job_id, "queue": details.get("partition") or "",
            "submit": when("submit_time") or _timestamp(handle.submitted), "start": when("start_time"),
            "complete": when("end_time")}


def _timestamp(value: datetime | str) -> datetime:
    """boto3 gives datetimes; a history saved as JSON (the CLI's, or tests/events/) gives ISO strings."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def render_trace(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TRACE_COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def publish_run(*, s3: Any, request: SampleRequest, stages: dict[str, Any], history_events: Iterable[dict],
                expected_outputs: Iterable[str] = (), staged: dict[str, list[str]] | None = None,
                item_counts: dict[str, int] | None = None, jobs: Iterable[JobHandle] = (),
                functions: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """Publish one run: staged outputs, then pipeline_info/, then the manifest; return the manifest.

    ``request`` is ResolveSample's sample request, ``stages`` what the earlier stages returned (validation
    report, plan, Phase 1/2 summaries), ``staged`` maps each stage's staging prefix under work/ to the outputs
    (paths relative to the results prefix) it holds, and ``expected_outputs`` are paths that must already be
    under the results prefix; every promised file is checked before anything is written. ``item_counts`` are
    the items of Map states by name (see trace_rows). ``history_events`` is this execution's history while
    Publish runs: the trace is written last before the manifest, so Publish's own row ends when its checks and
    pipeline_info writes are done. ``functions`` are the Lambda settings per state (cost.parse_function_settings)
    that pipeline_info/cost.json prices the trace with."""
    bucket, prefix = request.bucket, request.results_prefix
    staged = staged or {}
    missing = [f"{source}{path}" for source, paths in staged.items()
               for path in sorted(set(paths) - {obj["Key"][len(source):] for obj in list_objects(s3, bucket, source)})]
    present = {obj["Key"][len(prefix):] for obj in list_objects(s3, bucket, prefix)}
    missing += sorted(set(expected_outputs) - present)
    if missing:
        raise IncompleteResults(f"{len(missing)} expected output(s) missing: {', '.join(missing[:20])}",
                                code="MISSING_OUTPUTS", details={"missing": missing[:100]})
    digests: dict[str, str | None] = {}  # path -> the sha256 its stage recorded (hashing it here reads it all)
    for source, paths in staged.items():
        for path in paths:
            digests[path] = copy(s3, bucket, source + path, prefix + path)

    inputs = [item.model_dump() for item in request.inputs]
    params = {"sample": request.sample, "run_id": request.run_id, "inputs": inputs, "params": request.params,
              "stages": stages}
    info = {
        "pipeline_info/params.json": json.dumps(params, indent=2, sort_keys=True, default=str) + "\n",
        "pipeline_info/software_versions.yml": render_yaml(software_versions(stages)),
    }
    history_events, jobs = list(history_events), list(jobs)
    rows = trace_rows(history_events, item_counts=item_counts, running_until=datetime.now(timezone.utc), jobs=jobs)
    info[costing.COST_NAME] = json.dumps(run_cost(rows, history_events, stages, jobs, functions), indent=2) + "\n"
    info["pipeline_info/trace.tsv"] = render_trace(rows)  # last: Publish's own row ends with its writes
    for name, text in info.items():
        digests[name] = _put_text(s3, bucket, prefix + name, text)

    files = []
    for obj in sorted(list_objects(s3, bucket, prefix), key=lambda o: o["Key"]):
        relative = obj["Key"][len(prefix):]
        if relative == MANIFEST_NAME:
            continue
        files.append({"path": relative, "size": obj["Size"],
                      "sha256": digests.get(relative) or sha256_of_object(s3, bucket, obj["Key"])})
    manifest = {
        "sample": request.sample, "run_id": request.run_id, "bucket": bucket, "prefix": prefix,
        "created": datetime.now(timezone.utc).isoformat(), "inputs": inputs, "files": files,
    }
    s3.put_object(Bucket=bucket, Key=prefix + MANIFEST_NAME, ContentType="application/json",
                  Body=(json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def run_cost(rows: list[dict[str, Any]], history_events: list[dict[str, Any]], stages: dict[str, Any],
             jobs: list[JobHandle], functions: dict[str, dict[str, int]] | None) -> dict[str, Any]:
    """The cost document (pipeline_info/cost.json) of a run's trace so far."""
    return costing.cost_from_trace(
        rows, functions=functions or {}, transitions=costing.count_transitions(history_events),
        job_nodes=_job_nodes(stages, jobs), job_placements={f"{job.stage.title()}Job": job.placement for job in jobs})


def _job_nodes(stages: dict[str, Any], jobs: list[JobHandle]) -> dict[str, int]:
    """Nodes each cluster job held: Phase 2's from its planned ranks; a Ray job is counted as one worker (the
    Jobs API does not say how many the autoscaler gave it)."""
    nodes = {}
    for job in jobs:
        plan = stages.get("plan2", {}).get("phase2", {})
        if job.stage == "phase2" and plan.get("ranks"):
            nodes["Phase2Job"] = costing.nodes_for(job.placement, plan["ranks"], costing.load_prices(),
                                                   plan.get("cpus_per_rank", 1))
    return nodes


def complete_run(*, s3: Any, runs_table: Any, request: SampleRequest) -> int:
    """After the manifest: the identity is done (a later identical upload reuses this run) and its scratch and
    checkpoints go; returns the number of scratch objects removed."""
    runs.finish(runs_table, identity=request.identity, run_id=request.run_id, status="SUCCEEDED")
    return (delete_prefix(s3, request.bucket, runs.checkpoint_root(request.sample, request.identity))
            + delete_prefix(s3, request.bucket, run_work_prefix(request.sample, request.run_id)))


def _put_text(s3: Any, bucket: str, key: str, text: str) -> str:
    body = text.encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=_content_type(key))
    return hashlib.sha256(body).hexdigest()


def _content_type(name: str) -> str:
    return {"json": "application/json", "tsv": "text/tab-separated-values", "yml": "application/yaml"}[
        name.rsplit(".", 1)[-1]]

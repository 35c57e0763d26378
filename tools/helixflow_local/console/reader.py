"""What the console shows, read through the AWS APIs of one endpoint (Step Functions, S3, CloudWatch Logs):
the local stack's moto server, or AWS itself with the user's credentials. Read-only: only List/Describe/Get
calls."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from helixflow.pipeline.keys import parse_incoming_key
from helixflow_local.asl import Machine, read_machine
from helixflow_local.history import RunHistory, duration_s, read_history
from helixflow_local.progress import MapItems

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
LOG_LINES = 500  # the most log lines one execution's page shows


@dataclass
class ExecutionRow:
    name: str
    arn: str
    status: str
    started: datetime
    stopped: datetime | None
    sample: str
    placement: str
    current: str | None = None  # the state a running execution is in

    def duration_s(self, now: datetime) -> float | None:
        return duration_s(self.started, self.stopped, now)


@dataclass
class MapRun:
    """One Distributed Map run of the execution (ListMapRuns + DescribeMapRun): its items and child executions."""

    arn: str
    status: str
    started: datetime | None
    stopped: datetime | None
    max_concurrency: int
    items: MapItems
    executions: MapItems  # the child executions' counts (one per item without an ItemBatcher)
    children: list[dict[str, Any]] | None  # ListExecutions(mapRunArn); None where the endpoint does not offer it


@dataclass
class LogLines:
    lines: list[dict[str, Any]]
    missing: list[str]  # log groups the endpoint does not have


class Reader:
    def __init__(self, clients: Any, state_machine_arn: str, bucket: str, *, lists_map_children: bool = True,
                 job_logs: Any = None) -> None:
        """``clients(service)`` returns a boto3 client for the endpoint (StackInfo.client, or boto3.client).
        ``lists_map_children``: the endpoint's ListExecutions takes a mapRunArn (AWS does; moto 5.2 ignores it and
        fails without a state machine). ``job_logs``: a cluster job's log tail (helixflow_local.console.job_logs),
        None where the console knows no cluster."""
        self.lists_map_children = lists_map_children
        self.job_logs = job_logs
        self.sfn = clients("stepfunctions")
        self.s3 = clients("s3")
        self.logs = clients("logs")
        self.state_machine_arn = state_machine_arn
        self.bucket = bucket
        self._finished: dict[str, tuple[RunHistory, ExecutionRow]] = {}  # a finished execution never changes
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the state machine
    def definition(self) -> str:
        return self.sfn.describe_state_machine(stateMachineArn=self.state_machine_arn)["definition"]

    def machine(self) -> Machine:
        return read_machine(json.loads(self.definition()))

    # ------------------------------------------------------------------ executions
    def execution_arn(self, name: str) -> str:
        machine = self.state_machine_arn.split(":stateMachine:")
        return f"{machine[0]}:execution:{machine[1]}:{name}"

    def executions(self, status: str | None = None, sample: str | None = None) -> list[ExecutionRow]:
        arguments = {"stateMachineArn": self.state_machine_arn, **({"statusFilter": status} if status else {})}
        rows = []
        for page in self.sfn.get_paginator("list_executions").paginate(**arguments):
            for listed in page["executions"]:
                row = self._row(listed)
                if not sample or row.sample == sample:
                    rows.append(row)
        return sorted(rows, key=lambda r: r.started, reverse=True)

    def _row(self, listed: dict[str, Any]) -> ExecutionRow:
        arn = listed["executionArn"]
        with self._lock:
            cached = self._finished.get(arn)
        if cached:
            return cached[1]
        history = self.history(arn)
        return self._summary(listed, history)

    def _summary(self, listed: dict[str, Any], history: RunHistory) -> ExecutionRow:
        placement = " · ".join(f"{phase} {where}" for phase, where in sorted(history.placements.items()))
        row = ExecutionRow(name=listed["name"], arn=listed["executionArn"], status=listed["status"],
                           started=listed["startDate"], stopped=listed.get("stopDate"),
                           sample=history.sample or self._sample_from_input(listed["executionArn"]) or "-",
                           placement=placement or "-", current=history.current)
        if row.status in TERMINAL and history.status in TERMINAL:
            with self._lock:
                self._finished[row.arn] = (history, row)
        return row

    def _sample_from_input(self, arn: str) -> str | None:
        """Before ResolveSample answered (or for an execution that ended before it), the uploaded key's sample."""
        try:
            event = json.loads(self.sfn.describe_execution(executionArn=arn).get("input") or "{}")
            return parse_incoming_key(event["detail"]["object"]["key"]).sample
        except Exception:  # noqa: BLE001 - a key the pipeline rejects has no sample; the list shows "-"
            return None

    def describe(self, name: str) -> dict[str, Any]:
        return self.sfn.describe_execution(executionArn=self.execution_arn(name))

    def events(self, arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for page in self.sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            events.extend(page["events"])
        return events

    def history(self, arn: str) -> RunHistory:
        with self._lock:
            cached = self._finished.get(arn)
        return cached[0] if cached else read_history(self.events(arn))

    def map_items(self, history: RunHistory) -> MapItems | None:
        if not history.map_run_arn:
            return None
        return MapItems.from_counts(self.sfn.describe_map_run(mapRunArn=history.map_run_arn)["itemCounts"])

    def map_runs(self, execution_arn: str) -> list[MapRun]:
        runs = []
        for listed in self.sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", []):
            described = self.sfn.describe_map_run(mapRunArn=listed["mapRunArn"])
            runs.append(MapRun(arn=listed["mapRunArn"], status=described["status"],
                               started=described.get("startDate"), stopped=described.get("stopDate"),
                               max_concurrency=described.get("maxConcurrency", 0),
                               items=MapItems.from_counts(described["itemCounts"]),
                               executions=MapItems.from_counts(described.get("executionCounts") or {}),
                               children=self._map_children(listed["mapRunArn"])))
        return runs

    def _map_children(self, map_run_arn: str) -> list[dict[str, Any]] | None:
        """The map run's child executions (name, status), as AWS lists them. moto 5.2's ListExecutions ignores
        mapRunArn and wants a state machine: None, and the page says the endpoint does not list them."""
        if not self.lists_map_children:
            return None
        try:
            listed = self.sfn.list_executions(mapRunArn=map_run_arn, maxResults=100)["executions"]
        except ClientError:
            return None
        return [{"name": e["name"], "status": e["status"], "started": e.get("startDate"),
                 "stopped": e.get("stopDate")} for e in listed]

    # ------------------------------------------------------------------ what the run wrote
    def manifest(self, history: RunHistory) -> dict[str, Any] | None:
        return self._json(f"{history.results_prefix}manifest.json") if history.results_prefix else None

    def error_document(self, history: RunHistory) -> dict[str, Any] | None:
        return self._json(f"{history.errors_prefix}error.json") if history.errors_prefix else None

    def _json(self, key: str) -> dict[str, Any] | None:
        body = self.object(key)
        return json.loads(body) if body is not None else None

    def object(self, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "AccessDenied"):
                return None
            raise

    # ------------------------------------------------------------------ logs
    def log_lines(self, history: RunHistory, run_id: str, definition: str) -> LogLines:
        """The lines with this run's id in the log groups of the Lambdas the definition invokes
        (``/aws/lambda/<function>``), oldest first."""
        lines: list[dict[str, Any]] = []
        missing = []
        start = int(history.started.timestamp() * 1000) if history.started else 0
        for function in lambda_functions(json.loads(definition)):
            group = f"/aws/lambda/{function}"
            try:
                pages = self.logs.get_paginator("filter_log_events").paginate(
                    logGroupName=group, filterPattern=json.dumps(run_id), startTime=start)
                for page in pages:
                    for event in page["events"]:
                        lines.append({"group": group, "function": function, "timestamp": event["timestamp"],
                                      "message": event["message"].rstrip("\n")})
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
                missing.append(group)
        lines.sort(key=lambda line: line["timestamp"])
        return LogLines(lines=lines[-LOG_LINES:], missing=missing)


def lambda_functions(definition: dict[str, Any]) -> list[str]:
    """The function names the definition's lambda:invoke tasks call (from their FunctionName ARN or name)."""
    names: list[str] = []

    def walk(states: dict[str, Any]) -> None:
        for state in states.values():
            function = (state.get("Parameters") or {}).get("FunctionName")
            if isinstance(function, str):
                name = function.split(":function:")[-1].split(":")[0]
                if name not in names:
                    names.append(name)
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                walk(processor["States"])
            for branch in state.get("Branches", []):
                walk(branch["States"])

    walk(definition["States"])
    return names


def now() -> datetime:
    return datetime.now(timezone.utc)

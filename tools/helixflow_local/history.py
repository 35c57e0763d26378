"""What an execution history says about a run: each state's status, the current state, the cluster jobs, where
the results go. One reading of Step Functions' ``GetExecutionHistory`` events (oldest first, as every page of
it comes back) shared by the CLI's progress and the console.

Pure functions over the events' dicts, as boto3 returns them (``timestamp`` a datetime) or as saved to JSON
(``timestamp`` an ISO string).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The statuses a state can have in one execution (the console colours each).
NOT_RUN, RUNNING, SUCCEEDED, FAILED, CAUGHT = "not run", "running", "succeeded", "failed", "caught"
STATUSES = (NOT_RUN, RUNNING, SUCCEEDED, FAILED, CAUGHT)
# Events that say a task's attempt failed, and where their error/cause live.
_FAILURE_EVENTS = {
    "TaskFailed": "taskFailedEventDetails", "TaskTimedOut": "taskTimedOutEventDetails",
    "TaskSubmitFailed": "taskSubmitFailedEventDetails", "TaskStartFailed": "taskStartFailedEventDetails",
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "LambdaFunctionTimedOut": "lambdaFunctionTimedOutEventDetails",
    "LambdaFunctionScheduleFailed": "lambdaFunctionScheduleFailedEventDetails",
    "LambdaFunctionStartFailed": "lambdaFunctionStartFailedEventDetails",
    "MapRunFailed": "mapRunFailedEventDetails", "MapStateFailed": None, "ParallelStateFailed": None,
}
_END_EVENTS = {
    "ExecutionSucceeded": ("SUCCEEDED", "executionSucceededEventDetails"),
    "ExecutionFailed": ("FAILED", "executionFailedEventDetails"),
    "ExecutionAborted": ("ABORTED", "executionAbortedEventDetails"),
    "ExecutionTimedOut": ("TIMED_OUT", "executionTimedOutEventDetails"),
}


@dataclass
class StateRun:
    """One state in one execution (its last visit; a poll loop enters the same state many times)."""

    name: str
    status: str
    entered: datetime
    exited: datetime | None = None
    visits: int = 1
    attempts: int = 0  # task attempts in the last visit (1 + retries)
    error: str | None = None
    cause: str | None = None
    input: str | None = None
    output: str | None = None


@dataclass
class Job:
    """A cluster job as the last Submit/Poll task reported it (the job seam's payload)."""

    stage: str
    backend: str
    job_id: str
    state: str
    native_state: str | None = None
    polls: int = 0
    details: dict[str, Any] = field(default_factory=dict)  # the backend's (partition, nodes, run time, exit code)
    placement: str = ""
    work_prefix: str = ""  # the job's scratch under work/ (where a PCS job's log tail lands)


@dataclass
class RunHistory:
    started: datetime | None = None
    stopped: datetime | None = None
    status: str = "RUNNING"
    error: str | None = None
    cause: str | None = None
    states: dict[str, StateRun] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)  # names, in the order states were first finished
    jobs: dict[str, Job] = field(default_factory=dict)  # by stage (phase1, phase2)
    map_run_arn: str | None = None
    map_state: str | None = None
    sample: str | None = None
    results_prefix: str | None = None
    errors_prefix: str | None = None
    placements: dict[str, str] = field(default_factory=dict)  # phase1/phase2 -> lambda|ray|slurm-cpu|off...
    waiting_for_mate: bool = False  # a first mate's execution: it waits for the second, which runs the sample
    events: int = 0

    @property
    def current(self) -> str | None:
        """The state the execution is in: the last one entered and not left."""
        running = [s for s in self.states.values() if s.status == RUNNING]
        return max(running, key=lambda s: s.entered).name if running else None


def timestamp(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _payload(output: str | None) -> dict[str, Any]:
    """The Lambda's returned payload inside a lambda:invoke task's output ({"StatusCode", "Payload"})."""
    try:
        document = json.loads(output or "{}")
    except ValueError:
        return {}
    payload = document.get("Payload", document) if isinstance(document, dict) else {}
    return payload if isinstance(payload, dict) else {}


def read_history(events: list[dict[str, Any]]) -> RunHistory:
    history = RunHistory(events=len(events))
    current: StateRun | None = None
    for event in events:
        kind, when = event["type"], timestamp(event["timestamp"])
        if kind == "ExecutionStarted":
            history.started = when
        elif kind.endswith("StateEntered"):
            details = event["stateEnteredEventDetails"]
            previous = history.states.get(details["name"])
            current = StateRun(details["name"], RUNNING, when, visits=(previous.visits + 1 if previous else 1),
                               input=details.get("input"))
            history.states[current.name] = current
        elif kind.endswith("StateExited"):
            details = event["stateExitedEventDetails"]
            state = history.states.get(details["name"])
            if state is None:
                continue
            state.exited, state.output = when, details.get("output")
            state.status = CAUGHT if state.error else SUCCEEDED  # an error left through a Catch; see below
            if state.name not in history.finished:
                history.finished.append(state.name)
        elif kind == "TaskScheduled" and current is not None:
            current.attempts += 1
        elif kind in _FAILURE_EVENTS and current is not None:
            details = event.get(_FAILURE_EVENTS[kind] or "", {}) or {}
            current.error = details.get("error") or current.error or kind
            current.cause = details.get("cause") or current.cause
        elif kind in ("TaskSucceeded", "LambdaFunctionSucceeded") and current is not None:
            current.error = current.cause = None  # a retry succeeded
            _read_payload(history, current.name, _payload(
                (event.get("taskSucceededEventDetails") or event.get("lambdaFunctionSucceededEventDetails") or {})
                .get("output")))
        elif kind == "MapRunStarted":
            history.map_run_arn = event["mapRunStartedEventDetails"]["mapRunArn"]
            history.map_state = current.name if current else None
        elif kind in _END_EVENTS:
            history.status, details_key = _END_EVENTS[kind]
            details = event.get(details_key, {}) or {}
            history.error, history.cause = details.get("error"), details.get("cause")
            history.stopped = when
    _settle(history)
    return history


def _read_payload(history: RunHistory, state: str, payload: dict[str, Any]) -> None:
    """What the console and the CLI show from the stages' own results: the sample and its prefixes
    (ResolveSample), placements (the plans), cluster jobs (the job seam's Submit/Poll payloads)."""
    if payload.get("status") == "waiting_for_mate":
        history.waiting_for_mate = True
    if "results_prefix" in payload:
        history.sample = payload.get("sample") if isinstance(payload.get("sample"), str) else history.sample
        history.results_prefix = payload.get("results_prefix") or history.results_prefix
        history.errors_prefix = payload.get("errors_prefix") or history.errors_prefix
    for phase in ("phase1", "phase2"):
        if isinstance(payload.get(phase), dict) and "placement" in payload[phase]:
            history.placements[phase] = payload[phase]["placement"]
    if payload.get("job_id") and payload.get("backend"):
        stage = str(payload.get("stage") or state)
        history.jobs[stage] = Job(stage=stage, backend=str(payload["backend"]), job_id=str(payload["job_id"]),
                                  state=str(payload.get("state") or ""), native_state=payload.get("native_state"),
                                  polls=int(payload.get("polls") or 0),
                                  details=payload.get("details") if isinstance(payload.get("details"), dict) else {},
                                  placement=str(payload.get("placement") or ""),
                                  work_prefix=str(payload.get("work_prefix") or ""))


def _settle(history: RunHistory) -> None:
    """Statuses once the execution's end is known. A state whose error ended the run (the same error name the
    execution failed with, through the failure branch's Catch) is ``failed``; an error a Catch handled that
    the run did not end with stays ``caught``. A state still open when the run ended: the Fail state (or an
    uncaught failure, an abort) is ``failed``, a Succeed/Pass at the end ``succeeded``."""
    if history.status == "RUNNING":
        return
    for state in history.states.values():
        if state.status == RUNNING:
            state.exited = history.stopped
            if history.status == "SUCCEEDED":
                state.status = SUCCEEDED
            else:
                state.status = FAILED
                state.error = state.error or history.error
        elif state.status == CAUGHT and history.status == "FAILED" and state.error == history.error:
            state.status = FAILED


def duration_s(start: datetime | None, end: datetime | None, now: datetime) -> float | None:
    if start is None:
        return None
    return max(0.0, ((end or now) - start).total_seconds())

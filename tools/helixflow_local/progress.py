"""What `helixflow run` shows while a run goes: one status line (current state, elapsed time, the Distributed
Map's items done/total, the cluster job's id and state) and one line per stage as it finishes. Pure functions
over a snapshot of the history, so they are tested over saved histories."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from helixflow_local.asl import Machine
from helixflow_local.history import CAUGHT, FAILED, SUCCEEDED, RunHistory, duration_s

# The state types that are a stage of the run; Pass/Choice/Wait only route or pause between them.
STAGE_TYPES = ("Task", "Map", "Parallel")
MARKS = {SUCCEEDED: "[green]✓[/green]", FAILED: "[red]✗[/red]", CAUGHT: "[yellow]↷[/yellow]"}


@dataclass(frozen=True)
class MapItems:
    done: int
    total: int
    # By status (the console shows them; the CLI's line only done/total). Failed counts timed-out and aborted too.
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0

    @classmethod
    def from_counts(cls, counts: dict[str, int]) -> MapItems:
        """DescribeMapRun's ``itemCounts``: finished is every item no longer pending or running."""
        failed = sum(counts.get(k, 0) for k in ("failed", "timedOut", "aborted"))
        return cls(done=counts.get("succeeded", 0) + failed, total=counts.get("total", 0),
                   succeeded=counts.get("succeeded", 0), failed=failed, running=counts.get("running", 0),
                   pending=counts.get("pending", 0))


@dataclass
class Snapshot:
    execution: str | None  # the execution followed; None while the upload's event has not started one
    history: RunHistory | None
    now: datetime
    map_items: MapItems | None = None


@dataclass
class Printed:
    """What the stage lines already said, so each stage and each job state is said once."""

    stages: set[str] = field(default_factory=set)
    jobs: dict[str, str] = field(default_factory=dict)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 60 else f"{int(value // 60)} min {value % 60:02.0f} s"


def status_line(snapshot: Snapshot) -> str:
    history = snapshot.history
    if snapshot.execution is None or history is None:
        return "waiting for the upload's event to start an execution"
    if history.current:
        where = history.current
    elif history.status == "RUNNING":  # between two states: one exited, the next not yet entered
        where = f"after {history.finished[-1]}" if history.finished else "starting"
    else:
        where = history.status
    parts = [f"[bold]{where}[/bold]",
             _seconds(duration_s(history.started, history.stopped, snapshot.now))]
    if snapshot.map_items is not None and history.current == history.map_state:
        parts.append(f"map items {snapshot.map_items.done}/{snapshot.map_items.total}")
    for job in history.jobs.values():
        if job.state not in ("SUCCEEDED", "FAILED", "CANCELLED"):
            parts.append(f"{job.stage} {job.backend} job {job.job_id} {job.native_state or job.state}")
    return f"{snapshot.execution}: " + " · ".join(parts)


def stage_lines(snapshot: Snapshot, machine: Machine, printed: Printed) -> list[str]:
    """Lines for the stages that finished, and the job state changes, since ``printed``; updates ``printed``."""
    history = snapshot.history
    if history is None or (history.waiting_for_mate and history.status == "RUNNING"):
        return []  # a first mate's execution only waits (its pair runs in the other); said only if it ends so
    lines = []
    looping = machine.in_loop()
    for name in history.finished:
        state = history.states[name]
        if (name in printed.stages or machine.types.get(name) not in STAGE_TYPES or name in looping
                or state.status not in MARKS):
            continue
        if state.status == CAUGHT and history.status == "RUNNING":
            continue  # whether the run ends with this error (failed) or goes on (caught) is known at its end
        printed.stages.add(name)
        took = _seconds(duration_s(state.entered, state.exited, snapshot.now))
        line = f"{MARKS[state.status]} {name}  {took}"
        if state.attempts > 1:
            line += f"  ({state.attempts} attempts)"
        if state.error:
            line += f"  [bold]{state.error}[/bold]" + (" (caught)" if state.status == CAUGHT else "")
        if name == history.map_state and snapshot.map_items is not None:
            line += f"  {snapshot.map_items.done}/{snapshot.map_items.total} items"
        lines.append(line)
    for stage, job in history.jobs.items():
        shown = job.native_state or job.state
        if printed.jobs.get(stage) != shown:
            printed.jobs[stage] = shown
            lines.append(f"  {stage} {job.backend} job {job.job_id}: {shown}")
    # A Fail state is where a failed run ends: said once, with the run's error.
    for name, state in history.states.items():
        if machine.types.get(name) == "Fail" and state.status == FAILED and name not in printed.stages:
            printed.stages.add(name)
            lines.append(f"{MARKS[FAILED]} {name}  [bold]{history.error or ''}[/bold]")
    return lines

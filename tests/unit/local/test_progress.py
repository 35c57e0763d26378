"""`helixflow run`'s progress, rendered from saved execution histories of real local runs (tests/events/)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from helixflow_local.asl import read_machine
from helixflow_local.history import CAUGHT, FAILED, SUCCEEDED, read_history, timestamp
from helixflow_local.progress import MapItems, Printed, Snapshot, stage_lines, status_line

ROOT = Path(__file__).resolve().parents[3]
MACHINE = read_machine(json.loads((ROOT / "statemachines" / "pipeline.asl.json").read_text()))


def _events(name: str) -> list[dict]:
    return json.loads((ROOT / "tests" / "events" / f"history_{name}.json").read_text())


def _snapshot(events: list[dict], *, upto: int | None = None, items: MapItems | None = None,
              after_s: float = 0.5) -> Snapshot:
    shown = events if upto is None else [e for e in events if e["id"] <= upto]
    return Snapshot(execution="run-x", history=read_history(shown), map_items=items,
                    now=timestamp(shown[-1]["timestamp"]) + timedelta(seconds=after_s))


def _first(events: list[dict], kind: str, name: str | None = None) -> int:
    return next(e["id"] for e in events if e["type"] == kind
                and (name is None or e.get("stateEnteredEventDetails", {}).get("name") == name))


def test_during_the_distributed_map_the_line_shows_the_map_state_its_items_and_the_elapsed_time():
    events = _events("demo_succeeded")
    snapshot = _snapshot(events, upto=_first(events, "MapRunStarted"), items=MapItems(done=2, total=5))
    line = status_line(snapshot)
    started, now = timestamp(events[0]["timestamp"]), snapshot.now
    assert line.startswith("run-x: [bold]ProcessChunks[/bold]")
    assert "map items 2/5" in line
    assert f"{(now - started).total_seconds():.1f} s" in line


def test_each_finished_stage_gets_one_line_and_routing_states_none():
    events = _events("demo_succeeded")
    printed = Printed()
    said: list[str] = []
    for upto in range(1, len(events) + 1):  # the CLI sees the history grow; every stage is still said once
        said += stage_lines(_snapshot(events, upto=upto, items=MapItems(1, 1)), MACHINE, printed)
    names = [line.split()[1] for line in said]
    assert names == ["ResolveSample", "Validate", "PlanPhase1", "SplitIntoChunks", "ProcessChunks", "MergeChunks",
                     "PlanPhase2", "Publish"]
    assert all(line.startswith("[green]✓[/green]") for line in said)
    assert "1/1 items" in said[names.index("ProcessChunks")]


def test_a_failed_validation_says_the_stage_and_the_error_name():
    events = _events("demo_invalid_fastq")
    history = read_history(events)
    assert (history.status, history.error) == ("FAILED", "InvalidFastq")
    assert history.states["Validate"].status == FAILED
    assert history.states["RecordFailure"].status == SUCCEEDED
    printed, lines = Printed(), []
    for upto in range(1, len(events) + 1):  # as the CLI sees it grow: Validate is said once, as failed
        lines += stage_lines(_snapshot(events, upto=upto), MACHINE, printed)
    assert [line.split()[1] for line in lines] == ["ResolveSample", "RecordFailure", "Validate", "FailRun"]
    validate = next(line for line in lines if " Validate " in line)
    assert validate.startswith("[red]✗[/red]") and "InvalidFastq" in validate
    assert lines[-1] == "[red]✗[/red] FailRun  [bold]InvalidFastq[/bold]"


def test_a_slurm_stage_shows_its_job_id_and_state_and_each_change_once():
    events = _events("slurm_phase2")
    polling = next(e["id"] for e in events if e["type"] == "TaskSucceeded"  # a poll while the job runs
                   and '"polls": 5' in e["taskSucceededEventDetails"]["output"])
    line = status_line(_snapshot(events, upto=polling))
    assert "phase2 slurm job 1 RUNNING" in line
    printed = Printed()
    said = []
    for upto in range(1, len(events) + 1):
        said += stage_lines(_snapshot(events, upto=upto), MACHINE, printed)
    jobs = [line for line in said if "slurm job" in line]
    assert jobs == ["  phase2 slurm job 1: PENDING", "  phase2 slurm job 1: RUNNING",
                    "  phase2 slurm job 1: COMPLETED"]
    stages = [line.split()[1] for line in said if line not in jobs]
    assert "PollPhase2Job" not in stages and "WaitForPhase2Job" not in stages  # the loop is the job's lines
    assert stages[-3:] == ["SubmitPhase2Job", "CollectPhase2", "Publish"]
    assert "job" not in status_line(_snapshot(events))  # a finished job leaves the line
    job = read_history(events).jobs["phase2"]
    assert (job.details["partition"], job.details["exit_code"], job.polls) == ("cpu", 0, 9)


def test_statuses_of_a_caught_error_the_run_did_not_end_with():
    events = _events("demo_succeeded")
    failed_attempt = {"id": 13.5, "type": "TaskFailed", "timestamp": events[12]["timestamp"],
                      "taskFailedEventDetails": {"error": "Lambda.TooManyRequestsException", "cause": "busy"}}
    # Validate's task failed once, was retried and succeeded: succeeded, two attempts, no error.
    retried = events[:13] + [failed_attempt, {**events[11], "id": 13.6}] + events[13:]
    validate = read_history(retried).states["Validate"]
    assert (validate.status, validate.attempts, validate.error) == (SUCCEEDED, 2, None)
    # A failure a Catch routed on from, in a run that ended with another error, stays "caught".
    history = read_history(_events("demo_invalid_fastq")[:16])
    assert history.states["Validate"].status == CAUGHT  # caught; the run has not ended yet
    assert history.current == "RecordFailure"


def test_a_first_mates_execution_says_nothing_while_it_waits_for_the_second():
    events = json.loads(json.dumps(_events("demo_succeeded")[:10]))  # through ResolveSample and RouteSample
    resolved = next(e for e in events if e["type"] == "TaskSucceeded")
    output = json.loads(resolved["taskSucceededEventDetails"]["output"])
    output["Payload"]["status"] = "waiting_for_mate"
    resolved["taskSucceededEventDetails"]["output"] = json.dumps(output)
    snapshot = _snapshot(events)
    assert snapshot.history.waiting_for_mate
    assert stage_lines(snapshot, MACHINE, Printed()) == []
    assert stage_lines(_snapshot(_events("demo_succeeded")[:10]), MACHINE, Printed())[0].split()[1] == "ResolveSample"

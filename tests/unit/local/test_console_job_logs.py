"""The console's cluster-job log fragment over a saved history of a real local run with a Slurm job
(tests/events/history_slurm_phase2.json): one section per job, its log lines escaped, and a console that reaches
no cluster saying so instead of failing the page."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.requests import Request

from helixflow_local.console.app import create_app
from helixflow_local.console.job_logs import JobLog, JobLogs
from helixflow_local.history import read_history

ROOT = Path(__file__).resolve().parents[3]
EVENTS = json.loads((ROOT / "tests" / "events" / "history_slurm_phase2.json").read_text())


class SavedRun:
    """The two Reader calls the fragment makes, answered from the saved history."""

    class sfn:  # noqa: N801 - stands where Reader keeps its boto3 client
        class exceptions:  # noqa: N801
            class ExecutionDoesNotExist(Exception):
                pass

    def __init__(self, job_logs) -> None:
        self.job_logs = job_logs

    def describe(self, name: str) -> dict:
        return {"executionArn": f"arn:aws:states:us-east-1:123456789012:execution:p:{name}"}

    def history(self, arn: str):
        return read_history(EVENTS)


class Hostile:
    """Log lines a job could print: markup must reach the browser as text."""

    def tail(self, job):
        return JobLog(["<script>alert('job')</script>", "rank 0 & done"], f"Slurm job {job.job_id}'s stderr")


def _fragment(reader) -> str:
    app = create_app(reader)
    route = next(r for r in app.routes if getattr(r, "path", "") == "/executions/{name}/job-logs")
    scope = {"type": "http", "method": "GET", "path": "/executions/run-1/job-logs", "path_params": {"name": "run-1"},
             "query_string": b"", "headers": []}
    return route.endpoint(Request(scope)).body.decode()


def test_each_job_gets_its_log_tail_escaped():
    page = _fragment(SavedRun(Hostile()))
    assert 'data-stage="phase2" data-backend="slurm"' in page and "job <b>1</b> · COMPLETED" in page
    assert "&lt;script&gt;alert(&#39;job&#39;)&lt;/script&gt;" in page and "<script>" not in page
    assert "rank 0 &amp; done" in page and "The last 2 lines · Slurm job 1&#39;s stderr" in page


def test_a_console_that_reaches_no_cluster_says_so():
    page = _fragment(SavedRun(JobLogs({})))
    assert "this console reaches no slurm cluster" in page

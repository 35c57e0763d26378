"""A job backend test double for the state machine's Submit -> Wait -> Poll -> Choice loop.

Each job follows the script of states in ``$HELIXFLOW_DOUBLE_DIR/script`` when it was submitted (e.g.
"PENDING,RUNNING,SUCCEEDED"), one per poll, its progress kept in a file beside it (SubmitJob, PollJob and
RecordFailure run in different worker processes). A Phase 1
job whose script ends in SUCCEEDED does the job's work at submit time with the same function the Ray job and
ProcessChunk use, so MergeChunks finds every part, exactly as after a real cluster job.
Selected with ``HELIXFLOW_JOB_BACKEND=tests.doubles.jobs:factory`` (helixflow.pipeline.jobs).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import boto3

from helixflow.pipeline.jobs import JobHandle, JobSpec, JobStatus, now
from helixflow.pipeline.phase1_lambda import process_chunk_item
from helixflow.pipeline.storage import get_json


class ScriptedJobs:
    name = "double"

    def __init__(self, placement: str) -> None:
        self.placement = placement
        self.directory = Path(os.environ["HELIXFLOW_DOUBLE_DIR"])

    def _path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.json"

    def submit(self, spec: JobSpec) -> JobHandle:
        job_id = f"{spec.run_id}-{spec.stage}"
        script = (self.directory / "script").read_text().strip().split(",")
        self._path(job_id).write_text(json.dumps({"polls": 0, "cancelled": False, "script": script,
                                                  "spec": spec.model_dump()}))
        if script[-1] == "SUCCEEDED" and spec.stage == "phase1":
            self._run_chunks(spec)
        return JobHandle(backend=self.name, job_id=job_id, stage=spec.stage, placement=spec.placement,
                         work_prefix=spec.work_prefix, submitted=now())

    @staticmethod
    def _run_chunks(spec: JobSpec) -> None:
        args = dict(zip(spec.arguments[::2], spec.arguments[1::2]))
        s3 = boto3.client("s3")
        request, params = json.loads(args["--request-json"]), json.loads(args["--params-json"])
        for item in get_json(s3, args["--bucket"], args["--manifest-key"]):
            with tempfile.TemporaryDirectory() as scratch:
                process_chunk_item(s3=s3, item=item, request=request, params=params, scratch=Path(scratch))

    def status(self, handle: JobHandle) -> JobStatus:
        record = json.loads(self._path(handle.job_id).read_text())
        if record["cancelled"]:
            return JobStatus(state="CANCELLED", native_state="STOPPED", message="stopped by RecordFailure")
        script = record["script"]
        state = script[min(record["polls"], len(script) - 1)]
        record["polls"] += 1
        self._path(handle.job_id).write_text(json.dumps(record))
        failed = state == "FAILED"
        return JobStatus(state=state, native_state=state, message="worker lost" if failed else "",
                         exit_code=1 if failed else None,
                         log_tail=["reading chunk 3", "RuntimeError: worker lost"] if failed else [])

    def cancel(self, handle: JobHandle) -> None:
        record = json.loads(self._path(handle.job_id).read_text())
        record["cancelled"] = True
        self._path(handle.job_id).write_text(json.dumps(record))

    def outputs(self, handle: JobHandle) -> list[str]:
        return []


def factory(placement: str) -> ScriptedJobs:
    return ScriptedJobs(placement)

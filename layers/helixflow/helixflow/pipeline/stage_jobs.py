"""Cluster stages of the pipeline over the job seam: what each stage submits, and what a poll concludes.

The SubmitJob and PollJob Lambdas serve every cluster stage (``stage`` in their payload); the state machine
loops Submit -> Wait -> Poll -> Choice on the handle they return (statemachines/pipeline.asl.json).
"""

from __future__ import annotations

import json
import os

from helixflow.errors import HelixflowError, Phase1JobFailed, Phase2JobFailed
from helixflow.pipeline import jobs
from helixflow.pipeline.jobs import JobHandle, JobSpec
from helixflow.pipeline.keys import work_prefix
from helixflow.pipeline.state import PipelineState

FAILURES: dict[str, type[HelixflowError]] = {"phase1": Phase1JobFailed, "phase2": Phase2JobFailed}
LOG_TAIL_LINES = 20


def phase1_spec(state: PipelineState) -> JobSpec:
    """The Ray job maps the chunks SplitIntoChunks planned and writes the parts MergeChunks merges."""
    request, chunks = state.require_sample(), state.chunks
    if chunks is None or state.plan is None:
        raise ValueError("Phase 1 is submitted after PlanPhase1 and SplitIntoChunks")
    return JobSpec(
        stage="phase1", placement=state.plan.phase1.placement, run_id=request.run_id, sample=request.sample,
        bucket=request.bucket, work_prefix=work_prefix(request.sample, request.run_id, "phase1"),
        module="helixflow.phase1.ray_job",
        arguments=["--bucket", chunks.bucket, "--manifest-key", chunks.manifest_key,
                   "--request-json", request.model_dump_json(), "--params-json", json.dumps(chunks.params)],
        resources={"chunks": chunks.chunk_count})


SPECS = {"phase1": phase1_spec}


def submit_stage(state: PipelineState, stage: str) -> JobHandle:
    spec = SPECS[stage](state)
    return jobs.backend_for(spec.placement).submit(spec)


def _wait_bounds() -> dict[str, int]:
    """Locally the Wait really sleeps, so the stack shortens the first interval and the cap by environment."""
    return {"first_wait": int(os.environ.get("JOB_POLL_FIRST_S", jobs.FIRST_WAIT_S)),
            "max_wait": int(os.environ.get("JOB_POLL_MAX_S", jobs.MAX_WAIT_S))}


def handle_of(state: PipelineState, stage: str) -> JobHandle:
    handle = getattr(state, f"{stage}_job")
    if handle is None:
        raise ValueError(f"the state has no {stage} job to poll")
    return handle


def poll_stage(handle: JobHandle) -> JobHandle:
    """The next handle; a job that ended unsuccessfully raises the stage's named error."""
    backend = jobs.backend_for(handle.placement)
    updated, status = jobs.poll(backend, handle, **_wait_bounds())
    if status.state in ("FAILED", "CANCELLED"):
        raise FAILURES[handle.stage](
            f"{handle.stage} job {handle.job_id} on {handle.backend} ended {status.native_state or status.state}"
            + (f": {status.message}" if status.message else ""),
            code=f"JOB_{status.state}",
            details={"job_id": handle.job_id, "backend": handle.backend, "state": status.state,
                     "native_state": status.native_state, "exit_code": status.exit_code,
                     "log_tail": status.log_tail[-LOG_TAIL_LINES:], **status.details})
    return updated


def cancel_running_jobs(state: PipelineState) -> list[str]:
    """RecordFailure stops what a failed execution left running; returns the job ids it cancelled.

    The handle in the state can be stale (a poll that raised did not write it back), so the job's own status
    decides. A cluster that cannot be reached must not keep the failure from being recorded: that is reported
    in the error document instead."""
    cancelled = []
    for handle in (state.phase1_job,):
        if handle is None or handle.state in jobs.TERMINAL_STATES:
            continue
        backend = jobs.backend_for(handle.placement)
        if backend.status(handle).state not in jobs.TERMINAL_STATES:
            backend.cancel(handle)
            cancelled.append(handle.job_id)
    return cancelled

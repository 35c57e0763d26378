"""Cluster stages of the pipeline over the job seam: what each stage submits, and what a poll concludes.

The SubmitJob and PollJob Lambdas serve every cluster stage (``stage`` in their payload); the state machine
loops Submit -> Wait -> Poll -> Choice on the handle they return (statemachines/pipeline.asl.json).
"""

from __future__ import annotations

import json
import os

from typing import Any

from helixflow.errors import HelixflowError, IncompleteResults, Phase1JobFailed, Phase2JobFailed
from helixflow.pipeline import jobs
from helixflow.pipeline.jobs import JobHandle, JobSpec
from helixflow.pipeline.keys import work_prefix
from helixflow.pipeline.state import Phase2Summary, PipelineState
from helixflow.pipeline.storage import get_json

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


def phase2_spec(state: PipelineState) -> JobSpec:
    """One MPI job (``helixflow.cluster.phase2_job``) over Phase 1's embeddings and trimmed reads, sized by
    PlanPhase2.

    ``HELIXFLOW_SLURM_JOB_ENVIRONMENT`` (a JSON object) adds to the job's environment what the deployment's
    nodes need and cannot find themselves (the local stack: its S3 endpoint and the checkout's PYTHONPATH)."""
    request = state.require_sample()
    if state.plan2 is None or state.phase1 is None:
        raise ValueError("Phase 2 is submitted after MergeChunks (or a resumed Phase 1) and PlanPhase2")
    plan = state.plan2.phase2
    if plan.placement == "off":
        raise ValueError("Phase 2 is off for this run; nothing to submit")
    prefix = work_prefix(request.sample, request.run_id, "phase2")
    arguments = ["--bucket", request.bucket, "--embeddings-key", plan.embeddings_key, "--out-prefix", prefix,
                 "--sample", request.sample]
    for key in plan.reads_keys:
        arguments += ["--reads-key", key]
    if plan.reference:
        arguments += ["--reference-key", plan.reference.key, "--reference-etag", plan.reference.etag,
                      "--reference-cache-prefix", plan.reference.cache_prefix]
    if plan.placement == "slurm-cpu":
        arguments += ["--device", "cpu"]
    environment = json.loads(os.environ.get("HELIXFLOW_SLURM_JOB_ENVIRONMENT") or "{}")
    return JobSpec(
        stage="phase2", placement=plan.placement, run_id=request.run_id, sample=request.sample,
        bucket=request.bucket, work_prefix=prefix, module="helixflow.cluster.phase2_job", arguments=arguments,
        environment={str(k): str(v) for k, v in environment.items()},
        resources={"ranks": plan.ranks, "cpus_per_rank": plan.cpus_per_rank,
                   "time_limit_minutes": plan.time_limit_minutes})


SPECS = {"phase1": phase1_spec, "phase2": phase2_spec}


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
    for handle in (state.phase1_job, state.phase2_job):
        if handle is None or handle.state in jobs.TERMINAL_STATES:
            continue
        backend = jobs.backend_for(handle.placement)
        if backend.status(handle).state not in jobs.TERMINAL_STATES:
            backend.cancel(handle)
            cancelled.append(handle.job_id)
    return cancelled


PHASE2_SUMMARY = "summary.json"


def collect_phase2(s3: Any, state: PipelineState) -> Phase2Summary:
    """The finished Phase 2 job's summary.json (written last by helixflow.cluster.phase2_job) as the stage's
    result; its outputs stay under the job's prefix until Publish copies them."""
    handle = handle_of(state, "phase2")
    bucket, key = state.require_sample().bucket, handle.work_prefix + PHASE2_SUMMARY
    try:
        document = get_json(s3, bucket, key)
    except s3.exceptions.NoSuchKey:
        raise IncompleteResults(f"the Phase 2 job {handle.job_id} succeeded but wrote no s3://{bucket}/{key}",
                                code="MISSING_OUTPUTS", details={"missing": [key], "job_id": handle.job_id}) from None
    fields = set(Phase2Summary.model_fields) - {"staged_prefix"}
    return Phase2Summary(staged_prefix=handle.work_prefix, **{k: v for k, v in document.items() if k in fields})

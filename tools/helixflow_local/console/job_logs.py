"""A cluster job's log tail for the console, read through the job seam's own adapters (the same reading a failed
job's Phase1JobFailed / Phase2JobFailed carries): Ray's Jobs API ``GET /api/jobs/{id}/logs`` with the stack's token,
the Slurm job's stderr file (locally on this machine; on PCS the tail its exit trap uploads to S3). Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helixflow.errors import HelixflowError
from helixflow.pipeline import slurm_jobs
from helixflow.pipeline.jobs import JobHandle
from helixflow.pipeline.ray_jobs import RayJobs
from helixflow_local.history import Job

JOB_LOG_LINES = 40  # what the page shows of a job's log: its last lines


@dataclass(frozen=True)
class JobLog:
    lines: list[str]
    source: str  # where the lines come from, said on the page
    problem: str | None = None  # why there are none


class JobLogs:
    def __init__(self, environment: dict[str, str]) -> None:
        """``environment``: what the stack's functions get (RAY_JOBS_URL + RAY_JOBS_TOKEN_FILE, SLURM_REST_URL...)."""
        self.environment = environment

    def tail(self, job: Job, lines: int = JOB_LOG_LINES) -> JobLog:
        placement = job.placement or {"slurm": "slurm-cpu"}.get(job.backend, "ray")
        handle = JobHandle(backend=job.backend, job_id=job.job_id, stage=job.stage, placement=placement,
                           work_prefix=job.work_prefix, submitted="", details=job.details)
        env = self.environment
        try:
            if job.backend == "ray" and env.get("RAY_JOBS_URL") and env.get("RAY_JOBS_TOKEN_FILE"):
                token = Path(env["RAY_JOBS_TOKEN_FILE"]).read_text().strip()
                return JobLog(RayJobs(env["RAY_JOBS_URL"], token).log_tail(handle, lines),
                              f"GET {env['RAY_JOBS_URL']}/api/jobs/{job.job_id}/logs")
            if job.backend == "slurm" and env.get("SLURM_REST_URL"):
                adapter = slurm_jobs.factory(placement, env)
                return JobLog(adapter.log_tail(handle, lines), f"Slurm job {job.job_id}'s stderr")
        except (HelixflowError, OSError) as exc:  # the cluster went away; the rest of the page still shows
            return JobLog([], job.backend, problem=f"{type(exc).__name__}: {exc}")
        return JobLog([], job.backend, problem=f"this console reaches no {job.backend} cluster")

"""The "ray" job adapter: a stage as a Ray job, through the Ray Jobs REST API on the cluster's head.

It runs inside Lambda, so it speaks HTTP with the standard library only (no ``ray``, no ``requests``).

Configuration (environment; template.yaml in AWS, ``LocalRay.environment()`` locally):
- ``RAY_JOBS_URL``: the head's dashboard address, e.g. http://10.0.1.23:8265
- the bearer token: ``RAY_JOBS_TOKEN_FILE`` (a file holding it, local) or ``RAY_JOBS_TOKEN_SECRET_ARN`` (a
  Secrets Manager secret whose SecretString is the token, AWS)
- ``RAY_JOB_PYTHON``: the interpreter the job's driver runs with on the head (default ``python``)

One submission per run and stage: the submission id is ``<run_id>-<stage>``, and Ray rejects a repeated id
(HTTP 500 "already exists"), so a retried Submit finds the job it started instead of starting a second one.

Progress: the driver writes ``<work_prefix>progress.json`` ({"chunks_done", "chunk_count"}) as chunks finish;
``status`` reads it from the bucket (job metadata is fixed at submission, and the job's log is unbounded).
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import urllib.error
import urllib.request
from typing import Any

from helixflow.errors import ClusterNotConfigured, ClusterUnavailable
from helixflow.pipeline import storage
from helixflow.pipeline.jobs import JobHandle, JobSpec, JobStatus, now, register_backend

PROGRESS_NAME = "progress.json"
LOG_TAIL_LINES = 40
TIMEOUT_S = 30
STATES = {"PENDING": "PENDING", "RUNNING": "RUNNING", "SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED",
          "STOPPED": "CANCELLED"}


class RayJobs:
    name = "ray"

    def __init__(self, url: str, token: str, python: str = "python") -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.python = python

    # ------------------------------------------------------------------ HTTP
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"Bearer {self._token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")[:2000]
            details = {"url": self.url, "path": path, "status": exc.code, "body": text}
            if exc.code == 401:
                raise ClusterUnavailable("the Ray head wants a token (is RAY_AUTH_MODE=token set on both sides?)",
                                         code="RAY_UNAUTHENTICATED", details=details) from None
            if exc.code == 403:
                raise ClusterUnavailable("the Ray head rejected the token", code="RAY_FORBIDDEN",
                                         details=details) from None
            raise _HttpError(exc.code, text, details) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise ClusterUnavailable(f"the Ray head at {self.url} did not answer: {exc}", code="RAY_UNREACHABLE",
                                     details={"url": self.url, "path": path}) from None

    def _job(self, job_id: str) -> dict[str, Any]:
        try:
            return self._call("GET", f"/api/jobs/{job_id}")
        except _HttpError as exc:
            code = "RAY_JOB_NOT_FOUND" if exc.status == 404 else "RAY_SERVER_ERROR"
            raise ClusterUnavailable(f"the Ray head cannot report job {job_id}", code=code,
                                     details=exc.details) from None

    # ------------------------------------------------------------------ the job seam
    def submit(self, spec: JobSpec) -> JobHandle:
        submission_id = f"{spec.run_id}-{spec.stage}"
        self.submit_module(submission_id, spec.module, spec.arguments,
                           metadata={"sample": spec.sample, "run_id": spec.run_id, "stage": spec.stage,
                                     "work_prefix": spec.work_prefix}, environment=spec.environment)
        return JobHandle(backend=self.name, job_id=submission_id, stage=spec.stage, placement=spec.placement,
                         work_prefix=spec.work_prefix, submitted=now(), details={"bucket": spec.bucket})

    def submit_module(self, submission_id: str, module: str, arguments: list[str] | tuple[str, ...], *,
                      metadata: dict[str, str] | None = None, environment: dict[str, str] | None = None) -> None:
        """``python -m module arguments...`` as the Ray job ``submission_id``; a repeated id is the same job."""
        body: dict[str, Any] = {
            # shlex-quoted argument vector: the head runs the entrypoint through a shell, and no argument
            # (sample names, JSON parameters) may be read as shell syntax.
            "entrypoint": shlex.join([self.python, "-m", module, *arguments]),
            "submission_id": submission_id,
            "metadata": dict(metadata or {}),
        }
        if environment:
            body["runtime_env"] = {"env_vars": dict(environment)}
        try:
            self._call("POST", "/api/jobs/", body)
        except _HttpError as exc:
            if not (exc.status == 500 and "already exists" in exc.text):
                raise ClusterUnavailable("the Ray head refused the job", code="RAY_SUBMIT_REJECTED",
                                         details=exc.details) from None
            # A retried submission: the job with this id exists already.
            self._job(submission_id)

    def job_state(self, submission_id: str) -> str:
        return self._job(submission_id).get("status", "")

    def get(self, path: str) -> Any:
        """A read of the head's dashboard API (cluster status, State API summaries) for the metrics publisher."""
        try:
            return self._call("GET", path)
        except _HttpError as exc:
            raise ClusterUnavailable(f"the Ray head cannot answer GET {path}", code="RAY_SERVER_ERROR",
                                     details=exc.details) from None

    def status(self, handle: JobHandle) -> JobStatus:
        job = self._job(handle.job_id)
        native = job.get("status", "")
        if native not in STATES:
            raise ClusterUnavailable(f"the Ray head reported an unknown job state {native!r}",
                                     code="RAY_UNKNOWN_STATE", details={"job_id": handle.job_id})
        state = STATES[native]
        details = {key: job[key] for key in ("start_time", "end_time") if job.get(key)}
        details.update(self._progress(handle))
        return JobStatus(state=state, native_state=native, message=job.get("message") or "",
                         exit_code=job.get("driver_exit_code"),
                         log_tail=self.log_tail(handle) if state in ("FAILED", "CANCELLED") else [],
                         details=details)

    def log_tail(self, handle: JobHandle, lines: int = LOG_TAIL_LINES) -> list[str]:
        try:
            logs = self._call("GET", f"/api/jobs/{handle.job_id}/logs").get("logs", "")
        except _HttpError as exc:
            raise ClusterUnavailable(f"the Ray head cannot return the log of job {handle.job_id}",
                                     code="RAY_SERVER_ERROR", details=exc.details) from None
        return logs.splitlines()[-lines:]

    def cancel(self, handle: JobHandle) -> None:
        try:
            self._call("POST", f"/api/jobs/{handle.job_id}/stop")
        except _HttpError as exc:
            if exc.status != 404:  # never submitted, or gone with a replaced head: nothing left to stop
                raise ClusterUnavailable(f"the Ray head cannot stop job {handle.job_id}", code="RAY_SERVER_ERROR",
                                         details=exc.details) from None

    def outputs(self, handle: JobHandle) -> list[str]:
        return [obj["Key"] for obj in storage.list_objects(_s3(), handle.details["bucket"], handle.work_prefix)]

    def _progress(self, handle: JobHandle) -> dict[str, Any]:
        s3 = _s3()
        try:
            document = storage.get_json(s3, handle.details["bucket"], handle.work_prefix + PROGRESS_NAME)
        except s3.exceptions.NoSuchKey:  # the driver has not started its chunks yet
            return {}
        return {"chunks_done": document["chunks_done"], "chunk_count": document["chunk_count"]}


class _HttpError(Exception):
    """An HTTP error status other than 401/403, for the caller to name (404 and "already exists" mean things)."""

    def __init__(self, status: int, text: str, details: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {text[:200]}")
        self.status, self.text, self.details = status, text, details


def _s3() -> Any:
    import boto3

    return boto3.client("s3")


@functools.lru_cache(maxsize=4)
def _secret_token(arn: str) -> str:
    """Once per Lambda container: the token changes only when the cluster is rebuilt (and the stack updated)."""
    import boto3

    return boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"].strip()


def factory(placement: str) -> RayJobs:
    url = os.environ.get("RAY_JOBS_URL")
    token_file, secret_arn = os.environ.get("RAY_JOBS_TOKEN_FILE"), os.environ.get("RAY_JOBS_TOKEN_SECRET_ARN")
    if not url or not (token_file or secret_arn):
        raise ClusterNotConfigured("Phase 1 was placed on Ray, but this deployment names no Ray head (RAY_JOBS_URL "
                                   "with RAY_JOBS_TOKEN_FILE or RAY_JOBS_TOKEN_SECRET_ARN)",
                                   code="RAY_NOT_CONFIGURED", details={"placement": placement})
    if token_file:
        try:
            with open(token_file) as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise ClusterNotConfigured(f"cannot read the Ray token file {token_file}: {exc.strerror}",
                                       code="RAY_NOT_CONFIGURED", details={"placement": placement}) from None
    else:
        token = _secret_token(secret_arn)
    return RayJobs(url, token, python=os.environ.get("RAY_JOB_PYTHON", "python"))


register_backend("ray", factory)

"""The "slurm" job adapter: Phase 2 as a Slurm batch job through slurmrestd (local Slurm, or AWS PCS).

One module of ~500 lines on purpose: the two API versions (v0.0.38 / v0.0.40+), token signing and PCS
discovery are one adapter's halves that change together; split apart, each would only make sense with the others.

Configuration (environment variables, read by ``factory(placement)``):

- Local (or any self-managed slurmrestd):
  ``SLURM_REST_URL``      base URL of slurmrestd, e.g. ``http://127.0.0.1:6820``
  ``SLURM_JWT_KEY_FILE``  the cluster's HS256 ``jwt_key`` file (its raw bytes sign the tokens)
  ``SLURM_USER_NAME``     the Slurm user jobs run as (``sun`` claim and ``X-SLURM-USER-NAME`` header)
  ``SLURM_CONF``          optional: passed into the job so ``srun`` inside it finds the same cluster
- AWS PCS:
  ``PCS_CLUSTER_ID``      cluster name or id; the slurmrestd endpoint and the JWT key are discovered with
                          ``pcs.get_cluster`` and Secrets Manager (cached per process)
  ``PCS_REGION``          optional, else the Lambda's ``AWS_REGION``
  ``SLURM_USER_NAME``, ``PCS_SLURM_UID``, ``PCS_SLURM_GID`` (required), ``PCS_SLURM_GIDS`` (comma-separated),
  ``PCS_SLURM_HOME`` (default ``/home/<user>``): the POSIX identity PCS reads from the token's claims
- Both:
  ``HELIXFLOW_SLURM_PYTHON``  the interpreter with helixflow[hpc] on the cluster nodes (default ``python3``)
  ``HELIXFLOW_SLURM_WORKDIR`` the job's working directory when ``spec.resources`` names none (default ``/tmp``)
  ``HELIXFLOW_SLURM_PATH``    the job's PATH (default: Slurm's and the system's bin directories)

Nothing configured -> ``ClusterNotConfigured(code="SLURM_NOT_CONFIGURED")``.

The REST API version is read from the server (``GET /openapi/v3``), never configured: Slurm 22.05 serves
v0.0.38, PCS (25.05+) v0.0.43. ``V0038`` and ``V0040`` hold every difference in request and response shapes.

The job runs one fixed script (``JOB_SCRIPT``): ``srun --mpi=pmi2 "$python" -m "$module" "$@"``. The module
travels in the job's environment and the arguments as the job's ``argv``, so no user string is ever parsed
by a shell. Log tails: locally the job's stderr file is on this machine and read directly; on PCS the script's
exit trap uploads the tail of its stderr to ``s3://<bucket>/<work_prefix>logs/slurm-<job id>.stderr``
(``helixflow.cluster.slurm_log``) and ``status`` reads it from there.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from helixflow.errors import ClusterNotConfigured, ClusterUnavailable
from helixflow.pipeline.jobs import JobHandle, JobSpec, JobStatus, now, register_backend

# The one job script. Slurm copies it to the node's spool; everything variable reaches it as environment
# (module, interpreter) or argv ("$@"), never as script text.
JOB_SCRIPT = """#!/bin/bash
# helixflow cluster job: every rank runs `python -m $HELIXFLOW_MODULE "$@"` under srun (PMI-2 for pip's mpich).
set -euo pipefail
python="${HELIXFLOW_PYTHON:?the interpreter with helixflow installed}"
module="${HELIXFLOW_MODULE:?the helixflow module to run}"
threads="${SLURM_CPUS_PER_TASK:-1}"
# One Numba thread pool per rank, sized to the CPUs Slurm gave that rank.
export NUMBA_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads"
if [ -n "${HELIXFLOW_ARGC:-}" ]; then
    # v0.0.38 servers receive the arguments as HELIXFLOW_ARG_0..N-1 (see V0038); indirect expansion copies
    # each value into "$@" without parsing it.
    set --
    for ((i = 0; i < HELIXFLOW_ARGC; i++)); do
        name="HELIXFLOW_ARG_$i"
        set -- "$@" "${!name}"
    done
fi
if [ -n "${HELIXFLOW_LOG_BUCKET:-}" ]; then
    # Where the stderr file cannot be read by the poller (PCS), its tail goes to S3 at exit.
    trap '"$python" -m helixflow.cluster.slurm_log' EXIT
fi
srun --mpi=pmi2 "$python" -m "$module" "$@"
"""

PARTITIONS = {"slurm-cpu": "cpu", "slurm-gpu": "gpu"}
DEFAULT_PATH = "/opt/slurm/bin:/usr/local/bin:/usr/bin:/bin"
TOKEN_TTL_S = 600
TOKEN_REFRESH_S = 60
HTTP_TIMEOUT_S = 15
LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 16384
PCS_REST_PORT = "6820"
# slurmrestd 22.05's error numbers when slurmctld refused the request's credential (see SlurmRest._http_error).
REJECTED_ERROR_NUMBERS = frozenset({-1, 5005})

SLURM_STATES = {
    "PENDING": "PENDING", "CONFIGURING": "PENDING", "REQUEUED": "PENDING", "REQUEUE_FED": "PENDING",
    "REQUEUE_HOLD": "PENDING", "RESV_DEL_HOLD": "PENDING",
    "RUNNING": "RUNNING", "COMPLETING": "RUNNING", "SUSPENDED": "RUNNING", "STAGE_OUT": "RUNNING",
    "SIGNALING": "RUNNING", "RESIZING": "RUNNING",
    "COMPLETED": "SUCCEEDED",
    "FAILED": "FAILED", "TIMEOUT": "FAILED", "NODE_FAIL": "FAILED", "OUT_OF_MEMORY": "FAILED",
    "BOOT_FAIL": "FAILED", "DEADLINE": "FAILED", "PREEMPTED": "FAILED", "SPECIAL_EXIT": "FAILED",
    "REVOKED": "FAILED",
    "CANCELLED": "CANCELLED",
}
# Base states win over flags when a v0.0.40+ server lists both (e.g. ["PENDING", "REQUEUED"]).
_BASE_STATES = ("CANCELLED", "COMPLETED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED", "SUSPENDED", "RUNNING", "PENDING")


# ---------------------------------------------------------------------------------------------- tokens
class TokenSigner:
    """HS256 tokens for slurmrestd, cached until shortly before they expire (one per process)."""

    def __init__(self, key: bytes, claims: dict[str, Any], *, ttl_s: int = TOKEN_TTL_S) -> None:
        self._key = key
        self._claims = claims
        self._ttl_s = ttl_s
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        import jwt  # PyJWT; imported here so the rest of the package never pays for it

        with self._lock:
            current = time.time()
            if current >= self._expires - TOKEN_REFRESH_S:
                issued = int(current)
                self._token = jwt.encode({**self._claims, "iat": issued, "exp": issued + self._ttl_s},
                                         self._key, algorithm="HS256")
                self._expires = issued + self._ttl_s
            return self._token


# ---------------------------------------------------------------------------------------------- versions
def _no_val(value: dict[str, Any] | int | None) -> int | None:
    """v0.0.40+ numbers are {set, infinite, number}; v0.0.38 sends plain integers."""
    if isinstance(value, dict):
        return value.get("number") if value.get("set") and not value.get("infinite") else None
    return value


def _iso(epoch: int | None) -> str | None:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat() if epoch else None


class V0038:
    """Slurm 22.05: top-level ``script``, ``environment`` an object, ``job_state`` a string, plain numbers."""

    version = "v0.0.38"

    def submit_body(self, job: dict[str, Any], environment: dict[str, str], gpus: int) -> dict[str, Any]:
        # slurmrestd 22.05 copies job.argv into an array without its terminating NULL (slurm_opt.c
        # arg_set_data_argv) and then walks past its end: it crashes or passes garbage. The arguments travel as
        # numbered environment entries instead, which JOB_SCRIPT turns back into "$@" verbatim.
        arguments = job.pop("argv")[1:]
        environment = {**environment, "HELIXFLOW_ARGC": str(len(arguments)),
                       **{f"HELIXFLOW_ARG_{i}": value for i, value in enumerate(arguments)}}
        body = {**job, "environment": environment, "nodes": [job.pop("nodes")] * 2,
                "time_limit": job.pop("time_limit")}
        if gpus:
            body["gres"] = f"gpu:{gpus}"
        return {"script": JOB_SCRIPT, "job": body}

    def state(self, info: dict[str, Any]) -> str:
        return info.get("job_state", "")

    def exit_code(self, info: dict[str, Any]) -> int | None:
        # v0.0.38 reports the raw wait status: the exit code in the high byte, a terminating signal in the low.
        status = info.get("exit_code")
        if status is None:
            return None
        return 128 + (status & 0x7F) if status & 0x7F else status >> 8

    def number(self, value: Any) -> int | None:
        return value


class V0040:
    """v0.0.40 - v0.0.43 (PCS serves v0.0.43): ``job.script``, environment a "K=V" list, ``job_state`` a list,
    numbers as {set, infinite, number}, exit codes as {status, return_code, signal}."""

    def __init__(self, version: str) -> None:
        self.version = version

    def submit_body(self, job: dict[str, Any], environment: dict[str, str], gpus: int) -> dict[str, Any]:
        nodes = job.pop("nodes")
        body = {**job, "script": JOB_SCRIPT, "environment": [f"{k}={v}" for k, v in environment.items()],
                "minimum_nodes": nodes, "maximum_nodes": nodes,
                "time_limit": {"set": True, "infinite": False, "number": job.pop("time_limit")}}
        if gpus:
            body["tres_per_node"] = f"gres/gpu:{gpus}"
        return {"job": body}

    def state(self, info: dict[str, Any]) -> str:
        states = info.get("job_state") or []
        return next((s for s in _BASE_STATES if s in states), states[0] if states else "")

    def exit_code(self, info: dict[str, Any]) -> int | None:
        code = info.get("exit_code")
        if not isinstance(code, dict):
            return code
        signal = _no_val((code.get("signal") or {}).get("id"))
        if signal:
            return 128 + signal
        return _no_val(code.get("return_code"))

    def number(self, value: Any) -> int | None:
        return _no_val(value)


SUPPORTED = {"v0.0.38": V0038, "v0.0.40": V0040, "v0.0.41": V0040, "v0.0.42": V0040, "v0.0.43": V0040}


def api_for(paths: list[str]) -> V0038 | V0040:
    """The newest supported version among the server's ``/slurm/vX/job/submit`` paths."""
    offered = {p.split("/")[2] for p in paths if p.startswith("/slurm/v") and p.endswith("/job/submit")}
    usable = sorted((v for v in offered if v in SUPPORTED), key=lambda v: tuple(int(x) for x in v[1:].split(".")))
    if not usable:
        raise ClusterUnavailable(f"slurmrestd offers no supported job API ({', '.join(sorted(offered)) or 'none'})",
                                 code="SLURM_API_UNSUPPORTED", details={"offered": sorted(offered)})
    version = usable[-1]
    return V0038() if version == "v0.0.38" else V0040(version)


# ---------------------------------------------------------------------------------------------- REST client
class SlurmRest:
    """Authenticated JSON calls to slurmrestd (urllib only: the Lambda layer carries no HTTP library)."""

    def __init__(self, base_url: str, signer: TokenSigner, headers_for: Any) -> None:
        self.base_url = base_url.rstrip("/")
        self._signer = signer
        self._headers_for = headers_for
        self._api: V0038 | V0040 | None = None

    @property
    def api(self) -> V0038 | V0040:
        if self._api is None:
            self._api = api_for(list(self.request("GET", "/openapi/v3").get("paths", {})))
        return self._api

    def slurm(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        return self.request(method, f"/slurm/{self.api.version}/{path}", body)

    def request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", **self._headers_for(self._signer.token())}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return self._http_error(exc, method, path)
        except (urllib.error.URLError, OSError) as exc:
            raise ClusterUnavailable(f"slurmrestd at {self.base_url} did not answer: {exc}",
                                     code="SLURM_UNREACHABLE", details={"url": self.base_url}) from exc

    def _http_error(self, exc: urllib.error.HTTPError, method: str, path: str) -> dict[str, Any]:
        text = exc.read().decode(errors="replace")
        try:
            payload = json.loads(text)
        except ValueError:
            payload = {}
        errors = " ".join(str(e.get("error") or e.get("description") or "") for e in payload.get("errors", []))
        details = {"status": exc.code, "method": method, "path": path, "errors": errors or text[:500]}
        # Unknown job ids come back as an error document (404 on newer servers, 500 + "Invalid job id" on 22.05):
        # the caller decides what a vanished job means.
        if exc.code == 404 or "invalid job id" in errors.lower():
            return {"_missing": True, **payload}
        # slurmctld drops a connection whose token it rejects and slurmrestd 22.05 turns that into HTTP 500 with
        # a generic error (seen here: error_number -1 "Unspecified error", error_code 5005 "Zero Bytes were
        # transmitted or received", or "slurmctld config is unable to load"; the reason is only in slurmctld's
        # log). Newer servers answer 401/403.
        numbers = {e.get("error_number", e.get("error_code")) for e in payload.get("errors", [])}
        if exc.code in (401, 403) or numbers & REJECTED_ERROR_NUMBERS or "unable to load" in text.lower():
            raise ClusterUnavailable("slurmctld rejected the request: a bad or expired token, or a user Slurm does "
                                     "not know (slurmctld's log has the reason)", code="SLURM_AUTH_REJECTED",
                                     details=details) from None
        raise ClusterUnavailable(f"slurmrestd answered HTTP {exc.code} to {method} {path}: {details['errors']}",
                                 code="SLURM_API_ERROR", details=details) from None


# ---------------------------------------------------------------------------------------------- configuration
_PCS_CACHE: dict[str, tuple[str, bytes]] = {}


def local_client(env: dict[str, str]) -> SlurmRest:
    user = env.get("SLURM_USER_NAME")
    key_file = env.get("SLURM_JWT_KEY_FILE")
    if not user or not key_file:
        raise ClusterNotConfigured("SLURM_REST_URL is set but SLURM_USER_NAME or SLURM_JWT_KEY_FILE is not",
                                   code="SLURM_NOT_CONFIGURED")
    try:
        key = Path(key_file).read_bytes()
    except OSError as exc:
        raise ClusterNotConfigured(f"cannot read SLURM_JWT_KEY_FILE {key_file}: {exc.strerror}",
                                   code="SLURM_NOT_CONFIGURED") from exc
    signer = TokenSigner(key, {"sun": user})
    return SlurmRest(env["SLURM_REST_URL"], signer,
                     lambda token: {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token})


def pcs_endpoint_and_key(cluster_id: str, region: str | None, *, pcs: Any = None, secrets: Any = None
                         ) -> tuple[str, bytes]:
    """slurmrestd's URL and the JWT signing key of a PCS cluster, cached per process (a warm Lambda asks once)."""
    if cluster_id in _PCS_CACHE:
        return _PCS_CACHE[cluster_id]
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    pcs = pcs or boto3.client("pcs", region_name=region)
    secrets = secrets or boto3.client("secretsmanager", region_name=region)
    try:
        cluster = pcs.get_cluster(clusterIdentifier=cluster_id)["cluster"]
    except (BotoCoreError, ClientError) as exc:
        raise ClusterUnavailable(f"PCS cluster {cluster_id} could not be described: {exc}",
                                 code="PCS_CLUSTER_UNAVAILABLE", details={"cluster": cluster_id}) from exc
    rest = next((e for e in cluster.get("endpoints", []) if e["type"] == "SLURMRESTD"), None)
    jwt_key = ((cluster.get("slurmConfiguration") or {}).get("jwtAuth") or {}).get("jwtKey")
    if cluster.get("status") not in ("ACTIVE", "UPDATING") or rest is None or jwt_key is None:
        raise ClusterUnavailable(f"PCS cluster {cluster_id} has no usable Slurm REST API (status "
                                 f"{cluster.get('status')}; needs Slurm 25.05+ and slurmRest.mode=STANDARD)",
                                 code="PCS_REST_DISABLED", details={"cluster": cluster_id})
    try:
        secret = secrets.get_secret_value(SecretId=jwt_key["secretArn"], VersionId=jwt_key["secretVersion"])
    except (BotoCoreError, ClientError) as exc:
        raise ClusterUnavailable(f"the JWT key of PCS cluster {cluster_id} could not be read: {exc}",
                                 code="PCS_JWT_KEY_UNAVAILABLE", details={"cluster": cluster_id}) from exc
    # PCS keeps the key base64-encoded in SecretString; a binary secret holds the raw bytes.
    key = secret.get("SecretBinary") or base64.b64decode(secret["SecretString"])
    url = f"http://{rest['privateIpAddress']}:{rest.get('port') or PCS_REST_PORT}"
    _PCS_CACHE[cluster_id] = (url, key)
    return url, key


def pcs_claims(env: dict[str, str]) -> dict[str, Any]:
    """PCS maps a token to a POSIX identity from its claims alone (no user lookup, no impersonation)."""
    user = env.get("SLURM_USER_NAME")
    if not user or not env.get("PCS_SLURM_UID") or not env.get("PCS_SLURM_GID"):
        raise ClusterNotConfigured("PCS_CLUSTER_ID is set but SLURM_USER_NAME, PCS_SLURM_UID or PCS_SLURM_GID is "
                                   "not", code="SLURM_NOT_CONFIGURED")
    gid = int(env["PCS_SLURM_GID"])
    gids = [int(g) for g in env.get("PCS_SLURM_GIDS", "").split(",") if g.strip()] or [gid]
    return {"sun": user, "uid": int(env["PCS_SLURM_UID"]), "gid": gid,
            "id": {"gecos": user, "dir": env.get("PCS_SLURM_HOME", f"/home/{user}"), "shell": "/bin/bash",
                   "gids": gids}}


def _pcs_client(env: dict[str, str]) -> SlurmRest:
    claims = pcs_claims(env)
    url, key = pcs_endpoint_and_key(env["PCS_CLUSTER_ID"], env.get("PCS_REGION") or env.get("AWS_REGION"))
    return SlurmRest(url, TokenSigner(key, claims), lambda token: {"Authorization": f"Bearer {token}"})


def factory(placement: str, environ: dict[str, str] | None = None) -> SlurmJobs:
    env = dict(os.environ if environ is None else environ)
    if placement not in PARTITIONS:
        raise ClusterNotConfigured(f"placement {placement!r} is not a Slurm partition", code="SLURM_NOT_CONFIGURED",
                                   details={"placement": placement})
    if env.get("SLURM_REST_URL"):
        return SlurmJobs(local_client(env), PARTITIONS[placement], env, logs_in_s3=False)
    if env.get("PCS_CLUSTER_ID"):
        return SlurmJobs(_pcs_client(env), PARTITIONS[placement], env, logs_in_s3=True)
    raise ClusterNotConfigured("no Slurm cluster is configured (set SLURM_REST_URL for a slurmrestd, or "
                               "PCS_CLUSTER_ID for AWS PCS)", code="SLURM_NOT_CONFIGURED",
                               details={"placement": placement})


# ---------------------------------------------------------------------------------------------- the adapter
class SlurmJobs:
    name = "slurm"

    def __init__(self, client: SlurmRest, partition: str, env: dict[str, str], *, logs_in_s3: bool) -> None:
        self.client = client
        self.partition = partition
        self.env = env
        self.logs_in_s3 = logs_in_s3

    # -- submit
    def job_request(self, spec: JobSpec) -> dict[str, Any]:
        """The submit body for this server's API version (what ``submit`` posts; tests validate it)."""
        res = spec.resources
        ranks = int(res.get("ranks", 1))
        gpus = int(res.get("gpus", ranks)) if self.partition == "gpu" else 0
        workdir = str(res.get("workdir") or self.env.get("HELIXFLOW_SLURM_WORKDIR") or "/tmp")
        name = f"helixflow-{spec.stage}-{spec.sample}"
        job = {
            "name": name[:200],
            "partition": self.partition,
            "nodes": int(res.get("nodes", 1)),
            "tasks": ranks,
            "cpus_per_task": int(res.get("cpus_per_rank", 1)),
            "time_limit": int(res.get("time_limit_minutes", 120)),
            "current_working_directory": workdir,
            "standard_output": str(res.get("stdout") or f"{workdir}/{name}-%j.out"),
            "standard_error": str(res.get("stderr") or f"{workdir}/{name}-%j.err"),
            # slurmstepd replaces argv[0] with the script's path; the arguments follow it verbatim.
            "argv": ["helixflow-job", *spec.arguments],
        }
        return self.client.api.submit_body(job, self._job_environment(spec), gpus)

    def _job_environment(self, spec: JobSpec) -> dict[str, str]:
        environment = {"PATH": self.env.get("HELIXFLOW_SLURM_PATH", DEFAULT_PATH), **spec.environment,
                       "HELIXFLOW_PYTHON": self.env.get("HELIXFLOW_SLURM_PYTHON", "python3"),
                       "HELIXFLOW_MODULE": spec.module, "HELIXFLOW_RUN_ID": spec.run_id,
                       "HELIXFLOW_WORK_PREFIX": spec.work_prefix}
        if self.env.get("SLURM_CONF"):
            environment["SLURM_CONF"] = self.env["SLURM_CONF"]
        if self.logs_in_s3:
            environment["HELIXFLOW_LOG_BUCKET"] = spec.bucket
            environment["HELIXFLOW_LOG_PREFIX"] = log_prefix(spec.work_prefix)
        return environment

    def submit(self, spec: JobSpec) -> JobHandle:
        answer = self.client.slurm("POST", "job/submit", self.job_request(spec))
        job_id = answer.get("job_id")
        if not job_id:
            raise ClusterUnavailable("slurmrestd accepted no job", code="SLURM_SUBMIT_REJECTED",
                                     details={"errors": answer.get("errors", [])})
        return JobHandle(backend=self.name, job_id=str(job_id), stage=spec.stage, placement=spec.placement,
                         work_prefix=spec.work_prefix, submitted=now(),
                         details={"partition": self.partition, "api": self.client.api.version,
                                  "bucket": spec.bucket})

    # -- status
    def status(self, handle: JobHandle) -> JobStatus:
        answer = self.client.slurm("GET", f"job/{handle.job_id}")
        jobs = answer.get("jobs") or []
        if answer.get("_missing") or not jobs:
            # The controller forgot the job (MinJobAge passed without accounting): it will never report again.
            return JobStatus(state="FAILED", native_state="UNKNOWN_JOB",
                             message=f"Slurm no longer knows job {handle.job_id} (purged after MinJobAge)",
                             details={"job_id": handle.job_id})
        info = jobs[0]
        api = self.client.api
        native = api.state(info)
        state = SLURM_STATES.get(native, "RUNNING" if native else "PENDING")
        exit_code = api.exit_code(info) if state in ("SUCCEEDED", "FAILED", "CANCELLED") else None
        start, end, submit = (api.number(info.get(k)) for k in ("start_time", "end_time", "submit_time"))
        details = {"job_id": handle.job_id, "partition": info.get("partition"), "queue": info.get("partition"),
                   "nodes": info.get("nodes") or "", "submit_time": _iso(submit), "start_time": _iso(start),
                   "end_time": _iso(end) if end and state != "PENDING" and state != "RUNNING" else None,
                   "run_time_s": max(0, (end if end and state not in ("PENDING", "RUNNING") else int(time.time()))
                                     - start) if start else 0,
                   "exit_code": exit_code, "state_reason": info.get("state_reason")}
        log_tail = self._log_tail(handle, info) if state in ("FAILED", "CANCELLED") else []
        message = f"Slurm job {handle.job_id} {native}" + (f" (exit code {exit_code})" if exit_code else "")
        return JobStatus(state=state, native_state=native, message=message, exit_code=exit_code,
                         log_tail=log_tail, details=details)

    def log_tail(self, handle: JobHandle, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last ``lines`` of the job's stderr, as a failed job's Phase2JobFailed carries them, at any time (the
        local stack's console shows it while the job runs): [] before the file exists, or once the controller
        has forgotten the job (MinJobAge) and its stderr path with it."""
        jobs = self.client.slurm("GET", f"job/{handle.job_id}").get("jobs") or [{}]
        return self._log_tail(handle, jobs[0], lines)

    def _log_tail(self, handle: JobHandle, info: dict[str, Any], lines: int = LOG_TAIL_LINES) -> list[str]:
        if self.logs_in_s3:
            return s3_log_tail(handle.details.get("bucket", ""), f"{log_prefix(handle.work_prefix)}slurm-"
                               f"{handle.job_id}.stderr")[-lines:]
        path = str(info.get("standard_error") or "").replace("%j", handle.job_id)
        if not path:
            return []
        try:
            return tail_lines(read_tail(path), lines)
        except OSError:
            return []

    # -- cancel / outputs
    def cancel(self, handle: JobHandle) -> None:
        # Cancelling a job that already ended or was purged is not an error: the goal (it does not run) holds.
        self.client.slurm("DELETE", f"job/{handle.job_id}")

    def outputs(self, handle: JobHandle) -> list[str]:
        import boto3

        bucket = handle.details.get("bucket", "")
        keys: list[str] = []
        for page in boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                              Prefix=handle.work_prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].startswith(log_prefix(
                handle.work_prefix))]
        return keys


def log_prefix(work_prefix: str) -> str:
    return f"{work_prefix.rstrip('/')}/logs/"


def read_tail(path: str) -> bytes:
    with open(path, "rb") as stream:
        stream.seek(0, os.SEEK_END)
        stream.seek(max(0, stream.tell() - LOG_TAIL_BYTES))
        return stream.read()


def tail_lines(data: bytes, lines: int = LOG_TAIL_LINES) -> list[str]:
    return data.decode(errors="replace").splitlines()[-lines:]


def s3_log_tail(bucket: str, key: str) -> list[str]:
    import boto3
    from botocore.exceptions import ClientError

    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key, Range=f"bytes=-{LOG_TAIL_BYTES}")["Body"]
    except ClientError:
        return []  # the job died before its exit trap ran (node failure): Slurm's state still says why
    return tail_lines(body.read())


register_backend("slurm", factory)


def rest_client(environ: dict[str, str] | None = None) -> SlurmRest | None:
    """slurmrestd of this deployment's Slurm cluster (for reads such as the queue's metrics), or None."""
    env = dict(os.environ if environ is None else environ)
    if env.get("SLURM_REST_URL"):
        return local_client(env)
    if env.get("PCS_CLUSTER_ID"):
        return _pcs_client(env)
    return None

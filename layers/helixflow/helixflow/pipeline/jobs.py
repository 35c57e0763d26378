"""The one job seam: how a pipeline stage runs work on a cluster (Ray Jobs, Slurm through slurmrestd / PCS).

A stage hands a ``JobSpec`` to ``submit`` and keeps the returned ``JobHandle`` in the execution's state; the
state machine then loops Wait -> Poll (``status``) -> Choice until the job is terminal, and the failure branch
calls ``cancel``. Every adapter maps its native states onto one vocabulary (``JobState``), so the ASL loop is
the same for every cluster.

Adapters register by backend name. ``backend_for(placement)`` builds the adapter configured for a placement in
this deployment (environment variables set by template.yaml, or by the local stack) and raises
``ClusterNotConfigured`` when none is; ``HELIXFLOW_JOB_BACKEND=module:factory`` replaces every adapter with
another one (the test double used by the state machine tests).

The poll loop's Wait follows the job's age (``next_wait``): a quarter of the time since submission, between the
first interval and the cap, so a finished job is seen at most a quarter of its run time late (a doubling wait
loses up to its whole run time: a 10-minute job seen at 15). A job that reports progress (chunks done of a
count) is polled when the rest should be done, but never sooner than 1/20 of its age. The number of polls stays
bounded: at the default cap of 300 s a day-long job costs ~300 polls (~1,500 history events), far below Step
Functions' 25,000.
"""

from __future__ import annotations

import importlib
import math
import os
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from helixflow.errors import ClusterNotConfigured

JobState = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
TERMINAL_STATES: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
Placement = Literal["lambda", "ray", "slurm-cpu", "slurm-gpu"]

FIRST_WAIT_S = 2
MAX_WAIT_S = 300
MAX_POLLS = 2000
# Wait = this fraction of the job's age (its lateness bound), and never less than the floor fraction of it.
AGE_FRACTION = 0.25
FLOOR_FRACTION = 0.05


class JobSpec(BaseModel):
    """What to run: ``python -m <module> <arguments...>`` on the cluster (Ray: the job's driver; Slurm: every MPI
    rank under ``srun``). ``arguments`` travel as an argument vector (Slurm ``argv``, Ray a shlex-quoted
    entrypoint), so no user-controlled string is ever interpreted by a shell."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Literal["phase1", "phase2"]
    placement: Placement
    run_id: str
    sample: str
    bucket: str
    work_prefix: str = Field(description="work/<sample>/<run_id>/<stage>/: where the job writes its outputs")
    module: str = Field(pattern=r"^helixflow(\.[a-z0-9_]+)+$", description="the package module the job runs")
    arguments: list[str] = Field(default_factory=list)
    environment: dict[str, str] = Field(default_factory=dict)
    resources: dict[str, Any] = Field(default_factory=dict, description="ranks, cpus, gpus, time limit, memory")


class JobHandle(BaseModel):
    """What the state machine keeps between polls (small: it travels in the execution state)."""

    model_config = ConfigDict(extra="forbid")

    backend: str
    job_id: str
    stage: Literal["phase1", "phase2"]
    placement: Placement
    work_prefix: str
    submitted: str
    state: JobState = "PENDING"
    native_state: str = ""
    polls: int = 0
    wait_seconds: int = FIRST_WAIT_S
    details: dict[str, Any] = Field(default_factory=dict, description="adapter facts: partition, node, times")


class JobStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    state: JobState
    native_state: str
    message: str = ""
    exit_code: int | None = None
    log_tail: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)


class JobBackend(Protocol):
    name: str

    def submit(self, spec: JobSpec) -> JobHandle: ...

    def status(self, handle: JobHandle) -> JobStatus: ...

    def cancel(self, handle: JobHandle) -> None: ...

    def outputs(self, handle: JobHandle) -> list[str]:
        """Keys (relative to the bucket) the finished job wrote under its work prefix."""
        ...


BackendFactory = Callable[[str], JobBackend]
_FACTORIES: dict[str, BackendFactory] = {}
# Which backend serves a placement; Lambda placements never reach the job seam.
BACKEND_OF_PLACEMENT = {"ray": "ray", "slurm-cpu": "slurm", "slurm-gpu": "slurm"}


# The environment variables whose presence means this deployment has that backend (set by template.yaml).
CONFIGURATION = {"ray": ("RAY_JOBS_URL",), "slurm": ("SLURM_REST_URL", "PCS_CLUSTER_ID")}


def is_configured(placement: str) -> bool:
    """Cheap check (no network, no secrets) that a cluster placement can run in this deployment."""
    if os.environ.get("HELIXFLOW_JOB_BACKEND"):
        return True
    backend = BACKEND_OF_PLACEMENT.get(placement)
    return backend is not None and any(os.environ.get(name) for name in CONFIGURATION[backend])


def deployment_has(placement: str) -> bool:
    """Whether this deployment names a cluster for ``placement`` (its environment variables), ignoring the
    ``HELIXFLOW_JOB_BACKEND`` override: ``auto`` placements choose a cluster only where one is deployed."""
    backend = BACKEND_OF_PLACEMENT.get(placement)
    return backend is not None and any(os.environ.get(name) for name in CONFIGURATION[backend])


def register_backend(name: str, factory: BackendFactory) -> None:
    """``factory(placement)`` returns a configured adapter or raises ClusterNotConfigured."""
    _FACTORIES[name] = factory


def backend_for(placement: str) -> JobBackend:
    override = os.environ.get("HELIXFLOW_JOB_BACKEND")
    if override:
        module_name, attribute = override.split(":")
        return getattr(importlib.import_module(module_name), attribute)(placement)
    name = BACKEND_OF_PLACEMENT.get(placement)
    if name is None:
        raise ClusterNotConfigured(f"placement {placement!r} does not run as a cluster job",
                                   code="NOT_A_CLUSTER_PLACEMENT", details={"placement": placement})
    if name not in _FACTORIES:
        _load_adapter(name)
    return _FACTORIES[name](placement)


def _load_adapter(name: str) -> None:
    """Adapters live in helixflow.pipeline.<name>_jobs and register themselves on import."""
    try:
        importlib.import_module(f"helixflow.pipeline.{name}_jobs")
    except ModuleNotFoundError as exc:
        raise ClusterNotConfigured(f"no {name} job adapter is installed", code="NO_ADAPTER",
                                   details={"backend": name}) from exc
    if name not in _FACTORIES:
        raise ClusterNotConfigured(f"the {name} job adapter did not register", code="NO_ADAPTER",
                                   details={"backend": name})


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def next_wait(handle: JobHandle, details: dict[str, Any], *, at: datetime, first: int = FIRST_WAIT_S,
              cap: int = MAX_WAIT_S) -> int:
    """Seconds until the next poll (the Wait state reads it), from the job's age at ``at``: AGE_FRACTION of it
    within [first, cap]; when ``details`` say how many chunks are done of how many, the time the rest should take
    at the rate so far, within [FLOOR_FRACTION of the age, that ceiling]."""
    age = max(0.0, (at - datetime.fromisoformat(handle.submitted)).total_seconds())
    ceiling = min(cap, max(first, age * AGE_FRACTION))
    wait = ceiling
    done, count = details.get("chunks_done"), details.get("chunk_count")
    if done and count and done < count:
        floor = min(ceiling, max(first, age * FLOOR_FRACTION))
        wait = min(ceiling, max(floor, age * (count - done) / done))
    return max(1, math.ceil(wait))


def poll(backend: JobBackend, handle: JobHandle, *, first_wait: int = FIRST_WAIT_S, max_wait: int = MAX_WAIT_S,
         max_polls: int = MAX_POLLS) -> tuple[JobHandle, JobStatus]:
    """One turn of the Wait -> Poll -> Choice loop: the new handle (state, next wait) and the status."""
    status = backend.status(handle)
    polled_at = datetime.now(timezone.utc)
    polls = handle.polls + 1
    if status.state not in TERMINAL_STATES and polls >= max_polls:
        backend.cancel(handle)
        status = status.model_copy(update={"state": "CANCELLED",
                                           "message": f"cancelled after {polls} polls without finishing"})
    details = {**handle.details, **status.details}
    updated = handle.model_copy(update={
        "state": status.state, "native_state": status.native_state, "polls": polls,
        "wait_seconds": next_wait(handle, details, at=polled_at, first=first_wait, cap=max_wait),
        "details": details})
    return updated, status

"""What the metrics publisher measures: the Ray head, slurmrestd and the pipeline's executions, as metric data.

The parsers are pure functions over the engines' JSON (tests feed them real answers); ``collect`` wires them to
the clients. Nothing here imports ``ray``: the Lambda reads the head's dashboard over HTTP (helixflow.pipeline.
ray_jobs), Slurm through slurmrestd (helixflow.pipeline.slurm_jobs).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from helixflow.pipeline.slurm_jobs import SLURM_STATES
from helixflow.scaling.metrics import RAY_CLUSTER, SLURM_CLUSTER, STAGE_OF_STATE, STAGES, datum

# Ray task states that wait for resources or inputs (the State API's TaskStatus values named PENDING_*).
RAY_PENDING_PREFIX = "PENDING_"
RAY_DONE_STATES = frozenset({"FINISHED", "FAILED"})
# How many running executions one publish looks into (one GetExecutionHistory call each, within a minute).
MAX_EXECUTIONS = 200


def ray_data(cluster_status: dict[str, Any], task_summary: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """From ``GET /api/cluster_status?format=0`` and ``GET /api/v0/tasks/summarize``."""
    status = cluster_status["data"]["clusterStatus"]
    report, load = status.get("autoscalerReport") or {}, status.get("loadMetricsReport") or {}
    summaries = task_summary["data"]["result"]["result"]["node_id_to_summary"]["cluster"]["summary"]
    counts: Counter = Counter()
    for summary in summaries.values():
        counts.update(summary.get("state_counts", {}))
    pending_tasks = sum(n for state, n in counts.items() if state.startswith(RAY_PENDING_PREFIX))
    in_flight = sum(n for state, n in counts.items() if state not in RAY_DONE_STATES)
    demand = [*(load.get("resourceDemand") or []), *(load.get("pgDemand") or [])]
    pending_cpu = sum(shape.get("CPU", 0) * count for shape, count in demand)
    pending_gpu = sum(shape.get("GPU", 0) * count for shape, count in demand)
    # A Ray cluster has exactly one head, listed among the active nodes; capacity is the workers.
    active = max(0, sum((report.get("activeNodes") or {}).values()) - 1)
    pending_nodes = len(report.get("pendingNodes") or []) + sum((report.get("pendingLaunches") or {}).values())
    values = {"RayPendingTasks": pending_tasks, "RayTasksInFlight": in_flight, "RayPendingCPU": pending_cpu, "RayPendingGPU": pending_gpu,
              "RayActiveNodes": active, "RayPendingNodes": pending_nodes}
    return [datum(name, value, now, Cluster=RAY_CLUSTER) for name, value in values.items()]


def _tokens(value: Any) -> set[str]:
    values = value if isinstance(value, list) else [value] if value else []
    return {str(v).upper() for v in values}


def node_kind(node: dict[str, Any]) -> str | None:
    """idle / allocated / powered_down from a node of ``GET nodes`` (v0.0.38: ``state`` a string and flags in
    ``state_flags``; v0.0.40+: ``state`` a list holding both)."""
    tokens = _tokens(node.get("state")) | _tokens(node.get("state_flags"))
    # CLOUD marks an elastic node whether it is up or not (22.05 keeps the flag on a powered-up node, seen
    # here): only the power flags say it has no instance.
    if tokens & {"POWERED_DOWN", "POWER_DOWN", "POWERING_DOWN"} and not tokens & {"ALLOCATED", "MIXED"}:
        return "powered_down"
    if tokens & {"ALLOCATED", "MIXED", "COMPLETING"}:
        return "allocated"
    if "IDLE" in tokens and not tokens & {"DRAIN", "DRAINED", "DOWN", "POWERING_UP", "NOT_RESPONDING"}:
        return "idle"
    return None  # down, draining, booting: neither capacity nor a powered-down slot


def slurm_data(jobs: list[dict[str, Any]], nodes: list[dict[str, Any]], partitions: list[str], job_state: Any,
               now: datetime) -> list[dict[str, Any]]:
    """From slurmrestd's ``GET jobs`` and ``GET nodes``; ``job_state`` reads a job's base state (the API
    version's ``state``). A node in several partitions counts in each."""
    queued, running = Counter(), Counter()
    for job in jobs:
        # As the job seam reads states: a job CONFIGURING (allocated nodes that are still powering up, e.g. a
        # PCS instance booting) waits for capacity, so it counts as queued; COMPLETING still holds its nodes.
        state = SLURM_STATES.get(job_state(job))
        for partition in str(job.get("partition") or "").split(","):
            if state == "PENDING":
                queued[partition] += 1
            elif state == "RUNNING":
                running[partition] += 1
    kinds: dict[str, Counter] = {p: Counter() for p in partitions}
    for node in nodes:
        kind = node_kind(node)
        for partition in node.get("partitions") or []:
            if kind and partition in kinds:
                kinds[partition][kind] += 1
    data = []
    for partition in partitions:
        values = {"SlurmPendingJobs": queued[partition], "SlurmRunningJobs": running[partition],
                  "SlurmJobsInFlight": queued[partition] + running[partition],
                  "SlurmIdleNodes": kinds[partition]["idle"], "SlurmAllocatedNodes": kinds[partition]["allocated"],
                  "SlurmPoweredDownNodes": kinds[partition]["powered_down"]}
        data += [datum(name, value, now, Cluster=SLURM_CLUSTER, Partition=partition) for name, value in values.items()]
    return data


def current_state(history_newest_first: list[dict[str, Any]]) -> str | None:
    """The state an execution is in: the newest ``*StateEntered`` event's name."""
    for event in history_newest_first:
        if event["type"].endswith("StateEntered"):
            return event["stateEnteredEventDetails"]["name"]
    return None


def pipeline_data(sfn: Any, state_machine_arn: str, now: datetime) -> list[dict[str, Any]]:
    per_stage: Counter = Counter()
    items_in_flight = 0
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn, statusFilter="RUNNING")
    executions = [e for page in pages for e in page["executions"]][:MAX_EXECUTIONS]
    for execution in executions:
        # Step Functions lists the events of one execution newest first with reverseOrder; a handful is enough.
        events = sfn.get_execution_history(executionArn=execution["executionArn"], reverseOrder=True,
                                           maxResults=20)["events"]
        state = current_state(events)
        if state in STAGE_OF_STATE:
            per_stage[STAGE_OF_STATE[state]] += 1
        if state == "ProcessChunks":
            for run in sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"]:
                counts = sfn.describe_map_run(mapRunArn=run["mapRunArn"]).get("itemCounts") or {}
                items_in_flight += counts.get("running", 0)
    data = [datum("ExecutionsRunning", per_stage[stage], now, Stage=stage) for stage in STAGES]
    return data + [datum("MapItemsInFlight", items_in_flight, now, Stage="phase1")]


def collect(env: dict[str, str], sfn: Any, now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
    """Every source this deployment has: (metric data, one line per source that could not be read). A cluster
    that does not answer does not keep the others' metrics from being published."""
    from helixflow.errors import HelixflowError
    from helixflow.pipeline import ray_jobs, slurm_jobs

    data: list[dict[str, Any]] = []
    failures: list[str] = []
    data += pipeline_data(sfn, env["STATE_MACHINE_ARN"], now)
    if env.get("RAY_JOBS_URL"):
        try:
            head = ray_jobs.factory("ray")
            data += ray_data(head.get("/api/cluster_status?format=0"), head.get("/api/v0/tasks/summarize"), now)
        except HelixflowError as exc:
            failures.append(f"ray: {exc.describe()}")
    try:
        client = slurm_jobs.rest_client(env)
        if client is not None:
            jobs = client.slurm("GET", "jobs").get("jobs", [])
            nodes = client.slurm("GET", "nodes").get("nodes", [])
            partitions = [p["name"] for p in client.slurm("GET", "partitions").get("partitions", [])]
            data += slurm_data(jobs, nodes, partitions, client.api.state, now)
    except HelixflowError as exc:
        failures.append(f"slurm: {exc.describe()}")
    return data, failures

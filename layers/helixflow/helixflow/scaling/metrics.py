"""The one home of helixflow's CloudWatch metrics: names, units and dimensions.

The metrics publisher (functions/publish_metrics), the scaling Lambda (functions/scale_cluster), the alarms in
template.yaml and the local stack's alarm evaluator all name metrics through this module; tests check the
template's alarms against it. Metrics go out with PutMetricData, not Powertools' EMF log lines: EMF becomes a
metric only in CloudWatch Logs, which moto does not emulate, and the alarms must see the same data locally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

NAMESPACE = "Helixflow"
# Dimension values naming the clusters (one Ray cluster and one Slurm/PCS cluster per deployment).
RAY_CLUSTER = "ray"
SLURM_CLUSTER = "slurm"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # a CloudWatch StandardUnit
    dimensions: tuple[str, ...]
    description: str


_DEFINED = (
    Metric("RayPendingTasks", "Count", ("Cluster",), "Ray tasks waiting for a node (state PENDING_*)"),
    Metric("RayPendingCPU", "Count", ("Cluster",), "CPUs the Ray cluster's unmet demand asks for"),
    Metric("RayPendingGPU", "Count", ("Cluster",), "GPUs the Ray cluster's unmet demand asks for"),
    Metric("RayTasksInFlight", "Count", ("Cluster",), "Ray tasks pending or running (not yet finished)"),
    Metric("RayActiveNodes", "Count", ("Cluster",), "Ray worker nodes up (the head not counted)"),
    Metric("RayPendingNodes", "Count", ("Cluster",), "Ray worker nodes being launched"),
    Metric("SlurmPendingJobs", "Count", ("Cluster", "Partition"),
           "Slurm jobs queued in the partition (or CONFIGURING: waiting for nodes powering up)"),
    Metric("SlurmRunningJobs", "Count", ("Cluster", "Partition"), "Slurm jobs running in the partition"),
    Metric("SlurmJobsInFlight", "Count", ("Cluster", "Partition"), "Slurm jobs pending or running"),
    Metric("SlurmIdleNodes", "Count", ("Cluster", "Partition"), "nodes up and idle"),
    Metric("SlurmAllocatedNodes", "Count", ("Cluster", "Partition"), "nodes running jobs (allocated or mixed)"),
    Metric("SlurmPoweredDownNodes", "Count", ("Cluster", "Partition"), "elastic nodes powered down (no instance)"),
    Metric("ExecutionsRunning", "Count", ("Stage",), "pipeline executions whose current state is in the stage"),
    Metric("MapItemsInFlight", "Count", ("Stage",), "Distributed Map items (Phase 1 chunks) running"),
    Metric("ScalingDesiredNodes", "Count", ("Cluster", "Partition"), "the node count a scaling decision set"),
    Metric("ScalingDecisions", "Count", ("Cluster", "Partition"), "scaling decisions that changed capacity"),
)
METRICS: dict[str, Metric] = {metric.name: metric for metric in _DEFINED}

# What an alarm on each metric asks the scaling Lambda for: more capacity when work queues, release after the
# cluster had no work for the alarm's whole window.
SIGNAL_OF_METRIC: dict[str, str] = {"RayPendingTasks": "scale_out", "RayTasksInFlight": "scale_in",
                                    "SlurmPendingJobs": "scale_out", "SlurmJobsInFlight": "scale_in"}
# The metrics a scaling decision reads as the cluster's load: (pending, in flight, nodes up).
LOAD_METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    RAY_CLUSTER: ("RayPendingTasks", "RayTasksInFlight", ("RayActiveNodes",)),
    SLURM_CLUSTER: ("SlurmPendingJobs", "SlurmJobsInFlight", ("SlurmIdleNodes", "SlurmAllocatedNodes")),
}

# Which stage each state of statemachines/pipeline.asl.json belongs to (tests check that every state is here).
STAGE_OF_STATE: dict[str, str] = {
    **dict.fromkeys(("Initialize", "ResolveSample", "RouteSample", "WaitForMate", "CheckMate", "MateArrived",
                     "SkipDuplicateEvent", "SamplesheetDeclared", "AlreadyProcessed", "AlreadyRunning",
                     "ResumeAfterPhase1"), "resolve"),
    **dict.fromkeys(("PlanPhase1", "RouteValidation", "Validate"), "validate"),
    # On the distributed path the chunk runners validate as they go: ValidateChunks collates their verdicts.
    **dict.fromkeys(("ScanMates", "CheckScans", "TakeScanFailureOfMate1", "TakeScanFailureOfMate2", "SplitIntoChunks",
                     "RoutePhase1", "SubmitPhase1Job", "WaitForPhase1Job", "PollPhase1Job", "IsPhase1JobDone",
                     "ProcessChunks", "RouteChunkVerdicts", "ValidateChunks", "MergeChunks"), "phase1"),
    **dict.fromkeys(("PlanPhase2", "RoutePhase2", "SubmitPhase2Job", "WaitForPhase2Job", "PollPhase2Job",
                     "IsPhase2JobDone", "CollectPhase2"), "phase2"),
    **dict.fromkeys(("BuildReport", "Publish"), "publish"),  # the report is the first step of publishing
    **dict.fromkeys(("RecordFailure", "FailRun"), "failure"),
    # After the run ended: a samplesheet sample's outcome in its batch, and the batch report (publishing the batch).
    **dict.fromkeys(("RouteBatchReport", "BatchReport", "RunOutcome", "RunSucceeded"), "publish"),
}
STAGES = tuple(dict.fromkeys(STAGE_OF_STATE.values()))


def datum(name: str, value: float, timestamp: datetime, **dimensions: str) -> dict[str, Any]:
    """One PutMetricData entry; a metric or dimension set this module does not define is a programming error."""
    metric = METRICS[name]
    if set(dimensions) != set(metric.dimensions):
        raise ValueError(f"{name} takes dimensions {metric.dimensions}, not {tuple(dimensions)}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: {value} is not a number CloudWatch stores")
    return {"MetricName": name, "Unit": metric.unit, "Value": float(value), "Timestamp": timestamp,
            "Dimensions": [{"Name": key, "Value": dimensions[key]} for key in metric.dimensions]}


# PutMetricData takes at most 1000 entries per request.
PUT_BATCH = 1000


def put(cloudwatch: Any, data: list[dict[str, Any]]) -> int:
    for start in range(0, len(data), PUT_BATCH):
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start:start + PUT_BATCH])
    return len(data)

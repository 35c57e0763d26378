"""The scaling Lambda's work: an alarm event in, a recorded decision out, applied to the cluster.

- ``AlarmChange.parse``: the event CloudWatch sends a Lambda alarm action (tests/events/cloudwatch_alarm_*.json).
- ``read_load``: the cluster's newest published metrics (what the metrics publisher wrote).
- ``DecisionStore``: one DynamoDB table. ``event#<alarm ARN>#<state timestamp>`` items make a decision happen
  once per alarm state change (a retried or duplicated invocation gets the recorded decision back and does not
  act again); ``cluster#<cluster>#<partition>`` holds the last changing decision (the policy's cooldown).
- actuators: ``PcsNodeGroup`` (the node group's min/max through ``pcs.update_compute_node_group``),
  ``RayResourceRequest`` (the autoscaler's standing request, set by a small job on the head) and, for the local
  stack only, ``LocalSlurmFloor`` (the same bounds on a local Slurm's power-saving nodes).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from helixflow.errors import ClusterNotConfigured, ClusterUnavailable
from helixflow.scaling import metrics
from helixflow.scaling.policy import Decision, Load, Policy, Previous, decide

# How long an event's claim is kept (a retried alarm invocation comes within minutes).
CLAIM_TTL_S = 7 * 86400
RAY_REQUEST_TIMEOUT_S = 60


@dataclass(frozen=True)
class AlarmChange:
    alarm_arn: str
    alarm_name: str
    state: str
    timestamp: str  # of the state change: with the ARN, the identity of this transition
    metric: str
    dimensions: dict[str, str]
    period: int
    evaluated_datapoints: int

    @classmethod
    def parse(cls, event: dict[str, Any]) -> AlarmChange:
        data = event["alarmData"]
        stat = data["configuration"]["metrics"][0]["metricStat"]
        reason = data["state"].get("reasonData")
        evaluated = len(json.loads(reason).get("evaluatedDatapoints", [])) if reason else 0
        return cls(alarm_arn=event["alarmArn"], alarm_name=data["alarmName"], state=data["state"]["value"],
                   timestamp=data["state"]["timestamp"], metric=stat["metric"]["name"],
                   dimensions=dict(stat["metric"].get("dimensions") or {}), period=int(stat["period"]),
                   evaluated_datapoints=evaluated)

    @property
    def event_id(self) -> str:
        return f"{self.alarm_arn}#{self.timestamp}"

    @property
    def cluster(self) -> str:
        return self.dimensions["Cluster"]

    @property
    def partition(self) -> str:
        return self.dimensions.get("Partition", "")


def read_load(cloudwatch: Any, cluster: str, partition: str, period: int, now: datetime) -> Load:
    """The newest datapoint (Maximum over the last two periods) of the cluster's load metrics; none = zero."""
    pending, in_flight, node_metrics = metrics.LOAD_METRICS[cluster]
    dimensions = [{"Name": "Cluster", "Value": cluster}] + (
        [{"Name": "Partition", "Value": partition}] if partition else [])
    names = [pending, in_flight, *node_metrics]
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=[{"Id": f"m{i}", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": metrics.NAMESPACE, "MetricName": name, "Dimensions": dimensions},
            "Period": period, "Stat": "Maximum"}} for i, name in enumerate(names)],
        StartTime=now - timedelta(seconds=2 * period), EndTime=now + timedelta(seconds=1), ScanBy="TimestampDescending")
    newest = {}
    for result in answer["MetricDataResults"]:
        values = result.get("Values") or [0.0]
        newest[names[int(result["Id"][1:])]] = values[0]
    nodes = sum(newest[name] for name in node_metrics)
    return Load(pending=newest[pending], running=max(0.0, newest[in_flight] - newest[pending]), nodes=int(nodes))


class DecisionStore:
    def __init__(self, table: Any) -> None:
        self.table = table  # a boto3 DynamoDB Table

    def recorded(self, change: AlarmChange) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"pk": f"event#{change.event_id}"}, ConsistentRead=True).get("Item")
        return json.loads(item["decision"]) if item else None

    def claim(self, change: AlarmChange, record: dict[str, Any], now: float) -> bool:
        """True when this call is the first for the state change (and so the one that acts)."""
        from botocore.exceptions import ClientError

        try:
            self.table.put_item(Item={"pk": f"event#{change.event_id}", "decision": json.dumps(record),
                                      "expiration": int(now + CLAIM_TTL_S)},
                                ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def complete(self, change: AlarmChange, record: dict[str, Any]) -> None:
        """The claimed decision, now with what the cluster confirmed (a later replay returns this)."""
        self.table.update_item(Key={"pk": f"event#{change.event_id}"}, UpdateExpression="SET decision = :d",
                               ExpressionAttributeValues={":d": json.dumps(record)})

    def previous(self, cluster: str, partition: str) -> Previous | None:
        item = self.table.get_item(Key={"pk": f"cluster#{cluster}#{partition}"}, ConsistentRead=True).get("Item")
        return Previous(desired=int(item["desired"]), at=float(item["at"])) if item else None

    def changed(self, cluster: str, partition: str, desired: int, now: float) -> None:
        self.table.put_item(Item={"pk": f"cluster#{cluster}#{partition}", "desired": desired, "at": str(now)})


class Actuator(Protocol):
    def apply(self, desired: int, policy: Policy, decision_id: str) -> dict[str, Any]: ...


class PcsNodeGroup:
    """PCS scales the node group between its bounds from Slurm's queue: the floor is ``minInstanceCount``."""

    def __init__(self, pcs: Any, cluster_id: str, node_group_id: str) -> None:
        self.pcs, self.cluster_id, self.node_group_id = pcs, cluster_id, node_group_id

    def apply(self, desired: int, policy: Policy, decision_id: str) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        bounds = {"minInstanceCount": desired, "maxInstanceCount": policy.max_nodes}
        try:
            group = self.pcs.get_compute_node_group(clusterIdentifier=self.cluster_id,
                                                    computeNodeGroupIdentifier=self.node_group_id)["computeNodeGroup"]
            if group.get("scalingConfiguration") == bounds:
                return {"pcs": "unchanged", **bounds}
            self.pcs.update_compute_node_group(clusterIdentifier=self.cluster_id,
                                               computeNodeGroupIdentifier=self.node_group_id,
                                               scalingConfiguration=bounds, clientToken=decision_id[:64])
        except (BotoCoreError, ClientError) as exc:
            raise ClusterUnavailable(f"PCS node group {self.node_group_id} of {self.cluster_id} could not be "
                                     f"scaled: {exc}", code="PCS_SCALING_FAILED",
                                     details={"cluster": self.cluster_id, "node_group": self.node_group_id}) from exc
        return {"pcs": "updated", **bounds}


class RayResourceRequest:
    """Ray's autoscaler keeps nodes for a standing request (``request_resources``): ``desired`` bundles of one
    worker's shape, set by a job on the head; zero bundles release it."""

    def __init__(self, jobs: Any, worker_bundle: dict[str, float], sleep: Any = time.sleep) -> None:
        self.jobs, self.worker_bundle, self.sleep = jobs, worker_bundle, sleep

    def apply(self, desired: int, policy: Policy, decision_id: str) -> dict[str, Any]:
        submission_id = f"helixflow-scaling-{decision_id}"
        self.jobs.submit_module(submission_id, "helixflow.cluster.ray_request",
                                [json.dumps([self.worker_bundle] * desired)], metadata={"kind": "scaling"})
        deadline = time.monotonic() + RAY_REQUEST_TIMEOUT_S
        state = self.jobs.job_state(submission_id)
        while state in ("PENDING", "RUNNING") and time.monotonic() < deadline:
            self.sleep(0.5)
            state = self.jobs.job_state(submission_id)
        if state != "SUCCEEDED":
            raise ClusterUnavailable(f"the Ray resource request job {submission_id} ended {state or 'unknown'}",
                                     code="RAY_SCALING_FAILED", details={"submission_id": submission_id})
        return {"ray_request_job": submission_id, "bundles": desired, "bundle": self.worker_bundle}


class LocalSlurmFloor:
    """LOCAL GLUE, never used in AWS (only the local stack sets ``HELIXFLOW_LOCAL_SLURM_GROUPS``): what PCS does
    for a node group, done to the local Slurm's elastic nodes (helixflow_local.slurm, ``State=CLOUD`` under
    Slurm's power saving). Slurm powers nodes up for queued work and down after ``SuspendTime`` idle, as PCS
    launches and terminates instances between the bounds; the bounds are set here:

    - min (the floor): ``SuspendExcNodes=<nodes>:<min>`` in ``power_floor.conf`` (slurm.conf includes it) keeps
      that many usable nodes from being powered down, and nodes missing from the floor are powered up now
      (``scontrol update NodeName=... State=POWER_UP``), as raising minInstanceCount launches instances;
    - max: nodes past it are drained (no work starts there), nodes within it undrained.

    Why scontrol, not slurmrestd: slurmrestd 22.05 (v0.0.38, the OpenAPI it serves) has no node-update endpoint
    (``node/{name}`` and ``nodes`` are GET only), and 22.05's scontrol cannot update SuspendExcNodes at run time
    (23.02 can): the file is rewritten and ``scontrol reconfigure`` reads it. Node states are read through
    slurmrestd. Arguments are lists (no shell); node names come from the local stack's configuration."""

    DRAIN_REASON = "helixflow: above the node group's maximum"

    def __init__(self, conf: Path, partition: str, nodes: list[str], read_nodes: Callable[[], list[dict[str, Any]]],
                 run: Callable[..., Any] = subprocess.run) -> None:
        self.conf, self.partition, self.nodes = conf, partition, list(nodes)
        self.floor_file = conf.parent / "power_floor.conf"
        self.read_nodes, self.run = read_nodes, run

    def apply(self, desired: int, policy: Policy, decision_id: str) -> dict[str, Any]:
        maximum = policy.max_nodes
        if not 0 <= desired <= maximum <= len(self.nodes):
            raise ClusterNotConfigured(f"partition {self.partition} has {len(self.nodes)} elastic node(s): it cannot "
                                       f"keep {desired} within a maximum of {maximum}", code="SCALING_NOT_CONFIGURED",
                                       details={"partition": self.partition, "nodes": len(self.nodes)})
        bounds = {"minInstanceCount": desired, "maxInstanceCount": maximum}
        text = self.floor_text(desired, maximum, decision_id)
        if self.floor_file.is_file() and self.floor_file.read_text() == text:
            return {"slurm": "unchanged", **bounds, "powered_up": []}  # this decision was applied already
        allowed, above = self.nodes[:maximum], self.nodes[maximum:]
        states = {n.get("name"): _node_tokens(n) for n in self.read_nodes()}
        drain = [n for n in above if not states.get(n, set()) & {"DRAIN", "DRAINED"}]
        undrain = [n for n in allowed if states.get(n, set()) & {"DRAIN", "DRAINED"}]
        self.floor_file.write_text(text)
        self._scontrol("reconfigure")
        if drain:
            self._scontrol("update", f"NodeName={','.join(drain)}", "State=DRAIN", f"Reason={self.DRAIN_REASON}")
        if undrain:
            self._scontrol("update", f"NodeName={','.join(undrain)}", "State=RESUME")
        up = [n for n in allowed if not states.get(n, set()) & _POWERED_DOWN]
        power_up = [n for n in allowed if n not in up][:max(0, desired - len(up))]
        if power_up:
            self._scontrol("update", f"NodeName={','.join(power_up)}", "State=POWER_UP")
        return {"slurm": "updated", **bounds, "powered_up": power_up, "drained": drain}

    def floor_text(self, desired: int, maximum: int, decision_id: str) -> str:
        # One hostlist expression with one count: "a,b:2" would be two sets (all of a, two of b).
        keep = f"SuspendExcNodes={hostlist(self.nodes[:maximum])}:{desired}\n" if desired else ""
        return (f"# Written by the scaling Lambda (decision {decision_id}): partition {self.partition} "
                f"min {desired}, max {maximum}.\n{keep}")

    def _scontrol(self, *arguments: str) -> None:
        try:
            self.run(["scontrol", *arguments], env={**os.environ, "SLURM_CONF": str(self.conf)}, capture_output=True,
                     text=True, check=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            stderr = getattr(exc, "stderr", "") or ""
            raise ClusterUnavailable(f"scontrol {arguments[0]} failed: {stderr.strip() or exc}",
                                     code="SLURM_SCALING_FAILED", details={"partition": self.partition}) from exc


def hostlist(nodes: list[str]) -> str:
    """Slurm's hostlist expression of ``<prefix><n>`` nodes: ["elastic1", "elastic2", "elastic4"] ->
    "elastic[1-2,4]"."""
    parts = [re.fullmatch(r"(\D+)(\d+)", node) for node in nodes]
    if not parts or any(p is None for p in parts) or len({p[1] for p in parts}) != 1:
        raise ClusterNotConfigured(f"the elastic nodes {nodes} are not <prefix><number> names of one prefix",
                                   code="SCALING_NOT_CONFIGURED")
    numbers, ranges = sorted(int(p[2]) for p in parts), []
    for number in numbers:
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return f"{parts[0][1]}[{','.join(str(a) if a == b else f'{a}-{b}' for a, b in ranges)}]"


# A node Slurm has powered down (or is powering down): it is no capacity until powered up again.
_POWERED_DOWN = frozenset({"POWERED_DOWN", "POWER_DOWN", "POWERING_DOWN"})


def _node_tokens(node: dict[str, Any]) -> set[str]:
    values = [node.get("state"), *(node.get("state_flags") or [])]
    flat = [v for value in values for v in (value if isinstance(value, list) else [value]) if v]
    return {str(v).upper() for v in flat}


def decision_id(change: AlarmChange) -> str:
    return hashlib.sha256(change.event_id.encode()).hexdigest()[:32]


def handle_alarm(change: AlarmChange, *, policy: Policy, cloudwatch: Any, store: DecisionStore,
                 actuator_for: Any, now: float | None = None) -> dict[str, Any]:
    """Decide once per alarm state change, act, and return the decision record (also logged and published)."""
    now = time.time() if now is None else now
    if change.state != "ALARM":
        return {"action": "ignored", "reason": f"alarm state {change.state}", "alarm": change.alarm_name}
    recorded = store.recorded(change)
    if recorded is not None and (recorded["action"] == "hold" or "applied" in recorded):
        return {**recorded, "replayed": True}
    if recorded is not None:
        # Claimed, but the call that claimed it ended before the cluster confirmed: apply it again (both
        # actuators are idempotent per decision id), never decide anew.
        return _apply(recorded, store, actuator_for, policy, change, now) | {"replayed": True}
    signal = metrics.SIGNAL_OF_METRIC.get(change.metric)
    if signal is None or change.cluster not in metrics.LOAD_METRICS:
        raise ClusterNotConfigured(f"alarm {change.alarm_name} watches {change.metric}, which drives no scaling",
                                   code="SCALING_METRIC_UNKNOWN", details={"metric": change.metric})
    load = read_load(cloudwatch, change.cluster, change.partition, change.period,
                     datetime.fromtimestamp(now, timezone.utc))
    previous = store.previous(change.cluster, change.partition)
    decision: Decision = decide(policy, signal, load, previous, now,
                                idle_periods_seen=change.evaluated_datapoints)
    record = {"alarm": change.alarm_name, "signal": signal, "cluster": change.cluster,
              "partition": change.partition, "decided_at": datetime.fromtimestamp(now, timezone.utc).isoformat(),
              "load": asdict(load), **asdict(decision), "decision_id": decision_id(change)}
    if not store.claim(change, record, now):  # a concurrent duplicate claimed it first
        return {**(store.recorded(change) or record), "replayed": True}
    return _apply(record, store, actuator_for, policy, change, now) if decision.action != "hold" else record


def _apply(record: dict[str, Any], store: DecisionStore, actuator_for: Any, policy: Policy, change: AlarmChange,
           now: float) -> dict[str, Any]:
    applied = actuator_for(record["cluster"], record["partition"]).apply(record["desired"], policy,
                                                                         record["decision_id"])
    record = {**record, "applied": applied}
    store.changed(record["cluster"], record["partition"], record["desired"], now)
    store.complete(change, record)
    return record


def decision_data(record: dict[str, Any], timestamp: datetime) -> list[dict[str, Any]]:
    """The decision as metrics: the floor it set, and a count when it changed capacity."""
    dims = {"Cluster": record["cluster"], "Partition": record["partition"] or "all"}
    data = [metrics.datum("ScalingDesiredNodes", record["desired"], timestamp, **dims)]
    if record["action"] != "hold":
        data.append(metrics.datum("ScalingDecisions", 1, timestamp, **dims))
    return data


def worker_bundle(text: str | None) -> dict[str, float]:
    bundle = json.loads(text) if text else {"CPU": 1}
    if not bundle or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in bundle.values()):
        raise ClusterNotConfigured(f"RAY_WORKER_BUNDLE {text!r} is not a resource shape such as {{\"CPU\": 8}}",
                                   code="SCALING_NOT_CONFIGURED")
    return bundle


def actuators(env: dict[str, str], *, pcs: Any = None) -> Any:
    """``actuator_for(cluster, partition)`` of this deployment: the Ray head's resource request, the PCS node
    group that serves the partition (``PCS_NODE_GROUPS``: {"cpu": "<node group id>", ...}) or, on the local
    stack, its elastic Slurm nodes (``HELIXFLOW_LOCAL_SLURM_GROUPS``: {"cpu": ["elastic1", ...]})."""

    def actuator_for(cluster: str, partition: str) -> Actuator:
        local_groups = json.loads(env.get("HELIXFLOW_LOCAL_SLURM_GROUPS") or "{}")
        if cluster == metrics.RAY_CLUSTER and env.get("RAY_JOBS_URL"):
            from helixflow.pipeline import ray_jobs

            return RayResourceRequest(ray_jobs.factory("ray"), worker_bundle(env.get("RAY_WORKER_BUNDLE")))
        if cluster == metrics.SLURM_CLUSTER and env.get("PCS_CLUSTER_ID"):
            groups = json.loads(env.get("PCS_NODE_GROUPS") or "{}")
            if partition in groups:
                import boto3

                return PcsNodeGroup(pcs or boto3.client("pcs"), env["PCS_CLUSTER_ID"], groups[partition])
        if cluster == metrics.SLURM_CLUSTER and partition in local_groups and env.get("SLURM_CONF"):
            from helixflow.pipeline import slurm_jobs

            client = slurm_jobs.rest_client(env)
            return LocalSlurmFloor(Path(env["SLURM_CONF"]), partition, local_groups[partition],
                                   lambda: client.slurm("GET", "nodes").get("nodes", []))
        raise ClusterNotConfigured(f"no way to scale cluster {cluster!r} partition {partition!r} here (RAY_JOBS_URL, "
                                   "or PCS_CLUSTER_ID with the partition in PCS_NODE_GROUPS)",
                                   code="SCALING_NOT_CONFIGURED", details={"cluster": cluster, "partition": partition})

    return actuator_for

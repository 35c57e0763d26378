"""The scaling policy: a pure function from an alarm's signal, the cluster's load and its last decision to the
node count the cluster should keep.

The clusters scale themselves between bounds (PCS from Slurm's queue, Ray's autoscaler from pending demand);
a decision moves the floor: raised to pre-warm nodes for a burst that is queued, released to ``min_nodes``
(zero by default) once the cluster has been idle for ``idle_periods`` alarm periods. ``max_nodes`` caps both.

Alarms invoke the scaling Lambda once per transition into ALARM, so the policy never waits for a later call:
the scale-in alarm's own window (EvaluationPeriods = ScaleInIdlePeriods periods in template.yaml) *is* the idle
period, and the event's evaluated datapoints tell how long the cluster has been idle: an alarm with a shorter
window than the policy's does not scale in.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Literal

Signal = Literal["scale_out", "scale_in"]
Action = Literal["scale_out", "scale_in", "hold"]

# Defaults of a deployment (template.yaml passes its parameters through the environment variables below).
TARGET_JOBS_PER_NODE = 2.0
MIN_NODES = 0
MAX_NODES = 4
COOLDOWN_S = 300
IDLE_PERIODS = 10
ENVIRONMENT = {"target_jobs_per_node": "SCALING_JOBS_PER_NODE", "min_nodes": "SCALING_MIN_NODES",
               "max_nodes": "SCALING_MAX_NODES", "cooldown_s": "SCALING_COOLDOWN_S", "idle_periods": "SCALING_IDLE_PERIODS"}


@dataclass(frozen=True)
class Policy:
    target_jobs_per_node: float = TARGET_JOBS_PER_NODE  # queued + running jobs (or Ray tasks) one node serves
    min_nodes: int = MIN_NODES  # the floor when idle
    max_nodes: int = MAX_NODES  # the cap, always
    cooldown_s: float = COOLDOWN_S  # no lowering of the floor this soon after the last change
    idle_periods: int = IDLE_PERIODS  # alarm periods without work before the floor goes back to min_nodes

    def __post_init__(self) -> None:
        if not (self.target_jobs_per_node > 0 and 0 <= self.min_nodes <= self.max_nodes and self.cooldown_s >= 0
                and self.idle_periods >= 1):
            raise ValueError(f"inconsistent scaling policy {self}")

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Policy:
        env = os.environ if environ is None else environ
        policy = cls()
        for field, variable in ENVIRONMENT.items():
            if env.get(variable):
                kind = type(getattr(policy, field))
                policy = replace(policy, **{field: kind(float(env[variable]))})
        return policy


@dataclass(frozen=True)
class Load:
    """The cluster (or one partition) now, from the newest published metrics."""

    pending: float  # jobs or tasks waiting
    running: float
    nodes: int  # nodes up (workers; Slurm: idle + allocated)


@dataclass(frozen=True)
class Previous:
    desired: int  # the floor the last changing decision set
    at: float  # when, epoch seconds


@dataclass(frozen=True)
class Decision:
    action: Action
    desired: int  # the floor to set (equal to ``previous`` for "hold")
    previous: int
    needed: int  # nodes the current work needs, within the bounds
    reason: str


def nodes_needed(policy: Policy, load: Load) -> int:
    work = max(0.0, load.pending) + max(0.0, load.running)
    return min(policy.max_nodes, max(policy.min_nodes, math.ceil(work / policy.target_jobs_per_node)))


def decide(policy: Policy, signal: Signal, load: Load, previous: Previous | None, now: float,
           idle_periods_seen: int) -> Decision:
    """What the cluster's floor becomes after an alarm with ``signal`` went into ALARM at ``now``."""
    current = previous.desired if previous else policy.min_nodes
    needed = nodes_needed(policy, load)

    def hold(reason: str) -> Decision:
        return Decision("hold", current, current, needed, reason)

    if signal == "scale_out":
        if needed > current:
            return Decision("scale_out", needed, current, needed,
                            f"{load.pending:g} pending + {load.running:g} running at {policy.target_jobs_per_node:g} "
                            f"per node need {needed} node(s) (max {policy.max_nodes})")
        return hold(f"the floor {current} already covers {load.pending:g} pending + {load.running:g} running")
    if load.pending > 0 or load.running > 0:
        return hold(f"not idle: {load.pending:g} pending + {load.running:g} running")
    if idle_periods_seen < policy.idle_periods:
        return hold(f"idle for {idle_periods_seen} of the {policy.idle_periods} periods before scaling in")
    if current <= policy.min_nodes:
        return hold(f"already at the floor of {policy.min_nodes}")
    if previous is not None and now - previous.at < policy.cooldown_s:
        return hold(f"cooldown: the last change was {now - previous.at:.0f} s ago (< {policy.cooldown_s:g} s)")
    return Decision("scale_in", policy.min_nodes, current, needed,
                    f"idle for {idle_periods_seen} periods (>= {policy.idle_periods}): back to {policy.min_nodes} node(s)")

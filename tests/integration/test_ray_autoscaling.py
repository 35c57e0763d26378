"""Ray's own autoscaler, with its fake multi-node provider, on the local head: no workers at rest, workers for a
job's pending demand, none again after idle_timeout_minutes (as cluster.yaml scales EC2 workers in AWS)."""

from __future__ import annotations

import shlex
import time

import pytest

from helixflow_local.ray_head import WORKER_RESOURCE, LocalRay

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Two tasks that only a worker node can run (the head has no WORKER_RESOURCE).
DEMAND = ("import ray, time\n"
          "ray.init()\n"
          f"task = ray.remote(resources={{{WORKER_RESOURCE!r}: 1}})(lambda: time.sleep(3))\n"
          "ray.get([task.remote() for _ in range(2)])\n")


def _wait(condition, timeout: float, what: str) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return time.monotonic() - began
        time.sleep(0.5)
    raise AssertionError(f"not {what} within {timeout} s")


def test_workers_come_for_demand_and_go_when_idle(tmp_path_factory):
    # A short state directory (tmp_path_factory's, not the test's own): Ray's socket paths live under it.
    with LocalRay(tmp_path_factory.mktemp("ray"), autoscaling=True, num_cpus=1, max_workers=2, idle_timeout_minutes=0.25) as head:
        assert head.alive_workers() == 0
        submitted = head.request("POST", "/api/jobs/", {"entrypoint": shlex.join([head.python, "-c", DEMAND]),
                                                        "submission_id": "demand"})
        assert submitted["submission_id"] == "demand"
        up = _wait(lambda: head.alive_workers() >= 1, 120, "a worker up")
        done = _wait(lambda: head.request("GET", "/api/jobs/demand")["status"] in ("SUCCEEDED", "FAILED"), 120,
                     "the job done")
        assert head.request("GET", "/api/jobs/demand")["status"] == "SUCCEEDED"
        workers = max(head.alive_workers(), 1)
        down = _wait(lambda: head.alive_workers() == 0, 120, "back to no workers")
        print(f"autoscaling: head {head.start_seconds:.1f} s; {workers} worker(s) up {up:.1f} s after submit, "
              f"job done {done:.1f} s later, back to 0 workers {down:.1f} s after that")

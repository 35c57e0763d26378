"""The elasticity loop end to end on the local stack with real engines: the metrics publisher on its schedule,
the template's alarms evaluated from the metrics stored in moto, the scaling Lambda invoked as the alarms'
direct action, and Ray's own autoscaler adding and removing worker nodes for the standing request it sets.

A burst of work the head cannot run (tasks that need a worker node) arrives: RayPendingTasks rises, the
scale-out alarm fires, the decision raises the floor, workers come up and the work finishes; the floor holds
the workers until the scale-in alarm has seen the idle window, then the decision releases it and the cluster
goes back to no workers."""

from __future__ import annotations

import json
import shlex
import time
from datetime import datetime, timedelta, timezone

import pytest

from helixflow_local.ray_head import WORKER_RESOURCE
from helixflow_local.stack import STACK_NAME, LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASKS = 3
BURST = ("import ray, time\n"
         "ray.init()\n"
         f"task = ray.remote(num_cpus=1, resources={{{WORKER_RESOURCE!r}: 1}})(lambda: time.sleep(4))\n"
         f"ray.get([task.remote() for _ in range({TASKS})])\n")


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not {what} within {timeout} s")


def _decisions(stack: LocalStack, alarm: str) -> list[dict]:
    found = []
    for entry in stack.cloudwatch.transitions():
        if entry["alarm"] == f"{STACK_NAME}-{alarm}" and entry["state"] == "ALARM":
            found += [r["result"] for r in entry["results"] if "result" in r]
    return found


def _request_demand(head) -> list:
    status = head.request("GET", "/api/cluster_status?format=0")["data"]["clusterStatus"]
    return status["loadMetricsReport"].get("requestDemand") or []


def _max_metric(stack: LocalStack, name: str, since: datetime) -> float:
    answer = stack.client("cloudwatch").get_metric_statistics(
        Namespace="Helixflow", MetricName=name, Dimensions=[{"Name": "Cluster", "Value": "ray"}],
        StartTime=since, EndTime=datetime.now(timezone.utc) + timedelta(seconds=10), Period=10,
        Statistics=["Maximum"])
    return max((p["Maximum"] for p in answer["Datapoints"]), default=0.0)


def test_a_burst_scales_ray_out_through_the_alarms_and_back_to_no_workers(tmp_path_factory, capsys):
    began = datetime.now(timezone.utc)
    clock = time.monotonic()
    # A short state directory: Ray's socket paths live under it.
    with LocalStack(tmp_path_factory.mktemp("el"), ray=True, ray_workers=2, elasticity=True) as stack:
        head = stack.ray
        started = time.monotonic() - clock
        assert head.alive_workers() == 0
        burst_at = time.monotonic()
        head.request("POST", "/api/jobs/", {"entrypoint": shlex.join([head.python, "-c", BURST]),
                                            "submission_id": "burst"})
        out, = _wait(lambda: _decisions(stack, "RayScaleOutAlarm"), 60, "the scale-out decision")
        assert out["action"] == "scale_out" and out["signal"] == "scale_out", out
        assert 1 <= out["desired"] <= 2 and out["load"]["pending"] >= 1, out
        assert out["applied"]["bundles"] == out["desired"]
        # The autoscaler's status shows the standing request from its next update on (every few seconds).
        requested = _wait(lambda: _request_demand(head), 30, "the standing request in the autoscaler's status")
        assert requested[0][1] == out["desired"], requested
        _wait(lambda: head.alive_workers() >= 1, 90, "worker nodes up")
        _wait(lambda: head.request("GET", "/api/jobs/burst")["status"] in ("SUCCEEDED", "FAILED"), 90, "the burst done")
        assert head.request("GET", "/api/jobs/burst")["status"] == "SUCCEEDED"
        done_at = time.monotonic()
        assert _max_metric(stack, "RayPendingTasks", began) >= 1
        assert _max_metric(stack, "RayActiveNodes", began) >= 1
        # The released floor lets Ray's idle timeout remove the workers.
        released = _wait(lambda: [d for d in _decisions(stack, "RayScaleInAlarm") if d["action"] == "scale_in"],
                         90, "the scale-in decision")[0]
        assert released["desired"] == 0 and released["previous"] == out["desired"], released
        _wait(lambda: not _request_demand(head), 30, "the standing request released")
        _wait(lambda: head.alive_workers() == 0, 90, "back to no workers")
        floor_at = time.monotonic()
        log = [(e["at"], e["alarm"].removeprefix(f"{STACK_NAME}-"), e["previous"], e["state"], e["datapoints"],
                [(r["result"].get("action"), r["result"].get("desired"), r["result"].get("reason"))
                 for r in e["results"] if "result" in r]) for e in stack.cloudwatch.transitions()]
        with capsys.disabled():
            print(f"\nelastic loop: stack with Ray up in {started:.1f} s; scale-out decision {out['decided_at']}, work done {done_at - burst_at:.1f} s "
                  f"after the burst, floor released {released['decided_at']}, no workers {floor_at - burst_at:.1f} s "
                  "after the burst")
            for line in log:
                print("  ", *line)
        # The same alarm state change delivered again gets its recorded decision back and acts no more.
        entry = next(e for e in stack.cloudwatch.transitions() if "event" in e and any(
            r.get("result", {}).get("decision_id") == released["decision_id"] for r in e["results"]))
        action = entry["results"][0]["action"]
        replay = json.loads(stack.client("lambda").invoke(FunctionName=action, Payload=json.dumps(entry["event"]))[
            "Payload"].read())
        assert replay["replayed"] is True and replay["decision_id"] == released["decision_id"], replay
        assert replay["applied"] == released["applied"]

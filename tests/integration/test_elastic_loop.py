"""The elasticity loop end to end on the local stack with real engines: the metrics publisher on its schedule,
the template's alarms evaluated from the metrics stored in moto, the scaling Lambda invoked as the alarms'
direct action, and Ray's own autoscaler adding and removing worker nodes for the standing request it sets.

A burst of work the head cannot run (tasks that need a worker node) arrives: RayPendingTasks rises, the
scale-out alarm fires, the decision raises the floor, workers come up and the work finishes; the floor holds
the workers until the scale-in alarm has seen the idle window, then the decision releases it and the cluster
goes back to no workers.

The same loop on Slurm: partition cpu is a node group of two elastic nodes under Slurm's power saving, all
powered down. A burst of samples with a reference queues Phase 2 jobs: Slurm powers nodes up for them (jobs wait
CONFIGURING, counted as pending), SlurmPendingJobs rises, the scale-out alarm fires and the decision raises the
floor (SuspendExcNodes), the jobs run on the new nodes and the runs publish; the floor keeps the nodes up until
the scale-in alarm has seen the idle window, then the release lets Slurm power every node down again."""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from helixflow.errors import ClusterUnavailable
from helixflow.phase1.simulate import write_sample
from helixflow_local.client import collect, submit, wait_for_run
from helixflow_local.ray_head import WORKER_RESOURCE
from helixflow_local.stack import STACK_NAME, LocalStack
from tests.helpers import require_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASKS = 3
BURST = ("import ray, time\n"
         "ray.init()\n"
         f"task = ray.remote(num_cpus=1, resources={{{WORKER_RESOURCE!r}: 1}})(lambda: time.sleep(4))\n"
         f"ray.get([task.remote() for _ in range({TASKS})])\n")


def _wait(condition, timeout: float, what: str, context=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not {what} within {timeout} s{context()}")


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


# ---------------------------------------------------------------------------------------------- Slurm
# One more than the nodes: the third job queues (PENDING) while two run, whatever slurmctld's timing.
SAMPLES = 3
REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "unit" / "phase2" / "genomes" / "lambda_virus.fa.gz"


class NodeWatch:
    """Every half second, which elastic nodes are up (neither powered down nor powering down), with the time."""

    def __init__(self, slurm) -> None:
        self.client, self.samples, self._stop = slurm.client(), [], threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                nodes = self.client.slurm("GET", "nodes").get("nodes", [])
            except ClusterUnavailable:  # the stack is stopping (a failed assertion ends the test early)
                return
            up = sorted(n["name"] for n in nodes if "cpu" in (n.get("partitions") or [])
                        and not {"POWERED_DOWN", "POWERING_DOWN"} & set(n.get("state_flags") or []))
            self.samples.append((time.monotonic(), up))

    def up(self) -> list[str]:
        return self.samples[-1][1] if self.samples else []

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _where(stack: LocalStack) -> str:
    """What to look at when the loop stalls: the executions (a run failing before Phase 2 queues no job) and the
    Slurm alarms' transitions with their decisions."""
    executions = stack.client("stepfunctions").list_executions(stateMachineArn=stack.info.state_machine_arn)["executions"]
    alarms = [(e["at"], e["alarm"], e["state"], [r.get("result") for r in e["results"]])
              for e in stack.cloudwatch.transitions() if "SlurmCpu" in e["alarm"]]
    return f"; executions {sorted(e['status'] for e in executions)}; Slurm alarms {alarms}"


def _slurm_metric(stack: LocalStack, name: str, since: datetime) -> float:
    answer = stack.client("cloudwatch").get_metric_statistics(
        Namespace="Helixflow", MetricName=name, Dimensions=[{"Name": "Cluster", "Value": "slurm"},
                                                            {"Name": "Partition", "Value": "cpu"}],
        StartTime=since, EndTime=datetime.now(timezone.utc) + timedelta(seconds=10), Period=10,
        Statistics=["Maximum"])
    return max((p["Maximum"] for p in answer["Datapoints"]), default=0.0)


def test_a_burst_of_samples_powers_slurm_nodes_up_through_the_alarms_and_back_down(tmp_path_factory, tmp_path,
                                                                                  capsys):
    require_tool(all(shutil.which(d) for d in ("munged", "slurmctld", "slurmd", "slurmrestd", "scontrol")),
                 "Slurm (slurm-wlm, slurmrestd, slurm-wlm-jwt-plugin, munge)")
    began = datetime.now(timezone.utc)
    clock = time.monotonic()
    with LocalStack(tmp_path_factory.mktemp("es"), slurm=True, elasticity=True) as stack:
        started = time.monotonic() - clock
        status = stack.slurm.status()
        elastic = [n for n in status["nodes"] if "cpu" in n["partitions"]]
        # The floor is zero: the node group's nodes exist in Slurm, powered down (PCS: no instances).
        assert [n["name"] for n in elastic] == ["elastic1", "elastic2"], status
        assert all("POWERED_DOWN" in n["flags"] for n in elastic), status
        stack.client("s3").upload_file(str(REFERENCE), stack.info.bucket, "references/lambda_virus.fa.gz")
        params = {"phase2": "slurm-cpu", "reference": "references/lambda_virus.fa.gz"}
        samples = [[Path(p) for p in write_sample(tmp_path / f"s{i}", 200, paired=True, fmt="gzip", name=f"burst{i}",
                                                  fragment_mean=180.0)] for i in range(SAMPLES)]
        watch = NodeWatch(stack.slurm)
        burst_at = time.monotonic()
        uploads = [submit(stack.info, reads, params) for reads in samples]
        out, = _wait(lambda: [d for d in _decisions(stack, "SlurmCpuScaleOutAlarm") if d.get("action") == "scale_out"],
                     240, "the Slurm scale-out decision", lambda: _where(stack))
        assert out["signal"] == "scale_out" and out["load"]["pending"] >= 1 and 1 <= out["desired"] <= 2, out
        assert out["applied"]["slurm"] == "updated" and out["applied"]["minInstanceCount"] == out["desired"], out
        floor_up_at = _wait(lambda: len(watch.up()) >= out["desired"] and time.monotonic(), 60, "the floor's nodes up")
        outcomes = [collect(stack.info, wait_for_run(stack.info, upload, timeout=300), tmp_path / f"out{i}")
                    for i, upload in enumerate(uploads)]
        done_at = time.monotonic()
        client = stack.slurm.client()
        ran_on = set()
        for outcome in outcomes:
            assert outcome.succeeded, outcome.error_document
            job_id = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())["stages"]["phase2_job"]["job_id"]
            ran_on.add(client.slurm("GET", f"job/{job_id}")["jobs"][0]["nodes"])
        assert ran_on <= {"elastic1", "elastic2"}, ran_on  # the Phase 2 jobs ran on nodes Slurm powered up
        released = _wait(lambda: [d for d in _decisions(stack, "SlurmCpuScaleInAlarm") if d.get("action") == "scale_in"],
                         120, "the Slurm scale-in decision")[0]
        assert released["desired"] == 0 and released["previous"] == out["desired"], released
        assert released["applied"]["minInstanceCount"] == 0
        # The floor kept its nodes up through the idle window (longer than Slurm's SuspendTime) until this release:
        # no sample from the nodes coming up to the release decision saw one powered down. (Not the decision's
        # load.nodes: on a loaded machine a slurmd answering late is NOT_RESPONDING, neither idle nor allocated,
        # for a whole metric period while it stays powered up.)
        released_at = clock + (datetime.fromisoformat(released["decided_at"]) - began).total_seconds()
        held = [(round(t - burst_at, 1), up) for t, up in watch.samples if floor_up_at <= t <= released_at - 1.0]
        dips = [(t, up) for t, up in held if len(up) < out["desired"]]
        assert held and not dips, (f"floor {out['desired']} from +{floor_up_at - burst_at:.1f} s to the release at "
                                   f"+{released_at - burst_at:.1f} s; fewer nodes up at {dips[:6]}"
                                   + _slurm_context(stack.slurm.state_dir))
        _wait(lambda: watch.samples and not watch.up(), 60, "every elastic node powered down")
        floor_at = time.monotonic()
        watch.stop()
        assert _slurm_metric(stack, "SlurmPendingJobs", began) >= 1
        assert _slurm_metric(stack, "SlurmAllocatedNodes", began) >= 1
        assert _slurm_metric(stack, "SlurmPoweredDownNodes", began) == 2
        peak = max(len(up) for _, up in watch.samples)
        first_up = next(t for t, up in watch.samples if up) - burst_at
        all_down = next(t for t, up in reversed(watch.samples) if up) + 0.5 - burst_at
        log = [(e["at"], e["alarm"].removeprefix(f"{STACK_NAME}-"), e["previous"], e["state"], e["datapoints"],
                [(r["result"].get("action"), r["result"].get("desired"), r["result"].get("reason"))
                 for r in e["results"] if "result" in r]) for e in stack.cloudwatch.transitions()
               if "Slurm" in e["alarm"]]
        with capsys.disabled():
            print(f"\nelastic Slurm: stack up in {started:.1f} s; burst of {SAMPLES} samples; scale-out decision "
                  f"{out['decided_at']} (floor {out['desired']}, powered up {out['applied']['powered_up']}); first "
                  f"node up {first_up:.1f} s and at most {peak} up; runs done {done_at - burst_at:.1f} s after the "
                  f"burst on {sorted(ran_on)}; floor released {released['decided_at']}; all nodes powered down "
                  f"{all_down:.1f} s after the burst (checked at {floor_at - burst_at:.1f} s)")
            for line in log:
                print("  ", *line)
            changes = [(t, up) for i, (t, up) in enumerate(watch.samples) if i == 0 or up != watch.samples[i - 1][1]]
            print("   nodes up:", ", ".join(f"+{t - burst_at:.1f} s {up or 'none'}" for t, up in changes))
        # A repeated delivery of the release gets its recorded decision back and acts no more.
        entry = next(e for e in stack.cloudwatch.transitions() if "event" in e and any(
            r.get("result", {}).get("decision_id") == released["decision_id"] for r in e["results"]))
        replay = json.loads(stack.client("lambda").invoke(FunctionName=entry["results"][0]["action"],
                                                          Payload=json.dumps(entry["event"]))["Payload"].read())
        assert replay["replayed"] is True and replay["applied"] == released["applied"], replay


def _power(client) -> dict[str, str]:
    """Each elastic node: "up", "down" (powered or powering down) or "booting"."""
    found = {}
    for node in client.slurm("GET", "nodes").get("nodes", []):
        flags = set(node.get("state_flags") or [])
        found[node["name"]] = ("down" if flags & {"POWERED_DOWN", "POWERING_DOWN"} else
                               "booting" if flags & {"POWERING_UP", "NOT_RESPONDING"} else "up")
    return found


def _slurm_context(state: Path) -> str:
    """What a failed power wait shows: the power programs' log and the end of slurmctld's and each slurmd's."""
    parts = []
    logs = [state / "log" / name for name in ("power.log", "slurmctld.log")] + sorted((state / "log").glob("slurmd.*"))
    for log in logs:
        if log.is_file():
            parts.append(f"\n--- {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:]))
    return "".join(parts)


@pytest.mark.extended  # the burst test above moves the same floor through the alarms
def test_the_local_actuator_powers_up_exactly_the_floor_holds_it_and_releases_it():
    """The actuator alone on a real Slurm: a floor of 1 of 2 idle nodes powers one up (no job asked for it) and
    keeps it past SuspendTime while the other stays down; a floor of 0 lets Slurm power it down."""
    require_tool(all(shutil.which(d) for d in ("munged", "slurmctld", "slurmd", "slurmrestd", "scontrol")),
                 "Slurm (slurm-wlm, slurmrestd, slurm-wlm-jwt-plugin, munge)")
    from helixflow.scaling.decide import LocalSlurmFloor
    from helixflow.scaling.policy import Policy
    from helixflow_local.slurm import RESUME_TIMEOUT_S, SUSPEND_TIME_S, LocalSlurm

    # /tmp, not pytest's private tmp_path: slurmrestd runs as nobody and must reach slurm.conf.
    state = Path(tempfile.mkdtemp(prefix="helixflow-slurm-floor-"))
    try:
        with LocalSlurm(state, gpus=0, elastic_nodes=2) as slurm:
            client = slurm.client()
            assert _power(client) == {"elastic1": "down", "elastic2": "down"}
            floor = LocalSlurmFloor(slurm.conf, "cpu", slurm.elastic, lambda: client.slurm("GET", "nodes")["nodes"])
            raised = floor.apply(1, Policy(max_nodes=2), "floor-1")
            assert raised["powered_up"] == ["elastic1"], raised
            # Slurm itself gives a resuming node ResumeTimeout to register.
            _wait(lambda: _power(client)["elastic1"] == "up", RESUME_TIMEOUT_S, "the floor's node up",
                  lambda: _slurm_context(state))
            time.sleep(SUSPEND_TIME_S + 4)  # idle longer than SuspendTime: only the floor keeps it
            assert _power(client) == {"elastic1": "up", "elastic2": "down"}
            assert floor.apply(1, Policy(max_nodes=2), "floor-1")["slurm"] == "unchanged"
            floor.apply(0, Policy(max_nodes=2), "floor-0")
            _wait(lambda: _power(client)["elastic1"] == "down", 30, "the released node powered down",
                  lambda: _slurm_context(state))
    finally:
        shutil.rmtree(state, ignore_errors=True)

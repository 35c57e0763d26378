"""One home for the metrics: every alarm in template.yaml watches a defined metric with its dimensions, every
state of the state machine has a stage, and the parsers read the engines' real answers."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helixflow.scaling import metrics
from helixflow.scaling.observe import current_state, node_kind, ray_data, slurm_data
from helixflow_local.template import Template

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "tests" / "events"
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def _values(data):
    return {(d["MetricName"], tuple(x["Value"] for x in d["Dimensions"])): d["Value"] for d in data}


def test_every_state_of_the_state_machine_belongs_to_a_stage():
    states = json.loads((ROOT / "statemachines" / "pipeline.asl.json").read_text())["States"]
    assert set(states) == set(metrics.STAGE_OF_STATE)


def test_every_helixflow_alarm_in_the_template_watches_a_defined_metric_with_its_dimensions():
    alarms = {k: v["Properties"] for k, v in Template(ROOT / "template.yaml").of_type("AWS::CloudWatch::Alarm").items()
              if v["Properties"]["Namespace"] == metrics.NAMESPACE}
    assert alarms
    for logical_id, props in alarms.items():
        metric = metrics.METRICS[props["MetricName"]]
        assert tuple(d["Name"] for d in props["Dimensions"]) == metric.dimensions, logical_id
        assert props["MetricName"] in metrics.SIGNAL_OF_METRIC, logical_id


def test_a_datum_takes_exactly_its_metrics_dimensions():
    entry = metrics.datum("SlurmPendingJobs", 3, NOW, Cluster="slurm", Partition="cpu")
    assert entry["Unit"] == "Count" and entry["Dimensions"][1] == {"Name": "Partition", "Value": "cpu"}
    with pytest.raises(ValueError):
        metrics.datum("SlurmPendingJobs", 3, NOW, Cluster="slurm")
    with pytest.raises(KeyError):
        metrics.datum("Undefined", 1, NOW)


def test_ray_metrics_from_the_heads_real_answers():
    status = json.loads((EVENTS / "ray_cluster_status_scaling.json").read_text())
    tasks = json.loads((EVENTS / "ray_tasks_summarize_scaling.json").read_text())
    values = _values(ray_data(status, tasks, NOW))
    # Captured with 3 tasks needing a worker: 1 running on the one worker up, 2 waiting, 2 workers launching.
    assert values[("RayPendingTasks", ("ray",))] == 2
    assert values[("RayTasksInFlight", ("ray",))] == 3
    assert values[("RayPendingCPU", ("ray",))] == 2
    assert values[("RayPendingGPU", ("ray",))] == 0
    assert values[("RayActiveNodes", ("ray",))] == 1
    assert values[("RayPendingNodes", ("ray",))] == 2


@pytest.mark.parametrize(("node", "kind"), [
    ({"state": "idle", "state_flags": []}, "idle"),
    ({"state": "idle", "state_flags": ["POWERED_DOWN"]}, "powered_down"),
    ({"state": ["IDLE", "POWERED_DOWN"]}, "powered_down"),
    ({"state": "idle", "state_flags": ["CLOUD", "POWERED_DOWN"]}, "powered_down"),
    ({"state": "idle", "state_flags": ["CLOUD"]}, "idle"),  # a powered-up elastic node keeps its CLOUD flag
    ({"state": "allocated", "state_flags": ["CLOUD"]}, "allocated"),
    ({"state": "mixed"}, "allocated"),
    ({"state": ["ALLOCATED"]}, "allocated"),
    ({"state": "idle", "state_flags": ["DRAIN"]}, None),
    ({"state": ["DOWN", "NOT_RESPONDING"]}, None),
])
def test_node_states_of_both_api_versions(node, kind):
    assert node_kind(node) == kind


def test_slurm_metrics_count_per_partition():
    jobs = [{"partition": "cpu", "job_state": "PENDING"}, {"partition": "cpu", "job_state": "RUNNING"},
            {"partition": "gpu", "job_state": "PENDING"}, {"partition": "cpu", "job_state": "COMPLETED"}]
    nodes = [{"state": "mixed", "partitions": ["cpu"]}, {"state": "idle", "state_flags": ["POWERED_DOWN"],
                                                         "partitions": ["cpu", "gpu"]}]
    values = _values(slurm_data(jobs, nodes, ["cpu", "gpu"], lambda job: job["job_state"], NOW))
    assert values[("SlurmPendingJobs", ("slurm", "cpu"))] == 1
    assert values[("SlurmRunningJobs", ("slurm", "cpu"))] == 1
    assert values[("SlurmJobsInFlight", ("slurm", "cpu"))] == 2
    assert values[("SlurmPendingJobs", ("slurm", "gpu"))] == 1
    assert values[("SlurmAllocatedNodes", ("slurm", "cpu"))] == 1
    assert values[("SlurmPoweredDownNodes", ("slurm", "gpu"))] == 1


def test_a_job_waiting_for_its_nodes_to_power_up_is_queued_not_idle():
    # v0.0.38 reports an allocated job on powering-up (CLOUD) nodes as CONFIGURING: work waiting for capacity.
    jobs = [{"partition": "cpu", "job_state": "CONFIGURING"}, {"partition": "cpu", "job_state": "COMPLETING"}]
    values = _values(slurm_data(jobs, [], ["cpu"], lambda job: job["job_state"], NOW))
    assert values[("SlurmPendingJobs", ("slurm", "cpu"))] == 1
    assert values[("SlurmRunningJobs", ("slurm", "cpu"))] == 1
    assert values[("SlurmJobsInFlight", ("slurm", "cpu"))] == 2


def test_the_current_state_is_the_newest_state_entered():
    history = [{"type": "TaskScheduled"}, {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "Publish"}},
               {"type": "ChoiceStateEntered", "stateEnteredEventDetails": {"name": "RoutePhase2"}}]
    assert current_state(history) == "Publish"
    assert current_state([]) is None


def test_readme_lists_exactly_the_defined_metrics():
    import re

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Elasticity"):text.index("## Results layout")]
    listed = re.findall(r"^\| `(\w+)` \| (?:Cluster|Stage)", section, flags=re.M)
    assert listed == list(metrics.METRICS)

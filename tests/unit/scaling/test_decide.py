"""The scaling Lambda's work: the alarm event CloudWatch sends, one decision per alarm state change (recorded in
DynamoDB, replayed on a repeated delivery), and PCS node-group bounds moved through the real botocore `pcs`
model (moto has no PCS, so botocore's Stubber checks each request against the service model)."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from helixflow.errors import ClusterNotConfigured, ClusterUnavailable
from helixflow.scaling import metrics
from helixflow.scaling.decide import (AlarmChange, DecisionStore, PcsNodeGroup, actuators, decision_data,
                                      handle_alarm, worker_bundle)
from helixflow.scaling.policy import Policy

EVENT = json.loads((Path(__file__).resolve().parents[2] / "events" / "cloudwatch_alarm_lambda_action.json").read_text())
POLICY = Policy(target_jobs_per_node=2, min_nodes=0, max_nodes=4, cooldown_s=0, idle_periods=2)
CLUSTER, GROUP = "pcs_abc123", "pcs_cng_cpu"


def _alarm_event(metric: str, dimensions: dict[str, str], *, timestamp: str = "2026-12-01T10:00:00.000+0000",
                 evaluated: int = 1) -> dict:
    event = copy.deepcopy(EVENT)
    data = event["alarmData"]
    data["alarmName"] = f"helixflow-{metric}"
    event["alarmArn"] = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:helixflow-{metric}"
    data["state"]["timestamp"] = timestamp
    data["state"]["reasonData"] = json.dumps({"evaluatedDatapoints": [{"timestamp": timestamp}] * evaluated})
    stat = data["configuration"]["metrics"][0]["metricStat"]
    stat["metric"] = {"namespace": "Helixflow", "name": metric, "dimensions": dimensions}
    stat["period"] = 60
    return event


def test_the_saved_aws_event_parses():
    change = AlarmChange.parse(EVENT)
    assert (change.alarm_name, change.state, change.metric, change.period) == (
        "lambda-demo-metric-alarm", "ALARM", "CallCount", 60)
    assert change.dimensions == {"InstanceId": "i-12345678"}
    assert change.evaluated_datapoints == 0  # the example's state carries no reasonData


class _Pcs:
    """A botocore PCS client (real request validation against the service model) with scripted answers."""

    def __init__(self, bounds: dict[str, int]) -> None:
        self.client = boto3.client("pcs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        self.stubber = Stubber(self.client)
        self.bounds = bounds

    def expect_update(self, new: dict[str, int]) -> None:
        self._expect_get()
        self.stubber.add_response("update_compute_node_group", {"computeNodeGroup": self._group(new)}, {
            "clusterIdentifier": CLUSTER, "computeNodeGroupIdentifier": GROUP, "scalingConfiguration": new,
            "clientToken": ANY})
        self.bounds = new

    def _expect_get(self) -> None:
        self.stubber.add_response("get_compute_node_group", {"computeNodeGroup": self._group(self.bounds)},
                                  {"clusterIdentifier": CLUSTER, "computeNodeGroupIdentifier": GROUP})

    def _group(self, bounds: dict[str, int]) -> dict:
        now = datetime(2026, 12, 1, tzinfo=timezone.utc)
        return {"name": "cpu", "id": GROUP, "arn": f"arn:aws:pcs:us-east-1:123456789012:cluster/{CLUSTER}/"
                f"computenodegroup/{GROUP}", "clusterId": CLUSTER, "createdAt": now, "modifiedAt": now,
                "status": "ACTIVE", "subnetIds": ["subnet-1"], "customLaunchTemplate": {"id": "lt-1", "version": "1"},
                "iamInstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/pcs",
                "scalingConfiguration": bounds, "instanceConfigs": [{"instanceType": "c7i.4xlarge"}]}


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.resource("dynamodb")
        table = dynamodb.create_table(TableName="scaling", BillingMode="PAY_PER_REQUEST",
                                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                      KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        yield boto3.client("cloudwatch"), DecisionStore(table)


def _publish(cloudwatch, pending: float, in_flight: float, when: datetime) -> None:
    dims = {"Cluster": "slurm", "Partition": "cpu"}
    metrics.put(cloudwatch, [metrics.datum("SlurmPendingJobs", pending, when, **dims),
                             metrics.datum("SlurmJobsInFlight", in_flight, when, **dims),
                             metrics.datum("SlurmIdleNodes", 0, when, **dims),
                             metrics.datum("SlurmAllocatedNodes", 0, when, **dims)])


def test_a_queue_raises_the_pcs_minimum_once_per_alarm_state_change(aws):
    cloudwatch, store = aws
    now = datetime.now(timezone.utc)
    _publish(cloudwatch, pending=5, in_flight=5, when=now - timedelta(seconds=30))
    pcs = _Pcs({"minInstanceCount": 0, "maxInstanceCount": 4})
    pcs.expect_update({"minInstanceCount": 3, "maxInstanceCount": 4})
    change = AlarmChange.parse(_alarm_event("SlurmPendingJobs", {"Cluster": "slurm", "Partition": "cpu"}))
    act = actuators({"PCS_CLUSTER_ID": CLUSTER, "PCS_NODE_GROUPS": json.dumps({"cpu": GROUP})}, pcs=pcs.client)
    with pcs.stubber:
        first = handle_alarm(change, policy=POLICY, cloudwatch=cloudwatch, store=store, actuator_for=act,
                             now=now.timestamp())
        # The same state change delivered again (a retry): the recorded decision, no second PCS call.
        again = handle_alarm(change, policy=POLICY, cloudwatch=cloudwatch, store=store, actuator_for=act,
                             now=now.timestamp() + 5)
        pcs.stubber.assert_no_pending_responses()
    assert (first["action"], first["desired"], first["previous"]) == ("scale_out", 3, 0)
    assert first["applied"] == {"pcs": "updated", "minInstanceCount": 3, "maxInstanceCount": 4}
    assert again["replayed"] is True and again["decision_id"] == first["decision_id"]
    assert again["applied"] == first["applied"]
    assert [d["MetricName"] for d in decision_data(first, now)] == ["ScalingDesiredNodes", "ScalingDecisions"]


def test_an_idle_window_releases_the_pcs_minimum_and_a_new_burst_raises_it_again(aws):
    cloudwatch, store = aws
    now = datetime.now(timezone.utc)
    store.changed("slurm", "cpu", 3, now.timestamp() - 600)
    _publish(cloudwatch, pending=0, in_flight=0, when=now - timedelta(seconds=30))
    pcs = _Pcs({"minInstanceCount": 3, "maxInstanceCount": 4})
    pcs.expect_update({"minInstanceCount": 0, "maxInstanceCount": 4})
    act = actuators({"PCS_CLUSTER_ID": CLUSTER, "PCS_NODE_GROUPS": json.dumps({"cpu": GROUP})}, pcs=pcs.client)
    scale_in = AlarmChange.parse(_alarm_event("SlurmJobsInFlight", {"Cluster": "slurm", "Partition": "cpu"},
                                              evaluated=2))
    with pcs.stubber:
        released = handle_alarm(scale_in, policy=POLICY, cloudwatch=cloudwatch, store=store, actuator_for=act,
                                now=now.timestamp())
        pcs.stubber.assert_no_pending_responses()
    assert (released["action"], released["desired"], released["previous"]) == ("scale_in", 0, 3)
    assert store.previous("slurm", "cpu").desired == 0


def test_bounds_already_in_place_are_not_updated_again(aws):
    pcs = _Pcs({"minInstanceCount": 2, "maxInstanceCount": 4})
    pcs._expect_get()
    with pcs.stubber:
        assert PcsNodeGroup(pcs.client, CLUSTER, GROUP).apply(2, POLICY, "d1") == {
            "pcs": "unchanged", "minInstanceCount": 2, "maxInstanceCount": 4}


def test_a_pcs_refusal_is_a_named_error():
    pcs = _Pcs({"minInstanceCount": 0, "maxInstanceCount": 4})
    pcs._expect_get()
    pcs.stubber.add_client_error("update_compute_node_group", "ConflictException", "node group is UPDATING")
    with pcs.stubber, pytest.raises(ClusterUnavailable) as caught:
        PcsNodeGroup(pcs.client, CLUSTER, GROUP).apply(3, POLICY, "d2")
    assert caught.value.code == "PCS_SCALING_FAILED"


def test_a_hold_is_recorded_and_acts_on_nothing(aws):
    cloudwatch, store = aws
    change = AlarmChange.parse(_alarm_event("SlurmJobsInFlight", {"Cluster": "slurm", "Partition": "cpu"},
                                            evaluated=2))

    def no_actuator(cluster, partition):
        raise AssertionError("a hold must not act")

    record = handle_alarm(change, policy=POLICY, cloudwatch=cloudwatch, store=store, actuator_for=no_actuator)
    assert record["action"] == "hold" and "already at the floor" in record["reason"]
    assert store.recorded(change)["decision_id"] == record["decision_id"]


def test_unknown_metrics_and_unconfigured_clusters_are_named_errors(aws):
    cloudwatch, store = aws
    change = AlarmChange.parse(_alarm_event("RayActiveNodes", {"Cluster": "ray"}))
    with pytest.raises(ClusterNotConfigured) as caught:
        handle_alarm(change, policy=POLICY, cloudwatch=cloudwatch, store=store, actuator_for=actuators({}))
    assert caught.value.code == "SCALING_METRIC_UNKNOWN"
    with pytest.raises(ClusterNotConfigured) as caught:
        actuators({"PCS_CLUSTER_ID": CLUSTER, "PCS_NODE_GROUPS": "{}"})("slurm", "gpu")
    assert caught.value.code == "SCALING_NOT_CONFIGURED"
    with pytest.raises(ClusterNotConfigured):
        worker_bundle('{"CPU": 0}')
    assert worker_bundle('{"CPU": 8, "GPU": 1}') == {"CPU": 8, "GPU": 1}


def test_only_a_change_into_alarm_decides(aws):
    cloudwatch, store = aws
    event = _alarm_event("SlurmPendingJobs", {"Cluster": "slurm", "Partition": "cpu"})
    event["alarmData"]["state"]["value"] = "OK"
    record = handle_alarm(AlarmChange.parse(event), policy=POLICY, cloudwatch=cloudwatch, store=store,
                          actuator_for=actuators({}))
    assert record["action"] == "ignored"

"""The two scaling Lambdas over moto: the publisher puts the pipeline's metrics, the scaling Lambda records the
decision for an alarm event (as a structured log line and as metrics) and replays it for the same event."""

from __future__ import annotations

import copy
import json

import boto3
import pytest
from moto import mock_aws

from tests.helpers import load_event, load_handler

MACHINE = "helixflow-pipeline"


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "POWERTOOLS_TRACE_DISABLED": "true",
                       "SCALING_TABLE": "scaling", "RAY_JOBS_URL": "", "SLURM_REST_URL": "", "PCS_CLUSTER_ID": ""}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        boto3.client("dynamodb").create_table(TableName="scaling", BillingMode="PAY_PER_REQUEST",
                                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        role = "arn:aws:iam::123456789012:role/sfn"
        arn = boto3.client("stepfunctions").create_state_machine(
            name=MACHINE, roleArn=role, definition=json.dumps({"StartAt": "Publish", "States": {
                "Publish": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
        monkeypatch.setenv("STATE_MACHINE_ARN", arn)
        yield boto3.client("cloudwatch")


def test_the_publisher_puts_every_stages_executions_with_no_cluster_configured(aws, lambda_context):
    answer = load_handler("publish_metrics").lambda_handler({}, lambda_context)
    names = {(m["MetricName"], tuple(d["Value"] for d in m["Dimensions"])) for m in aws.list_metrics(
        Namespace="Helixflow")["Metrics"]}
    assert answer["published"] == len(names) == 7  # six stages and the Distributed Map items
    assert ("ExecutionsRunning", ("phase2",)) in names and ("MapItemsInFlight", ("phase1",)) in names


def test_the_scaling_lambda_logs_and_publishes_its_decision_once_per_state_change(aws, lambda_context, caplog):
    event = copy.deepcopy(load_event("cloudwatch_alarm_lambda_action.json"))
    stat = event["alarmData"]["configuration"]["metrics"][0]["metricStat"]
    stat["metric"] = {"namespace": "Helixflow", "name": "RayTasksInFlight", "dimensions": {"Cluster": "ray"}}
    event["alarmData"]["state"]["reasonData"] = json.dumps({"evaluatedDatapoints": [{}] * 10})
    handler = load_handler("scale_cluster")
    first = handler.lambda_handler(event, lambda_context)
    logged, = [r for r in caplog.records if r.getMessage() == "scaling decision"]
    assert logged.decision["action"] == first["action"] == "hold"
    assert logged.decision["reason"] == "already at the floor of 0" and logged.decision["decided_at"]
    assert {m["MetricName"] for m in aws.list_metrics(Namespace="Helixflow")["Metrics"]} == {"ScalingDesiredNodes"}
    again = handler.lambda_handler(event, lambda_context)
    assert again["replayed"] is True and again["decision_id"] == first["decision_id"]

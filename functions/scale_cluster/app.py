"""ScaleCluster: a scaling alarm's action. One decision per alarm state change, recorded (log line + metric), then
applied to the cluster (PCS node-group bounds, or Ray's autoscaler request)."""

import os
from datetime import datetime, timezone

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.scaling.decide import AlarmChange, DecisionStore, actuators, decision_data, handle_alarm
from helixflow.scaling.metrics import put
from helixflow.scaling.policy import Policy

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    change = AlarmChange.parse(event)
    logger.append_keys(alarm=change.alarm_name, alarm_state=change.state, state_changed_at=change.timestamp)
    cloudwatch = boto3.client("cloudwatch")
    record = handle_alarm(change, policy=Policy.from_environment(), cloudwatch=cloudwatch,
                          store=DecisionStore(boto3.resource("dynamodb").Table(os.environ["SCALING_TABLE"])),
                          actuator_for=actuators(dict(os.environ)))
    logger.info("scaling decision", extra={"decision": record})
    if "desired" in record and not record.get("replayed"):
        put(cloudwatch, decision_data(record, datetime.now(timezone.utc)))
    return record

"""ResolveSample: the EventBridge "Object Created" event -> the sample request (or why nothing runs)."""

import json
import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3EventBridgeNotificationEvent
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.resolve import resolve_sample
from helixflow.pipeline.runs import execution_name, state_machine_of

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")
sfn = boto3.client("stepfunctions")
dynamodb = boto3.resource("dynamodb")
pairing_table = dynamodb.Table(os.environ["PAIRING_TABLE"])
runs_table = dynamodb.Table(os.environ["RUNS_TABLE"])
MATE_WAIT_SECONDS = int(os.environ.get("MATE_WAIT_SECONDS", "900"))
# EventBridge delivers at least once: the same event (its id) must not start a second run. Which runs are the
# same work is decided by the run identity inside resolve_sample, not here.
idempotency = IdempotencyConfig(event_key_jmespath="event.id", raise_on_no_idempotency_key=True,
                                expires_after_seconds=48 * 3600)
persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])


def _execution_running(execution_arn: str) -> bool:
    try:
        return sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"
    except sfn.exceptions.ExecutionDoesNotExist:
        return False


def _starter(execution_arn: str):
    """Start a run of this state machine with a replayed event (a samplesheet's file already in the bucket)."""
    def start(event: dict) -> str:
        name = execution_name()
        sfn.start_execution(stateMachineArn=state_machine_of(execution_arn), name=name, input=json.dumps(event))
        return name
    return start


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@idempotent(config=idempotency, persistence_store=persistence)
def lambda_handler(state: dict, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state["run_id"])
    event = S3EventBridgeNotificationEvent(state["event"])
    obj = event.detail.object
    request = resolve_sample(bucket=event.detail.bucket.name, key=obj.key, etag=obj.etag, size=obj.size,
                             run_id=state["run_id"], execution_arn=state["execution_arn"], s3=s3,
                             pairing_table=pairing_table, runs_table=runs_table,
                             execution_running=_execution_running, mate_wait_seconds=MATE_WAIT_SECONDS,
                             event=state["event"], start_execution=_starter(state["execution_arn"]))
    logger.info("sample resolved", extra={"sample": request.sample, "status": request.status,
                                          "identity": request.identity, "inputs": [i.key for i in request.inputs]})
    metrics.add_dimension(name="Outcome", value=request.status)
    metrics.add_metric(name="SamplesResolved", unit=MetricUnit.Count, value=1)
    return request.model_dump()

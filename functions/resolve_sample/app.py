"""ResolveSample: the EventBridge "Object Created" event -> the sample request (or "waiting for mate")."""

import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3EventBridgeNotificationEvent
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.resolve import resolve_sample

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")
pairing_table = boto3.resource("dynamodb").Table(os.environ["PAIRING_TABLE"])
# EventBridge delivers at least once: the same object version must not start a second run.
idempotency = IdempotencyConfig(
    event_key_jmespath="event.detail.[bucket.name, object.key, object.etag]",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=48 * 3600,
)
persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@idempotent(config=idempotency, persistence_store=persistence)
def lambda_handler(state: dict, context: LambdaContext) -> dict:
    event = S3EventBridgeNotificationEvent(state["event"])
    obj = event.detail.object
    request = resolve_sample(bucket=event.detail.bucket.name, key=obj.key, etag=obj.etag, size=obj.size,
                             run_id=state["run_id"], s3=s3, pairing_table=pairing_table)
    logger.info("sample resolved", extra={"sample": request.sample, "status": request.status,
                                          "inputs": [i.key for i in request.inputs]})
    metrics.add_metric(name="SamplesReady" if request.status == "ready" else "MatesWaiting",
                       unit=MetricUnit.Count, value=1)
    return request.model_dump()

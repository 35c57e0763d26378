"""RecordFailure: errors/<sample>/<run_id>/error.json for the error the state machine caught."""

import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.failure import bucket_of, record_failure

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")
runs_table = boto3.resource("dynamodb").Table(os.environ["RUNS_TABLE"])


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(state: dict, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state.get("run_id"))
    record = record_failure(s3=s3, bucket=bucket_of(state), state=state, runs_table=runs_table)
    logger.warning("run failed", extra={"error": record["error"], "code": record["code"], "key": record["error_key"]})
    metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
    return record

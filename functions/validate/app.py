"""Validate: streams the sample's FASTQ object(s) and fails with InvalidFastq on the first defect."""

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.validate import validate_sample

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(state: dict, context: LambdaContext) -> dict:
    summary = validate_sample(s3=s3, request=state["sample"])
    logger.info("sample valid", extra={"sample": state["sample"]["sample"], "records": summary["records"]})
    metrics.add_metric(name="ReadsValidated", unit=MetricUnit.Count, value=summary["records"])
    metrics.add_metric(name="BasesValidated", unit=MetricUnit.Count, value=summary["bases"])
    return summary

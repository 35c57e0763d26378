"""MergeChunks: exact merge of the chunks' statistics and outputs into results/<sample>/<run_id>/."""

import tempfile
from pathlib import Path

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.phase1_lambda import merge_chunks

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(state: dict, context: LambdaContext) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        summary = merge_chunks(s3=s3, request=state["sample"], chunk_count=state["chunks"]["chunk_count"],
                               scratch=Path(scratch))
    logger.info("phase 1 merged", extra={k: v for k, v in summary.items() if k != "outputs"})
    metrics.add_metric(name="ReadsKept", unit=MetricUnit.Count, value=summary["reads_after"])
    return summary

"""BatchReport: record a declared sample's outcome in its samplesheet's batch; the last to end builds the batch's
MultiQC report (MultiQC lives in this image)."""

import os
import tempfile
from pathlib import Path

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.batch_report import batch_report
from helixflow.pipeline.state import PipelineState

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")
pairing_table = boto3.resource("dynamodb").Table(os.environ["PAIRING_TABLE"])


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state.run_id)
    with tempfile.TemporaryDirectory() as scratch:
        summary = batch_report(s3=s3, table=pairing_table, state=state, scratch=Path(scratch))
    logger.info("batch outcome recorded", extra={"batch": summary.batch, "pending": summary.pending,
                                                 "report": summary.report_key})
    if summary.report_key:
        metrics.add_metric(name="BatchReportsBuilt", unit=MetricUnit.Count, value=1)
    return summary.model_dump()

"""BuildReport: the run's MultiQC report, staged under work/ for Publish (MultiQC lives in this image)."""

import os
import tempfile
from pathlib import Path

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.cost import parse_function_settings
from helixflow.pipeline.publish import execution_history
from helixflow.pipeline.run_report import build_run_report
from helixflow.pipeline.state import PipelineState

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")
sfn = boto3.client("stepfunctions")
# The report prices the run so far with each state's function settings (as Publish does for cost.json).
FUNCTIONS = parse_function_settings(os.environ.get("STATE_FUNCTIONS", "{}"))


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state.run_id)
    with tempfile.TemporaryDirectory() as scratch:
        summary = build_run_report(s3=s3, state=state, history_events=execution_history(sfn, state.execution_arn),
                                   scratch=Path(scratch), functions=FUNCTIONS)
    logger.info("report built", extra={"modules": summary.modules, "outputs": summary.outputs})
    metrics.add_metric(name="ReportsBuilt", unit=MetricUnit.Count, value=1)
    return summary.model_dump()

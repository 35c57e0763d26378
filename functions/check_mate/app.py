"""CheckMate: after the mate wait, a first mate whose pair never arrived fails with MateMissing."""

import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.resolve import check_mate
from helixflow.pipeline.state import PipelineState

logger = Logger()
tracer = Tracer()
metrics = Metrics()

pairing_table = boto3.resource("dynamodb").Table(os.environ["PAIRING_TABLE"])


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state.run_id)
    request = state.require_sample()
    check_mate(request=request, pairing_table=pairing_table)
    logger.info("mate arrived; its execution runs the pair", extra={"sample": request.sample})
    metrics.add_metric(name="MatesPaired", unit=MetricUnit.Count, value=1)
    return {"paired": True}

"""Plan: size first, then route. Mashup placement of Phase 1 (Lambda chunks or the Ray cluster) and who validates
(one Validate Lambda, or the chunk runners), from the inputs' sizes and a sampled compression ratio."""

import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.plan import plan_phase1, sample_ratios
from helixflow.pipeline.state import PipelineState, Plan

logger = Logger()
tracer = Tracer()
metrics = Metrics()
CHUNK_MIB = int(os.environ.get("PHASE1_CHUNK_MIB", "256"))

s3 = boto3.client("s3")


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state.run_id)
    request = state.require_sample()
    phase1 = plan_phase1(request.inputs, request.params.get("phase1", "auto"), chunk_mb=CHUNK_MIB,
                         ratios=sample_ratios(s3, request.bucket, request.inputs),
                         validation=request.params.get("validation", "auto"))
    logger.info("phase 1 placed", extra=phase1.model_dump())
    metrics.add_dimension(name="Placement", value=phase1.placement)
    metrics.add_metric(name="Phase1Placed", unit=MetricUnit.Count, value=1)
    return Plan(phase1=phase1).model_dump()

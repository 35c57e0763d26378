"""PlanPhase2: where Phase 2 runs (Slurm CPU/GPU, or off) and the ranks and time limit it asks for, with the
run's reference pinned to the version validated (its cached verdict)."""

import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.plan import plan_phase2
from helixflow.pipeline.reference import prepare_reference
from helixflow.pipeline.state import PipelineState, Plan2

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")
CPUS_PER_RANK = int(os.environ.get("PHASE2_CPUS_PER_RANK", "1"))


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state.run_id)
    request = state.require_sample()
    if state.phase1 is None:
        raise ValueError("Phase 2 is planned after Phase 1")
    reference_key = request.params.get("reference")
    reference = prepare_reference(s3=s3, bucket=request.bucket, key=reference_key) if reference_key else None
    phase2 = plan_phase2(state.phase1, request.sample, request.params.get("phase2", "auto"), reference,
                         cpus_per_rank=CPUS_PER_RANK)
    logger.info("phase 2 placed", extra=phase2.model_dump())
    metrics.add_dimension(name="Placement", value=phase2.placement)
    metrics.add_metric(name="Phase2Placed", unit=MetricUnit.Count, value=1)
    return Plan2(phase2=phase2).model_dump()

"""CollectPhase2: the finished Slurm job's summary.json as the Phase 2 result (outputs stay staged for Publish)."""

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.stage_jobs import collect_phase2
from helixflow.pipeline.state import PipelineState

logger = Logger()
tracer = Tracer()
metrics = Metrics()
s3 = boto3.client("s3")


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state.run_id)
    summary = collect_phase2(s3, state)
    logger.info("phase 2 collected", extra={"outputs": summary.outputs, "reads": summary.reads,
                                            "clusters": summary.clusters})
    metrics.add_metric(name="Phase2Collected", unit=MetricUnit.Count, value=1)
    return summary.model_dump()

"""Plan: Mashup placement of Phase 1 (Lambda chunks or the Ray cluster) from the inputs' size."""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.plan import plan_phase1

logger = Logger()
tracer = Tracer()
metrics = Metrics()
CHUNK_MIB = int(os.environ.get("PHASE1_CHUNK_MIB", "256"))


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(state: dict, context: LambdaContext) -> dict:
    request = state["sample"]
    phase1 = plan_phase1(request["inputs"], request["params"].get("phase1", "auto"), chunk_mb=CHUNK_MIB)
    logger.info("phase 1 placed", extra=phase1.to_dict())
    metrics.add_metric(name="Phase1OnLambda" if phase1.placement == "lambda" else "Phase1OnCluster",
                       unit=MetricUnit.Count, value=1)
    return {"phase1": phase1.to_dict()}

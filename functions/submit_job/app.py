"""SubmitJob: a cluster stage (Phase 1 on Ray, Phase 2 on Slurm/PCS) submitted through the job seam."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.stage_jobs import submit_stage
from helixflow.pipeline.state import StageRequest

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=StageRequest)
def lambda_handler(request: StageRequest, context: LambdaContext) -> dict:
    logger.append_keys(run_id=request.state.run_id)
    handle = submit_stage(request.state, request.stage)
    logger.info("job submitted", extra={"stage": handle.stage, "backend": handle.backend, "job_id": handle.job_id})
    metrics.add_dimension(name="Stage", value=handle.stage)
    metrics.add_metric(name="JobsSubmitted", unit=MetricUnit.Count, value=1)
    return handle.model_dump()

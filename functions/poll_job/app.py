"""PollJob: one turn of the Wait -> Poll -> Choice loop; a job that failed raises the stage's named error."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.stage_jobs import handle_of, poll_stage
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
    handle = poll_stage(handle_of(request.state, request.stage))
    logger.info("job polled", extra={"stage": handle.stage, "job_id": handle.job_id, "state": handle.state,
                                     "next_wait_s": handle.wait_seconds})
    if handle.state == "SUCCEEDED":
        metrics.add_dimension(name="Stage", value=handle.stage)
        metrics.add_metric(name="JobsSucceeded", unit=MetricUnit.Count, value=1)
    return handle.model_dump()

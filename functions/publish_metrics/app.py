"""PublishMetrics (every minute): Ray demand, Slurm queues and the pipeline's executions as CloudWatch metrics."""

import os
from datetime import datetime, timezone

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.errors import ClusterUnavailable
from helixflow.scaling.metrics import put
from helixflow.scaling.observe import collect

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    now = datetime.now(timezone.utc)
    data, failures = collect(dict(os.environ), boto3.client("stepfunctions"), now)
    published = put(boto3.client("cloudwatch"), data)
    values = {f"{d['MetricName']}[{','.join(x['Value'] for x in d['Dimensions'])}]": d["Value"] for d in data}
    logger.info("metrics published", extra={"published": published, "values": values, "failures": failures})
    if failures:
        # What was readable is published; the invocation still fails so Lambda's Errors metric shows the gap.
        raise ClusterUnavailable("; ".join(failures), code="CLUSTER_UNAVAILABLE", details={"published": published})
    return {"published": published}

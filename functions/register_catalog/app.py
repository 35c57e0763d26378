"""RegisterCatalog: a run's manifest appeared under results/ -> the catalog's links to its QC, embeddings and trace.

Invoked by infra/catalog.yaml's EventBridge rule (asynchronously: a failure is retried, then kept in the DLQ).
"""

import boto3
from aws_lambda_powertools import Logger

from helixflow.pipeline.catalog import register_run

logger = Logger()
s3 = boto3.client("s3")


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context) -> dict:
    bucket, key = event["detail"]["bucket"]["name"], event["detail"]["object"]["key"]
    written = register_run(s3, bucket, key)
    logger.info("catalog links written", extra={"manifest": key, "links": written})
    return {"manifest": key, "links": written}

"""ResolveSample: an S3 "Object Created" event -> the sample request the rest of the pipeline runs on.

Pairing uses one DynamoDB item per (folder, sample): each mate's arrival records itself with an atomic
UpdateItem that returns the whole item, so exactly one of two racing mates sees both and starts the paired
run; the other ends its execution as "waiting for mate". A later re-upload of one mate pairs with the latest
copy of the other.
"""

from __future__ import annotations

from typing import Any

from helixflow.pipeline.keys import IncomingKey, errors_prefix, parse_incoming_key, results_prefix
from helixflow.pipeline.params import parse_parameters
from helixflow.pipeline.state import SampleInput, SampleRequest


def resolve_sample(*, bucket: str, key: str, etag: str, size: int, run_id: str, s3: Any,
                   pairing_table: Any) -> SampleRequest:
    incoming = parse_incoming_key(key)
    arrived = SampleInput(key=incoming.key, etag=etag.strip('"'), size=int(size), mate=incoming.mate)
    if incoming.mate == 0:
        inputs = [arrived]
    else:
        mates = _record_mate(pairing_table, bucket, incoming, arrived)
        if len(mates) < 2:
            return SampleRequest(status="waiting_for_mate", run_id=run_id, bucket=bucket,
                                 sample=incoming.sample, inputs=[arrived])
        inputs = [mates[1], mates[2]]
    params = parse_parameters(_read_sidecar(s3, bucket, incoming), source=incoming.sidecar_key)
    return SampleRequest(
        status="ready", run_id=run_id, bucket=bucket, sample=incoming.sample, inputs=inputs,
        params=params.model_dump(), results_prefix=results_prefix(incoming.sample, run_id),
        errors_prefix=errors_prefix(incoming.sample, run_id),
    )


def _record_mate(table: Any, bucket: str, incoming: IncomingKey, arrived: SampleInput) -> dict[int, SampleInput]:
    item = table.update_item(
        Key={"pk": f"{bucket}/{incoming.pairing_key}"},
        UpdateExpression=f"SET mate{arrived.mate} = :mate",
        ExpressionAttributeValues={":mate": {"key": arrived.key, "etag": arrived.etag, "size": arrived.size}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    mates = {}
    for mate in (1, 2):
        if f"mate{mate}" in item:
            stored = item[f"mate{mate}"]
            mates[mate] = SampleInput(key=stored["key"], etag=stored["etag"], size=int(stored["size"]), mate=mate)
    return mates


def _read_sidecar(s3: Any, bucket: str, incoming: IncomingKey) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=incoming.sidecar_key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None

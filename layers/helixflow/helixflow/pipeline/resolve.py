"""ResolveSample: an S3 "Object Created" event -> the sample request the rest of the pipeline runs on.

Pairing uses one DynamoDB item per (folder, sample): each mate's arrival records itself with an atomic
UpdateItem that returns the whole item, so exactly one of two racing mates sees both and starts the paired
run; the other ends its execution as "waiting for mate" and, after ``mate_wait_seconds`` without its pair,
CheckMate fails it with ``MateMissing`` (pairing items also expire by TTL, so a stale R1 never pairs with an
unrelated R2 days later). A file named like a mate whose sidecar says ``"single_end": true`` runs alone.

Once the inputs are known, the run's identity is claimed in the runs registry (helixflow.pipeline.runs): an
identity that already succeeded ends as ``already_processed`` (unless ``force``), one that failed after Phase 1
resumes from its checkpoint.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable

from helixflow.errors import MateMissing
from helixflow.pipeline import runs
from helixflow.pipeline.keys import IncomingKey, errors_prefix, parse_incoming_key, results_prefix
from helixflow.pipeline.params import RunParameters, parse_parameters
from helixflow.pipeline.state import SampleInput, SampleRequest

PAIRING_TTL_MARGIN_S = 3600


def resolve_sample(*, bucket: str, key: str, etag: str, size: int, run_id: str, execution_arn: str, s3: Any,
                   pairing_table: Any, runs_table: Any, execution_running: Callable[[str], bool],
                   mate_wait_seconds: int) -> SampleRequest:
    incoming = parse_incoming_key(key)
    arrived = SampleInput(key=incoming.key, etag=etag.strip('"'), size=int(size), mate=incoming.mate)
    params = parse_parameters(_read_sidecar(s3, bucket, incoming), source=incoming.sidecar_key)
    base = {"run_id": run_id, "bucket": bucket, "sample": incoming.sample}
    if incoming.mate == 0 or params.single_end:
        inputs = [arrived.model_copy(update={"mate": 0})]
    else:
        mates = _record_mate(pairing_table, bucket, incoming, arrived, ttl_s=mate_wait_seconds + PAIRING_TTL_MARGIN_S)
        if len(mates) < 2:
            return SampleRequest(status="waiting_for_mate", inputs=[arrived], awaiting=expected_mate(incoming),
                                 mate_wait_seconds=mate_wait_seconds, params=params.model_dump(), **base)
        inputs = [mates[1], mates[2]]
    return _claim_run(inputs=inputs, params=params, execution_arn=execution_arn, s3=s3, runs_table=runs_table,
                      execution_running=execution_running, **base)


def _claim_run(*, run_id: str, bucket: str, sample: str, inputs: list[SampleInput], params: RunParameters,
               execution_arn: str, s3: Any, runs_table: Any, execution_running: Callable[[str], bool]) -> SampleRequest:
    effective = params.model_dump()
    reference_etag = (s3.head_object(Bucket=bucket, Key=params.reference)["ETag"].strip('"')
                      if params.reference else None)
    identity = runs.run_identity(sample=sample, inputs=inputs, params=effective, reference_etag=reference_etag)
    request = SampleRequest(status="ready", run_id=run_id, bucket=bucket, sample=sample, inputs=inputs,
                            params=effective, identity=identity, results_prefix=results_prefix(sample, run_id),
                            errors_prefix=errors_prefix(sample, run_id))
    outcome, previous = runs.claim(runs_table, identity=identity, run_id=run_id, execution_arn=execution_arn,
                                   results_prefix=request.results_prefix, force=params.force,
                                   execution_running=execution_running)
    if outcome != "claimed":
        return request.model_copy(update={"status": outcome, "previous_run": previous["run_id"],
                                          "results_prefix": previous["results_prefix"]})
    resumed = runs.load_checkpoint(s3, bucket, sample, identity, "phase1")
    return request.model_copy(update={"resumed_phase1": resumed})


def expected_mate(incoming: IncomingKey) -> str:
    """The file name the other mate will have (same marker style; any FASTQ suffix)."""
    other = 3 - incoming.mate
    stem = re.sub(r"_(R?)[12](_001)?(\.(?:fastq|fq)(?:\.gz)?)$", lambda m: f"_{m[1]}{other}{m[2] or ''}",
                  incoming.file_name)
    return f"{incoming.folder}{stem}.fastq[.gz] (or .fq[.gz])"


def _record_mate(table: Any, bucket: str, incoming: IncomingKey, arrived: SampleInput,
                 ttl_s: int) -> dict[int, SampleInput]:
    item = table.update_item(
        Key={"pk": f"{bucket}/{incoming.pairing_key}"},
        UpdateExpression=f"SET mate{arrived.mate} = :mate, expiration = :expires",
        ExpressionAttributeValues={":mate": {"key": arrived.key, "etag": arrived.etag, "size": arrived.size},
                                   ":expires": int(time.time()) + ttl_s},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    mates = {}
    for mate in (1, 2):
        if f"mate{mate}" in item:
            stored = item[f"mate{mate}"]
            mates[mate] = SampleInput(key=stored["key"], etag=stored["etag"], size=int(stored["size"]), mate=mate)
    return mates


def check_mate(*, request: SampleRequest, pairing_table: Any) -> None:
    """After the mate wait: the pair started its run from the other mate's execution, or this fails with
    MateMissing and the lone mate is forgotten (so a later, unrelated file cannot pair with it)."""
    arrived = request.inputs[0]
    incoming = parse_incoming_key(arrived.key)
    pk = f"{request.bucket}/{incoming.pairing_key}"
    item = pairing_table.get_item(Key={"pk": pk}, ConsistentRead=True).get("Item", {})
    if f"mate{3 - arrived.mate}" in item:
        return
    try:  # only the lone mate this execution recorded; a newer upload of it keeps waiting in its own run
        pairing_table.delete_item(Key={"pk": pk}, ConditionExpression=f"mate{arrived.mate}.etag = :etag",
                                  ExpressionAttributeValues={":etag": arrived.etag})
    except pairing_table.meta.client.exceptions.ConditionalCheckFailedException:
        pass
    raise MateMissing(f"{arrived.key} waited {request.mate_wait_seconds} s for its mate {request.awaiting}; "
                      "upload it, or set \"single_end\": true in the sidecar to run this file alone",
                      code="MATE_MISSING", details={"file": arrived.key, "awaiting": request.awaiting})


def _read_sidecar(s3: Any, bucket: str, incoming: IncomingKey) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=incoming.sidecar_key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None

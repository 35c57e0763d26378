"""ResolveSample: an S3 "Object Created" event -> the sample request the rest of the pipeline runs on.

Pairing uses one DynamoDB item per (folder, sample): each mate's arrival records itself with an atomic
UpdateItem that returns the whole item, so exactly one of two racing mates sees both and starts the paired
run; the other ends its execution as "waiting for mate" and, after ``mate_wait_seconds`` without its pair,
CheckMate fails it with ``MateMissing`` (pairing items also expire by TTL, so a stale R1 never pairs with an
unrelated R2 days later). Each upload pairs once (``consume_pair``): the two that start a run leave the item.
A file named like a mate whose sidecar says ``"single_end": true`` runs alone.

A file named in a samplesheet (helixflow.pipeline.samplesheet) takes its sample, mate and parameters from the
sheet instead of its name and sidecar, and pairs in its declared sample's own item. The samplesheet's own event
records the declarations and, for each sample with files already in the bucket, starts one execution with a
replayed "Object Created" event of its last present file (its event id derived from the sheet's, so a repeated
sheet event or a retried invocation starts nothing twice: the replay's ResolveSample is idempotent on it).

Once the inputs are known, the run's identity is claimed in the runs registry (helixflow.pipeline.runs): an
identity that already succeeded ends as ``already_processed`` (unless ``force``), one that failed after Phase 1
resumes from its checkpoint.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Callable

from botocore.exceptions import ClientError

from helixflow.errors import MateMissing
from helixflow.pipeline import runs, samplesheet
from helixflow.pipeline.keys import (IncomingKey, errors_prefix, is_samplesheet_key, parse_incoming_key,
                                     parse_samplesheet_key, results_prefix)
from helixflow.pipeline.params import RunParameters, parse_parameters
from helixflow.pipeline.state import BatchRef, DeclaredSample, SampleInput, SampleRequest, SamplesheetResult

PAIRING_TTL_MARGIN_S = 3600


def resolve_sample(*, bucket: str, key: str, etag: str, size: int, run_id: str, execution_arn: str, s3: Any,
                   pairing_table: Any, runs_table: Any, execution_running: Callable[[str], bool],
                   mate_wait_seconds: int, event: dict[str, Any] | None = None,
                   start_execution: Callable[[dict[str, Any]], str] | None = None) -> SampleRequest:
    """``event`` (the execution's input) and ``start_execution(event) -> execution name`` serve a samplesheet's
    event, which starts the runs of the samples whose files are already in the bucket."""
    if is_samplesheet_key(key):
        return resolve_samplesheet(bucket=bucket, key=key, etag=etag, run_id=run_id, s3=s3, event=event or {},
                                   pairing_table=pairing_table, start_execution=start_execution)
    incoming = parse_incoming_key(key)
    arrived = SampleInput(key=incoming.key, etag=etag.strip('"'), size=int(size), mate=incoming.mate)
    declared = samplesheet.declaration_for(pairing_table, bucket, incoming.key)
    if declared is not None:  # the samplesheet says which sample, mate and parameters; the name does not
        batch = BatchRef(sheet_key=declared.sheet_key, sheet_etag=declared.sheet_etag,
                         batch=parse_samplesheet_key(declared.sheet_key))
        base = {"run_id": run_id, "bucket": bucket, "sample": declared.sample, "batch": batch}
        params, mate, pair_pk, awaiting = declared.params, declared.mate, declared.pair_item, declared.other_file
        ttl_s = samplesheet.DECLARATION_TTL_S
    else:
        base = {"run_id": run_id, "bucket": bucket, "sample": incoming.sample}
        params = parse_parameters(_read_sidecar(s3, bucket, incoming), source=incoming.sidecar_key)
        mate = 0 if params.single_end else incoming.mate
        pair_pk, awaiting = f"{bucket}/{incoming.pairing_key}", expected_mate(incoming) if mate else None
        ttl_s = mate_wait_seconds + PAIRING_TTL_MARGIN_S
    arrived = arrived.model_copy(update={"mate": mate})
    if mate == 0:
        inputs = [arrived]
    else:
        mates = record_mate(pairing_table, pair_pk, arrived, ttl_s=ttl_s)
        if len(mates) < 2 and declared is not None and (head := _head(s3, bucket, declared.other_file)) is not None:
            # A declared pair knows its other file's key: one already in the bucket pairs now, however it got
            # there unrecorded (it landed before the sheet, or an earlier wait for it ended in MateMissing).
            mates = record_mate(pairing_table, pair_pk, _input_of(declared.other_file, head, 3 - mate), ttl_s=ttl_s)
        if len(mates) < 2:
            return SampleRequest(status="waiting_for_mate", inputs=[arrived], awaiting=awaiting, pairing_item=pair_pk,
                                 mate_wait_seconds=mate_wait_seconds, params=params.model_dump(), **base)
        inputs = [mates[1], mates[2]]
    request = _claim_run(inputs=inputs, params=params, execution_arn=execution_arn, s3=s3, runs_table=runs_table,
                         execution_running=execution_running, **base)
    if mate != 0:
        consume_pair(pairing_table, pair_pk, inputs)
    return request


def resolve_samplesheet(*, bucket: str, key: str, etag: str, run_id: str, s3: Any, event: dict[str, Any],
                        pairing_table: Any, start_execution: Callable[[dict[str, Any]], str] | None) -> SampleRequest:
    """Declare the sheet's samples, then start the run of each sample that has a file in the bucket already (a
    sample whose files are all still to come starts from its files' own events)."""
    batch = parse_samplesheet_key(key)
    etag = etag.strip('"')
    version = ((event.get("detail") or {}).get("object") or {}).get("version-id")
    body = s3.get_object(Bucket=bucket, Key=key, **({"VersionId": version} if version else {}))["Body"]
    rows = samplesheet.parse_samplesheet(body.read(samplesheet.MAX_SHEET_BYTES + 1), source=key, bucket=bucket)
    samplesheet.declare(pairing_table, bucket=bucket, sheet_key=key, sheet_etag=etag, rows=rows)
    declared = []
    for row in rows:
        present = [(file, head) for file in row.files if (head := _head(s3, bucket, file)) is not None]
        if len(row.files) == 2:  # files that landed before the sheet pair like the ones still to come
            pair_pk = samplesheet.pair_item(bucket, key, etag, row.sample)
            for file, head in present:
                record_mate(pairing_table, pair_pk, _input_of(file, head, row.files.index(file) + 1),
                            ttl_s=samplesheet.DECLARATION_TTL_S)
        started = None
        if present and start_execution is not None:
            started = start_execution(replayed_event(event, bucket=bucket, key=present[-1][0], head=present[-1][1],
                                                     sample=row.sample))
        declared.append(DeclaredSample(sample=row.sample, row=row.row, files=list(row.files),
                                       present=[file for file, _ in present], started=started))
    return SampleRequest(status="samplesheet", run_id=run_id, bucket=bucket, sample=batch, inputs=[],
                         samplesheet=SamplesheetResult(key=key, samples=declared))


def replayed_event(sheet_event: dict[str, Any], *, bucket: str, key: str, head: dict[str, Any],
                   sample: str) -> dict[str, Any]:
    """The "Object Created" event of a file that landed before its samplesheet, as the sheet's execution replays it:
    its id is derived from the sheet event's, so the same sheet event never replays a file twice."""
    obj = {"key": key, "size": int(head["ContentLength"]), "etag": head["ETag"].strip('"'), "sequencer": ""}
    if head.get("VersionId") and head["VersionId"] != "null":
        obj["version-id"] = head["VersionId"]
    detail = {**(sheet_event.get("detail") or {}), "bucket": {"name": bucket}, "object": obj}
    return {**sheet_event, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sheet_event.get('id')}#{sample}")),
            "detail": detail, "replayed_by": {"samplesheet_event": sheet_event.get("id"), "sample": sample}}


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _input_of(key: str, head: dict[str, Any], mate: int) -> SampleInput:
    return SampleInput(key=key, etag=head["ETag"].strip('"'), size=int(head["ContentLength"]), mate=mate)


def _claim_run(*, run_id: str, bucket: str, sample: str, inputs: list[SampleInput], params: RunParameters,
               execution_arn: str, s3: Any, runs_table: Any, execution_running: Callable[[str], bool],
               batch: BatchRef | None = None) -> SampleRequest:
    effective = params.model_dump()
    reference_etag = (s3.head_object(Bucket=bucket, Key=params.reference)["ETag"].strip('"')
                      if params.reference else None)
    identity = runs.run_identity(sample=sample, inputs=inputs, params=effective, reference_etag=reference_etag)
    request = SampleRequest(status="ready", run_id=run_id, bucket=bucket, sample=sample, inputs=inputs,
                            params=effective, identity=identity, results_prefix=results_prefix(sample, run_id),
                            errors_prefix=errors_prefix(sample, run_id), batch=batch)
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


def record_mate(table: Any, pk: str, arrived: SampleInput, ttl_s: int) -> dict[int, SampleInput]:
    item = table.update_item(
        Key={"pk": pk},
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


def consume_pair(table: Any, pk: str, inputs: list[SampleInput]) -> None:
    """The two uploads that started a run leave the pairing item: each upload pairs once, so a mate uploaded again
    waits for its partner's new upload instead of pairing at once with the one an earlier run used (which ran the
    new R1 with the old R2 whenever both were replaced, R1 first). Their etags stay as ``paired_mate<n>``, so the
    waiting mate's CheckMate knows its upload ran. A mate replaced in the meantime stays: its own event pairs it."""
    first, second = inputs
    try:
        table.update_item(Key={"pk": pk},
                          UpdateExpression="REMOVE mate1, mate2 SET paired_mate1 = :a, paired_mate2 = :b",
                          ConditionExpression="mate1.etag = :a AND mate2.etag = :b",
                          ExpressionAttributeValues={":a": first.etag, ":b": second.etag})
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise


def check_mate(*, request: SampleRequest, pairing_table: Any) -> None:
    """After the mate wait: this upload ran in the pair its partner's execution started, or this fails with
    MateMissing and the lone mate is forgotten (so a later, unrelated file cannot pair with it)."""
    arrived = request.inputs[0]
    pk = request.pairing_item or f"{request.bucket}/{parse_incoming_key(arrived.key).pairing_key}"
    item = pairing_table.get_item(Key={"pk": pk}, ConsistentRead=True).get("Item", {})
    if item.get(f"paired_mate{arrived.mate}") == arrived.etag:
        return
    if not samplesheet.is_pair_item(pk) and \
            samplesheet.declaration_for(pairing_table, request.bucket, arrived.key) is not None:
        return  # a samplesheet that landed during the wait declared this file: its sample runs from there
    try:  # only the lone mate this execution recorded; a newer upload of it keeps waiting in its own run
        pairing_table.delete_item(Key={"pk": pk}, ConditionExpression=f"mate{arrived.mate}.etag = :etag",
                                  ExpressionAttributeValues={":etag": arrived.etag})
    except pairing_table.meta.client.exceptions.ConditionalCheckFailedException:
        pass
    used = f"paired_mate{3 - arrived.mate}" in item  # its partner's last upload ran in an earlier pair
    raise MateMissing(f"{arrived.key} waited {request.mate_wait_seconds} s for its mate {request.awaiting}; "
                      + ("its last upload was used by an earlier run and each upload pairs once: upload it again"
                         if used else "upload it")
                      + ", or declare the sample single-end (an empty fastq_2 in its samplesheet row, or "
                      "\"single_end\": true in the sidecar)",
                      code="MATE_MISSING", details={"file": arrived.key, "awaiting": request.awaiting})


def _read_sidecar(s3: Any, bucket: str, incoming: IncomingKey) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=incoming.sidecar_key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None

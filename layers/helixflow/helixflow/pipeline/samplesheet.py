"""Samplesheets: ``incoming/<batch>.samplesheet.csv`` declares samples explicitly, as nf-core pipelines take them.

Format (what nf-core users write): a CSV header with the columns ``sample,fastq_1,fastq_2`` and, optionally, any
run parameter (a field of ``RunParameters``: ``quality``, ``min_length``, ``phase1``...); one row per sample.
- ``fastq_1``/``fastq_2`` are keys relative to ``incoming/`` (``S1_R1.fastq.gz``, ``run7/S1_R1.fastq.gz``) or
  ``s3://<this bucket>/incoming/...``; anything escaping the prefix (``..``, an absolute path, another bucket) is
  refused, and every file must be a FASTQ key as the file-name rules define it (helixflow.pipeline.keys).
- An empty ``fastq_2`` makes the row single-end (whatever the file is called: ``S1_R1.fastq`` runs alone).
- A parameter cell is parsed by the field's type, strictly: integers are digits (``30``, not ``30.0`` or
  ``true``), booleans are ``true`` or ``false``; an empty cell leaves the default. The row's parameters are the
  sample's whole parameter set: no sidecar is read for a declared sample (a stale ``<sample>.json`` of an earlier
  ``helixflow run`` must not leak into it).
- Every defect is ``InvalidSamplesheet`` with a code, the row (``record``; 1 = the first sample), the line and the
  column, so a user can find the cell.

Declarations live in the pairing table (one item per declared file, keyed by its object key, expiring after
``DECLARATION_TTL_S``), so a file's own event finds its sample, mate and parameters with one consistent read; a
file named by several sheets belongs to the sheet that landed last. Mates of a declared sample pair in an item of
their own (``pair_item``), keyed by the sheet's version, so a re-declared sample never pairs with a file of an
older declaration.

Each sheet version also gets a batch item (``batch_item``): the samples it declared, in row order, and each one's
outcome as its run ends (``record_outcome``; a SUCCEEDED run's results, a FAILED run's error). The batch is complete
when every declared sample has one (``pending_samples``), and then its batch report is built
(helixflow.pipeline.batch_report).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from helixflow.errors import InvalidKey, InvalidSamplesheet, Position
from helixflow.pipeline.keys import INCOMING_PREFIX, is_sample_name, parse_incoming_key
from helixflow.pipeline.params import RunParameters

MAX_SHEET_BYTES = 1024 * 1024
# ResolveSample handles the whole sheet in one invocation (a few requests per sample within its timeout).
MAX_SAMPLES = 500
# Files of a batch may land hours after its sheet (an instrument writing lane by lane); a week covers a batch.
DECLARATION_TTL_S = 7 * 24 * 3600
REQUIRED_COLUMNS = ("sample", "fastq_1", "fastq_2")
PARAMETER_COLUMNS = tuple(RunParameters.model_fields)
_INTEGER = re.compile(r"[+-]?[0-9]{1,9}")
_FILE_ITEM = "samplesheet-file#"
_PAIR_ITEM = "samplesheet-pair#"
_BATCH_ITEM = "samplesheet-batch#"


@dataclass(frozen=True)
class SheetRow:
    row: int  # 1 = the first sample row
    line: int
    sample: str
    files: tuple[str, ...]  # object keys: (fastq_1,) single-end, (fastq_1, fastq_2) paired
    params: RunParameters


@dataclass(frozen=True)
class Declaration:
    """What a samplesheet says about one file."""

    sheet_key: str
    sheet_etag: str
    sample: str
    row: int
    mate: int  # 0 single-end, 1 or 2
    files: tuple[str, ...]
    params: RunParameters
    pair_item: str  # pk of the item this sample's mates pair in ("" for single-end)

    @property
    def other_file(self) -> str | None:
        return self.files[2 - self.mate] if self.mate else None


def parse_samplesheet(document: bytes, *, source: str, bucket: str | None = None) -> list[SheetRow]:
    """The sample rows of a samplesheet; ``source`` names it in errors, ``bucket`` is the bucket ``s3://`` paths
    may name (None: no ``s3://`` path is accepted, as for a local sheet)."""
    if len(document) > MAX_SHEET_BYTES:
        raise InvalidSamplesheet(f"{source} is {len(document):,} bytes; the limit is {MAX_SHEET_BYTES:,}",
                                 code="SAMPLESHEET_TOO_LARGE", position=Position(file=source))
    try:
        text = document.decode("utf-8-sig")  # a spreadsheet's byte-order mark is not part of the header
    except UnicodeDecodeError as exc:
        raise InvalidSamplesheet(f"{source} is not UTF-8 (byte {exc.start}: {exc.reason})",
                                 code="SAMPLESHEET_NOT_UTF8", position=Position(file=source, byte_offset=exc.start))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header, rows, samples, files = None, [], {}, {}
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines and the ",,," rows spreadsheets leave behind
            if header is None:
                header = _header([cell.strip() for cell in cells], source, reader.line_num)
                continue
            if len(rows) == MAX_SAMPLES:
                raise InvalidSamplesheet(f"{source} declares more than {MAX_SAMPLES} samples; split the batch",
                                         code="SAMPLESHEET_TOO_LARGE", position=Position(file=source))
            row = _row(header, cells, _Cell(source, len(rows) + 1, reader.line_num), bucket)
            if row.sample in samples:
                raise _Cell(source, row.row, row.line).error(
                    "sample", f"sample {row.sample!r} is also row {samples[row.sample]} (one row per sample)",
                    "DUPLICATE_SAMPLE")
            samples[row.sample] = row.row
            for column, key in zip(("fastq_1", "fastq_2"), row.files):
                if key in files:
                    raise _Cell(source, row.row, row.line).error(
                        column, f"{key} is also row {files[key][0]}, column {files[key][1]}", "FILE_LISTED_TWICE")
                files[key] = (row.row, column)
            rows.append(row)
    except csv.Error as exc:
        raise InvalidSamplesheet(f"{source} is not well-formed CSV at line {reader.line_num}: {exc}", code="NOT_CSV",
                                 position=Position(file=source, line=reader.line_num)) from None
    if header is None or not rows:
        raise InvalidSamplesheet(f"{source} has no sample rows", code="NO_SAMPLES", position=Position(file=source))
    return rows


@dataclass(frozen=True)
class _Cell:
    """Where a defect is: the sheet, its row and line (the column comes with the error)."""

    source: str
    row: int
    line: int

    def error(self, column: str, message: str, code: str) -> InvalidSamplesheet:
        return InvalidSamplesheet(f"{self.source} row {self.row} (line {self.line}), column {column}: {message}",
                                  code=code, position=Position(file=self.source, record=self.row, line=self.line),
                                  details={"row": self.row, "column": column})


def _header(columns: list[str], source: str, line: int) -> list[str]:
    where = Position(file=source, line=line)
    for column in columns:
        if columns.count(column) > 1:
            raise InvalidSamplesheet(f"{source} line {line}: column {column!r} appears twice", code="DUPLICATE_COLUMN",
                                     position=where, details={"column": column})
        if column not in REQUIRED_COLUMNS and column not in PARAMETER_COLUMNS:
            raise InvalidSamplesheet(
                f"{source} line {line}: unknown column {column!r} (the columns are {', '.join(REQUIRED_COLUMNS)} "
                f"and the run parameters {', '.join(PARAMETER_COLUMNS)})", code="UNKNOWN_COLUMN", position=where,
                details={"column": column})
    for column in REQUIRED_COLUMNS:
        if column not in columns:
            raise InvalidSamplesheet(f"{source} line {line}: the header has no {column!r} column (required: "
                                     f"{', '.join(REQUIRED_COLUMNS)})", code="MISSING_COLUMN", position=where,
                                     details={"column": column})
    return columns


def _row(header: list[str], cells: list[str], cell: _Cell, bucket: str | None) -> SheetRow:
    if len(cells) != len(header):
        raise InvalidSamplesheet(f"{cell.source} row {cell.row} (line {cell.line}) has {len(cells)} cells; the "
                                 f"header has {len(header)}", code="BAD_ROW",
                                 position=Position(file=cell.source, record=cell.row, line=cell.line),
                                 details={"row": cell.row})
    values = {column: value.strip() for column, value in zip(header, cells)}
    for column in ("sample", "fastq_1"):
        if not values[column]:
            raise cell.error(column, f"{column} is empty", "MISSING_VALUE")
    sample = values["sample"]
    if not is_sample_name(sample):
        raise cell.error("sample", f"{sample!r} is not a sample id (A-Z a-z 0-9 . _ -, starting alphanumeric, at "
                                   "most 128 characters)", "BAD_SAMPLE")
    files = tuple(_file_key(values[c], c, cell, bucket) for c in ("fastq_1", "fastq_2") if values[c])
    params = _parameters({c: v for c, v in values.items() if c in PARAMETER_COLUMNS and v}, cell)
    if params.single_end and len(files) == 2:
        raise cell.error("single_end", "single_end is true but fastq_2 names a mate", "BAD_VALUE")
    if "single_end" in params.model_fields_set and not params.single_end and len(files) == 1:
        raise cell.error("single_end", "single_end is false but fastq_2 is empty", "BAD_VALUE")
    if len(files) == 1:  # an empty fastq_2 is a single-end row, whatever the file is called
        params = params.model_copy(update={"single_end": True})
    return SheetRow(row=cell.row, line=cell.line, sample=sample, files=files, params=params)


def _file_key(value: str, column: str, cell: _Cell, bucket: str | None) -> str:
    """``value`` as an object key under incoming/; nothing that escapes the prefix."""
    if value.startswith("s3://"):
        named_bucket, _, key = value[len("s3://"):].partition("/")
        if bucket is None or named_bucket != bucket or not key.startswith(INCOMING_PREFIX):
            raise cell.error(column, f"{value} is not under s3://{bucket or '<the data bucket>'}/{INCOMING_PREFIX}",
                             "PATH_OUTSIDE_PREFIX")
    else:
        relative = re.sub(r"^(\./)+", "", value)
        if relative.startswith(("/", "~")) or "\\" in relative or ".." in relative.split("/") or ":" in relative:
            raise cell.error(column, f"{value} escapes {INCOMING_PREFIX} (give a path relative to it)",
                             "PATH_OUTSIDE_PREFIX")
        key = INCOMING_PREFIX + relative
    try:
        return parse_incoming_key(key).key
    except InvalidKey as exc:
        raise cell.error(column, exc.message, "BAD_PATH") from None


def _parameters(cells: dict[str, str], cell: _Cell) -> RunParameters:
    values: dict[str, Any] = {}
    for column, text in cells.items():
        kind = RunParameters.model_fields[column].annotation
        if kind is bool:
            if text not in ("true", "false"):
                raise cell.error(column, f"{text!r} is not true or false", "BAD_VALUE")
            values[column] = text == "true"
        elif kind is int:
            if not _INTEGER.fullmatch(text):
                raise cell.error(column, f"{text!r} is not an integer", "BAD_VALUE")
            values[column] = int(text)
        else:
            values[column] = text
    try:
        return RunParameters.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise cell.error(str(first["loc"][0]), first["msg"], "BAD_VALUE") from None


# ---------------------------------------------------------------- declarations (the pairing table)

def file_item(bucket: str, key: str) -> str:
    return f"{_FILE_ITEM}{bucket}/{key}"


def pair_item(bucket: str, sheet_key: str, sheet_etag: str, sample: str) -> str:
    return f"{_PAIR_ITEM}{bucket}/{sheet_key}@{sheet_etag}#{sample}"


def batch_item(bucket: str, sheet_key: str, sheet_etag: str) -> str:
    return f"{_BATCH_ITEM}{bucket}/{sheet_key}@{sheet_etag}"


def is_pair_item(pk: str) -> bool:
    return pk.startswith(_PAIR_ITEM)


def declare(table: Any, *, bucket: str, sheet_key: str, sheet_etag: str, rows: list[SheetRow],
            now: float | None = None) -> None:
    """Record every file of ``rows`` as declared by this sheet (the last sheet naming a file wins), and the sheet's
    batch: its samples, and the outcomes recorded so far (kept: a repeated delivery of the sheet's event must not
    forget the samples that already ended)."""
    expires = int(now or time.time()) + DECLARATION_TTL_S
    table.update_item(
        Key={"pk": batch_item(bucket, sheet_key, sheet_etag)},
        UpdateExpression="SET samples = :samples, expiration = :expires, outcomes = if_not_exists(outcomes, :none)",
        ExpressionAttributeValues={":samples": [row.sample for row in rows], ":expires": expires, ":none": {}})
    with table.batch_writer() as batch:
        for row in rows:
            pair = pair_item(bucket, sheet_key, sheet_etag, row.sample) if len(row.files) == 2 else ""
            for mate, key in enumerate(row.files, start=1 if len(row.files) == 2 else 0):
                batch.put_item(Item={
                    "pk": file_item(bucket, key), "sheet": sheet_key, "sheet_etag": sheet_etag, "sample": row.sample,
                    "row": row.row,
                    "mate": mate, "files": list(row.files), "pair_item": pair, "expiration": expires,
                    # JSON, not a map: DynamoDB would hand the numbers back as Decimal.
                    "params": json.dumps(row.params.model_dump(exclude_unset=True)),
                })


def declaration_for(table: Any, bucket: str, key: str, now: float | None = None) -> Declaration | None:
    """The live declaration of ``key``, or None (the file follows the file-name rules). TTL deletion is lazy, so
    an expired item is ignored here rather than trusted to be gone."""
    item = table.get_item(Key={"pk": file_item(bucket, key)}, ConsistentRead=True).get("Item")
    if item is None or int(item["expiration"]) <= int(now or time.time()):
        return None
    return Declaration(sheet_key=item["sheet"], sheet_etag=item["sheet_etag"], sample=item["sample"], row=int(item["row"]), mate=int(item["mate"]),
                       files=tuple(item["files"]), params=RunParameters.model_validate(json.loads(item["params"])),
                       pair_item=item["pair_item"])


# ---------------------------------------------------------------- the batch: which declared samples have ended

def pending_samples(samples: list[str], outcomes: dict[str, Any]) -> list[str]:
    """The batch rule: the declared samples (row order) whose run has not ended. The batch is complete when this is
    empty: every sample published or failed (a failed sample does not hold the batch report back; it is named in
    it). A sample re-declared by a later sheet runs in that sheet's batch, so this one stays incomplete."""
    return [sample for sample in samples if sample not in outcomes]


def record_outcome(table: Any, *, bucket: str, sheet_key: str, sheet_etag: str, sample: str,
                   outcome: dict[str, Any]) -> tuple[list[str], dict[str, dict[str, Any]]] | None:
    """Record how ``sample``'s run ended in its batch; (the declared samples, every outcome so far) after this
    write, in one atomic update, so of two samples ending at once at least the later sees the batch complete.
    None when the batch item is gone (expired): there is no batch left to complete."""
    try:
        item = table.update_item(
            Key={"pk": batch_item(bucket, sheet_key, sheet_etag)}, UpdateExpression="SET outcomes.#sample = :outcome",
            ConditionExpression="attribute_exists(samples)", ExpressionAttributeNames={"#sample": sample},
            # JSON, not a map: DynamoDB would hand the numbers back as Decimal.
            ExpressionAttributeValues={":outcome": json.dumps(outcome, sort_keys=True)}, ReturnValues="ALL_NEW",
        )["Attributes"]
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        return None
    return list(item["samples"]), {name: json.loads(value) for name, value in item["outcomes"].items()}

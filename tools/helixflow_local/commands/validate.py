"""``helixflow validate FILE [MATE] [--json] [--allow-phred64]``: the Validate Lambda's checks, locally.

Exit status (the CLI's table, ``helixflow_local.exit_codes``): 0 valid, with a one-line summary on stdout or,
with --json, the report ``{"valid": true, "records": ...}``; 2 invalid at the first defect, with one line on
stderr, ``InvalidFastq (CODE): message (FILE, record N, line N, byte N)``, and with --json also the error on
stdout: ``{"valid": false, "error": "InvalidFastq", "code", "message", "file", "record", "line",
"byte_offset"[, "details"]}``; 2 as well for usage errors and inputs that cannot be opened (missing, a
directory, no permission); 4 when reading fails part-way (an I/O error); 70 for an internal error.

``-`` reads from standard input. Inputs over 64 MiB get a progress bar on stderr when stderr is a terminal.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from typing import BinaryIO

import click

from helixflow.errors import InvalidFastq
from helixflow.fastq.validator import ValidationReport, validate_fastq

PROGRESS_MIN_BYTES = 64 << 20


@click.command("validate")
@click.argument("file")
@click.argument("mate", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the report or the error as JSON on stdout.")
@click.option("--allow-phred64", is_flag=True, help="Accept Phred+64 qualities (rejected by default).")
def validate_command(file: str, mate: str | None, as_json: bool, allow_phred64: bool) -> None:
    """Check FILE (and its MATE) the way the pipeline's Validate step does.

    FILE and MATE are FASTQ, uncompressed, gzip or BGZF (detected from the content); '-' is stdin.
    Exit 0 when valid, 2 at the first defect (with its code and position) and for inputs that cannot be
    opened.
    """
    with ExitStack() as stack:
        handles = [sys.stdin.buffer if path == "-" else stack.enter_context(open(path, "rb"))
                   for path in (file, mate) if path is not None]
        progress = stack.enter_context(_ProgressBar(handles))
        try:
            report = validate_fastq(handles[0], name=file, mate_source=handles[1] if mate else None,
                                    mate_name=mate, allow_phred64=allow_phred64, progress=progress)
        except InvalidFastq as exc:
            if as_json:
                click.echo(json.dumps({"valid": False, **exc.to_dict()}))
            raise
    _print_valid(report, as_json)


def _print_valid(report: ValidationReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    files = " + ".join(f.file for f in report.files)
    unit = "pairs" if report.paired else "records"
    formats = "/".join(sorted({"uncompressed" if f.compression == "none" else f.compression for f in report.files}))
    click.echo(f"OK {files}: {report.records:,} {unit}, {report.bases:,} bases, length "
               f"{report.min_length}-{report.max_length}, {report.quality_encoding or 'no qualities'}, {formats}")


class _ProgressBar:
    """A rich progress bar over the bytes read, on stderr, for big inputs when stderr is a terminal; the
    context value is the callback for ``validate_fastq`` (None when there is no bar)."""

    def __init__(self, handles: list[BinaryIO]) -> None:
        sizes = [_size(h) for h in handles]
        self._total = sum(sizes) if None not in sizes else None
        self._progress = None

    def __enter__(self):
        if self._total is None or self._total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
            return None
        from rich.console import Console  # only when a bar is shown: rich costs ~50 ms to import
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

        self._progress = Progress("validating", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                  TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._progress.start()
        task = self._progress.add_task("validate", total=self._total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _size(handle: BinaryIO) -> int | None:
    try:
        return os.fstat(handle.fileno()).st_size or None
    except (OSError, ValueError, AttributeError):
        return None

"""`helixflow preprocess R1 [R2] --out DIR ...`: the Phase 1 engine alone, with a progress bar.

Exit status: 0 on success, 2 when the input is not valid FASTQ (the error code and position are printed).
"""

from __future__ import annotations

import os
import re
import sys

import click

from helixflow.errors import HelixflowError


def _sample_name(path: str) -> str:
    name = os.path.basename(path)
    name = re.sub(r"\.(fastq|fq)(\.gz|\.bgz|\.bgzf)?$", "", name, flags=re.IGNORECASE)
    return re.sub(r"([._-]R?[12])$", "", name) or "sample"


@click.command("preprocess")
@click.argument("r1", type=click.Path(exists=True, dir_okay=False))
@click.argument("r2", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Results directory.")
@click.option("--sample", help="Sample name (default: from the R1 file name).")
@click.option("--adapter", help="Read 1 adapter (default: auto-detect for single-end, mate overlap for pairs).")
@click.option("--adapter2", help="Read 2 adapter (default: --adapter).")
@click.option("--no-adapter-detection", is_flag=True, help="Do not auto-detect a single-end adapter.")
@click.option("--quality", type=int, default=20, show_default=True,
              help="3' sliding-window cut: minimum mean Phred of the window (0: off).")
@click.option("--window", type=int, default=4, show_default=True, help="Sliding window size.")
@click.option("--quality-front", type=int, default=0, show_default=True, help="5' sliding-window cut (0: off).")
@click.option("--poly-g", type=int, default=0, show_default=True,
              help="Trim 3' poly-G runs of at least this length (two-colour chemistry; 0: off, 10 is usual).")
@click.option("--poly-x", type=int, default=0, show_default=True, help="Trim 3' poly-X runs (0: off).")
@click.option("--min-length", type=int, default=15, show_default=True, help="Drop reads shorter than this.")
@click.option("--max-length", type=int, default=0, show_default=True, help="Drop reads longer than this (0: off).")
@click.option("--n-limit", type=int, default=5, show_default=True, help="Drop reads with more Ns (-1: off).")
@click.option("--qualified-quality", type=int, default=15, show_default=True)
@click.option("--unqualified-percent", type=int, default=40, show_default=True,
              help="Drop reads with more than this percent of bases below --qualified-quality (-1: off).")
@click.option("--no-embeddings", is_flag=True, help="Skip the embeddings Parquet.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="Threads for output compression and embeddings.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def preprocess_command(r1, r2, out_dir, sample, adapter, adapter2, no_adapter_detection, quality, window, quality_front,
                       poly_g, poly_x, min_length, max_length, n_limit, qualified_quality, unqualified_percent,
                       no_embeddings, threads, quiet):
    """Clean, QC, trim and embed R1 [R2] into the results layout under --out."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from helixflow.phase1 import engine

    if threads > 1:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    sample = sample or _sample_name(r1)
    params = engine.Params(adapter=adapter, adapter2=adapter2, detect_adapter=not no_adapter_detection,
                           quality=quality, window=window, quality_front=quality_front, poly_g=poly_g,
                           poly_x=poly_x, min_length=min_length, max_length=max_length, n_limit=n_limit,
                           qualified_quality=qualified_quality, unqualified_percent=unqualified_percent,
                           embeddings=not no_embeddings)
    console = Console(stderr=True)
    total = os.path.getsize(r1) + (os.path.getsize(r2) if r2 else 0)
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      TimeRemainingColumn(), console=console, disable=quiet, transient=False) as bar:
            task = bar.add_task(f"preprocess {sample}", total=total)
            result = engine.process_file(r1, r2, out_dir, sample, params, threads=threads,
                                         progress=lambda n: bar.advance(task, n))
            bar.update(task, completed=total)
    except HelixflowError as exc:
        console.print(f"[red]{exc.name}[/red] {exc}")
        sys.exit(2)
    before = sum(s.reads for s in result.before)
    after = sum(s.reads for s in result.after)
    if not quiet:
        console.print(f"{sample}: {before:,} reads in, {after:,} kept; results in {out_dir}")

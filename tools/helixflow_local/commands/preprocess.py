"""`helixflow preprocess R1 [R2] --out DIR ...`: the Phase 1 engine alone, with a progress bar.

Options that are run parameters (adapters, quality, minimum length) come from ``RunParameters`` and are checked
by it, so they accept what a sidecar accepts. Exit status: the CLI's table (``helixflow_local.exit_codes``);
2 for an out-of-range option or input that is not valid FASTQ.
"""

from __future__ import annotations

import os

import click

from helixflow.pipeline.keys import sample_from_path
from helixflow_local.options import schema_option, threads_option


@click.command("preprocess")
@click.argument("r1", type=click.Path(exists=True, dir_okay=False))
@click.argument("r2", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Results directory.")
@click.option("--sample", help="Sample name (default: from the R1 file name).")
@schema_option("adapter", "--adapter",
               help_suffix=" (default: auto-detect for single-end, mate overlap for pairs)")
@schema_option("adapter2", "--adapter2", help_suffix=" (default: --adapter)")
@click.option("--no-adapter-detection", is_flag=True, help="Do not auto-detect a single-end adapter.")
@schema_option("quality", "--quality", help_suffix=" (0: off)")
@click.option("--window", type=click.IntRange(1, 1000), default=4, show_default=True, help="Sliding window size.")
@click.option("--quality-front", type=click.IntRange(0, 60), default=0, show_default=True,
              help="5' sliding-window cut (0: off).")
@click.option("--poly-g", type=click.IntRange(min=0), default=0, show_default=True,
              help="Trim 3' poly-G runs of at least this length (two-colour chemistry; 0: off, 10 is usual).")
@click.option("--poly-x", type=click.IntRange(min=0), default=0, show_default=True, help="Trim 3' poly-X runs (0: off).")
@schema_option("min_length", "--min-length")
@click.option("--max-length", type=click.IntRange(min=0), default=0, show_default=True,
              help="Drop reads longer than this (0: off).")
@click.option("--n-limit", type=click.IntRange(min=-1), default=5, show_default=True,
              help="Drop reads with more Ns (-1: off).")
@click.option("--qualified-quality", type=click.IntRange(0, 60), default=15, show_default=True)
@click.option("--unqualified-percent", type=click.IntRange(-1, 100), default=40, show_default=True,
              help="Drop reads with more than this percent of bases below --qualified-quality (-1: off).")
@click.option("--no-embeddings", is_flag=True, help="Skip the embeddings Parquet.")
@threads_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def preprocess_command(r1, r2, out_dir, sample, adapter, adapter2, no_adapter_detection, quality, window, quality_front,
                       poly_g, poly_x, min_length, max_length, n_limit, qualified_quality, unqualified_percent,
                       no_embeddings, threads, quiet):
    """Clean, QC, trim and embed R1 [R2] into the results layout under --out."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from helixflow.phase1 import engine

    sample = sample or sample_from_path(r1)
    params = engine.Params(adapter=adapter, adapter2=adapter2, detect_adapter=not no_adapter_detection,
                           quality=quality, window=window, quality_front=quality_front, poly_g=poly_g,
                           poly_x=poly_x, min_length=min_length, max_length=max_length, n_limit=n_limit,
                           qualified_quality=qualified_quality, unqualified_percent=unqualified_percent,
                           embeddings=not no_embeddings)
    console = Console(stderr=True)
    total = os.path.getsize(r1) + (os.path.getsize(r2) if r2 else 0)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console, disable=quiet, transient=False) as bar:
        task = bar.add_task(f"preprocess {sample}", total=total)
        result = engine.process_file(r1, r2, out_dir, sample, params, threads=threads,
                                     progress=lambda n: bar.advance(task, n))
        bar.update(task, completed=total)
    before = sum(s.reads for s in result.before)
    after = sum(s.reads for s in result.after)
    if not quiet:
        console.print(f"{sample}: {before:,} reads in, {after:,} kept; results in {out_dir}")

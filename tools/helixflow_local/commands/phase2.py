"""`helixflow align` and `helixflow cluster`: the Phase 2 engine on one machine (no MPI).

Exit status: the CLI's table (``helixflow_local.exit_codes``): 2 for bad options, a bad reference or missing or
empty reads; 4 for no GPU with --device cuda or no samtools for .bam output.
"""

from __future__ import annotations

import sys

import click
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from helixflow.phase2.engine import DEVICES, SEARCHERS
from helixflow.threads import limit_threads


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=False, console=None)


@click.command("align")
@click.argument("reads", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--reference", required=True, type=click.Path(dir_okay=False), help="Reference FASTA(.gz).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output .sam, or .bam (coordinate-sorted and indexed; needs samtools).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: all cores).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--searcher", type=click.Choice(SEARCHERS), default="index", show_default=True,
              help="Candidate search: minimizer index (CPU) or dense embedding similarity (CPU BLAS / CUDA).")
@click.option("--sample", default=None, help="Sample / read group name (default: from the READS file name).")
@click.option("--max-insert", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Longest fragment a proper pair may span.")
def align_command(reads, reference, out, threads, device, searcher, sample, max_insert):
    """Map READS (Phase 1's embeddings Parquet [its trimmed R1 [R2]], or FASTQ[.gz] R1 [R2]) to --reference; write
    SAM/BAM. A Parquet alone finds its trimmed reads beside it (reads/ next to embeddings/)."""
    from helixflow.phase2 import sam
    from helixflow.phase2.engine import build_searcher, resolve_device, sample_name
    from helixflow.phase2.mapper import MapOptions, map_reads
    from helixflow.phase2.reads import read_reads
    from helixflow.phase2.reference import read_fasta

    limit_threads(threads)
    device = resolve_device(device)
    ref = read_fasta(reference)
    batch = read_reads(reads)
    sample = sample or sample_name(reads)
    with _progress() as progress:
        task = progress.add_task(f"index ({searcher})", total=None)
        search = build_searcher(searcher, ref, device)
        progress.update(task, description=f"align ({searcher}, {device})", total=len(batch), completed=0)
        mapping, frags = map_reads(batch, ref, search, MapOptions(max_insert=max_insert, threads=threads,
                                                                  device=device),
                                   progress=lambda n: progress.advance(task, n))
    sam.write_alignments(out, sam.header(ref, sample, sys.argv), sam.record_blocks(batch, mapping, frags, ref, sample),
                         threads=threads or 1)
    mapped = int(mapping.mapped.sum())
    click.echo(f"{mapped}/{len(batch)} reads mapped -> {out}", err=True)


@click.command("cluster")
@click.argument("reads", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output <sample>.clusters.tsv.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: all cores).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
def cluster_command(reads, out, threads, device):
    """Cluster READS (Phase 1's Parquet [its trimmed R1 [R2]], or FASTQ[.gz] R1 [R2]) into overlapping groups via
    a confirmed k-NN read graph."""
    from helixflow.phase2 import graph
    from helixflow.phase2.engine import resolve_device
    from helixflow.phase2.reads import read_reads

    limit_threads(threads)
    device = resolve_device(device)
    batch = read_reads(reads)
    with _progress() as progress:
        task = progress.add_task("neighbours", total=3)
        pairs = graph.neighbour_pairs(batch, np.arange(len(batch), dtype=np.int64))
        progress.update(task, advance=1, description="confirm (Smith-Waterman)")
        confirmed = pairs[graph.confirm_pairs(batch, pairs, threads=threads, device=device)]
        progress.update(task, advance=1, description="components")
        table = graph.clusters_tsv(batch, confirmed)
        progress.update(task, advance=1)
    with open(out, "w") as handle:
        handle.write(table)
    clusters = len({line.split("\t")[1] for line in table.splitlines()[1:]})
    click.echo(f"{len(batch)} reads, {len(confirmed)} confirmed edges, {clusters} clusters -> {out}", err=True)

"""Phase 2 under MPI: `helixflow align` / `helixflow cluster` split over ranks, merged on rank 0.

    mpiexec -n 4 python -m helixflow.phase2.mpi align READS [READS2] --reference FASTA --out FILE
                 [--searcher index|dense] [--device auto|cpu|cuda] [--threads N] [--sample NAME]
                 [--max-insert BP] [--report FILE]
    mpiexec -n 4 python -m helixflow.phase2.mpi cluster READS [READS2] --out FILE [--device ...] [--threads N]
                 [--report FILE]

It is part of the installed package, so a Slurm job needs the environment only, not a checkout
(``batch_jobs/slurm_simulation/phase2.sbatch``).

The output is byte-identical to a one-rank run (the tests compare ``-n 2`` with ``-n 1``), because every rank
runs the same per-read code on a contiguous slice of fragments and rank 0 concatenates the slices in rank order.

- Reads: mates are paired by read id (``reads.fragments``), fragments are dealt in contiguous runs of near-equal
  read counts. Every rank reads the whole input (Phase 1's embeddings with the trimmed FASTQ(s) beside them, or
  FASTQ) to agree on that split, and keeps its run. Clustering needs every read's sequence (a neighbour can be
  anywhere), so there each rank keeps all reads and splits the neighbour search and Smith–Waterman
  confirmations by query read.
- Reference: rank 0 reads the FASTA and builds the searcher's index (minimizer table, or window embeddings);
  both travel to the other ranks by ``Bcast`` of numpy buffers. Building once keeps the index deterministic and
  its cost off the other ranks; a failure on rank 0 (bad FASTA) is broadcast so every rank exits with it.
- Results: each rank's SAM lines (or confirmed edges) are gathered with ``Gatherv`` of a uint8 (int64) buffer.
- GPUs: with ``--device cuda`` (or ``auto`` on a GPU node) rank r uses GPU ``r % n_gpus``
  (``device.gpu_for_rank``).
- ``--report FILE``: rank 0 writes ``{"size": COMM.size, "records": [reads handled by rank 0, rank 1, ...]}``,
  which tells a run over real ranks from independent one-rank copies.
Exit status 2 with ``<ErrorName>: <message>`` for a named error, as the single-machine commands.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from mpi4py import MPI

from helixflow.errors import HelixflowError
from helixflow.phase2 import graph, sam
from helixflow.phase2.dense import DenseSearcher, SearchVectors
from helixflow.phase2.device import gpu_for_rank
from helixflow.phase2.engine import DEVICES, SEARCHERS, resolve_device, sample_name
from helixflow.phase2.index import MinimizerIndex
from helixflow.phase2.mapper import MapOptions, map_reads
from helixflow.phase2.policy import MAX_INSERT
from helixflow.phase2.reads import ReadBatch, fragments, read_reads
from helixflow.phase2.reference import Reference, Windows, read_fasta
from helixflow.threads import limit_threads

COMM = MPI.COMM_WORLD


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m helixflow.phase2.mpi", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    align = commands.add_parser("align")
    align.add_argument("reads", nargs="+")
    align.add_argument("--reference", required=True)
    align.add_argument("--out", required=True)
    align.add_argument("--searcher", choices=SEARCHERS, default="index")
    align.add_argument("--sample", default=None)
    align.add_argument("--max-insert", type=int, default=MAX_INSERT)
    cluster = commands.add_parser("cluster")
    cluster.add_argument("reads", nargs="+")
    cluster.add_argument("--out", required=True)
    for sub in (align, cluster):
        sub.add_argument("--device", choices=DEVICES, default="auto")
        sub.add_argument("--threads", type=int, default=None)
        sub.add_argument("--report", default=None, help="write the communicator size and per-rank counts (JSON)")
    return parser.parse_args(argv)


def bcast_array(array: np.ndarray | None, root: int = 0) -> np.ndarray:
    """Broadcast a numpy array (buffer-style ``Bcast``; shape and dtype go first as a small object)."""
    meta = COMM.bcast(None if array is None else (array.shape, array.dtype.str), root=root)
    if COMM.rank != root:
        array = np.empty(meta[0], dtype=np.dtype(meta[1]))
    array = np.ascontiguousarray(array)
    COMM.Bcast(array, root=root)
    return array


def gather_bytes(data: bytes) -> bytes | None:
    """Concatenate every rank's bytes on rank 0, in rank order (``Gatherv`` of uint8)."""
    send = np.frombuffer(data, dtype=np.uint8)
    counts = np.array(COMM.gather(send.size, root=0) or [], dtype=np.int64)
    receive = np.empty(int(counts.sum()), dtype=np.uint8) if COMM.rank == 0 else None
    COMM.Gatherv(send, [receive, counts, MPI.BYTE] if COMM.rank == 0 else None, root=0)
    return receive.tobytes() if COMM.rank == 0 else None


def gather_array(array: np.ndarray) -> np.ndarray | None:
    """Concatenate every rank's int64 rows on rank 0, in rank order (``Gatherv``)."""
    send = np.ascontiguousarray(array, dtype=np.int64)
    counts = np.array(COMM.gather(send.size, root=0) or [], dtype=np.int64)
    receive = np.empty(int(counts.sum()), dtype=np.int64) if COMM.rank == 0 else None
    COMM.Gatherv(send, [receive, counts, MPI.INT64_T] if COMM.rank == 0 else None, root=0)
    return receive.reshape(-1, *array.shape[1:]) if COMM.rank == 0 else None


def on_rank0(build):
    """Run ``build()`` on rank 0; if it raises a named error, every rank raises it (no rank hangs in Bcast)."""
    result, error = None, None
    if COMM.rank == 0:
        try:
            result = build()
        except HelixflowError as raised:
            error = raised
    error = COMM.bcast(error, root=0)
    if error is not None:
        raise error
    return result


def share_reference(path: str) -> Reference:
    reference = on_rank0(lambda: read_fasta(path))
    names = COMM.bcast(reference.names if COMM.rank == 0 else None, root=0)
    buffer = bcast_array(reference.buffer if COMM.rank == 0 else None)
    offsets = bcast_array(reference.offsets if COMM.rank == 0 else None)
    return Reference(tuple(names), buffer, offsets)


def share_searcher(kind: str, reference: Reference, device: str, index_path: str | None = None):
    """The searcher on every rank, built (or, for the minimizer index, loaded from ``index_path``) on rank 0."""
    if kind == "index":
        built = MinimizerIndex.build_or_load(reference, index_path)[0] if COMM.rank == 0 else None
        parts = [bcast_array(getattr(built, name) if built else None) for name in ("hashes", "positions",
                                                                                 "strands")]
        return MinimizerIndex(*parts, reference.offsets)
    built = DenseSearcher.build(reference, device) if COMM.rank == 0 else None
    table = Windows(*(bcast_array(getattr(built.windows, name) if built else None)
                      for name in ("contig", "start", "end")))
    vectors = SearchVectors(*(bcast_array(getattr(built.vectors, name) if built else None)
                              for name in ("codes", "inverse_norms")))
    return DenseSearcher(table, vectors, reference.lengths, device)


def my_slice(weights: np.ndarray) -> slice:
    """This rank's contiguous run of items, balanced by ``weights`` (reads per fragment)."""
    cumulative = np.concatenate([[0], np.cumsum(weights)])
    bounds = np.searchsorted(cumulative, np.linspace(0, cumulative[-1], COMM.size + 1), side="left")
    bounds[0], bounds[-1] = 0, len(weights)
    return slice(int(bounds[COMM.rank]), int(bounds[COMM.rank + 1]))


def load_my_reads(paths: list[str]) -> ReadBatch:
    """This rank's fragments, in file order (see the module docstring)."""
    batch = read_reads(paths)
    frags = fragments(batch.ids, batch.mates)
    mine = my_slice(1 + (frags.second >= 0))
    rows = np.stack([frags.first[mine], frags.second[mine]], axis=1).ravel()
    return batch.take(rows[rows >= 0])


def select_gpu(device: str) -> None:
    if device == "cuda":
        from numba import cuda

        cuda.select_device(gpu_for_rank(COMM.rank, len(cuda.gpus)))


def write_report(path: str | None, records: int) -> None:
    """Rank 0 writes the communicator size and what every rank handled (see the module docstring)."""
    per_rank = COMM.gather(records, root=0)
    if path is not None and COMM.rank == 0:
        with open(path, "w") as handle:
            json.dump({"size": COMM.size, "records": per_rank}, handle)


def run_align(args: argparse.Namespace, argv: list[str]) -> int:
    """Align this rank's reads; returns how many it aligned."""
    device = resolve_device(args.device)
    select_gpu(device)
    reference = share_reference(args.reference)
    searcher = share_searcher(args.searcher, reference, device, getattr(args, "index_cache", None))
    batch = load_my_reads(args.reads)
    mapping, frags = map_reads(batch, reference, searcher, MapOptions(max_insert=args.max_insert,
                                                                       threads=args.threads, device=device))
    sample = args.sample or sample_name(args.reads)
    body = gather_bytes(sam.records(batch, mapping, frags, reference, sample))
    if COMM.rank == 0:
        sam.write_alignments(args.out, sam.header(reference, sample, argv), body, threads=args.threads or 1)
    return len(batch)


def run_cluster(args: argparse.Namespace) -> int:
    """Cluster with this rank's share of the neighbour search; returns how many query reads it searched."""
    device = resolve_device(args.device)
    select_gpu(device)
    batch = read_reads(args.reads)
    rows = np.arange(len(batch), dtype=np.int64)[my_slice(np.ones(len(batch), dtype=np.int64))]
    pairs = graph.neighbour_pairs(batch, rows)
    confirmed = gather_array(pairs[graph.confirm_pairs(batch, pairs, threads=args.threads, device=device)])
    if COMM.rank == 0:
        edges = graph.unique_pairs(confirmed[:, 0], confirmed[:, 1], len(batch)) if confirmed.size \
            else confirmed.reshape(0, 2)
        with open(args.out, "w") as handle:
            handle.write(graph.clusters_tsv(batch, edges))
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    args = parse_args(argv[1:])
    limit_threads(args.threads)
    try:
        records = run_align(args, argv) if args.command == "align" else run_cluster(args)
    except HelixflowError as error:
        if COMM.rank == 0:
            print(f"{error.name}: {error.describe()}", file=sys.stderr)
        return 2
    write_report(args.report, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())

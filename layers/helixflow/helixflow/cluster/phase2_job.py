"""Phase 2 as one Slurm job: S3 in, the MPI driver's functions on every rank, S3 out.

    python -m helixflow.cluster.phase2_job --bucket B --embeddings-key K --reads-key R1 [--reads-key R2]
                                           --out-prefix P --sample S [--reference-key R] [--device auto|cpu|cuda]
                                           [--threads N]

The job script (``helixflow.pipeline.slurm_jobs.JOB_SCRIPT``) starts every rank under ``srun --mpi=pmi2``:

- rank 0 downloads Phase 1's ``embeddings/<sample>.parquet`` and the trimmed FASTQ(s) whose rows it embeds (and
  the reference FASTA) from S3 (boto3; the
  endpoint from ``AWS_ENDPOINT_URL`` where one is set, as in the local stack) into a private scratch directory;
  the bytes reach the other ranks by ``Bcast`` (in bounded pieces), so no shared filesystem is assumed;
- every rank runs ``helixflow.phase2.mpi``'s ``run_cluster`` (and ``run_align`` when a reference is given) on
  its share; rank 0 gathers and writes the outputs;
- rank 0 uploads under P (``work/<sample>/<run>/phase2/``): ``clusters/<sample>.clusters.tsv`` always,
  ``alignments/<sample>.bam`` + ``.bai`` and ``qc/<sample>.flagstat.txt`` + ``qc/<sample>.stats.txt`` (samtools,
  for MultiQC's samtools module) with a reference, and last ``summary.json`` (outputs relative to the
  results prefix, counts, software versions); CollectPhase2 reads that file;
- every rank removes its scratch directory, also on failure.

No value reaches a shell: paths are built here and the tools run with argument vectors. A named error exits 2
with ``<ErrorName>: <message>`` on stderr (the poller's log tail), anything else with a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

SUMMARY_NAME = "summary.json"
PIECE_BYTES = 64 * 1024 * 1024  # Bcast in pieces well below MPI's int count limit
VERSIONED = ("numpy", "numba", "llvmlite", "pyarrow", "mpi4py", "boto3")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m helixflow.cluster.phase2_job",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--embeddings-key", required=True, help="Phase 1's embeddings/<sample>.parquet in S3")
    parser.add_argument("--reads-key", action="append", default=[],
                        help="Phase 1's trimmed FASTQ in S3 (R1, then R2): the sequences the embeddings' rows stand "
                             "for; none for a Parquet that still holds them")
    parser.add_argument("--out-prefix", required=True, help="work/<sample>/<run>/phase2/")
    parser.add_argument("--sample", required=True)
    parser.add_argument("--reference-key", default=None, help="reference FASTA(.gz) in the same bucket")
    parser.add_argument("--reference-etag", default=None, help="the version Validate checked (read with IfMatch)")
    parser.add_argument("--reference-cache-prefix", default=None,
                        help="references/_cache/<etag>/: the minimizer index is read from / written to it")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args(argv)


def s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def _safe_name(key: str, fallback: str) -> str:
    """The file name a download gets in scratch: the key's last segment, never a path."""
    name = key.rsplit("/", 1)[-1]
    return name if name and name not in (".", "..") else fallback


def share_file(comm, path: Path | None, target: Path) -> Path:
    """Rank 0's file, copied to ``target`` on every other rank by Bcast (no shared filesystem assumed)."""
    if comm.size == 1:
        return path
    import numpy as np

    size = comm.bcast(path.stat().st_size if comm.rank == 0 else None, root=0)
    with open(path if comm.rank == 0 else target, "rb" if comm.rank == 0 else "wb") as handle:
        for start in range(0, size, PIECE_BYTES):
            length = min(PIECE_BYTES, size - start)
            piece = (np.frombuffer(handle.read(length), dtype=np.uint8).copy() if comm.rank == 0
                     else np.empty(length, dtype=np.uint8))
            comm.Bcast(piece, root=0)
            if comm.rank != 0:
                handle.write(piece.tobytes())
    return path if comm.rank == 0 else target


def cached_index(options: argparse.Namespace, scratch: Path) -> tuple[str | None, Path | None]:
    """Where the reference's minimizer index is cached (S3 key) and its local file, when the run has a cache."""
    if not options.reference_cache_prefix:
        return None, None
    from helixflow.phase2.index import MinimizerIndex

    return options.reference_cache_prefix + MinimizerIndex.CACHE_NAME, scratch / MinimizerIndex.CACHE_NAME


def fetch_if_present(s3, bucket: str, key: str, path: Path) -> bool:
    """Download ``key`` to ``path``; False when it does not exist yet (the first job of this reference)."""
    from botocore.exceptions import ClientError

    try:
        s3.download_file(bucket, key, str(path))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def run(options: argparse.Namespace, comm, scratch: Path) -> dict | None:
    """Every rank's part; rank 0 returns the summary it uploaded."""
    from helixflow.phase2 import mpi
    from helixflow.pipeline import storage
    from helixflow.versions import environment_versions

    began = time.monotonic()
    s3 = s3_client() if comm.rank == 0 else None
    embeddings_path = scratch / _safe_name(options.embeddings_key, "reads.parquet")
    if not embeddings_path.name.endswith(".parquet"):
        embeddings_path = embeddings_path.with_name(embeddings_path.name + ".parquet")

    def download(key: str, path: Path, etag: str | None = None) -> Path:
        # IfMatch: the reference version Validate checked, or a failed read (never another version's bases).
        return storage.download(s3, options.bucket, key, path, if_match=etag)

    fastq_paths = [scratch / _safe_name(key, f"reads_{mate}.fastq.gz")
                   for mate, key in enumerate(options.reads_key, start=1)]
    mpi.on_rank0(lambda: [download(key, path) for key, path in
                          [(options.embeddings_key, embeddings_path), *zip(options.reads_key, fastq_paths)]])
    reads = [str(share_file(comm, path if comm.rank == 0 else None, path))
             for path in [embeddings_path, *fastq_paths]]
    sample = options.sample
    out = scratch / "out"
    (out / "clusters").mkdir(parents=True, exist_ok=True)
    clusters = out / "clusters" / f"{sample}.clusters.tsv"
    common = {"device": options.device, "threads": options.threads, "report": None}
    searched = mpi.run_cluster(argparse.Namespace(command="cluster", reads=reads, out=str(clusters), **common))
    outputs = [f"clusters/{sample}.clusters.tsv"]
    aligned = None
    index_key = index_was_cached = None
    if options.reference_key:
        reference_path = scratch / _safe_name(options.reference_key, "reference.fa")
        mpi.on_rank0(lambda: download(options.reference_key, reference_path, options.reference_etag))
        reference = share_file(comm, reference_path if comm.rank == 0 else None, reference_path)
        index_key, index_path = cached_index(options, scratch)
        index_was_cached = mpi.on_rank0(lambda: index_key is not None and fetch_if_present(s3, options.bucket,
                                                                                             index_key, index_path))
        (out / "alignments").mkdir(parents=True, exist_ok=True)
        bam = out / "alignments" / f"{sample}.bam"
        argv = ["helixflow.cluster.phase2_job", "align", "--sample", sample]
        aligned = mpi.run_align(argparse.Namespace(command="align", reads=reads, reference=str(reference),
                                                   out=str(bam), searcher="index", sample=sample,
                                                   index_cache=str(index_path) if index_path else None,
                                                   max_insert=mpi.MAX_INSERT, **common), argv)
        outputs += [f"alignments/{sample}.bam", f"alignments/{sample}.bam.bai"]
        if comm.rank == 0 and index_key is not None and not index_was_cached:
            s3.upload_file(str(index_path), options.bucket, index_key)
        if comm.rank == 0:  # here, where samtools and the BAM already are (README: "The report")
            from helixflow.phase2.sam import write_alignment_stats

            threads = options.threads or len(os.sched_getaffinity(0))  # the CPUs Slurm gave this task
            written = write_alignment_stats(bam, out / "qc", sample, threads=threads)
            outputs += [Path(path).relative_to(out).as_posix() for path in written]
    searched_per_rank = comm.gather(searched, root=0)
    aligned_per_rank = comm.gather(aligned, root=0)
    if comm.rank != 0:
        return None
    with open(clusters) as handle:
        next(handle)
        cluster_ids = {line.split("\t", 2)[1] for line in handle}
    summary = {
        "sample": sample, "outputs": outputs, "ranks": comm.size,
        "reads": sum(searched_per_rank), "clusters": len(cluster_ids),
        "aligned_reads": sum(aligned_per_rank) if options.reference_key else None,
        "reference_key": options.reference_key, "job_id": os.environ.get("SLURM_JOB_ID"),
        "reference_index": (("cached" if index_was_cached else "built") if options.reference_key and index_key
                            else None),
        "seconds": round(time.monotonic() - began, 2),
        "versions": environment_versions(VERSIONED) | _samtools_version(bool(options.reference_key)),
    }
    for path in outputs:
        storage.upload(s3, options.bucket, out / path, options.out_prefix + path)
    # Last: its presence says every output is in place.
    s3.put_object(Bucket=options.bucket, Key=options.out_prefix + SUMMARY_NAME, ContentType="application/json",
                  Body=(json.dumps(summary, indent=2) + "\n").encode())
    return summary


def _samtools_version(used: bool) -> dict[str, str]:
    import subprocess

    samtools = shutil.which("samtools") if used else None
    if samtools is None:
        return {}
    output = subprocess.run([samtools, "--version"], capture_output=True).stdout
    first = output.split(b"\n", 1)[0].decode("utf-8", "replace")
    return {"samtools": first.removeprefix("samtools ").strip()}


def main(argv: list[str] | None = None) -> int:
    from mpi4py import MPI

    from helixflow.errors import HelixflowError
    from helixflow.threads import limit_threads

    options = parse_args(sys.argv[1:] if argv is None else argv)
    if not options.out_prefix.endswith("/"):
        options.out_prefix += "/"
    comm = MPI.COMM_WORLD
    limit_threads(options.threads)
    scratch = Path(tempfile.mkdtemp(prefix=f"helixflow-phase2-{comm.rank}-",
                                    dir=os.environ.get("SLURM_TMPDIR") or os.environ.get("TMPDIR")))
    try:
        summary = run(options, comm, scratch)
    except HelixflowError as error:
        if comm.rank == 0:
            print(f"{error.name}: {error.describe()}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if summary is not None:
        print(json.dumps({k: summary[k] for k in ("outputs", "ranks", "reads", "clusters")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Plan: where Phase 1 runs, by the Mashup hybrid model.

Mashup (Roy et al., 2022) places a workflow's bursty, stateless, embarrassingly parallel work on serverless
functions and its long-running, stateful work on instances. Phase 1 over record-aligned chunks is the former
up to the point where one Lambda can still prepare the chunks (download, re-block, find record boundaries)
within its time and disk limits; past that the Ray cluster is the right place.

Size first, then route: the plan is made from the objects' sizes and a sampled compression ratio (the first
``SAMPLE_BYTES`` of each object, one ranged GET: ``sample_ratio``) before anything reads a whole input. It
also decides who validates (``validation``): one Validate Lambda streams at ``VALIDATE_GZIP_MB_S`` of gzip
(``VALIDATE_TEXT_MB_S`` of text), so an input it would not finish within ``SAFETY`` of the 15-minute limit is
validated per chunk by the Phase 1 runners instead ("distributed", helixflow.fastq.chunked); smaller inputs keep
the single Validate, the cheapest for them. The run parameter ``validation`` overrides (tests force the
distributed path on small files with it).

The model below is explicit so its numbers can be argued with (and replaced by measurements):
- decompressed size = stored size times the sampled ratio (``GZIP_RATIO`` when no sample was taken: FASTQ
  compresses about 3.5x at the levels sequencers use);
- preparing chunks reads the input once at ``PREPARE_MB_S`` (S3 download + decompress + BGZF re-block);
- each chunk of ``CHUNK_MB`` decompressed megabytes runs at ``LAMBDA_MB_S`` on one worker (the Phase 1
  engine on 2 vCPUs), ``MAX_CONCURRENCY`` at a time;
- the cluster needs ``CLUSTER_STARTUP_S`` to scale workers up, then runs at ``CLUSTER_MB_S``;
- Lambda is chosen when preparing fits in ``SAFETY`` of the 15-minute limit, preparing and merging fit in
  ``SAFETY`` of the scratch disk, and it is
  not slower than the cluster. Costs are reported (GB-seconds at ``LAMBDA_USD_PER_GB_S`` vs node-hours at
  ``CLUSTER_USD_PER_HOUR``) so the trade is visible in pipeline_info/params.json.
The plan is data: it names a placement and the Choice state after SplitIntoChunks routes on it. A placement
this deployment has not configured (no Ray head) fails here with ``ClusterNotConfigured``, before any chunk is
prepared; an input that must run on Lambda (``"phase1": "lambda"``) but does not fit fails with
``InputTooLarge``.
"""

from __future__ import annotations

import math
from typing import Any

from isal import isal_zlib

from helixflow.errors import ClusterNotConfigured, InputTooLarge
from helixflow.pipeline import jobs
from helixflow.pipeline.state import Phase1Plan, Phase1Summary, Phase2Plan, ReferenceSummary, SampleInput

MB = 1024 * 1024
GZIP_RATIO = 3.5
PREPARE_MB_S = 150.0
LAMBDA_MB_S = 40.0
CHUNK_MB = 256
MAX_CONCURRENCY = 40
LAMBDA_TIMEOUT_S = 900
SAFETY = 0.6
SCRATCH_MB = 10_240  # Lambda ephemeral storage ceiling
# Merge holds the embeddings Parquet: a 512-byte float16 vector per ~320-byte FASTQ record of 150 bp.
EMBEDDINGS_PER_DECOMPRESSED = 1.6
LAMBDA_MEMORY_GB = 3.0
LAMBDA_USD_PER_GB_S = 0.0000166667
CLUSTER_STARTUP_S = 240.0
CLUSTER_MB_S = 160.0  # one 8-vCPU worker
CLUSTER_USD_PER_HOUR = 0.68
SAMPLE_BYTES = 1 << 20
# One Validate Lambda's streaming rate (benchmarks/validate_throughput.py): ~250 MB/s of text, ~75 MB/s of gzip.
VALIDATE_TEXT_MB_S = 250.0
VALIDATE_GZIP_MB_S = 75.0


def sample_ratio(head: bytes) -> float:
    """Decompressed bytes per stored byte of the first bytes of an object; 1.0 for plain text."""
    if not head.startswith(b"\x1f\x8b"):
        return 1.0
    consumed = produced = 0
    data = head
    while data.startswith(b"\x1f\x8b"):  # member by member: BGZF is thousands of them
        inflater = isal_zlib.decompressobj(31)
        try:
            produced += len(inflater.decompress(data))
        except isal_zlib.error:
            break  # a corrupt sample: the validator will say so; plan with what inflated
        rest = inflater.unused_data if inflater.eof else b""
        consumed += len(data) - len(rest)
        data = rest
    return produced / consumed if consumed else GZIP_RATIO


def sample_ratios(s3: Any, bucket: str, inputs: list[SampleInput]) -> list[float]:
    """``sample_ratio`` of each input from one ranged GET of its first ``SAMPLE_BYTES``."""
    ratios = []
    for item in inputs:
        head = s3.get_object(Bucket=bucket, Key=item.key, Range=f"bytes=0-{SAMPLE_BYTES - 1}",
                             IfMatch=item.etag)["Body"].read() if item.size else b""
        ratios.append(sample_ratio(head))
    return ratios


def _validate_seconds(inputs: list[SampleInput], ratios: list[float]) -> float:
    return sum(item.size / MB / (VALIDATE_GZIP_MB_S if ratio != 1.0 else VALIDATE_TEXT_MB_S)
               for item, ratio in zip(inputs, ratios))


def plan_phase1(inputs: list[SampleInput], requested: str = "auto", chunk_mb: int = CHUNK_MB, *,
                ratios: list[float] | None = None, validation: str = "auto") -> Phase1Plan:
    """Where Phase 1 runs and who validates, with the predictions; raises when that placement cannot run here.
    ``ratios``: ``sample_ratios`` of the inputs (without them, by file name: ``GZIP_RATIO`` for .gz)."""
    if ratios is None:
        ratios = [GZIP_RATIO if item.key.endswith(".gz") else 1.0 for item in inputs]
    input_bytes = sum(item.size for item in inputs)
    decompressed = sum(item.size * ratio for item, ratio in zip(inputs, ratios)) / MB
    validate_s = _validate_seconds(inputs, ratios)
    if validation == "auto":
        validation = "distributed" if validate_s > SAFETY * LAMBDA_TIMEOUT_S else "single"
    chunks = max(1, math.ceil(decompressed / chunk_mb))
    prepare_s = decompressed / PREPARE_MB_S
    waves = math.ceil(chunks / MAX_CONCURRENCY)
    lambda_s = prepare_s + waves * min(decompressed, chunk_mb) / LAMBDA_MB_S
    lambda_usd = (prepare_s + chunks * min(decompressed, chunk_mb) / LAMBDA_MB_S) * LAMBDA_MEMORY_GB \
        * LAMBDA_USD_PER_GB_S
    cluster_s = CLUSTER_STARTUP_S + decompressed / CLUSTER_MB_S
    cluster_usd = cluster_s / 3600 * CLUSTER_USD_PER_HOUR
    fits_time = prepare_s <= SAFETY * LAMBDA_TIMEOUT_S
    # Chunk preparation holds the input and its BGZF copy; the merge holds the embeddings.
    fits_disk = max(2 * input_bytes / MB, EMBEDDINGS_PER_DECOMPRESSED * decompressed) <= SAFETY * SCRATCH_MB
    fits = fits_time and fits_disk

    def plan(placement: str, reason: str) -> Phase1Plan:
        return Phase1Plan(placement=placement, reason=reason, input_bytes=input_bytes,
                          decompressed_mb=round(decompressed, 1), compression_ratios=[round(r, 3) for r in ratios],
                          validation=validation, validate_seconds=round(validate_s, 1),
                          chunk_bytes=chunk_mb * MB, expected_chunks=chunks,
                          lambda_seconds=round(lambda_s, 1), lambda_usd=round(lambda_usd, 4),
                          cluster_seconds=round(cluster_s, 1), cluster_usd=round(cluster_usd, 4))

    if requested == "ray" or (requested == "auto" and (not fits or cluster_s < lambda_s)):
        why = ("requested" if requested == "ray" else
               "chunk preparation would not fit one Lambda" if not fits else "the cluster is faster")
        placed = plan("ray", why)
        if not jobs.is_configured("ray"):
            raise ClusterNotConfigured(
                f"Phase 1 is placed on the Ray cluster ({why}: ~{decompressed:,.0f} MB decompressed, Lambda "
                f"estimate {lambda_s:,.0f} s vs cluster {cluster_s:,.0f} s), and this deployment has no Ray "
                "cluster (stack parameter RayJobsUrl)", code="RAY_NOT_CONFIGURED", details=placed.model_dump())
        return placed
    if not fits:
        raise InputTooLarge(f"~{decompressed:,.0f} MB decompressed is more than the Lambda path prepares within "
                            f"{SAFETY:.0%} of {LAMBDA_TIMEOUT_S} s and {SCRATCH_MB} MB of scratch",
                            code="TOO_LARGE_FOR_LAMBDA", details=plan("lambda", "requested").model_dump())
    return plan("lambda", "requested" if requested == "lambda" else "bursty: chunks finish before a cluster scales up")


# ---------------------------------------------------------------------------------------------- Phase 2
# Phase 2 is stateful (the neighbour graph spans every read) and long: it runs as one MPI job on Slurm (PCS),
# never on Lambda. Its size decides the ranks and the time limit Slurm is asked for:
# - ``READS_PER_RANK`` reads per rank (each rank holds every read for clustering, but searches its share);
# - ``CLUSTER_READS_S`` reads searched + confirmed per second per rank (CPU; a GPU rank ``GPU_SPEEDUP`` faster);
# - time limit = ``TIME_SAFETY`` x (``JOB_STARTUP_S`` + the estimate), between the bounds below, in minutes.
READS_PER_RANK = 2_000_000
MAX_RANKS = 16
CLUSTER_READS_S = 2_000.0
GPU_SPEEDUP = 8.0
JOB_STARTUP_S = 120.0
TIME_SAFETY = 3.0
MIN_TIME_LIMIT_MIN = 10
MAX_TIME_LIMIT_MIN = 48 * 60


def plan_phase2(phase1: Phase1Summary, sample: str, requested: str = "auto",
                reference: ReferenceSummary | None = None) -> Phase2Plan:
    """Where Phase 2 runs and with how much; raises ClusterNotConfigured for an explicit Slurm placement this
    deployment lacks (``auto`` then turns Phase 2 off and says why)."""
    reads = phase1.reads_after
    embeddings = f"embeddings/{sample}.parquet"
    if embeddings not in phase1.outputs:
        embeddings = next((p for p in phase1.outputs if p.startswith("embeddings/") and p.endswith(".parquet")),
                          embeddings)
    ranks = max(1, min(MAX_RANKS, math.ceil(reads / READS_PER_RANK)))

    def plan(placement: str, reason: str) -> Phase2Plan:
        speed = CLUSTER_READS_S * (GPU_SPEEDUP if placement == "slurm-gpu" else 1.0)
        estimate_s = JOB_STARTUP_S + reads / ranks / speed
        minutes = max(MIN_TIME_LIMIT_MIN, min(MAX_TIME_LIMIT_MIN, math.ceil(TIME_SAFETY * estimate_s / 60)))
        return Phase2Plan(placement=placement, reason=reason, reads=reads, ranks=ranks, time_limit_minutes=minutes,
                          embeddings_key=phase1.staged_prefix + embeddings, reference=reference)

    if requested == "off":
        return plan("off", "requested")
    if reads == 0:
        return plan("off", "no reads left after Phase 1")
    if requested in ("slurm-cpu", "slurm-gpu"):
        placed = plan(requested, "requested")
        if not jobs.is_configured(requested):
            raise ClusterNotConfigured(
                f"Phase 2 is placed on {requested} (requested), and this deployment has no Slurm cluster (stack "
                "parameter SlurmRestUrl or PcsClusterId)", code="SLURM_NOT_CONFIGURED", details=placed.model_dump())
        return placed
    if not jobs.deployment_has("slurm-cpu"):
        return plan("off", "no Slurm cluster is configured (stack parameter SlurmRestUrl or PcsClusterId)")
    return plan("slurm-cpu", "stateful MPI job: the neighbour graph spans every read")

"""Plan: where Phase 1 runs, by the Mashup hybrid model.

Mashup (Roy et al., 2022) places a workflow's bursty, stateless, embarrassingly parallel work on serverless
functions and its long-running, stateful work on instances. Phase 1 over record-aligned chunks is the former
up to the point where one Lambda can still prepare the chunks (download, re-block, find record boundaries)
and merge them within its time and disk limits; past that the Ray cluster is the right place.

Both placements are predicted from the measured profile (profiles.py: ``seconds = overhead + MB / rate``
per stage, fitted from stored run traces, the benchmarks' figures until then) and priced from the versioned
price table (cost.py's prices.json):
- Lambda: SplitIntoChunks reads the input once in one function; ``chunks`` of ``chunk_mb`` decompressed MB run
  on 3008 MB functions (1.7 vCPU), ``max_concurrency`` at a time (the Distributed Map's MaxConcurrency), each
  with a cold start; MergeChunks in one function. Cost: GB-seconds of every function + requests + state
  transitions. Feasible when each single function finishes within ``SAFETY`` of the 15-minute limit and
  preparing and merging fit in ``SAFETY`` of the 10 GB scratch disk.
- Ray: start-up (cold: EC2 launch and node setup; warm: a running worker with room) + the same stages on
  16-vCPU workers, as many as the chunks fill (up to max_workers). Cost: node-seconds x the node-hour price,
  plus, when the run starts workers, the idle tail before the autoscaler removes them.
The rule: an explicitly requested placement is honoured; otherwise, among the placements that can run the
input, the cheapest predicted to finish within the deadline (``DEADLINE_S`` unless the caller gives one), else
the fastest. Bursty, short, stateless inputs land on Lambda by this rule (no start-up, no idle tail); long ones
past one function's limits on the cluster. The reason and both predictions go into pipeline_info/params.json.
Size first, then route: the plan is made from the objects' sizes and a sampled compression ratio (the first
``SAMPLE_BYTES`` of each object, one ranged GET: ``sample_ratios``) before anything reads a whole input. It
also decides who validates (``validation``): one Validate Lambda streams at ``VALIDATE_GZIP_MB_S`` of gzip
(``VALIDATE_TEXT_MB_S`` of text), so an input it would not finish within ``SAFETY`` of the 15-minute limit is
validated per chunk by the Phase 1 runners instead ("distributed", helixflow.fastq.chunked), and so is every input
placed on Ray: the cluster's chunk runners validate as they transform, and the run skips the single Validate and
the Split that re-blocks gzip into BGZF before the job (2 M reads through the local stack: 77.5 s -> 66.4 s,
benchmarks/ray_vs_preprocess.py). Smaller inputs on Lambda keep the single Validate, the cheapest for them. The
run parameter ``validation`` overrides (tests force the distributed path on small files with it).
The plan is data: it names a placement and the Choice state after SplitIntoChunks routes on it. A placement
this deployment has not configured (no Ray head) fails here with ``ClusterNotConfigured``, before any chunk is
prepared; an input that must run on Lambda (``"phase1": "lambda"``) but does not fit fails with
``InputTooLarge``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from isal import isal_zlib

from helixflow.errors import ClusterNotConfigured, InputTooLarge
from helixflow.pipeline import jobs
from helixflow.pipeline.cost import lambda_usd, load_prices, node_hour_usd, nodes_for
from helixflow.pipeline.profiles import load_profile, stage_seconds
from helixflow.pipeline.storage import READ_STREAMS
from helixflow.pipeline.state import (Phase1Plan, Phase1Summary, Phase2Plan, PlacementPrediction, ReferenceSummary,
                                      SampleInput)

MB = 1024 * 1024
CHUNK_MB = 256
SAFETY = 0.6
# Merge holds the embeddings Parquet. A generous bound, kept from the float16 vectors of embedding version 1
# (512 bytes per ~320-byte FASTQ record of 150 bp): with 256 int8 codes per read (zstd) and the trimmed reads left
# to the FASTQ, the file measures about 0.22x the decompressed input (benchmarks/phase1_vs_fastp.py prints it).
EMBEDDINGS_PER_DECOMPRESSED = 1.6
DEADLINE_S = 3600.0
OBJECTIVE = "cheapest placement predicted to finish within the deadline, else the fastest"


@dataclass(frozen=True)
class ClusterState:
    """What the planner knows of the Ray cluster: idle warm workers skip the start-up and add no idle tail.
    The Plan Lambda has no metrics yet and plans for a cold cluster; the simulator passes its live state."""

    idle_workers: int = 0


SAMPLE_BYTES = 1 << 20
# One Validate Lambda's streaming rate (benchmarks/validate_throughput.py): ~250 MB/s of text, ~75 MB/s of gzip.
VALIDATE_TEXT_MB_S = 250.0
VALIDATE_GZIP_MB_S = 75.0
LAMBDA_TIMEOUT_S = 900.0


def file_name_ratios(inputs: list[SampleInput], profile: Mapping[str, Any]) -> list[float]:
    """Without a sample: the profile's gzip ratio for a .gz name, 1.0 otherwise."""
    return [float(profile["gzip_ratio"]["value"]) if item.key.endswith(".gz") else 1.0 for item in inputs]


def decompressed_mb(inputs: list[SampleInput], ratios: list[float]) -> float:
    return sum(item.size * ratio for item, ratio in zip(inputs, ratios)) / MB


def sample_ratio(head: bytes, fallback: float) -> float:
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
    return produced / consumed if consumed else fallback


def sample_ratios(s3: Any, bucket: str, inputs: list[SampleInput],
                  profile: Mapping[str, Any] | None = None) -> list[float]:
    """``sample_ratio`` of each input from one ranged GET of its first ``SAMPLE_BYTES``."""
    fallback = float((profile or load_profile())["gzip_ratio"]["value"])
    ratios = []
    for item in inputs:
        head = s3.get_object(Bucket=bucket, Key=item.key, Range=f"bytes=0-{SAMPLE_BYTES - 1}",
                             IfMatch=item.etag)["Body"].read() if item.size else b""
        ratios.append(sample_ratio(head, fallback))
    return ratios


def validate_seconds(inputs: list[SampleInput], ratios: list[float]) -> float:
    """One Validate Lambda's time on the inputs (gzip is inflated as it streams)."""
    return sum(item.size / MB / (VALIDATE_GZIP_MB_S if ratio != 1.0 else VALIDATE_TEXT_MB_S)
               for item, ratio in zip(inputs, ratios))


@dataclass(frozen=True)
class Phase1Work:
    """Phase 1 of one sample on one placement, as steps: ``validate_s`` then ``prepare_s`` (on
    ``prepare_units`` functions or workers at once), ``chunks`` tasks of ``chunk_s`` each, then ``merge_s``.
    A Lambda step runs on one function; a cluster step on one vCPU, except the distributed index, which takes
    a whole worker per mate. ``limit`` says which Lambda limit the work breaks (empty when none)."""

    placement: str
    validate_s: float
    prepare_s: float
    prepare_units: int
    chunks: int
    chunk_s: float
    merge_s: float
    limit: str

    def serial_s(self) -> float:
        return self.validate_s + self.prepare_s + self.merge_s


def phase1_work(data_mb: float, input_mb: float, placement: str, *, mates: int = 1, chunk_mb: int = CHUNK_MB,
                profile: Mapping[str, Any], distributed: bool = False, validate: bool = False) -> Phase1Work:
    """The steps of Phase 1 (and of Validate when ``validate``) for ``data_mb`` decompressed MB on ``placement``
    (``lambda`` or ``ray``). ``distributed`` is the distributed-validation path (one pass per mate in parallel,
    validation per chunk, merge by part copy; profile["distributed"] says what is measured and what assumed);
    otherwise the single path (one Validate function, one SplitIntoChunks re-blocking to BGZF, one MergeChunks)."""
    lam, dist = profile["platforms"]["lambda"], profile["distributed"]
    on_lambda = placement == "lambda"
    chunks = max(1, math.ceil(data_mb / chunk_mb))
    chunk_data = min(data_mb, chunk_mb)
    vcpus = lam["chunk_memory_mb"] / lam["mb_per_vcpu"] if on_lambda else 1.0
    # Each chunk task moves its gzip input in, its trimmed reads and embeddings out, at the per-task S3 rate.
    stored_per_decompressed = input_mb / data_mb if data_mb else 1.0
    moved_mb = chunk_data * (2 * stored_per_decompressed + EMBEDDINGS_PER_DECOMPRESSED)
    chunk_s = (stage_seconds(profile, "chunk", chunk_data, vcpus=vcpus) + moved_mb / lam["s3_mb_s_per_task"]
               + (lam["cold_start_s"] if on_lambda else 0.0))
    if distributed:
        # ScanMates: one pass per mate (isal inflate, hash, cuts, with zran's index built beside it in a second
        # process: the rate of one zlib core), all mates at once, each in its own SplitIntoChunks Lambda whatever
        # the placement (the join after them is small).
        # Each pass reads its mate from S3 with READ_STREAMS ranged GETs ahead of it (storage.ReadAheadReader).
        validate_s, units = 0.0, max(1, mates)
        prepare_s = max(data_mb / units / dist["scan_mb_s_per_mate"],
                        input_mb / units / (READ_STREAMS * lam["s3_mb_s_per_task"]))
        chunk_s += stage_seconds(profile, "validate", chunk_data)
        # MergeChunks: S3 joins the parts (UploadPartCopy), and the outputs are read once to hash them, all at
        # once: the largest, one mate's trimmed reads (about its input gzip: 0.95x measured), bounds the pass.
        merge_s = (dist["merge_overhead_s"] + chunks * dist["merge_s_per_chunk"]
                   + input_mb / max(1, mates) / min(dist["sha256_mb_s"], READ_STREAMS * lam["s3_mb_s_per_task"]))
        disk = 2 * chunk_data
    else:
        units = 1
        validate_s = stage_seconds(profile, "validate", data_mb) if validate else 0.0
        prepare_s, merge_s = stage_seconds(profile, "split", data_mb), stage_seconds(profile, "merge", data_mb)
        disk = max(2 * input_mb, EMBEDDINGS_PER_DECOMPRESSED * data_mb)
    limit_s = SAFETY * lam["timeout_s"]
    too_long = [name for name, step in (("Validate", validate_s),
                                        ("ScanMate" if distributed else "SplitIntoChunks", prepare_s),
                                        ("ProcessChunk", chunk_s), ("MergeChunks", merge_s)) if step > limit_s]
    limit = ", ".join([f"{name} over {limit_s:.0f} s" for name in too_long]
                      + ([f"{disk:,.0f} MB of scratch over {SAFETY * lam['scratch_mb']:,.0f} MB"]
                         if disk > SAFETY * lam["scratch_mb"] else []))
    return Phase1Work(placement=placement, validate_s=validate_s, prepare_s=prepare_s, prepare_units=units,
                      chunks=chunks, chunk_s=chunk_s, merge_s=merge_s, limit=limit if on_lambda else "")


def lambda_work_usd(work: Phase1Work, profile: Mapping[str, Any], prices: Mapping[str, Any]) -> float:
    """GB-seconds, requests and state transitions of ``work`` on Lambda (Validate on its 2048 MB function, the
    prepare step, each mate's pass or the single Split, on SplitIntoChunks' function: the profile's
    ``index_memory_mb``; everything else on 3008 MB)."""
    lam, dist = profile["platforms"]["lambda"], profile["distributed"]
    prepare_gb = dist["index_memory_mb"] / 1024
    gb_s = (work.validate_s * lam["validate_memory_mb"] / 1024 + work.prepare_s * work.prepare_units * prepare_gb
            + (work.chunks * work.chunk_s + work.merge_s) * lam["chunk_memory_mb"] / 1024)
    transitions = work.chunks + 12  # one per map item, and the run's own states on the Lambda path
    return lambda_usd(gb_s, work.chunks + work.prepare_units + 2, prices) \
        + transitions * prices["step_functions"]["usd_per_state_transition"]


def cluster_seconds(work: Phase1Work, workers: int, per_worker: int) -> float:
    waves = math.ceil(work.chunks / (workers * per_worker))
    return work.serial_s() + waves * work.chunk_s


def predict_phase1(inputs: list[SampleInput], *, chunk_mb: int = CHUNK_MB, profile: Mapping[str, Any] | None = None,
                   prices: Mapping[str, Any] | None = None, cluster: ClusterState = ClusterState(),
                   distributed: bool = False, ratios: list[float] | None = None) -> dict[str, PlacementPrediction]:
    """Time and cost of Phase 1 on each placement, with whether Lambda's limits allow it."""
    profile, prices = profile or load_profile(), prices or load_prices()
    lam, ray = profile["platforms"]["lambda"], profile["platforms"]["ray"]
    data = decompressed_mb(inputs, ratios or file_name_ratios(inputs, profile))
    input_mb = sum(item.size for item in inputs) / MB
    mates = len(inputs)
    on_lambda = phase1_work(data, input_mb, "lambda", mates=mates, chunk_mb=chunk_mb, profile=profile,
                            distributed=distributed)
    waves = math.ceil(on_lambda.chunks / lam["max_concurrency"])
    lambda_s = on_lambda.serial_s() + waves * on_lambda.chunk_s

    on_ray = phase1_work(data, input_mb, "ray", mates=mates, chunk_mb=chunk_mb, profile=profile,
                         distributed=distributed)
    per_worker = ray["vcpus_per_worker"]
    workers = max(1, min(ray["max_workers"], math.ceil(on_ray.chunks / per_worker)))
    warm = cluster.idle_workers >= workers
    startup = ray["startup_warm_s"] if warm else ray["startup_cold_s"]
    cluster_s = startup + cluster_seconds(on_ray, workers, per_worker)
    tail_s = 0.0 if warm else ray["idle_timeout_s"]  # workers this run starts idle this long before they go
    cluster_cost = workers * (cluster_s + tail_s) / 3600 * node_hour_usd("ray", prices)
    return {
        "lambda": PlacementPrediction(placement="lambda", seconds=round(lambda_s, 1),
                                      usd=round(lambda_work_usd(on_lambda, profile, prices), 5),
                                      feasible=not on_lambda.limit, limit=on_lambda.limit,
                                      workers=min(on_lambda.chunks, lam["max_concurrency"]), startup_seconds=0.0),
        "ray": PlacementPrediction(placement="ray", seconds=round(cluster_s, 1), usd=round(cluster_cost, 5),
                                   feasible=True, limit="", workers=workers, startup_seconds=startup),
    }


def choose(predictions: Mapping[str, PlacementPrediction], deadline_s: float = DEADLINE_S) -> tuple[str, str]:
    """(placement, reason) by the stated objective."""
    feasible = [p for p in predictions.values() if p.feasible]
    in_time = [p for p in feasible if p.seconds <= deadline_s]
    if in_time:
        best = min(in_time, key=lambda p: (p.usd, p.seconds))
        rival = next((p for p in feasible if p is not best), None)
        if best.placement == "lambda":
            why = "bursty, stateless chunks: cheapest within the deadline (no cluster start-up or idle tail)"
        elif not predictions["lambda"].feasible:
            why = f"chunk preparation would not fit one Lambda ({predictions['lambda'].limit})"
        else:
            why = "long-running: the cluster is cheaper within the deadline"
        if rival is not None:
            why += f"; {rival.placement}: {rival.seconds:,.0f} s, ${rival.usd:.4f}"
        return best.placement, why
    best = min(feasible, key=lambda p: p.seconds)
    return best.placement, f"no placement meets the {deadline_s:,.0f} s deadline: the fastest"


def plan_phase1(inputs: list[SampleInput], requested: str = "auto", chunk_mb: int = CHUNK_MB, *,
                deadline_s: float = DEADLINE_S, profile: Mapping[str, Any] | None = None,
                cluster: ClusterState = ClusterState(), ratios: list[float] | None = None,
                validation: str = "auto") -> Phase1Plan:
    """Where Phase 1 runs and who validates, with both predictions; raises when that placement cannot run here.
    ``ratios``: ``sample_ratios`` of the inputs (without them, by file name)."""
    profile = profile or load_profile()
    ratios = ratios or file_name_ratios(inputs, profile)
    validate_s = validate_seconds(inputs, ratios)
    # Each placement predicted on the path it would take: Ray's always distributed unless single is forced.
    too_long_for_one = validate_s > SAFETY * LAMBDA_TIMEOUT_S
    lambda_distributed = validation == "distributed" or (validation == "auto" and too_long_for_one)
    lam = predict_phase1(inputs, chunk_mb=chunk_mb, profile=profile, cluster=cluster, ratios=ratios,
                         distributed=lambda_distributed)["lambda"]
    ray = predict_phase1(inputs, chunk_mb=chunk_mb, profile=profile, cluster=cluster, ratios=ratios,
                         distributed=validation != "single")["ray"]
    predictions = {"lambda": lam, "ray": ray}
    data = decompressed_mb(inputs, ratios)

    def plan(placement: str, reason: str) -> Phase1Plan:
        return Phase1Plan(placement=placement, reason=reason, input_bytes=sum(item.size for item in inputs),
                          decompressed_mb=round(data, 1), compression_ratios=[round(r, 3) for r in ratios],
                          validation=validation, validate_seconds=round(validate_s, 1), chunk_bytes=chunk_mb * MB,
                          expected_chunks=max(1, math.ceil(data / chunk_mb)),
                          lambda_seconds=lam.seconds, lambda_usd=lam.usd, cluster_seconds=ray.seconds,
                          cluster_usd=ray.usd, objective=OBJECTIVE, deadline_seconds=deadline_s,
                          profile_version=str(profile["version"]), predictions=[lam, ray])

    placement, why = ("ray", "requested") if requested == "ray" else ("lambda", "requested") \
        if requested == "lambda" else choose(predictions, deadline_s)
    if validation == "auto":
        validation = "distributed" if placement == "ray" or too_long_for_one else "single"
    if placement == "ray":
        placed = plan("ray", why)
        if not jobs.is_configured("ray"):
            raise ClusterNotConfigured(
                f"Phase 1 is placed on the Ray cluster ({why}: ~{data:,.0f} MB decompressed, Lambda "
                f"estimate {lam.seconds:,.0f} s vs cluster {ray.seconds:,.0f} s), and this deployment has no Ray "
                "cluster (stack parameter RayJobsUrl)", code="RAY_NOT_CONFIGURED", details=placed.model_dump())
        return placed
    if not lam.feasible:
        raise InputTooLarge(f"~{data:,.0f} MB decompressed is more than the Lambda path runs: {lam.limit}",
                            code="TOO_LARGE_FOR_LAMBDA", details=plan("lambda", "requested").model_dump())
    return plan("lambda", why)


# ---------------------------------------------------------------------------------------------- Phase 2
# Phase 2 is stateful (the neighbour graph spans every read) and long: it runs as one MPI job on Slurm (PCS),
# never on Lambda. Its size decides the ranks and the time limit Slurm is asked for:
# - ``READS_PER_RANK`` reads per rank (each rank holds every read for clustering, but searches its share);
# - the profile's ``phase2`` stage: reads searched + confirmed per second per CPU rank and the job's start-up
#   (a GPU rank the slurm-gpu platform's ``gpu_speedup`` faster);
# - time limit = ``TIME_SAFETY`` x the estimate, between the bounds below, in minutes.
# Both partitions are predicted (queue wait from a cold node group: the Plan Lambda has no queue metrics yet) and
# recorded; ``auto`` stays on the CPU partition, since a deployment does not declare that it has a GPU one.
READS_PER_RANK = 2_000_000
MAX_RANKS = 16
TIME_SAFETY = 3.0
MIN_TIME_LIMIT_MIN = 10
MAX_TIME_LIMIT_MIN = 48 * 60


def predict_phase2(reads: int, ranks: int, *, cpus_per_rank: int = 1, profile: Mapping[str, Any] | None = None,
                   prices: Mapping[str, Any] | None = None, queue_wait_s: Mapping[str, float] | None = None
                   ) -> dict[str, PlacementPrediction]:
    """Run time (job start-up + search), time to finish (+ queue wait) and cost (nodes x node-hours, the wait
    included: a PCS node is billed from launch) of Phase 2 on each Slurm partition."""
    profile, prices = profile or load_profile(), prices or load_prices()
    found = {}
    for placement in ("slurm-cpu", "slurm-gpu"):
        platform = profile["platforms"][placement]
        wait = (queue_wait_s or {}).get(placement, platform["queue_wait_cold_s"])
        speed = platform.get("gpu_speedup", 1.0) if placement == "slurm-gpu" else cpus_per_rank
        run_s = stage_seconds(profile, "phase2", reads / ranks, vcpus=speed)
        nodes = nodes_for(placement, ranks, prices, cpus_per_rank)
        found[placement] = PlacementPrediction(
            placement=placement, seconds=round(wait + run_s, 1), startup_seconds=round(wait, 1), workers=nodes,
            usd=round(nodes * (wait + run_s) / 3600 * node_hour_usd(placement, prices), 5), feasible=True)
    return found


def plan_phase2(phase1: Phase1Summary, sample: str, requested: str = "auto",
                reference: ReferenceSummary | None = None, cpus_per_rank: int = 1) -> Phase2Plan:
    """Where Phase 2 runs and with how much; raises ClusterNotConfigured for an explicit Slurm placement this
    deployment lacks (``auto`` then turns Phase 2 off and says why). ``cpus_per_rank``: the CPUs each rank asks
    Slurm for, its Numba threads (the deployment's node size: a rank per node uses the whole node)."""
    reads = phase1.reads_after
    embeddings = f"embeddings/{sample}.parquet"
    if embeddings not in phase1.outputs:
        embeddings = next((p for p in phase1.outputs if p.startswith("embeddings/") and p.endswith(".parquet")),
                          embeddings)
    # The sequences and qualities the embeddings' rows stand for (R1 before R2: the names sort so).
    reads_keys = sorted(phase1.staged_prefix + p for p in phase1.outputs
                        if p.startswith("reads/") and p.endswith(".trimmed.fastq.gz"))
    ranks = max(1, min(MAX_RANKS, math.ceil(reads / READS_PER_RANK)))

    predictions = predict_phase2(reads, ranks, cpus_per_rank=cpus_per_rank)

    def plan(placement: str, reason: str) -> Phase2Plan:
        chosen = predictions.get(placement)
        estimate_s = chosen.seconds - chosen.startup_seconds if chosen else 0.0  # the job's run, not its wait
        minutes = max(MIN_TIME_LIMIT_MIN, min(MAX_TIME_LIMIT_MIN, math.ceil(TIME_SAFETY * estimate_s / 60)))
        return Phase2Plan(placement=placement, reason=reason, reads=reads, ranks=ranks, cpus_per_rank=cpus_per_rank,
                          time_limit_minutes=minutes,
                          embeddings_key=phase1.staged_prefix + embeddings, reads_keys=reads_keys,
                          reference=reference,
                          predictions=list(predictions.values()))

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

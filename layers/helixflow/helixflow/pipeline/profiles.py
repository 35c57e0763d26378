"""Measured stage profiles: what each run's trace says about each stage's throughput, and the fitted models the
planner (plan.py) and the simulator read.

A run's published ``pipeline_info/params.json`` (input sizes, the validator's decompressed byte counts, reads,
placements) and ``pipeline_info/trace.tsv`` (wall time per state and per cluster job) give one ``Observation``
per stage. The store is a directory of JSON Lines files, one per run (``<run_id>.jsonl``), so adding runs never
rewrites old ones. ``fit`` turns observations into a per-stage model ``seconds = overhead_s + MB / rate_mb_s``
(least squares over observations of different sizes; the initial profile's overhead when there is one size),
starting from the initial profile (profile.json, the benchmarks' figures) for stages with no observation.

What is measured and what is not: wall times and byte counts are; CPU-seconds are only where a cluster reports
them (not yet: the Jobs API and slurmrestd rows carry none, so ``cpu_s`` is empty), and memory is the function's
configured size for Lambda states. A Distributed Map's per-item time is not in the parent history: an item's
wall time is taken as the map's wall time divided by its waves (``ceil(items / MaxConcurrency)``), an upper bound.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ConfigDict

PROFILE_PATH = Path(__file__).with_name("profile.json")
MB = 1024 * 1024
# The least work (decompressed MB; reads for Phase 2) an observation needs to count in a rate fit.
MIN_FIT_WORK = (64.0, 100_000)
# Trace row name -> (profile stage, how its work is measured).
_STAGE_OF_ROW = {"Validate": "validate", "SplitIntoChunks": "split", "ProcessChunks": "chunk",
                 "MergeChunks": "merge", "Phase1Job": "chunk", "Phase2Job": "phase2"}


class Observation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    stage: str
    placement: str
    input_bytes: int
    decompressed_mb: float
    reads: int
    wall_s: float
    vcpus: float
    cpu_s: float | None = None
    memory_mb: int | None = None
    items: int = 1


def load_profile(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The profile the planner uses: ``path``, else ``$HELIXFLOW_PROFILE``, else the shipped initial profile."""
    return json.loads(Path(path or os.environ.get("HELIXFLOW_PROFILE") or PROFILE_PATH).read_text())


def observations_from_run(params: Mapping[str, Any], rows: Iterable[Mapping[str, Any]], *,
                          functions: Mapping[str, Mapping[str, int]], profile: Mapping[str, Any]) -> list[Observation]:
    """One observation per completed stage row of a published run (params.json + trace.tsv rows)."""
    stages = params.get("stages", {})
    reports = stages.get("validation", {}).get("reports", [])
    input_bytes = sum(int(item["size"]) for item in params.get("inputs", []))
    measured = sum(int(r.get("decompressed_bytes", 0)) for r in reports)
    decompressed_mb = measured / MB if measured else stages.get("plan", {}).get("phase1", {}).get("decompressed_mb", 0.0)
    reads = int(stages.get("phase1", {}).get("reads_after") or stages.get("validation", {}).get("records") or 0)
    mb_per_vcpu = profile["platforms"]["lambda"]["mb_per_vcpu"]
    found = []
    for row in rows:
        stage = _STAGE_OF_ROW.get(str(row["name"]))
        if stage is None or row.get("status") != "COMPLETED" or row.get("duration_ms") in ("", None):
            continue
        wall = float(row["duration_ms"]) / 1000
        setting = functions.get(str(row["name"]), {})
        if str(row["type"]).endswith(" job"):
            placement = "ray" if str(row["type"]).startswith("ray") else stages.get("plan2", {}).get(
                "phase2", {}).get("placement", "slurm-cpu")
            platform = profile["platforms"][placement]
            vcpus = float(platform.get("vcpus_per_worker") or platform.get("vcpus_per_node") or 1)
            found.append(Observation(run_id=str(params.get("run_id", "")), stage=stage, placement=placement,
                                     input_bytes=input_bytes, decompressed_mb=decompressed_mb, reads=reads,
                                     wall_s=wall, vcpus=vcpus))
            continue
        items = int(row.get("items") or 1)
        if row["type"] == "Map":  # per item: the map's wall time over its waves (upper bound, see above)
            waves = math.ceil(items / max(1, setting.get("max_concurrency", items)))
            wall = wall / waves
        memory = setting.get("memory_mb")
        found.append(Observation(run_id=str(params.get("run_id", "")), stage=stage, placement="lambda",
                                 input_bytes=input_bytes // items, decompressed_mb=decompressed_mb / items,
                                 reads=reads // items, wall_s=wall, memory_mb=memory, items=items,
                                 vcpus=(memory / mb_per_vcpu) if memory else 1.0))
    return found


def _work(observation: Observation, stage: str) -> float:
    """The work a stage's rate is per: reads for Phase 2, decompressed MB otherwise."""
    return float(observation.reads) if stage == "phase2" else observation.decompressed_mb


def fit(observations: Iterable[Observation], initial: Mapping[str, Any]) -> dict[str, Any]:
    """A profile: ``initial`` with every observed stage's model refitted from its observations.

    The engine stages (chunk, phase2) are rates per vCPU, so an observation is scaled by its vCPUs first;
    validate, split and merge are single-reader rates. With two or more sizes the line's intercept is the
    overhead (kept at the initial value when the fit gives a negative one or a non-positive slope).
    Observations below ``MIN_FIT_WORK`` are kept in the store but not fitted (their time is overhead)."""
    profile = json.loads(json.dumps(initial))
    by_stage: dict[str, list[Observation]] = {}
    for observation in observations:
        by_stage.setdefault(observation.stage, []).append(observation)
    runs = set()
    for stage, observed in sorted(by_stage.items()):
        model = profile["stages"][stage]
        # A small run's wall time is its overhead (cold starts, polling): it says nothing about the rate.
        items = [o for o in observed if _work(o, stage) >= MIN_FIT_WORK[stage == "phase2"]]
        if not items:
            model["skipped_observations"] = len(observed)
            continue
        per_vcpu = stage in ("chunk", "phase2")
        xs = [_work(o, stage) / (o.vcpus if per_vcpu else 1.0) for o in items]
        ys = [o.wall_s for o in items]
        overhead, rate = float(model["overhead_s"]), None
        if len(set(round(x, 6) for x in xs)) >= 2:
            mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
            sxx = sum((x - mean_x) ** 2 for x in xs)
            slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
            intercept = mean_y - slope * mean_x
            if slope > 0 and intercept >= 0:
                overhead, rate = intercept, 1.0 / slope
        if rate is None:
            busy = sum(max(y - overhead, 1e-3) for y in ys)
            rate = sum(xs) / busy if sum(xs) > 0 else float(model["rate_mb_s"])
        model.update(rate_mb_s=round(rate, 3), overhead_s=round(overhead, 3), observations=len(items),
                     source=f"measured: fitted from {len(items)} observation(s) of {len({o.run_id for o in items})} "
                            f"run(s) in the profile store")
        runs |= {o.run_id for o in items}
    ratios = [o.decompressed_mb * MB / o.input_bytes for o in by_stage.get("validate", []) if o.input_bytes]
    if ratios:
        profile["gzip_ratio"] = {"value": round(sum(ratios) / len(ratios), 3),
                                 "source": f"measured: mean decompressed/stored of {len(ratios)} validated run(s)"}
    profile["version"] = f"fitted-{len(runs)}-runs" if runs else initial["version"]
    return profile


def stage_seconds(profile: Mapping[str, Any], stage: str, work: float, vcpus: float = 1.0) -> float:
    """Predicted wall seconds of ``work`` (MB, or reads for phase2) on ``vcpus`` by the fitted model."""
    model = profile["stages"][stage]
    return float(model["overhead_s"]) + work / (float(model["rate_mb_s"]) * vcpus)


def write_store(directory: Path, run_id: str, observations: Iterable[Observation]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run_id}.jsonl"
    path.write_text("".join(o.model_dump_json() + "\n" for o in observations))
    return path


def read_store(directory: Path) -> list[Observation]:
    return [Observation.model_validate_json(line) for path in sorted(directory.glob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]

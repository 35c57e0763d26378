"""Cost of a run, per stage and in total, from its trace rows and a versioned price table.

The prices live in ``prices.json`` next to this module (its ``version``, ``source`` and ``recorded`` date go into
every cost.json, so a figure can always be traced to the prices it used). The model, stated so it can be argued
with:
- a Lambda Task row costs its wall time x the function's memory (GB-seconds) plus one request per attempt, plus
  ephemeral storage above the free 512 MB where the function has more;
- a Distributed Map row has no per-item times in the parent history: its GB-seconds are bounded above by
  ``min(items, MaxConcurrency)`` functions busy for the map's whole wall time, and the row says ``"estimate":
  "upper bound"``; each item is one request and (a STANDARD child execution) ``transitions_per_item``
  state transitions;
- a cluster job row (Ray or Slurm) costs its run time (start -> complete; time queued is not billed to the run)
  x its node count x the node-hour price of the placement's instance type;
- Step Functions bills every state transition of the execution (``transitions``, from the history).
It is pure: the same rows and prices give the same figures, so cost.json can be recomputed from trace.tsv.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

PRICES_PATH = Path(__file__).with_name("prices.json")
COST_NAME = "pipeline_info/cost.json"
_ENTERED_SUFFIX = "StateEntered"
_DEFAULT_JOB_PLACEMENT = {"ray": "ray", "slurm": "slurm-cpu"}


@lru_cache(maxsize=4)
def load_prices(path: str | None = None) -> dict[str, Any]:
    return json.loads(Path(path or PRICES_PATH).read_text())


def count_transitions(history_events: Iterable[Mapping[str, Any]]) -> int:
    """State transitions Step Functions bills for an execution: one per state entered."""
    return sum(1 for event in history_events if str(event.get("type", "")).endswith(_ENTERED_SUFFIX))


def _seconds(row: Mapping[str, Any]) -> float:
    value = row.get("duration_ms")
    return float(value) / 1000 if value not in ("", None) else 0.0


def node_hour_usd(placement: str, prices: Mapping[str, Any]) -> float:
    instance = prices["placements"][placement]["instance_type"]
    return float(prices["instances"][instance]["usd_per_hour"])


def lambda_usd(gb_seconds: float, requests: int, prices: Mapping[str, Any], *, ephemeral_gb_seconds: float = 0.0
               ) -> float:
    table = prices["lambda"]
    return (gb_seconds * table["usd_per_gb_second"] + requests * table["usd_per_request"]
            + ephemeral_gb_seconds * table["ephemeral_usd_per_gb_second"])


def run_cost(rows: Iterable[Mapping[str, Any]], *, memory_mb: Mapping[str, int], prices: Mapping[str, Any],
             transitions: int, ephemeral_mb: Mapping[str, int] | None = None,
             map_concurrency: Mapping[str, int] | None = None, transitions_per_item: int = 1,
             job_nodes: Mapping[str, int] | None = None, job_placements: Mapping[str, str] | None = None
             ) -> dict[str, Any]:
    """cost.json for one run: ``{"stages": [...], "step_functions": {...}, "total_usd", "prices_version", ...}``.

    ``memory_mb``/``ephemeral_mb`` are each Lambda state's function settings by state name (template.yaml),
    ``map_concurrency`` a Map state's MaxConcurrency, ``job_nodes`` a cluster job row's node count by row name
    (1 when absent) and ``job_placements`` its placement (the job handle's; else ``ray`` for a Ray job and
    ``slurm-cpu`` for a Slurm job)."""
    ephemeral_mb, map_concurrency, job_nodes = ephemeral_mb or {}, map_concurrency or {}, job_nodes or {}
    job_placements = job_placements or {}
    free_mb = prices["lambda"]["ephemeral_free_mb"]
    stages: list[dict[str, Any]] = []
    child_transitions = 0
    for row in rows:
        name, kind, seconds = str(row["name"]), str(row["type"]), _seconds(row)
        if kind.endswith(" job"):
            placement = job_placements.get(name) or _DEFAULT_JOB_PLACEMENT[kind.split(" ")[0]]
            nodes = int(job_nodes.get(name, 1))
            instance = prices["placements"][placement]["instance_type"]
            node_seconds = seconds * nodes
            stages.append({"stage": name, "placement": placement, "seconds": round(seconds, 3),
                           "instance_type": instance, "nodes": nodes, "node_seconds": round(node_seconds, 3),
                           "usd": node_seconds / 3600 * node_hour_usd(placement, prices)})
            continue
        if name not in memory_mb:  # a state the settings do not know is shown, not guessed at
            stages.append({"stage": name, "placement": "lambda", "seconds": round(seconds, 3), "usd": 0.0,
                           "unpriced": "no memory size for this state's function"})
            continue
        memory, disk = memory_mb[name], ephemeral_mb.get(name, free_mb)
        entry: dict[str, Any] = {"stage": name, "placement": "lambda", "seconds": round(seconds, 3),
                                 "memory_mb": memory}
        if kind == "Map":
            items = int(row.get("items") or 0)
            functions = min(items, int(map_concurrency.get(name, items))) if items else 0
            function_seconds, requests = seconds * functions, items
            child_transitions += items * transitions_per_item
            entry.update(items=items, estimate="upper bound")
        else:
            function_seconds, requests = seconds, int(row.get("attempts") or 1)
        gb_seconds = function_seconds * memory / 1024
        ephemeral_gb_s = function_seconds * max(0, disk - free_mb) / 1024
        entry.update(gb_seconds=round(gb_seconds, 3), requests=requests,
                     usd=lambda_usd(gb_seconds, requests, prices, ephemeral_gb_seconds=ephemeral_gb_s))
        stages.append(entry)
    billed = transitions + child_transitions
    sfn = {"state_transitions": billed,
           "usd": billed * prices["step_functions"]["usd_per_state_transition"]}
    for entry in stages:
        entry["usd"] = round(entry["usd"], 6)
    total = sum(entry["usd"] for entry in stages) + sfn["usd"]
    sfn["usd"] = round(sfn["usd"], 6)
    return {"stages": stages, "step_functions": sfn, "total_usd": round(total, 6),
            "complete": not any("unpriced" in entry for entry in stages),
            "currency": prices["currency"], "prices_version": prices["version"], "prices_source": prices["source"],
            "not_included": prices["not_included"]}


def parse_function_settings(text: str) -> dict[str, dict[str, int]]:
    """The Publish function's ``STATE_FUNCTIONS``: state name -> {memory_mb, ephemeral_mb?, max_concurrency?}
    (template.yaml; tests/unit/pipeline/test_cost.py checks it against every function and the ASL)."""
    settings = json.loads(text or "{}")
    return {str(state): {str(k): int(v) for k, v in values.items()} for state, values in settings.items()}


def cost_from_trace(rows: Iterable[Mapping[str, Any]], *, functions: Mapping[str, Mapping[str, int]],
                    transitions: int, prices: Mapping[str, Any] | None = None,
                    job_nodes: Mapping[str, int] | None = None, job_placements: Mapping[str, str] | None = None
                    ) -> dict[str, Any]:
    """run_cost with the function settings in the Publish function's form."""
    return run_cost(rows, prices=prices or load_prices(), transitions=transitions, job_nodes=job_nodes,
                    job_placements=job_placements,
                    memory_mb={state: s["memory_mb"] for state, s in functions.items()},
                    ephemeral_mb={state: s["ephemeral_mb"] for state, s in functions.items() if "ephemeral_mb" in s},
                    map_concurrency={state: s["max_concurrency"] for state, s in functions.items()
                                     if "max_concurrency" in s})


def nodes_for(placement: str, ranks: int, prices: Mapping[str, Any], cpus_per_rank: int = 1) -> int:
    """Nodes a Slurm job of ``ranks`` ranks holds (a GPU rank holds one GPU)."""
    spec = prices["instances"][prices["placements"][placement]["instance_type"]]
    per_node = spec["gpus"] if placement.endswith("gpu") and spec["gpus"] else spec["vcpus"] // cpus_per_rank
    return max(1, math.ceil(ranks / max(1, per_node)))

"""A discrete-event simulation (SimPy) of Phase 1 placement under a day of sample arrivals.

What is simulated: each sample's Validate and Phase 1 (the stages whose placement the Mashup planner chooses;
Phase 2 runs on Slurm under every strategy, so it is left out of the comparison), with step durations from the
measured profile through the planner's own work model (``helixflow.pipeline.plan.phase1_work``), Lambda costs
through the planner's pricing, and node-seconds at the price table's node-hour price.

Strategies:
- ``all-lambda``: every step on Lambda (one function per serial step, chunks ``max_concurrency`` at a time
  per sample, ``account_concurrency`` functions in all); a sample past Lambda's limits is not run and is
  counted as infeasible;
- ``cluster-static``: a fixed cluster of ``max_workers`` warm nodes, billed for the whole trace window;
- ``cluster-autoscaled``: the same cluster from zero by the policy below;
- ``mashup``: per sample, the planner's rule (``plan.choose``) on its predictions, given how many warm workers
  are idle at the sample's arrival; Validate on Lambda where one function can read the input.

The scaling policy (a simple stated one; the scaling Lambdas of issue 11 may replace it): every
``scaler_period_s`` the desired node count is ``ceil((busy + waiting vCPU slots) / vCPUs per node)`` bounded by
[min, max]; missing nodes are launched at once and serve after ``startup_cold_s``; a node idle for
``idle_timeout_s`` is terminated (Ray's autoscaler semantics, cluster.yaml's 5 minutes). Nodes are billed from
launch to termination. Everything is deterministic for a seed: sizes come from a seeded log-normal
distribution, and SimPy orders simultaneous events by insertion.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import simpy

from helixflow.pipeline import plan as planning
from helixflow.pipeline.cost import load_prices, node_hour_usd
from helixflow.pipeline.profiles import load_profile
from helixflow.pipeline.state import SampleInput
from helixflow_local.exit_codes import ExitCode, ToolError

GB = 1024 ** 3
MB = 1024 ** 2
STRATEGIES = ("all-lambda", "cluster-static", "cluster-autoscaled", "mashup")
BASELINES = STRATEGIES[:3]
TRACES_DIR = Path(__file__).with_name("traces")
# Step Functions transitions of one run besides the Distributed Map's items: the Lambda path's states, and the
# cluster path's states with a typical poll loop.
LAMBDA_PATH_TRANSITIONS = 12
CLUSTER_PATH_TRANSITIONS = 20
PATH_LABELS = {False: "single Validate + Split", True: "distributed validation"}


class InvalidTrace(ToolError):
    """An arrivals trace or a simulation option that cannot be used (the line says where)."""

    code = "INVALID_TRACE"
    exit_code = ExitCode.REFUSED


@dataclass(frozen=True)
class Arrival:
    time_s: float
    samples: int
    size_gb: float | None = None


@dataclass(frozen=True)
class Trace:
    name: str
    arrivals: tuple[Arrival, ...]

    @property
    def window_s(self) -> float:
        return max((a.time_s for a in self.arrivals), default=0.0)

    @property
    def samples(self) -> int:
        return sum(a.samples for a in self.arrivals)


def shipped_traces() -> dict[str, Path]:
    return {path.stem: path for path in sorted(TRACES_DIR.glob("*.csv"))}


def read_trace(source: str) -> Trace:
    """A trace CSV: header ``time_s,samples`` (optional ``size_gb``); a shipped trace by its name. A row with
    0 samples marks the end of the observed window (quiet hours the static cluster is still paid for)."""
    path = shipped_traces().get(source) or Path(source)
    with open(path, newline="") as handle:  # OSError (missing, a directory) is the CLI's to name
        try:
            text = handle.read()
        except UnicodeDecodeError as exc:
            raise InvalidTrace(f"{path}: not UTF-8 text (byte {exc.start})") from None
    kept = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if not line.startswith("#")]
    reader = csv.DictReader(line for _, line in kept)
    columns = set(reader.fieldnames or [])
    if not {"time_s", "samples"} <= columns or not columns <= {"time_s", "samples", "size_gb"}:
        raise InvalidTrace(f"{path}: the header must be time_s,samples[,size_gb], not {','.join(reader.fieldnames or [])!r}")
    arrivals = []
    for index, row in enumerate(reader, start=1):
        where = f"{path}, line {kept[min(index, len(kept) - 1)][0]}"
        try:
            time_s, samples = float(row["time_s"]), int(row["samples"])
            size = float(row["size_gb"]) if row.get("size_gb") not in (None, "") else None
        except (TypeError, ValueError):
            raise InvalidTrace(f"{where}: time_s must be a number, samples an integer, size_gb a number "
                               f"(got {dict(row)})") from None
        if not (math.isfinite(time_s) and time_s >= 0) or samples < 0 or (
                size is not None and not (math.isfinite(size) and 0 < size <= 10_000)):
            raise InvalidTrace(f"{where}: time_s >= 0, samples >= 0 and 0 < size_gb <= 10000 (got {dict(row)})")
        arrivals.append(Arrival(time_s, samples, size))
    if not any(a.samples for a in arrivals):
        raise InvalidTrace(f"{path}: the trace has no samples")
    return Trace(path.stem, tuple(sorted(arrivals, key=lambda a: a.time_s)))


def parse_size(text: str) -> float:
    """'100GB', '500 MB', '1.5TB' -> gigabytes (binary units, as the planner's sizes)."""
    units = {"MB": 1 / 1024, "GB": 1.0, "TB": 1024.0}
    cleaned = text.strip().upper().replace("IB", "B").replace(" ", "")
    for unit, factor in units.items():
        if cleaned.endswith(unit):
            try:
                value = float(cleaned[: -len(unit)]) * factor
            except ValueError:
                break
            if math.isfinite(value) and value > 0:
                return value
    raise InvalidTrace(f"--sample-size {text!r}: a positive size with a unit, e.g. 100GB or 500MB")


@dataclass
class Config:
    seed: int = 7
    size_median_gb: float = 1.0
    size_sigma: float = 0.8
    distributed: bool = False
    deadline_s: float = planning.DEADLINE_S
    max_workers: int | None = None
    lambda_concurrency: int | None = None
    scaler_period_s: float = 10.0


def sample_sizes(trace: Trace, config: Config) -> list[tuple[float, float]]:
    """(arrival time, gzip GB of the pair) per sample; a row's size_gb, else the seeded log-normal draw."""
    rng = random.Random(config.seed)
    out = []
    for arrival in trace.arrivals:
        for _ in range(arrival.samples):
            drawn = rng.lognormvariate(math.log(config.size_median_gb), config.size_sigma)
            out.append((arrival.time_s, arrival.size_gb or min(drawn, 500.0)))
    return out


def _inputs(size_gb: float) -> list[SampleInput]:
    half = int(size_gb * GB / 2)
    return [SampleInput(key="incoming/s_R1.fastq.gz", etag="", size=half, mate=1),
            SampleInput(key="incoming/s_R2.fastq.gz", etag="", size=half, mate=2)]


class Cluster:
    """Worker nodes as vCPU slot tokens in a SimPy Store; static, or autoscaled by the policy above."""

    def __init__(self, env: simpy.Environment, *, vcpus: int, min_nodes: int, max_nodes: int, startup_s: float,
                 idle_timeout_s: float, period_s: float, warm_nodes: int = 0) -> None:
        self.env, self.vcpus, self.min, self.max = env, vcpus, min_nodes, max_nodes
        self.startup_s, self.idle_timeout_s, self.period_s = startup_s, idle_timeout_s, period_s
        self.slots = simpy.Store(env)
        # A task of several slots gathers them one at a time; only one such task gathers at once, or two could
        # each hold part of what the other waits for (a deadlock).
        self.gathering = simpy.Resource(env, capacity=1)
        self.nodes: dict[int, dict[str, float]] = {}
        self.next_id = 0
        self.busy = self.waiting = 0
        self.node_seconds = self.busy_slot_seconds = 0.0
        self.timeline: list[tuple[float, int]] = [(0.0, 0)]
        for _ in range(warm_nodes):
            self._launch(ready_now=True)
        if max_nodes > min_nodes or warm_nodes < max_nodes:
            env.process(self._scaler())

    def _record(self, at: float | None = None) -> None:
        self.timeline.append((self.env.now if at is None else at, len(self.nodes)))

    def _launch(self, ready_now: bool = False) -> None:
        node = self.next_id
        self.next_id += 1
        self.nodes[node] = {"launched": self.env.now, "busy": 0, "idle_since": self.env.now, "ready": ready_now}
        self._record()
        if ready_now:
            self._ready(node)
        else:
            self.env.process(self._boot(node))

    def _boot(self, node: int):
        yield self.env.timeout(self.startup_s)
        self._ready(node)

    def _ready(self, node: int) -> None:
        self.nodes[node].update(ready=True, idle_since=self.env.now)
        for _ in range(self.vcpus):
            self.slots.put(node)

    def idle_nodes(self) -> int:
        return sum(1 for n in self.nodes.values() if n["ready"] and n["busy"] == 0)

    def _scaler(self):
        while True:
            desired = min(self.max, max(self.min, math.ceil((self.busy + self.waiting) / self.vcpus)))
            for _ in range(desired - len(self.nodes)):
                self._launch()
            for node, state in list(self.nodes.items()):
                if (len(self.nodes) > max(self.min, desired) and state["ready"] and state["busy"] == 0
                        and self.env.now - state["idle_since"] >= self.idle_timeout_s):
                    self.slots.items[:] = [n for n in self.slots.items if n != node]
                    self._retire(node, self.env.now)
            yield self.env.timeout(self.period_s)

    def _retire(self, node: int, at: float) -> None:
        self.node_seconds += at - self.nodes.pop(node)["launched"]
        self._record(at)

    def run(self, seconds: float, slots: int = 1):
        """A task holding ``slots`` vCPUs for ``seconds`` (a SimPy process body)."""
        self.waiting += slots
        held = []
        gate = self.gathering.request() if slots > 1 else None
        if gate is not None:
            yield gate
        for _ in range(slots):
            node = yield self.slots.get()
            self.waiting -= 1
            self.busy += 1
            self.nodes[node]["busy"] += 1
            held.append(node)
        if gate is not None:
            self.gathering.release(gate)
        yield self.env.timeout(seconds)
        for node in held:
            self.busy -= 1
            self.busy_slot_seconds += seconds
            self.nodes[node]["busy"] -= 1
            if self.nodes[node]["busy"] == 0:
                self.nodes[node]["idle_since"] = self.env.now
            self.slots.put(node)

    def close(self, window_end: float, static: bool) -> None:
        """Bill the nodes still up: a static cluster to the end of the window, others until their idle timeout."""
        for node, state in sorted(self.nodes.items(), key=lambda item: item[1]["idle_since"]):
            end = max(window_end, self.env.now) if static else max(self.env.now,
                                                                    state["idle_since"] + self.idle_timeout_s)
            self._retire(node, end)


@dataclass
class Outcome:
    strategy: str
    samples: int
    infeasible: int = 0
    latencies: list[float] = field(default_factory=list)
    first_arrival: float = 0.0
    last_done: float = 0.0
    lambda_usd: float = 0.0
    sfn_usd: float = 0.0
    node_seconds: float = 0.0
    busy_slot_seconds: float = 0.0
    vcpus_per_node: int = 16
    node_usd_per_s: float = 0.0
    placements: dict[str, int] = field(default_factory=dict)
    timeline: list[tuple[float, int]] = field(default_factory=list)

    @property
    def makespan_s(self) -> float:
        return self.last_done - self.first_arrival if self.latencies else 0.0

    @property
    def mean_latency_s(self) -> float:
        return sum(self.latencies) / len(self.latencies) if self.latencies else 0.0

    @property
    def cluster_usd(self) -> float:
        return self.node_seconds * self.node_usd_per_s

    @property
    def total_usd(self) -> float:
        return self.lambda_usd + self.sfn_usd + self.cluster_usd

    @property
    def idle_node_minutes(self) -> float:
        return max(0.0, self.node_seconds - self.busy_slot_seconds / self.vcpus_per_node) / 60

    def row(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "samples_run": len(self.latencies), "infeasible": self.infeasible,
                "makespan_s": round(self.makespan_s, 1), "mean_latency_s": round(self.mean_latency_s, 1),
                "cost_usd": round(self.total_usd, 4), "lambda_usd": round(self.lambda_usd, 4),
                "cluster_usd": round(self.cluster_usd, 4), "idle_node_minutes": round(self.idle_node_minutes, 1),
                "node_hours": round(self.node_seconds / 3600, 2), "placements": dict(sorted(self.placements.items()))}


def simulate(samples: list[tuple[float, float]], strategy: str, config: Config, *, window_s: float = 0.0,
             profile: dict[str, Any] | None = None, prices: dict[str, Any] | None = None,
             warm_start: bool = False) -> Outcome:
    """Run one strategy over ``samples`` ((arrival s, gzip GB)); deterministic for the same inputs."""
    if strategy not in STRATEGIES:
        raise InvalidTrace(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    profile, prices = profile or load_profile(), prices or load_prices()
    lam, ray = profile["platforms"]["lambda"], profile["platforms"]["ray"]
    max_workers = config.max_workers or ray["max_workers"]
    map_concurrency = config.lambda_concurrency or lam["max_concurrency"]
    account = max(lam["account_concurrency"], map_concurrency)
    ratio = float(profile["gzip_ratio"]["value"])
    env = simpy.Environment()
    functions = simpy.Resource(env, capacity=account)
    static = strategy == "cluster-static"
    cluster = None if strategy == "all-lambda" else Cluster(
        env, vcpus=ray["vcpus_per_worker"], min_nodes=max_workers if static else 0, max_nodes=max_workers,
        startup_s=ray["startup_cold_s"], idle_timeout_s=ray["idle_timeout_s"], period_s=config.scaler_period_s,
        warm_nodes=max_workers if (static or warm_start) else 0)
    outcome = Outcome(strategy, len(samples), first_arrival=min((t for t, _ in samples), default=0.0),
                      vcpus_per_node=ray["vcpus_per_worker"], node_usd_per_s=node_hour_usd("ray", prices) / 3600)
    limit_s = planning.SAFETY * lam["timeout_s"]

    def on_lambda(seconds: float):
        with functions.request() as slot:
            yield slot
            yield env.timeout(seconds)

    def lambda_chunks(work: planning.Phase1Work):
        sample_map = simpy.Resource(env, capacity=map_concurrency)

        def item():
            with sample_map.request() as mine:
                yield mine
                yield from on_lambda(work.chunk_s)
        yield simpy.AllOf(env, [env.process(item()) for _ in range(work.chunks)])

    def cluster_steps(work: planning.Phase1Work):
        yield env.timeout(ray["startup_warm_s"])  # the job's own start on a running worker
        if work.validate_s:
            yield from cluster.run(work.validate_s)
        if work.prepare_units > 1:  # the distributed path's ScanMates: one Lambda per mate, whatever the placement
            yield simpy.AllOf(env, [env.process(on_lambda(work.prepare_s)) for _ in range(work.prepare_units)])
        else:
            yield from cluster.run(work.prepare_s)
        yield simpy.AllOf(env, [env.process(cluster.run(work.chunk_s)) for _ in range(work.chunks)])
        yield from cluster.run(work.merge_s)

    def sample(arrival: float, size_gb: float):
        yield env.timeout(arrival - env.now)
        inputs = _inputs(size_gb)
        data, input_mb = size_gb * GB * ratio / MB, size_gb * GB / MB
        common = dict(mates=2, profile=profile, distributed=config.distributed)
        lambda_work = planning.phase1_work(data, input_mb, "lambda", validate=True, **common)
        if strategy == "all-lambda":
            placement = "lambda" if not lambda_work.limit else None
        elif strategy == "mashup":
            predictions = planning.predict_phase1(inputs, profile=profile, prices=prices, distributed=config.distributed,
                                                  cluster=planning.ClusterState(idle_workers=cluster.idle_nodes()))
            placement = planning.choose(predictions, config.deadline_s)[0]
        else:
            placement = "ray"
        if placement is None:
            outcome.infeasible += 1
            return
        if placement == "lambda":
            yield from (on_lambda(lambda_work.validate_s) if lambda_work.validate_s else iter(()))
            yield simpy.AllOf(env, [env.process(on_lambda(lambda_work.prepare_s))
                                    for _ in range(lambda_work.prepare_units)])
            yield from lambda_chunks(lambda_work)
            yield from on_lambda(lambda_work.merge_s)
            outcome.lambda_usd += planning.lambda_work_usd(lambda_work, profile, prices)
            transitions = LAMBDA_PATH_TRANSITIONS + lambda_work.chunks
        else:
            # Validate stays on one Lambda where one function can read the input (mashup), else runs on the cluster.
            validate_on_lambda = strategy == "mashup" and 0 < lambda_work.validate_s <= limit_s
            if validate_on_lambda:
                yield from on_lambda(lambda_work.validate_s)
                outcome.lambda_usd += lambda_work.validate_s * lam["validate_memory_mb"] / 1024 * \
                    prices["lambda"]["usd_per_gb_second"] + prices["lambda"]["usd_per_request"]
            work = planning.phase1_work(data, input_mb, "ray", validate=not validate_on_lambda, **common)
            yield from cluster_steps(work)
            transitions = CLUSTER_PATH_TRANSITIONS
        outcome.sfn_usd += transitions * prices["step_functions"]["usd_per_state_transition"]
        outcome.placements[placement] = outcome.placements.get(placement, 0) + 1
        outcome.latencies.append(env.now - arrival)
        outcome.last_done = max(outcome.last_done, env.now)

    processes = [env.process(sample(t, size)) for t, size in samples]
    env.run(until=simpy.AllOf(env, processes))
    if cluster is not None:
        cluster.close(max(window_s, env.now), static)
        outcome.node_seconds, outcome.busy_slot_seconds = cluster.node_seconds, cluster.busy_slot_seconds
        outcome.timeline = cluster.timeline
    return outcome


def compare(trace: Trace, config: Config, profile: dict[str, Any] | None = None) -> list[Outcome]:
    samples = sample_sizes(trace, config)
    return [simulate(samples, strategy, config, window_s=trace.window_s, profile=profile) for strategy in STRATEGIES]


def verdict(outcomes: Iterable[Outcome]) -> dict[str, Any]:
    """Mashup against the best single-platform baseline that ran every sample (time: makespan; cost: total)."""
    by_name = {o.strategy: o for o in outcomes}
    mashup = by_name["mashup"]
    complete = [by_name[name] for name in BASELINES if name in by_name and not by_name[name].infeasible]
    if not complete:
        return {"baselines": [], "note": "no single-platform baseline ran every sample"}
    fastest = min(complete, key=lambda o: o.makespan_s)
    cheapest = min(complete, key=lambda o: o.total_usd)

    def lower(best: float, ours: float) -> float:
        return round(100 * (best - ours) / best, 1) if best else 0.0

    time_gain, cost_gain = lower(fastest.makespan_s, mashup.makespan_s), lower(cheapest.total_usd, mashup.total_usd)
    return {"baselines": [o.strategy for o in complete],
            "best_time": fastest.strategy, "time_lower_pct": time_gain,
            "best_cost": cheapest.strategy, "cost_lower_pct": cost_gain,
            "latency_lower_pct": lower(min(o.mean_latency_s for o in complete), mashup.mean_latency_s),
            "meets_paper_goal": time_gain >= 34 and cost_gain >= 43,
            "excluded": [name for name in BASELINES if name in by_name and by_name[name].infeasible]}


def render_table(outcomes: Iterable[Outcome]) -> str:
    head = ("strategy", "run", "infeasible", "makespan", "mean latency", "cost USD", "idle node-min", "placements")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for o in outcomes:
        r = o.row()
        places = ", ".join(f"{k} {v}" for k, v in r["placements"].items())
        lines.append(f"| {o.strategy} | {r['samples_run']} | {r['infeasible']} | {_duration(o.makespan_s)} | "
                     f"{_duration(o.mean_latency_s)} | {r['cost_usd']:.2f} | {r['idle_node_minutes']:,.0f} | {places} |")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _save(fig: Any, directory: Path, name: str) -> list[Path]:
    """``fig`` as <name>.png and <name>.svg; the figure is closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = [directory / f"{name}.{suffix}" for suffix in ("png", "svg")]
    for path in paths:
        fig.savefig(path)
    plt.close(fig)
    return paths


def write_plots(outcomes: list[Outcome], directory: Path, title: str) -> list[Path]:
    """comparison.png/.svg (the four figures per strategy) and nodes.png/.svg (cluster nodes over time)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a build machine
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    names = [o.strategy for o in outcomes]
    figures = [("makespan (h)", [o.makespan_s / 3600 for o in outcomes]),
               ("mean latency (min)", [o.mean_latency_s / 60 for o in outcomes]),
               ("cost (USD)", [o.total_usd for o in outcomes]),
               ("idle node-minutes", [o.idle_node_minutes for o in outcomes])]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, (label, values) in zip(axes, figures):
        bars = ax.bar(names, values, color=["#4c72b0", "#8172b2", "#55a868", "#c44e52"][: len(names)])
        for bar, outcome in zip(bars, outcomes):
            if outcome.infeasible:
                bar.set_hatch("//")
        ax.set_title(label)
        ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle(f"{title} (hatched: some samples infeasible, not run)")
    written = _save(fig, directory, "comparison")
    fig, ax = plt.subplots(figsize=(10, 4))
    for outcome in outcomes:
        if outcome.timeline:
            times, counts = zip(*outcome.timeline)
            ax.step([t / 3600 for t in times], counts, where="post", label=outcome.strategy)
    ax.set_xlabel("hours since the start of the trace")
    ax.set_ylabel("nodes up")
    ax.legend()
    ax.set_title(f"{title}: cluster nodes")
    return written + _save(fig, directory, "nodes")


def largest_lambda_sample_gb(profile: dict[str, Any], *, distributed: bool) -> tuple[float, str]:
    """The largest paired gzip sample (GB) the Lambda-only path takes, and the limit that stops the next size."""
    ratio = float(profile["gzip_ratio"]["value"])

    def limit(size_gb: float) -> str:
        return planning.phase1_work(size_gb * GB * ratio / MB, size_gb * GB / MB, "lambda", mates=2, profile=profile,
                                    distributed=distributed, validate=not distributed).limit

    low, high = 0.001, 100_000.0
    for _ in range(60):
        middle = math.sqrt(low * high)
        low, high = (middle, high) if not limit(middle) else (low, middle)
    return low, limit(high)


def one_sample(size_gb: float, *, workers: int, lambda_concurrency: int, profile: dict[str, Any] | None = None
               ) -> list[dict[str, Any]]:
    """Issue 16's question: one paired sample validated and through Phase 1, on ``workers`` Ray workers (warm and
    from zero) and on ``lambda_concurrency`` concurrent Lambdas, for the single path (one Validate, one re-blocking Split) and the distributed path."""
    profile = profile or load_profile()
    ratio = float(profile["gzip_ratio"]["value"])
    rows = []
    for distributed in (False, True):
        # ScanMates runs on Lambda whatever the placement: a mate whose pass breaks that limit stops every path.
        scan_limit = distributed and "ScanMate" in planning.phase1_work(
            size_gb * GB * ratio / MB, size_gb * GB / MB, "lambda", mates=2, profile=profile, distributed=True).limit
        config = Config(distributed=distributed, max_workers=workers, lambda_concurrency=lambda_concurrency)
        for strategy, warm, label in (("cluster-autoscaled", True, f"Ray, {workers} warm workers"),
                                      ("cluster-autoscaled", False, f"Ray, {workers} workers from zero"),
                                      ("all-lambda", False, f"Lambda, {lambda_concurrency} concurrent")):
            outcome = simulate([(0.0, size_gb)], strategy, config, profile=profile, warm_start=warm)
            if scan_limit:
                outcome.infeasible = 1
            rows.append({"path": PATH_LABELS[distributed],
                         "placement": label, "feasible": not outcome.infeasible,
                         "seconds": round(outcome.makespan_s, 1) if not outcome.infeasible else None,
                         "within_15_min": (not outcome.infeasible) and outcome.makespan_s <= 900,
                         "usd": round(outcome.total_usd, 4) if not outcome.infeasible else None,
                         "node_hours": round(outcome.node_seconds / 3600, 2) if not scan_limit else 0.0})
    return rows

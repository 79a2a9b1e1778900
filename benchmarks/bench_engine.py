#!/usr/bin/env python3
"""Engine throughput benchmark: the fast engine against SimPy, Ciw and the reference engine.

Runs in one process on one core (thread pools pinned to 1 before NumPy is imported) and
prints a table of results with the project's targets and PASS/MISS marks. It reports, it
never fails: the exit status is 0 whatever the figures are. See benchmarks/README.md.

    python benchmarks/bench_engine.py             # default run, about half a minute
    python benchmarks/bench_engine.py --quick     # smaller task counts, a few seconds
    python benchmarks/bench_engine.py --city      # also scenarios/scale/city_10k.yaml (long)
    python benchmarks/bench_engine.py --json out.json --profile
"""

from __future__ import annotations

import os

# One core: every thread pool is pinned to one thread before NumPy or Numba is imported.
for _var in (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import cProfile  # noqa: E402
import functools  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sim.config import Scenario  # noqa: E402
from sim.engine import simulate  # noqa: E402

# --------------------------------------------------------------------------- targets
TARGET_WORLD_RATE = 5e6  # tasks/s end to end, scaled world, heuristic policy, one core
TARGET_VS_SIMPY = 50.0  # fast engine / SimPy (textbook M/M/c and the per-task reference)
TARGET_VS_CIW = 100.0  # fast engine / Ciw on M/M/c
TARGET_CITY_WALL = 60.0  # s
TARGET_CITY_RSS = 2 * 1024**3  # bytes
TARGET_HELP = 0.3  # s

# --------------------------------------------------------------------------- M/M/c workload
MMC_C = 4  # servers (cores)
MMC_RHO = 0.8  # utilisation
MMC_MU = 1000.0  # service rate per core [1/s] (mean service 1 ms)
MMC_LAMBDA = MMC_RHO * MMC_C * MMC_MU  # arrival rate [1/s]
MMC_SERVER_CPU = 10e9  # cycles/s per core of the engine's server
MMC_EPOCH = 1.0  # s: the engine's decision epoch in the M/M/c run
N_BATCHES = 20  # batch means for the standard error of the mean wait

# --------------------------------------------------------------------------- scaled world
WORLD_VEHICLES = 1000
WORLD_VEHICLES_PER_SERVER = 10  # 1,000 vehicles -> 100 servers
WORLD_SIDE_1000 = 5000.0  # m: square side for 1,000 vehicles (40 vehicles/km^2)
WORLD_ARRIVAL_RATE = 20.0  # tasks/s per vehicle
WORLD_EPOCHS = (0.1, 1.0)  # s
REF_VEHICLES = 50  # the small slice run by the reference engine
WORLD_REPEATS = 3  # summary-only world runs are short: the best of this many is reported


@dataclass
class Sizes:
    mmc_fast: int
    mmc_simpy: int
    mmc_ciw: int
    mmc_reference: int
    world_horizon: dict[float, float]  # epoch -> horizon [s]
    table_horizon: float
    ref_horizon: float
    ref_world_horizon: float  # the reference on the 1,000-vehicle world
    help_repeats: int = 5


DEFAULT_SIZES = Sizes(
    mmc_fast=8_000_000,
    mmc_simpy=200_000,
    mmc_ciw=100_000,
    mmc_reference=100_000,
    world_horizon={0.1: 60.0, 1.0: 120.0},
    table_horizon=30.0,
    ref_horizon=20.0,
    ref_world_horizon=5.0,
)
QUICK_SIZES = Sizes(
    mmc_fast=500_000,
    mmc_simpy=30_000,
    mmc_ciw=15_000,
    mmc_reference=15_000,
    world_horizon={0.1: 5.0},
    table_horizon=5.0,
    ref_horizon=4.0,
    ref_world_horizon=1.0,
)


@dataclass
class Row:
    section: str
    measure: str
    value: float | None
    unit: str
    result: str
    target: str = ""
    status: str = ""  # PASS, MISS, SKIP or "" (information only)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


ROWS: list[Row] = []


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def add(row: Row) -> Row:
    ROWS.append(row)
    return row


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def si(x: float, unit: str = "") -> str:
    """Engineering format: 1.23 M, 456 k, 7.8."""
    if x is None or not math.isfinite(x):
        return "n/a"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


class Timer:
    """Wall (perf_counter) and CPU (process_time) seconds of a block."""

    def __enter__(self) -> Timer:
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.cpu0

    @property
    def cpu_share(self) -> float:
        return self.cpu / self.wall if self.wall > 0 else float("nan")


def cpu_note(t: Timer) -> str:
    """Flags a timing during which this process did not have its core to itself."""
    share = t.cpu_share
    note = f"cpu/wall {share:.2f}"
    if share < 0.9:
        note += " (core shared: figure is pessimistic)"
    return note


# --------------------------------------------------------------------------- sinks
class CountingSink:
    """Summary-only fallback when sim.summary.SummaryAccumulator does not exist."""

    def __init__(self) -> None:
        self.n = 0
        self.wait_sum = 0.0
        self.wait_n = 0
        self.latency_sum = 0.0
        self.latency_n = 0

    def add(self, batch: dict[str, np.ndarray]) -> None:
        self.n += batch["task_id"].shape[0]
        w = batch["wait_compute"]
        ok = np.isfinite(w)
        self.wait_sum += float(w[ok].sum())
        self.wait_n += int(ok.sum())
        lat = batch["latency"]
        ok = np.isfinite(lat)
        self.latency_sum += float(lat[ok].sum())
        self.latency_n += int(ok.sum())

    def result(self, extra: dict | None = None) -> dict[str, Any]:
        return {
            "n_tasks": self.n,
            "wait_compute_mean": self.wait_sum / self.wait_n if self.wait_n else None,
            "latency_mean": self.latency_sum / self.latency_n if self.latency_n else None,
        }


def summary_sink(sc: Scenario):
    """The run's summary-only sink: SummaryAccumulator if it exists, else a counter."""
    try:
        from sim.summary import SummaryAccumulator
    except ImportError:
        return CountingSink()
    return SummaryAccumulator(sc.engine.horizon, sc.engine.warmup, sc.cost.latency_weight)


def summary_sink_kind() -> str:
    try:
        from sim.summary import SummaryAccumulator  # noqa: F401
    except ImportError:
        return "CountingSink (sim.summary.SummaryAccumulator not present)"
    return "sim.summary.SummaryAccumulator"


class BatchMeansSink:
    """Forwards to a summary sink and bins the edge wait by arrival time (batch means)."""

    def __init__(self, inner, horizon: float, n_batches: int = N_BATCHES) -> None:
        self.inner = inner
        self.horizon = horizon
        self.nb = n_batches
        self.sums = np.zeros(n_batches)
        self.counts = np.zeros(n_batches)

    def add(self, batch: dict[str, np.ndarray]) -> None:
        self.inner.add(batch)
        w = batch["wait_compute"]
        ok = np.isfinite(w)
        b = np.minimum(
            (batch["arrival"][ok] * (self.nb / self.horizon)).astype(np.int64), self.nb - 1
        )
        self.sums += np.bincount(b, weights=w[ok], minlength=self.nb)
        self.counts += np.bincount(b, minlength=self.nb)


@functools.cache
def load_conftest():
    """tests/conftest.py as a module (for CollectSink and scenario()), without pytest's path."""
    spec = importlib.util.spec_from_file_location("_bench_conftest", REPO / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- M/M/c
def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load ``a = lambda / mu`` (Erlang C)."""
    b = 1.0  # Erlang B by the stable recursion B(k) = a B(k-1) / (k + a B(k-1))
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


def mmc_wq(c: int, lam: float, mu: float) -> float:
    """Mean waiting time in queue of M/M/c: C(c, a) / (c mu - lambda)."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def batch_stats(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Overall mean and its standard error from per-batch sums and counts."""
    counts = np.asarray(counts, dtype=float)
    mean = float(np.sum(sums) / np.sum(counts))
    ok = counts > 0
    bm = np.asarray(sums)[ok] / counts[ok]
    se = float(np.std(bm, ddof=1) / math.sqrt(bm.shape[0])) if bm.shape[0] > 1 else math.nan
    return mean, se


def batches_of(
    arrivals: np.ndarray, waits: np.ndarray, horizon: float
) -> tuple[np.ndarray, np.ndarray]:
    b = np.minimum((arrivals * (N_BATCHES / horizon)).astype(np.int64), N_BATCHES - 1)
    return (np.bincount(b, weights=waits, minlength=N_BATCHES), np.bincount(b, minlength=N_BATCHES))


def mmc_scenario(horizon: float) -> Scenario:
    """M/M/c as a degenerate world: one static vehicle, instant uplink, one 4-core server."""
    return Scenario.model_validate(
        {
            "name": "bench_mmc",
            "seed": 11,
            "engine": {"horizon": horizon, "epoch": min(MMC_EPOCH, horizon)},
            "vehicles": {"count": 1},
            "servers": {"count": 1, "placement": "grid", "cores": MMC_C, "cpu": MMC_SERVER_CPU},
            "mobility": {"model": "static", "step": min(MMC_EPOCH, horizon)},
            "tasks": {
                "arrival_rate": MMC_LAMBDA,
                "size": 0,
                "complexity": {"kind": "exponential", "mean": MMC_SERVER_CPU / MMC_MU},
            },
            "policy": {"id": "fixed", "params": {"server": 0}},
            "output": {"task_table": False, "plots": False},
        }
    )


def run_mmc_fast(n_tasks: int) -> dict[str, Any]:
    horizon = n_tasks / MMC_LAMBDA
    sc = mmc_scenario(horizon)
    sink = BatchMeansSink(summary_sink(sc), horizon)
    with Timer() as t:
        res = simulate(sc, sink)
    mean, se = batch_stats(sink.sums, sink.counts)
    return {"tasks": res.n_tasks, "timer": t, "wq": mean, "wq_se": se}


def run_mmc_reference(n_tasks: int) -> dict[str, Any]:
    """The per-task SimPy reference engine (sim.reference) on the same M/M/c world.

    The reference replays a fast run's draws and decisions; only its own run is timed.
    """
    from sim.reference import simulate_reference

    horizon = n_tasks / MMC_LAMBDA
    sc = mmc_scenario(horizon)
    collect = load_conftest().CollectSink()
    simulate(sc, collect)
    table = collect.frame()
    with Timer() as t:
        ref = simulate_reference(sc, table)
    arrival = table["arrival"].to_numpy()
    wait = np.array([ref[int(i)]["compute_start"] for i in table["task_id"]]) - arrival
    sums, counts = batches_of(arrival, wait, horizon)
    mean, se = batch_stats(sums, counts)
    return {"tasks": len(ref), "timer": t, "wq": mean, "wq_se": se}


def run_mmc_simpy(n_customers: int, seed: int = 1) -> dict[str, Any]:
    """The textbook SimPy M/M/c: a Resource of capacity c and one process per customer."""
    import simpy

    rng = random.Random(seed)
    horizon = n_customers / MMC_LAMBDA
    arrivals: list[float] = []
    waits: list[float] = []
    with Timer() as t:
        env = simpy.Environment()
        servers = simpy.Resource(env, capacity=MMC_C)
        done = [0]

        def customer(env, servers):
            arrived = env.now
            with servers.request() as req:
                yield req
                arrivals.append(arrived)
                waits.append(env.now - arrived)
                yield env.timeout(rng.expovariate(MMC_MU))
            done[0] += 1

        def source(env, servers):
            while True:
                yield env.timeout(rng.expovariate(MMC_LAMBDA))
                env.process(customer(env, servers))

        env.process(source(env, servers))
        env.run(until=horizon)
    sums, counts = batches_of(np.asarray(arrivals), np.asarray(waits), horizon)
    mean, se = batch_stats(sums, counts)
    return {"tasks": done[0], "timer": t, "wq": mean, "wq_se": se}


def run_mmc_ciw(n_customers: int, seed: int = 1) -> dict[str, Any]:
    import ciw

    horizon = n_customers / MMC_LAMBDA
    with Timer() as t:
        network = ciw.create_network(
            arrival_distributions=[ciw.dists.Exponential(rate=MMC_LAMBDA)],
            service_distributions=[ciw.dists.Exponential(rate=MMC_MU)],
            number_of_servers=[MMC_C],
        )
        ciw.seed(seed)
        q = ciw.Simulation(network)
        q.simulate_until_max_time(horizon)
        records = q.get_all_records()
    arr = np.array([r.arrival_date for r in records])
    wait = np.array([r.waiting_time for r in records])
    sums, counts = batches_of(arr, wait, horizon)
    mean, se = batch_stats(sums, counts)
    return {"tasks": len(records), "timer": t, "wq": mean, "wq_se": se}


def bench_mmc(sizes: Sizes) -> None:
    sec = "1 M/M/c"
    wq = mmc_wq(MMC_C, MMC_LAMBDA, MMC_MU)
    print(
        f"M/M/c: c = {MMC_C}, rho = {MMC_RHO}, lambda = {MMC_LAMBDA:g}/s, "
        f"mu = {MMC_MU:g}/s per core; Erlang C = {erlang_c(MMC_C, MMC_LAMBDA / MMC_MU):.4f},"
        f" Wq = {wq * 1e3:.4f} ms"
    )
    print(
        f"  fast engine: 1 static vehicle, policy fixed(server 0), size 0 bit, complexity "
        f"exponential(mean {MMC_SERVER_CPU / MMC_MU:.3g} cycles), 1 server x {MMC_C} cores"
        f" @ {MMC_SERVER_CPU / 1e9:g} GHz, epoch {MMC_EPOCH:g} s, table off, "
        f"{sizes.mmc_fast:,} tasks"
    )
    print(
        f"  SimPy: Resource(capacity={MMC_C}), one process per customer, "
        f"{sizes.mmc_simpy:,} customers; Ciw {_ciw_version()}: {sizes.mmc_ciw:,} customers;"
        f" sim.reference: {sizes.mmc_reference:,} tasks"
    )
    results = {}
    for name, fn, n in (
        ("fast engine", run_mmc_fast, sizes.mmc_fast),
        ("SimPy", run_mmc_simpy, sizes.mmc_simpy),
        ("Ciw", run_mmc_ciw, sizes.mmc_ciw),
        ("reference", run_mmc_reference, sizes.mmc_reference),
    ):
        log(f"M/M/c {name}: {n:,} tasks")
        r = fn(n)
        results[name] = r
        t = r["timer"]
        rate = r["tasks"] / t.wall
        add(
            Row(
                sec,
                f"{name} tasks/s",
                rate,
                "tasks/s",
                si(rate, "tasks/s"),
                notes=f"{r['tasks']:,} tasks in {t.wall:.2f} s; {cpu_note(t)}",
                extra={"tasks": r["tasks"], "wall_s": t.wall, "cpu_s": t.cpu},
            )
        )
    fast = results["fast engine"]["tasks"] / results["fast engine"]["timer"].wall
    for name, target in (
        ("SimPy", TARGET_VS_SIMPY),
        ("Ciw", TARGET_VS_CIW),
        ("reference", TARGET_VS_SIMPY),
    ):
        other = results[name]["tasks"] / results[name]["timer"].wall
        ratio = fast / other
        cpu_ratio = (results["fast engine"]["tasks"] / results["fast engine"]["timer"].cpu) / (
            results[name]["tasks"] / results[name]["timer"].cpu
        )
        add(
            Row(
                sec,
                f"fast / {name}",
                ratio,
                "x",
                f"{ratio:.1f}x",
                f">= {target:g}x",
                verdict(ratio >= target),
                f"on CPU time: {cpu_ratio:.1f}x",
                extra={"cpu_ratio": cpu_ratio},
            )
        )
    for name, r in results.items():
        dev = r["wq"] / wq - 1.0
        se_rel = r["wq_se"] / wq
        ok = abs(dev) <= 3 * se_rel + 0.005
        add(
            Row(
                sec,
                f"{name} mean wait",
                r["wq"],
                "s",
                f"{r['wq'] * 1e3:.4f} ms ({dev:+.1%})",
                f"Erlang C {wq * 1e3:.4f} ms",
                verdict(ok),
                f"+-{se_rel:.1%} (1 s.e., {N_BATCHES} batch means); pass: |dev| <= 3 s.e. + 0.5%",
                extra={"erlang_wq": wq, "se": r["wq_se"], "deviation": dev},
            )
        )


def _ciw_version() -> str:
    try:
        import ciw
    except ImportError:
        return "(not installed)"
    return ciw.__version__


# --------------------------------------------------------------------------- scaled world
def world_scenario(
    n_vehicles: int, policy: str, horizon: float, epoch: float, table: bool = False
) -> Scenario:
    """The quickstart world scaled to ``n_vehicles`` at the quickstart's vehicle density.

    Servers: one per WORLD_VEHICLES_PER_SERVER vehicles on a grid; the square area keeps
    40 vehicles/km^2 (5 km x 5 km for 1,000 vehicles). Everything else is the quickstart's:
    1 GHz vehicles, 1 W, 10 GHz single-core servers with 10 MHz each, -40 dB at 1 m,
    path loss exponent 2, -70 dBm noise, tasks of 10-20 kbit and 1-2 Mcycles, 50 ms
    deadline, random waypoint at 10-30 m/s.
    """
    conftest = load_conftest()
    side = WORLD_SIDE_1000 * math.sqrt(n_vehicles / WORLD_VEHICLES)
    return conftest.scenario(
        name=f"bench_world_{n_vehicles}",
        engine={"horizon": horizon, "epoch": epoch},
        vehicles={"count": n_vehicles},
        servers={"count": max(1, n_vehicles // WORLD_VEHICLES_PER_SERVER), "placement": "grid"},
        mobility={"step": max(epoch, 0.1), "area": {"width": side, "height": side}},
        tasks={"arrival_rate": WORLD_ARRIVAL_RATE},
        policy=policy,
        output={"task_table": table, "plots": False},
    )


def describe_world(sc: Scenario, timing: bool = True) -> str:
    s = sc.servers
    a = sc.mobility.area
    return (
        f"{sc.vehicles.count} vehicles, {s.count} servers ({s.placement}, "
        f"{s.cores} core @ {s.cpu / 1e9:g} GHz, {s.bandwidth / 1e6:g} MHz), "
        f"{a.width / 1e3:g} x {a.height / 1e3:g} km, {sc.mobility.model} "
        f"{sc.mobility.speed[0]:g}-{sc.mobility.speed[1]:g} m/s step "
        f"{sc.mobility.step * 1e3:g} ms, {sc.tasks.arrival_rate:g} tasks/s per vehicle"
        + (
            f", epoch {sc.engine.epoch * 1e3:g} ms, horizon {sc.engine.horizon:g} s"
            if timing
            else ""
        )
    )


def run_world(sc: Scenario) -> tuple[int, Timer, dict]:
    sink = summary_sink(sc)
    with Timer() as t:
        res = simulate(sc, sink)
    return res.n_tasks, t, sink.result(res.extra()) if hasattr(sink, "result") else {}


def run_full(sc: Scenario, out_dir: Path) -> int:
    """Run ``sc`` as ``run_sim.py`` would (``run_scenario(write=True)``), writing into
    ``out_dir``; returns the number of tasks."""
    from sim.runner import run_scenario

    run = run_scenario(sc, out_dir=out_dir, quiet=True, write=True)
    return int(run.summary["n_tasks"]) + int(run.summary.get("n_warmup_excluded") or 0)


def bench_world(sizes: Sizes) -> None:
    sec = "2 scaled world"
    policies = ("nearest", "greedy")
    sc = world_scenario(WORLD_VEHICLES, "nearest", 1.0, 0.1)
    print(
        f"Scaled world (quickstart at its vehicle density): {describe_world(sc, False)}; "
        f"mobility step = max(epoch, 100 ms); epochs and horizons: "
        + ", ".join(f"{e * 1e3:g} ms / {h:g} s" for e, h in sizes.world_horizon.items())
    )
    print(f"  summary-only sink: {summary_sink_kind()}")
    for epoch, horizon in sizes.world_horizon.items():
        for policy in policies:
            sc = world_scenario(WORLD_VEHICLES, policy, horizon, epoch)
            log(f"world {policy} epoch {epoch:g} s horizon {horizon:g} s")
            best = None
            for _ in range(WORLD_REPEATS):
                n, t, summ = run_world(sc)
                if best is None or t.wall < best[1].wall:
                    best = (n, t, summ)
            n, t, summ = best
            rate = n / t.wall
            lat = summ.get("latency_mean")
            notes = (
                f"{n:,} tasks, {horizon:g} s simulated, {t.wall:.2f} s (best of {WORLD_REPEATS}); "
            )
            if lat is not None:
                notes += f"mean latency {lat * 1e3:.2f} ms; "
            add(
                Row(
                    sec,
                    f"{policy}, epoch {epoch * 1e3:g} ms, summary only",
                    rate,
                    "tasks/s",
                    si(rate, "tasks/s"),
                    f">= {si(TARGET_WORLD_RATE)}/s",
                    verdict(rate >= TARGET_WORLD_RATE),
                    notes + cpu_note(t),
                    extra={
                        "tasks": n,
                        "wall_s": t.wall,
                        "cpu_s": t.cpu,
                        "epoch": epoch,
                        "horizon": horizon,
                        "policy": policy,
                    },
                )
            )
    # with the Parquet task table, through run_scenario: information, see benchmarks/README.md
    epoch = WORLD_EPOCHS[0]
    name = f"nearest, epoch {epoch * 1e3:g} ms, with Parquet table"
    sc = world_scenario(WORLD_VEHICLES, "nearest", sizes.table_horizon, epoch, table=True)
    log(f"world nearest with Parquet table, horizon {sizes.table_horizon:g} s")
    best = None
    for _ in range(WORLD_REPEATS):
        with tempfile.TemporaryDirectory(prefix="bench_table_") as tmp:
            with Timer() as t:
                n = run_full(sc, Path(tmp) / "run")
            size = sum(p.stat().st_size for p in Path(tmp).rglob("*.parquet"))
        if best is None or t.wall < best[1].wall:
            best = (n, t, size)
    n, t, size = best
    rate = n / t.wall
    add(
        Row(
            sec,
            name,
            rate,
            "tasks/s",
            si(rate, "tasks/s"),
            notes=f"{n:,} tasks, {sizes.table_horizon:g} s simulated, {t.wall:.2f} s "
            f"(best of {WORLD_REPEATS}), {size / 1e6:.0f} MB Parquet "
            f"({sc.output.table_compression}); run_scenario(write=True); {cpu_note(t)}",
            extra={"tasks": n, "wall_s": t.wall, "cpu_s": t.cpu, "parquet_bytes": size},
        )
    )


def bench_reference(sizes: Sizes) -> None:
    """Fast engine vs the per-task SimPy reference (sim.reference): on the scaled world
    (the target) and on a small slice of it (where an epoch's fixed costs weigh most)."""
    reference_rows(WORLD_VEHICLES, sizes.ref_world_horizon, target=True)
    reference_rows(REF_VEHICLES, sizes.ref_horizon, target=False)


def reference_rows(n_vehicles: int, horizon: float, target: bool) -> None:
    """Time the fast engine (best of 3, summary sink) and the reference on the same world
    and draws; add the rates, their ratio and the agreement of the completion times."""
    from sim.reference import simulate_reference

    sec = "2 scaled world"
    conftest = load_conftest()
    epoch = WORLD_EPOCHS[0]
    sc = world_scenario(n_vehicles, "nearest", horizon, epoch)
    what = "scaled world" if target else f"{n_vehicles}-vehicle slice"
    print(f"Reference, {what}: {describe_world(sc)}")
    log(f"reference, {what}: fast engine")
    best = None
    for _ in range(3):  # a short run: best of 3
        n, t, _summ = run_world(sc)
        if best is None or t.wall < best[1].wall:
            best = (n, t)
    n_fast, t_fast = best
    collect = conftest.CollectSink()
    simulate(sc, collect)
    table = collect.frame()
    log(f"reference, {what}: sim.reference on {len(table):,} tasks")
    with Timer() as t_ref:
        ref = simulate_reference(sc, table)
    fast_rate = n_fast / t_fast.wall
    ref_rate = len(ref) / t_ref.wall
    # agreement: the reference recomputes the fast engine's times
    comp = np.array([ref[int(i)]["completion"] for i in table["task_id"]])
    fast_comp = table["completion"].to_numpy()
    both = np.isfinite(comp) & np.isfinite(fast_comp)
    same_status = bool(np.array_equal(np.isfinite(comp), np.isfinite(fast_comp)))
    err = float(np.max(np.abs(comp[both] - fast_comp[both]))) if both.any() else 0.0
    add(
        Row(
            sec,
            f"fast engine, {what}, {horizon:g} s",
            fast_rate,
            "tasks/s",
            si(fast_rate, "tasks/s"),
            notes=f"{n_fast:,} tasks in {t_fast.wall:.3f} s (best of 3); {cpu_note(t_fast)}",
            extra={"tasks": n_fast, "wall_s": t_fast.wall, "cpu_s": t_fast.cpu},
        )
    )
    add(
        Row(
            sec,
            f"reference (sim.reference), {what}",
            ref_rate,
            "tasks/s",
            si(ref_rate, "tasks/s"),
            notes=f"{len(ref):,} tasks in {t_ref.wall:.2f} s; {cpu_note(t_ref)}",
            extra={"tasks": len(ref), "wall_s": t_ref.wall, "cpu_s": t_ref.cpu},
        )
    )
    ratio = fast_rate / ref_rate
    cpu_ratio = (n_fast / t_fast.cpu) / (len(ref) / t_ref.cpu)
    notes = f"on CPU time: {cpu_ratio:.1f}x"
    if not target:
        notes += (
            f"; about {len(table) / max(round(horizon / epoch), 1):.0f} tasks per epoch, "
            "so the epoch's fixed costs weigh most here"
        )
    add(
        Row(
            sec,
            f"fast / reference, {what}",
            ratio,
            "x",
            f"{ratio:.1f}x",
            f">= {TARGET_VS_SIMPY:g}x" if target else "",
            verdict(ratio >= TARGET_VS_SIMPY) if target else "",
            notes,
            extra={"cpu_ratio": cpu_ratio},
        )
    )
    add(
        Row(
            sec,
            f"reference agrees with fast engine, {what}",
            err,
            "s",
            f"max |d completion| {err:.1e} s",
            "<= 1e-9 s, same tasks completed",
            verdict(err <= 1e-9 and same_status),
        )
    )


# --------------------------------------------------------------------------- CLI start-up
def bench_help(repeats: int) -> None:
    sec = "3 CLI"
    script = REPO / "run_sim.py"
    if not script.is_file():
        add(
            Row(
                sec,
                "run_sim.py --help",
                None,
                "s",
                "skipped",
                f"< {TARGET_HELP:g} s",
                "SKIP",
                "run_sim.py not present",
            )
        )
        return
    log("run_sim.py --help")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(script), "--help"], cwd=REPO, capture_output=True, check=False
        )
        times.append(time.perf_counter() - t0)
    best = min(times)
    ok = proc.returncode == 0
    add(
        Row(
            sec,
            "run_sim.py --help wall time",
            best,
            "s",
            f"{best * 1e3:.0f} ms",
            f"< {TARGET_HELP * 1e3:.0f} ms",
            verdict(ok and best < TARGET_HELP),
            f"best of {repeats} (median {sorted(times)[len(times) // 2] * 1e3:.0f} ms)"
            + ("" if ok else f"; exit status {proc.returncode}"),
        )
    )


# --------------------------------------------------------------------------- city_10k
def city_child(out_dir: str) -> int:
    """Run city_10k in this (child) process and print one JSON line with the figures."""
    from sim.scenario import load_scenario

    t_start = time.perf_counter()
    warm_up()
    sc = load_scenario(REPO / "scenarios" / "scale" / "city_10k.yaml")
    sc.output.plots = False  # figures are not the engine; a plot would add seconds
    with Timer() as t:
        n = run_full(sc, Path(out_dir) / "run")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "tasks": n,
                "wall_s": t.wall,
                "cpu_s": t.cpu,
                "rss_bytes": rss,
                "process_wall_s": time.perf_counter() - t_start,
            }
        )
    )
    return 0


def bench_city() -> None:
    sec = "4 city_10k"
    log("city_10k in a subprocess (long)")
    with tempfile.TemporaryDirectory(prefix="bench_city_") as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--city-child", tmp],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        total = time.perf_counter() - t0
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        add(
            Row(
                sec,
                "city_10k",
                None,
                "",
                "failed",
                "",
                "MISS",
                f"exit status {proc.returncode}: {' | '.join(tail)}",
            )
        )
        return
    r = json.loads(lines[-1])
    rate = r["tasks"] / r["wall_s"]
    share = r["cpu_s"] / r["wall_s"]
    add(
        Row(
            sec,
            "city_10k wall time",
            r["wall_s"],
            "s",
            f"{r['wall_s']:.1f} s",
            f"< {TARGET_CITY_WALL:g} s",
            verdict(r["wall_s"] < TARGET_CITY_WALL),
            f"run_scenario(write=True); whole subprocess {total:.1f} s incl. start-up and warm-up; "
            f"cpu/wall {share:.2f}",
            extra=r,
        )
    )
    add(
        Row(
            sec,
            "city_10k tasks/s",
            rate,
            "tasks/s",
            si(rate, "tasks/s"),
            notes=f"{r['tasks']:,} tasks",
        )
    )
    add(
        Row(
            sec,
            "city_10k peak memory (max RSS)",
            r["rss_bytes"],
            "B",
            f"{r['rss_bytes'] / 2**20:,.0f} MiB",
            f"< {TARGET_CITY_RSS / 2**30:g} GiB",
            verdict(r["rss_bytes"] < TARGET_CITY_RSS),
            f"child's own getrusage; RUSAGE_CHILDREN {children_rss / 2**20:,.0f} MiB",
        )
    )


# --------------------------------------------------------------------------- profile
def profile_world(horizon: float, epoch: float = 0.1, top: int = 25) -> str:
    sc = world_scenario(WORLD_VEHICLES, "nearest", horizon, epoch)
    sink = summary_sink(sc)
    prof = cProfile.Profile()
    prof.enable()
    simulate(sc, sink)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --------------------------------------------------------------------------- driver
def warm_up() -> None:
    """Load (or compile) every Numba kernel used below with tiny runs."""
    mmc = mmc_scenario(0.01)
    simulate(mmc, summary_sink(mmc))  # summary-only rows
    simulate(mmc, BatchMeansSink(summary_sink(mmc), 0.01))  # full rows, as run_mmc_fast
    # 5 vehicles (1 server: nearest server by full scan) and 200 (20 servers: by grid)
    for n_vehicles in (5, 200):
        for policy in ("nearest", "greedy"):
            sc = world_scenario(n_vehicles, policy, 0.5, 0.1)
            simulate(sc, summary_sink(sc))


def environment() -> dict[str, Any]:
    import numba
    import simpy

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (math.nan,) * 3
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "simpy": simpy.__version__,
        "ciw": _ciw_version(),
        "cpu": cpu,
        "cpus_online": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": {
            k: os.environ[k]
            for k in (
                "NUMBA_NUM_THREADS",
                "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS",
            )
        },
        "loadavg_start": load,
    }


def print_table(rows: list[Row]) -> None:
    headers = ("Measure", "Result", "Target", "", "Notes")
    body = [(r.measure, r.result, r.target, r.status, r.notes) for r in rows]
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h)
        for i, h in enumerate(headers[:4])
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers[:4], widths, strict=True)) + "  Notes"
    print(line)
    print("-" * min(len(line) + 40, 160))
    section = None
    for r, b in zip(rows, body, strict=True):
        if r.section != section:
            section = r.section
            print(f"[{section}]")
        print("  ".join(x.ljust(w) for x, w in zip(b[:4], widths, strict=True)) + "  " + b[4])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smaller task counts (a few seconds)")
    p.add_argument(
        "--city",
        action="store_true",
        help="also run scenarios/scale/city_10k.yaml in a subprocess (long)",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="save the results as JSON")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also print a cProfile (cumulative, top 25) of the scaled world "
        "with policy nearest, epoch 100 ms",
    )
    p.add_argument(
        "--pin", type=int, metavar="CPU", help="pin this process (and its subprocesses) to one CPU"
    )
    p.add_argument("--city-child", metavar="DIR", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})
    if args.city_child:
        return city_child(args.city_child)

    sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    env = environment()
    print(
        f"bench_engine ({'quick' if args.quick else 'default'} mode), "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    print(
        f"Python {env['python']}, NumPy {env['numpy']}, Numba {env['numba']}, "
        f"SimPy {env['simpy']}, Ciw {env['ciw']}; {env['cpu']}, {env['cpus_online']} CPUs "
        f"online, affinity {env['affinity']}, thread pools 1; load average at start "
        f"{env['loadavg_start'][0]:.2f}"
    )
    started = time.perf_counter()
    log("warming up Numba")
    with Timer() as t_warm:
        warm_up()
    print(f"Warm-up (Numba cache load / compile): {t_warm.wall:.2f} s")
    print()
    bench_mmc(sizes)
    print()
    bench_world(sizes)
    bench_reference(sizes)
    bench_help(sizes.help_repeats)
    if args.city:
        bench_city()
    elapsed = time.perf_counter() - started

    print()
    print_table(ROWS)
    print()
    counts = {s: sum(r.status == s for r in ROWS) for s in ("PASS", "MISS", "SKIP")}
    print(
        f"{counts['PASS']} PASS, {counts['MISS']} MISS, {counts['SKIP']} SKIP; "
        f"benchmark wall time {elapsed:.0f} s; load average now {os.getloadavg()[0]:.2f} "
        "(cpu/wall < 0.9 in Notes: another process shared the core during that timing)"
    )

    profile = None
    if args.profile:
        horizon = sizes.world_horizon[WORLD_EPOCHS[0]]
        log(f"profiling the scaled world, nearest, epoch 100 ms, horizon {horizon:g} s")
        profile = profile_world(horizon)
        print()
        print(
            f"cProfile: scaled world, nearest, epoch 100 ms, horizon {horizon:g} s "
            "(cumulative, top 25)"
        )
        print(profile)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "mode": "quick" if args.quick else "default",
                    "environment": env,
                    "sizes": {
                        **asdict(sizes),
                        "world_horizon": {str(k): v for k, v in sizes.world_horizon.items()},
                    },
                    "results": [asdict(r) for r in ROWS],
                    "wall_s": elapsed,
                    "profile": profile,
                },
                indent=2,
                default=str,
            )
        )
        print(f"results saved to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

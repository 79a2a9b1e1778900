#!/usr/bin/env python3
"""Sweep benchmark: process-pool speed-up and the run store's overhead per run.

1. A sweep of 20 short runs (the Table III world, 5 bandwidths x 2 policies x 2
   replications) through the process pool with 1 worker and with 2 workers, one after the
   other in this process: speed-up = wall(1 worker) / wall(2 workers), target >= 1.8 on
   two cores. Both start with the compiled kernels loaded (an untimed warm-up), and the two
   runs tables are checked to be byte-identical. For reference, the same ratio for two
   independent processes running a plain CPU-bound loop: the most any pool can reach on
   this machine.
2. Store overhead: the same short runs simulated in a plain loop (``run_scenario`` with
   ``write=False``: engine and summary only) and as an in-process sweep into a results
   folder (staging, provenance, config, summary, histogram, fsyncs, renames, manifest and
   runs table). Overhead per run = (sweep - loop) / runs, target < 50 ms. Measured with the
   store's usual write throttling and with every manifest and table write forced.

It reports, it never fails: the exit status is 0 whatever the figures. See
benchmarks/README.md.

    python benchmarks/bench_sweep.py              # about a minute
    python benchmarks/bench_sweep.py --quick      # shorter runs, noisier ratios
    python benchmarks/bench_sweep.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sim import store  # noqa: E402
from sim.executors import InProcessExecutor, ProcessExecutor, cpu_count  # noqa: E402
from sim.runner import run_scenario  # noqa: E402
from sim.sweep import load_sweep, run_sweep, warm_up  # noqa: E402

TARGET_SPEEDUP = 1.8
TARGET_OVERHEAD = 0.050  # s per run

SWEEP = """\
name: bench_sweep
seed: 4
engine: {horizon: HORIZON, epoch: 10 ms}
vehicles: {count: 3, cpu: 1 GHz, power_max: 1 W, energy_coefficient: 1.0e-27}
servers: {count: 2, placement: line, cpu: 10 GHz, bandwidth: 10 MHz}
mobility: {model: random_waypoint, step: 100 ms, area: {width: 400 m, height: 200 m}}
channel: {path_loss_exponent: 2, reference_gain: -40 dB, noise: -70 dBm}
tasks: {arrival_rate: 10 /s, size: [1.0e4 bit, 2.0e4 bit], complexity: [1.0e6 cycles, 2.0e6 cycles]}
output: {task_table: false, plots: false}
sweep:
  grid:
    servers.bandwidth: [3 MHz, 5 MHz, 7 MHz, 9 MHz, 11 MHz]
    policy: [nearest, greedy]
  replications: REPLICATIONS
"""


def sweep_file(folder: Path, horizon: str, replications: int) -> Path:
    path = folder / f"bench-{horizon.replace(' ', '')}-{replications}.yaml"
    path.write_text(SWEEP.replace("HORIZON", horizon).replace("REPLICATIONS", str(replications)))
    return path


def timed(fn: Any) -> tuple[float, Any]:
    """(wall time, result) of ``fn()``."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def speedup(folder: Path, horizon: str) -> dict[str, Any]:
    sweep = load_sweep(sweep_file(folder, horizon, 2))
    assert len(sweep.runs) == 20
    warm_up(sweep.runs)
    rows: dict[str, Any] = {"runs": len(sweep.runs), "horizon": horizon}
    tables = []
    for workers in (1, 2):
        out = folder / f"pool{workers}"
        with ProcessExecutor(workers) as executor:
            wall, report = timed(lambda ex=executor, o=out: run_sweep(sweep, o, ex, quiet=True))
        assert report.ok and report.finished == 20, report.failed
        tables.append((out / store.RUNS_TABLE).read_bytes())
        rows[f"wall_{workers}"] = wall
        rows[f"cpu_{workers}"] = sum(
            json.loads((out / "runs" / r.run_id / "provenance.json").read_text())["cpu_time"]
            for r in sweep.runs
        )
    rows["speedup"] = rows["wall_1"] / rows["wall_2"]
    rows["identical"] = tables[0] == tables[1]
    return rows


def overhead(folder: Path, horizon: str, runs: int, forced: bool) -> dict[str, Any]:
    replications = max(1, runs // 10)
    path = sweep_file(folder, horizon, replications)
    sweep = load_sweep(path)
    warm_up(sweep.runs)
    store.runs_table_bytes(sweep, [])  # one-time imports (pyarrow, pandas) are not per run

    def plain() -> None:
        for spec in sweep.runs:
            run_scenario(spec.scenario, seed_path=spec.seed_path, write=False)

    intervals = (store.MANIFEST_INTERVAL, store.TABLE_INTERVAL)
    if forced:
        store.MANIFEST_INTERVAL = store.TABLE_INTERVAL = 0.0
    try:
        out = folder / f"store-{'forced' if forced else 'throttled'}"
        plain_wall, _ = timed(plain)
        sweep_wall, report = timed(lambda: run_sweep(sweep, out, InProcessExecutor(), quiet=True))
        plain_again, _ = timed(plain)
    finally:
        store.MANIFEST_INTERVAL, store.TABLE_INTERVAL = intervals
    assert report.ok
    base = min(plain_wall, plain_again)
    n = len(sweep.runs)
    return {
        "runs": n,
        "plain_wall": base,
        "sweep_wall": sweep_wall,
        "overhead_per_run": (sweep_wall - base) / n,
        "forced": forced,
    }


def _busy_loop(n: int) -> float:
    """CPU seconds of a plain Python loop of ``n`` additions."""
    t = time.process_time()
    s = 0
    for i in range(n):
        s += i
    return time.process_time() - t


def machine_ceiling(n: int = 20_000_000) -> dict[str, float]:
    """The speed-up two independent processes get on this machine: the same CPU-bound loop
    alone, then twice at once in two processes. On two independent cores it is 2; when the
    two CPUs share a physical core or a host, less, and no pool can do better."""
    from concurrent.futures import ProcessPoolExecutor

    alone = timed(lambda: _busy_loop(n))[0]
    with ProcessPoolExecutor(2) as pool:
        pool.submit(_busy_loop, 1000).result()  # start both workers first
        pool.submit(_busy_loop, 1000).result()
        pair = timed(lambda: list(pool.map(_busy_loop, [n, n])))[0]
    return {"alone": alone, "pair": pair, "speedup": 2 * alone / pair}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--json", type=Path, metavar="PATH", help="save the results as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("QVECSIM_CODE_VERSION", "bench")
    horizon = "5 s" if args.quick else "20 s"
    print(
        f"python {platform.python_version()}, {cpu_count()} CPUs usable, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_sweep-") as tmp:
        folder = Path(tmp)
        s = speedup(folder, horizon)
        results["speedup"] = s
        ok = "PASS" if s["speedup"] >= TARGET_SPEEDUP else "MISS"
        print(f"\n1. process pool, {s['runs']} runs of {s['horizon']} simulated")
        for w in (1, 2):
            cores = s[f"cpu_{w}"] / s[f"wall_{w}"]
            print(
                f"   {w} worker{'s' if w > 1 else ' '}: {s[f'wall_{w}']:7.2f} s wall, runs' CPU "
                f"{s[f'cpu_{w}']:.2f} s = {cores:.2f} cores busy on average"
            )
        print(f"   speed-up 2 vs 1 worker: {s['speedup']:.2f}x (target >= {TARGET_SPEEDUP}) {ok}")
        print(f"   runs tables identical: {s['identical']}")
        cpu_ratio = (s["cpu_2"] / s["wall_2"]) / (s["cpu_1"] / s["wall_1"])
        print(
            f"   cores busy, 2 vs 1 worker: {cpu_ratio:.2f}x (below 2 when other processes "
            "share the CPUs; see the load average)"
        )
        c = machine_ceiling()
        results["machine_ceiling"] = c
        print(
            f"   ceiling of this machine: two independent processes run a CPU-bound loop "
            f"{c['speedup']:.2f}x as fast as one ({c['alone']:.2f} s alone, "
            f"{c['pair']:.2f} s for two at once)"
        )
        print("\n2. store overhead per run (in-process sweep minus plain runs)")
        for forced in (False, True):
            o = overhead(folder, "0.5 s", 20 if args.quick else 60, forced)
            results["overhead_forced" if forced else "overhead"] = o
            per = o["overhead_per_run"]
            ok = "PASS" if per < TARGET_OVERHEAD else "MISS"
            label = "every write forced" if forced else "usual throttling  "
            print(
                f"   {label}: {per * 1e3:6.1f} ms/run over {o['runs']} runs "
                f"(plain {o['plain_wall']:.2f} s, sweep {o['sweep_wall']:.2f} s; "
                f"target < {TARGET_OVERHEAD * 1e3:.0f} ms) {ok}"
            )
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

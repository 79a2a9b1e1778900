"""Executors: the same sweep gives byte-identical tables in-process, in a process pool of
any size and on a Ray cluster; dead workers are retried; a killed driver resumes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO

from sim.errors import SimError
from sim.executors import (
    InProcessExecutor,
    ProcessExecutor,
    WorkerFailure,
    loopback_only,
    make_executor,
)
from sim.runner import run_scenario
from sim.store import RUNS_TABLE
from sim.sweep import load_sweep, run_sweep

CODE_VERSION = "test-executors"

TINY = """\
name: tiny
seed: 3
engine: {horizon: HORIZON, epoch: 10 ms}
vehicles: {count: 3}
servers: {count: 2, placement: line, bandwidth: 10 MHz}
mobility: {model: random_waypoint, step: 100 ms, area: {width: 400 m, height: 200 m}}
channel: {reference_gain: -40 dB, noise: -70 dBm}
output: {task_table: false, plots: false}
sweep:
  grid:
    servers.bandwidth: [3 MHz, 6 MHz, 9 MHz]
    policy: [local, greedy]
  replications: 2
"""


def sweep_file(folder: Path, horizon: str = "1 s", replications: int = 2) -> Path:
    path = folder / f"tiny-{horizon.replace(' ', '')}.yaml"
    text = TINY.replace("HORIZON", horizon).replace(
        "replications: 2", f"replications: {replications}"
    )
    path.write_text(text)
    return path


def aggregate_bytes(out: Path) -> bytes | None:
    """The aggregate table of a results folder, when the aggregation module exists."""
    try:
        from sim.aggregate import aggregate, parquet_bytes
        from sim.report import load_sweep as load_results
    except ImportError:
        return None
    inputs = load_results(out)
    return parquet_bytes(aggregate(inputs.runs, inputs.axes))


@pytest.fixture(scope="module")
def pinned():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QVECSIM_CODE_VERSION", CODE_VERSION)
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory, pinned):
    """The tiny sweep run in this process: its runs table and aggregate table."""
    folder = tmp_path_factory.mktemp("reference")
    path = sweep_file(folder)
    report = run_sweep(load_sweep(path), folder / "out", InProcessExecutor(), quiet=True)
    assert report.ok and report.finished == 12
    out = folder / "out"
    return path, (out / RUNS_TABLE).read_bytes(), aggregate_bytes(out)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_process_pool_of_any_size_gives_the_same_tables(tmp_path, reference, workers):
    path, table, agg = reference
    with ProcessExecutor(workers) as executor:
        report = run_sweep(load_sweep(path), tmp_path / "out", executor, quiet=True)
    assert report.ok and report.finished == 12
    assert (tmp_path / "out" / RUNS_TABLE).read_bytes() == table
    assert aggregate_bytes(tmp_path / "out") == agg


def _square_or_die(item: tuple[int, str | None, bool]) -> int:
    index, marker, always = item
    if always or (marker is not None and not os.path.exists(marker)):
        if marker is not None:
            Path(marker).touch()
        os._exit(3)
    return index * index


def test_a_dead_pool_worker_is_replaced_and_its_item_retried(tmp_path):
    marker = str(tmp_path / "died-once")
    items = [(i, marker if i == 3 else None, False) for i in range(8)]
    with ProcessExecutor(2) as executor:
        got = dict(executor.map_unordered(_square_or_die, items))
    assert os.path.exists(marker)
    assert got == {i: i * i for i in range(8)}


def test_an_item_that_always_kills_its_worker_fails_alone(tmp_path):
    items = [(i, None, i == 2) for i in range(6)]
    started: list[int] = []
    with ProcessExecutor(2, max_attempts=2) as executor:
        got = dict(executor.map_unordered(_square_or_die, items, on_start=started.append))
    assert isinstance(got[2], WorkerFailure) and "died 2 times" in got[2].error
    assert {i: v for i, v in got.items() if i != 2} == {i: i * i for i in range(6) if i != 2}
    assert sorted(set(started)) == list(range(6))


def test_an_unknown_executor_is_a_clear_error():
    with pytest.raises(SimError, match="unknown executor 'slurm'"):
        make_executor("slurm")
    with pytest.raises(SimError, match="at least 1"):
        ProcessExecutor(0)
    with pytest.raises(SimError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1 "):
        make_executor("ray", address="127.0.0.1:1")


# --------------------------------------------------------------------------- Ray
import ray  # noqa: E402  (the Ray tests, after the executors' own)


@pytest.fixture(scope="module")
def ray_cluster(pinned):
    """One local Ray cluster for this module, on loopback, with two CPUs."""
    if ray.is_initialized():
        ray.shutdown()
    loopback_only()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address
        yield address
    finally:
        ray.shutdown()


def test_ray_gives_the_same_tables(tmp_path, reference, ray_cluster):
    path, table, agg = reference
    with make_executor("ray") as executor:
        assert executor.workers == 2
        report = run_sweep(load_sweep(path), tmp_path / "out", executor, quiet=True)
    assert report.ok and report.finished == 12
    assert (tmp_path / "out" / RUNS_TABLE).read_bytes() == table
    assert aggregate_bytes(tmp_path / "out") == agg
    assert ray.is_initialized()  # an existing connection is left open


def _kill_first_run_task(killed: list[int], stop: threading.Event) -> None:
    """Kill -9 the first Ray worker seen executing a run (a descendant of this process)."""
    me = psutil.Process()
    while not stop.is_set():
        for proc in me.children(recursive=True):
            try:
                title = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if title.startswith("ray::execute_run"):
                proc.send_signal(signal.SIGKILL)
                killed.append(proc.pid)
                return
        time.sleep(0.02)


def test_a_ray_worker_killed_mid_task_is_retried(tmp_path, ray_cluster):
    path = sweep_file(tmp_path, horizon="20 s", replications=1)
    sweep = load_sweep(path)
    sweep.runs = sweep.runs[:2]  # one run per CPU, long enough to be killed mid-way
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_run_task, args=(killed, stop), daemon=True)
    killer.start()
    try:
        with make_executor("ray") as executor:
            report = run_sweep(sweep, tmp_path / "out", executor, quiet=True)
    finally:
        stop.set()
        killer.join()
    assert killed, "no Ray worker was seen running a task"
    assert report.ok and report.finished == 2
    for spec in sweep.runs:
        stored = json.loads((tmp_path / "out" / "runs" / spec.run_id / "summary.json").read_text())
        fresh = run_scenario(spec.scenario, seed_path=spec.seed_path, write=False).summary
        assert stored == json.loads(json.dumps(fresh))


@pytest.mark.slow
def test_a_killed_ray_driver_resumes_with_only_the_missing_runs(tmp_path, reference, ray_cluster):
    path, table, agg = reference
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(REPO / "run_sim.py"),
        str(path),
        "--executor",
        "ray",
        "--address",
        ray_cluster,
        "--out",
        str(out),
        "--no-report",
        "--quiet",
    ]
    env = {
        **os.environ,
        "QVECSIM_CODE_VERSION": CODE_VERSION,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    driver = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 180
    placed: list[Path] = []
    while time.monotonic() < deadline and driver.poll() is None:
        runs = out / "runs"
        placed = [p for p in runs.iterdir() if p.name != ".staging"] if runs.is_dir() else []
        if len(placed) >= 3:
            break
        time.sleep(0.01)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.communicate()
    assert 3 <= len(placed) < 12, "the driver was not killed mid-sweep"
    before = {p.name: p.stat().st_ino for p in (out / "runs").iterdir() if p.name != ".staging"}

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = {p.name: p.stat().st_ino for p in (out / "runs").iterdir() if p.name != ".staging"}
    assert len(after) == 12
    assert all(after[name] == ino for name, ino in before.items())  # finished runs kept
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["finished"] == 12
    assert (out / RUNS_TABLE).read_bytes() == table
    assert aggregate_bytes(out) == agg

"""Crash safety: a sweep killed with SIGKILL at random moments, or stopped with Ctrl-C,
resumes to exactly the tables of an uninterrupted sweep, with no run lost, duplicated or
corrupt."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO

from sim.executors import InProcessExecutor
from sim.store import RUNS_TABLE
from sim.sweep import load_sweep, run_sweep

CODE_VERSION = "test-resume"
N_RUNS = 12

SWEEP = """\
name: resume
seed: 17
engine: {horizon: 60 s, epoch: 10 ms}  # runs of about 0.2 s: a kill lands mid-sweep
vehicles: {count: 3}
servers: {count: 2, placement: line, bandwidth: 10 MHz}
mobility: {model: random_waypoint, step: 100 ms, area: {width: 400 m, height: 200 m}}
channel: {reference_gain: -40 dB, noise: -70 dBm}
output: {task_table: false, plots: false}
sweep:
  grid:
    servers.bandwidth: [3 MHz, 9 MHz]
    policy: [local, nearest, greedy]
  replications: 2
"""


def aggregate_bytes(out: Path) -> bytes | None:
    try:
        from sim.aggregate import aggregate, parquet_bytes
        from sim.report import load_sweep as load_results
    except ImportError:
        return None
    inputs = load_results(out)
    return parquet_bytes(aggregate(inputs.runs, inputs.axes))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep file and the tables of an uninterrupted run of it."""
    folder = tmp_path_factory.mktemp("resume")
    path = folder / "sweep.yaml"
    path.write_text(SWEEP)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QVECSIM_CODE_VERSION", CODE_VERSION)
        report = run_sweep(load_sweep(path), folder / "ref", InProcessExecutor(), quiet=True)
    assert report.ok and report.finished == N_RUNS
    out = folder / "ref"
    summaries = {
        p.name: (p / "summary.json").read_bytes()
        for p in (out / "runs").iterdir()
        if p.name != ".staging"
    }
    return path, (out / RUNS_TABLE).read_bytes(), aggregate_bytes(out), summaries


def command(path: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        str(REPO / "run_sim.py"),
        str(path),
        "--out",
        str(out),
        "--workers",
        "2",
        "--no-report",
        "--quiet",
    ]


ENV = {**os.environ, "QVECSIM_CODE_VERSION": CODE_VERSION}


def placed(out: Path) -> list[Path]:
    runs = out / "runs"
    if not runs.is_dir():
        return []
    return [p for p in runs.iterdir() if p.name != ".staging"]


def check_complete(out: Path, reference) -> None:
    _, table, agg, summaries = reference
    assert (out / RUNS_TABLE).read_bytes() == table
    assert aggregate_bytes(out) == agg
    runs = pd.read_parquet(out / RUNS_TABLE)
    assert len(runs) == N_RUNS and runs.run_id.is_unique
    folders = {p.name: (p / "summary.json").read_bytes() for p in placed(out)}
    assert folders == summaries  # every run present once, each summary intact
    for p in placed(out):
        assert json.loads((p / "provenance.json").read_text())["status"] == "finished"
    assert list((out / "runs" / ".staging").iterdir()) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["finished"] * N_RUNS


def kill_and_resume(reference, out: Path, rng: random.Random) -> tuple[int, int]:
    """Start the sweep, SIGKILL it once ``k`` runs are placed (random k, random extra
    delay), resume it; return (k, runs placed when killed)."""
    path = reference[0]
    k = rng.randint(0, N_RUNS - 4)
    delay = rng.uniform(0.0, 0.15)
    proc = subprocess.Popen(
        command(path, out),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "manifest.json").exists() and len(placed(out)) >= k:
            break
        time.sleep(0.005)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    done_at_kill = len(placed(out))
    before = {p.name: p.stat().st_ino for p in placed(out)}
    resumed = subprocess.run(command(path, out), env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    after = {p.name: p.stat().st_ino for p in placed(out)}
    assert all(after[name] == ino for name, ino in before.items())  # nothing written twice
    check_complete(out, reference)
    return k, done_at_kill


@pytest.mark.parametrize("trial", range(3))
def test_sigkill_at_a_random_moment_then_resume_gives_the_same_tables(tmp_path, reference, trial):
    k, done = kill_and_resume(reference, tmp_path / "out", random.Random(1000 + trial))
    assert done < N_RUNS, f"trial {trial}: the sweep ended before it was killed (k={k})"


@pytest.mark.slow
def test_many_sigkills_then_resume_give_the_same_tables(tmp_path, reference):
    rng = random.Random(7)
    for trial in range(12):
        kill_and_resume(reference, tmp_path / f"out{trial}", rng)


def test_ctrl_c_stops_cleanly_with_exit_130_and_a_consistent_manifest(tmp_path, reference):
    path = reference[0]
    out = tmp_path / "out"
    # Ctrl-C at a terminal: the sweep must start with SIGINT not ignored. A shell starts a
    # background job with SIGINT ignored, the child inherits that, and Python then rightly
    # leaves it ignored; a handler here is reset to the default in the child at exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            command(path, out), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(placed(out)) < 2:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    states = [r["status"] for r in manifest["runs"]]
    assert "running" not in states and "failed" not in states
    finished = {r["run_id"] for r in manifest["runs"] if r["status"] == "finished"}
    assert finished == {p.name for p in placed(out)}
    assert 2 <= len(finished) < N_RUNS
    assert len(pd.read_parquet(out / RUNS_TABLE)) == len(finished)
    resumed = subprocess.run(command(path, out), env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    check_complete(out, reference)

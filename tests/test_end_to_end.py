"""run_sim.py end to end: a real run writes a complete, self-describing results folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO

from sim.executors import InProcessExecutor
from sim.runner import run_scenario
from sim.scenario import load_scenario
from sim.sweep import has_sweep, load_sweep, run_sweep

SCENARIOS = sorted(p for p in (REPO / "scenarios").rglob("*.yaml"))


def run_sim(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "run_sim.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_default_run_writes_a_complete_results_folder(tmp_path):
    out = tmp_path / "run"
    proc = run_sim("--horizon", "5 s", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(out) in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    table = pd.read_parquet(out / "tasks.parquet")
    assert summary["n_tasks"] == len(table) > 0
    assert summary["latency_mean"] == pytest.approx(table.latency.mean(), rel=1e-12)
    assert summary["deadline_miss_rate"] == pytest.approx(1 - table.deadline_met.mean())
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["status"] == "finished"
    assert prov["seed_root"] == 1
    assert "numpy" in json.dumps(prov) and "git" in json.dumps(prov)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["name"] == "quickstart" and config["engine"]["horizon"] == 5.0
    # the resolved configuration is itself a valid scenario that gives the same world
    again = load_scenario(out / "config.yaml")
    assert again == load_scenario(
        REPO / "scenarios" / "quickstart.yaml", overrides={"engine.horizon": "5 s"}
    )
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert {"latency_cdf.png", "latency_breakdown.png"} <= set(pngs)
    assert all((out / "figures" / p).stat().st_size > 1000 for p in pngs)


def test_rerun_of_the_resolved_config_gives_the_same_table(tmp_path):
    first = run_sim(
        "run",
        str(REPO / "scenarios" / "quickstart.yaml"),
        "--horizon",
        "3 s",
        "--out",
        str(tmp_path / "a"),
        "--quiet",
    )
    assert first.returncode == 0, first.stderr
    second = run_sim(
        "run", str(tmp_path / "a" / "config.yaml"), "--out", str(tmp_path / "b"), "--quiet"
    )
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "a" / "tasks.parquet").read_bytes() == (
        tmp_path / "b" / "tasks.parquet"
    ).read_bytes()


def test_failure_during_a_run_is_one_line_and_keeps_the_folder(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: {id: fixed, params: {server: 1}}\nservers: {count: 1}\n")
    proc = run_sim("run", str(bad), "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "policy.params.server" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_scenario_validates_and_runs(path, tmp_path):
    sc = load_scenario(path)
    short = sc.engine.epoch * max(2, sc.epochs_per_mobility_step + 1)
    if not has_sweep(path):
        sc = load_scenario(path, overrides={"engine.horizon": short, "engine.warmup": 0})
        result = run_scenario(sc, write=False)
        assert result.summary["n_tasks"] > 0
        return
    # a sweep: every point validated, each run once (one replication) for a second
    horizon = max(short, 1.0)
    sweep = load_sweep(path, {"engine.horizon": horizon, "engine.warmup": 0}, replications=1)
    report = run_sweep(sweep, tmp_path / "out", executor=InProcessExecutor(), quiet=True)
    assert report.ok and report.finished == sweep.n_points == len(sweep.runs)
    runs = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    assert len(runs) == sweep.n_points and (runs.n_tasks > 0).all()
    assert set(runs.policy) == {spec.policy for spec in sweep.runs}

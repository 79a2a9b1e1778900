"""The run store: folder layout, manifest, runs table, failures and resume semantics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from models.policies import base as policy_base
from models.policies.heuristics import Local
from sim import cli
from sim.errors import SimError
from sim.executors import InProcessExecutor, ProcessExecutor
from sim.provenance import write_bytes_atomic
from sim.store import RUNS_TABLE, RunStore, runs_table_bytes
from sim.sweep import load_sweep, run_sweep

TINY = """\
name: tiny
seed: 3
engine: {horizon: 1 s, epoch: 10 ms}
vehicles: {count: 3}
servers: {count: 2, placement: line, bandwidth: 10 MHz}
mobility: {model: random_waypoint, step: 100 ms, area: {width: 400 m, height: 200 m}}
channel: {reference_gain: -40 dB, noise: -70 dBm}
output: {task_table: false, plots: false}
sweep:
  grid:
    servers.bandwidth: [3 MHz, 9 MHz]
    policy: [local, POLICY]
  replications: 2
"""


@pytest.fixture(autouse=True)
def pinned_code_version(monkeypatch):
    monkeypatch.setenv("QVECSIM_CODE_VERSION", "test-store")


def tiny(tmp_path: Path, policy: str = "greedy") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.replace("POLICY", policy))
    return path


class Exploding(Local):
    """Raises on its first decision while armed (a failure injected from the tests)."""

    id = "exploding_test_policy"
    armed = True

    def decide(self, obs):
        if Exploding.armed:
            raise RuntimeError("injected failure in decide")
        return super().decide(obs)


@pytest.fixture
def exploding(monkeypatch):
    monkeypatch.setitem(policy_base._REGISTRY, Exploding.id, Exploding)
    monkeypatch.setattr(Exploding, "armed", True)
    return Exploding


def folder_ids(out: Path) -> dict[str, int]:
    """Inode of every placed run folder (a rewritten folder gets a new one)."""
    return {p.name: p.stat().st_ino for p in (out / "runs").iterdir() if p.name != ".staging"}


def test_a_sweep_writes_the_contracted_layout(tmp_path):
    sweep = load_sweep(tiny(tmp_path))
    out = tmp_path / "out"
    report = run_sweep(sweep, out, executor=InProcessExecutor(), quiet=True)
    assert report.ok and report.finished == 8 and report.skipped == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == 1 and manifest["scenario"] == "tiny"
    assert manifest["sweep_id"] == sweep.sweep_id and manifest["root_seed"] == 3
    assert manifest["replications"] == 2
    assert manifest["axes"][0] == {
        "path": "servers.bandwidth",
        "kind": "grid",
        "group": 0,
        "values": ["3 MHz", "9 MHz"],
        "si_values": [3e6, 9e6],
        "unit": "Hz",
    }
    assert manifest["axes"][1]["si_values"] == ["local", "greedy"]
    runs = manifest["runs"]
    assert [(r["point"], r["replication"]) for r in runs] == [
        (p, r) for p in range(4) for r in range(2)
    ]
    assert all(r["status"] == "finished" and r["error"] is None for r in runs)
    assert runs[3]["params"] == {"servers.bandwidth": 3e6, "policy": "greedy"}
    assert runs[3]["seed_path"] == [1] and runs[3]["policy"] == "greedy"
    assert sorted(folder_ids(out)) == sorted(r["run_id"] for r in runs)
    assert list((out / "runs" / ".staging").iterdir()) == []

    table = pd.read_parquet(out / RUNS_TABLE)
    assert list(table.columns[:5]) == [
        "run_id",
        "point",
        "replication",
        "policy",
        "servers.bandwidth",
    ]
    assert list(table.run_id) == [r["run_id"] for r in runs]
    schema = pq.read_schema(out / RUNS_TABLE)
    assert str(schema.field("point").type) == "int64"
    assert str(schema.field("servers.bandwidth").type) == "double"
    for rec, row in zip(runs, table.itertuples(index=False), strict=True):
        folder = out / "runs" / rec["run_id"]
        summary = json.loads((folder / "summary.json").read_text())
        for key, value in summary.items():
            if value is None:
                assert np.isnan(table.loc[table.run_id == rec["run_id"], key].iloc[0])
            elif isinstance(value, (int, float)):
                assert table.loc[table.run_id == rec["run_id"], key].iloc[0] == float(value)
        assert summary["n_tasks"] > 0
        with np.load(folder / "latency_hist.npz") as hist:
            assert len(hist["edges"]) == len(hist["counts"]) + 1
            assert int(hist["counts"].sum()) == summary["n_completed"]
        prov = json.loads((folder / "provenance.json").read_text())
        assert prov["status"] == "finished" and prov["run_id"] == rec["run_id"]
        assert prov["seed_path"] == rec["seed_path"] and prov["seed_root"] == 3
        assert prov["point"] == rec["point"] and prov["code_version"] == "test-store"
        for key in ("git", "packages", "hostname", "start_time", "end_time", "config"):
            assert prov[key] is not None
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert config["servers"]["bandwidth"] == rec["params"]["servers.bandwidth"]
        assert row.replication == rec["replication"]


def test_resuming_a_finished_sweep_runs_and_writes_nothing(tmp_path):
    sweep = load_sweep(tiny(tmp_path))
    out = tmp_path / "out"
    run_sweep(sweep, out, executor=InProcessExecutor(), quiet=True)
    before = folder_ids(out)
    table = (out / RUNS_TABLE).read_bytes()
    report = run_sweep(load_sweep(tiny(tmp_path)), out, executor=InProcessExecutor(), quiet=True)
    assert report.skipped == 8 and report.finished == 0 and report.ok
    assert folder_ids(out) == before
    assert (out / RUNS_TABLE).read_bytes() == table


@pytest.mark.parametrize("workers", [0, 2], ids=["inprocess", "process-pool"])
def test_a_failing_run_is_recorded_with_its_traceback_and_the_others_finish(
    tmp_path, exploding, workers
):
    sweep = load_sweep(tiny(tmp_path, Exploding.id))
    out = tmp_path / "out"
    executor = ProcessExecutor(workers) if workers else InProcessExecutor()
    lines: list[str] = []
    with executor:
        report = run_sweep(sweep, out, executor=executor, quiet=True, report=lines.append)
    assert report.finished == 4 and len(report.failed) == 4
    assert len(lines) == 4 and all("injected failure in decide" in ln for ln in lines)
    assert all("\n" not in ln and Exploding.id in ln for ln in lines)
    manifest = json.loads((out / "manifest.json").read_text())
    for rec in manifest["runs"]:
        prov = json.loads((out / "runs" / rec["run_id"] / "provenance.json").read_text())
        if rec["policy"] == Exploding.id:
            assert rec["status"] == "failed" and prov["status"] == "failed"
            assert rec["error"] == "RuntimeError: injected failure in decide"
            assert "Traceback" in prov["traceback"] and "in decide" in prov["traceback"]
            assert not (out / "runs" / rec["run_id"] / "summary.json").exists()
        else:
            assert rec["status"] == "finished" and prov["status"] == "finished"
    table = pd.read_parquet(out / RUNS_TABLE)
    assert set(table.policy) == {"local"} and len(table) == 4

    # resuming leaves failed runs alone; --retry-failed redoes them and only them
    before = folder_ids(out)
    again = run_sweep(
        load_sweep(tiny(tmp_path, Exploding.id)), out, InProcessExecutor(), quiet=True
    )
    assert again.finished == 0 and len(again.failed) == 4 and folder_ids(out) == before
    Exploding.armed = False
    retried = run_sweep(
        load_sweep(tiny(tmp_path, Exploding.id)),
        out,
        InProcessExecutor(),
        retry_failed=True,
        quiet=True,
    )
    assert retried.finished == 4 and retried.ok and retried.skipped == 4
    after = folder_ids(out)
    finished_before = [r["run_id"] for r in manifest["runs"] if r["status"] == "finished"]
    assert all(after[i] == before[i] for i in finished_before)
    assert len(pd.read_parquet(out / RUNS_TABLE)) == 8


def test_the_command_line_summarises_failures_with_a_nonzero_exit(tmp_path, exploding, capsys):
    path = tiny(tmp_path, Exploding.id)
    out = tmp_path / "out"
    args = [str(path), "--executor", "inprocess", "--out", str(out), "--no-report", "--quiet"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("injected failure in decide") == 8  # 4 as they happen, 4 at the end
    assert "error: 4 of 8 runs failed" in err and "--retry-failed" in err
    Exploding.armed = False
    assert cli.main([*args, "--retry-failed"]) == 0
    assert cli.main(args) == 0  # nothing left to do


def test_leftovers_of_an_interrupted_run_are_cleared_and_the_run_redone(tmp_path):
    sweep = load_sweep(tiny(tmp_path))
    out = tmp_path / "out"
    run_sweep(sweep, out, executor=InProcessExecutor(), quiet=True)
    reference = (out / RUNS_TABLE).read_bytes()
    victim = sweep.runs[5].run_id
    folder = out / "runs" / victim
    prov = json.loads((folder / "provenance.json").read_text())
    (folder / "summary.json").unlink()
    (folder / "provenance.json").write_text(json.dumps({**prov, "status": "running"}))
    stray = out / "runs" / ".staging" / f"{victim}.123.abcdef12"
    stray.mkdir()
    (stray / "summary.json").write_text("{half")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["runs"][5]["status"] = "running"
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / RUNS_TABLE).unlink()
    before = folder_ids(out)

    report = run_sweep(load_sweep(tiny(tmp_path)), out, executor=InProcessExecutor(), quiet=True)
    assert report.finished == 1 and report.skipped == 7
    after = folder_ids(out)
    assert all(after[k] == v for k, v in before.items() if k != victim)
    assert list((out / "runs" / ".staging").iterdir()) == []
    assert (out / RUNS_TABLE).read_bytes() == reference
    assert json.loads((out / "manifest.json").read_text())["counts"]["finished"] == 8


def test_a_folder_of_another_sweep_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_sweep(load_sweep(tiny(tmp_path)), out, executor=InProcessExecutor(), quiet=True)
    with pytest.raises(SimError, match="different sweep"):
        run_sweep(load_sweep(tiny(tmp_path, "nearest")), out, InProcessExecutor(), quiet=True)
    monkeypatch.setenv("QVECSIM_CODE_VERSION", "other-code")
    with pytest.raises(SimError, match="code version test-store"):
        run_sweep(load_sweep(tiny(tmp_path)), out, InProcessExecutor(), quiet=True)
    stray = tmp_path / "stray"
    (stray / "runs" / "something").mkdir(parents=True)
    with pytest.raises(SimError, match=r"no manifest\.json"):
        RunStore(stray, load_sweep(tiny(tmp_path))).open()


def test_a_lost_worker_is_recorded_as_a_failed_run(tmp_path):
    sweep = load_sweep(tiny(tmp_path))
    store = RunStore(tmp_path / "out", sweep)
    store.open()
    spec = sweep.runs[0]
    store.record_failure(spec, "the worker process died 3 times while running it")
    store.save(force=True)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["runs"][0]["status"] == "failed"
    assert manifest["runs"][0]["error"].startswith("the worker process died")
    assert manifest["counts"] == {"planned": 7, "running": 0, "finished": 0, "failed": 1}


def test_the_runs_table_depends_only_on_the_finished_runs(tmp_path):
    sweep = load_sweep(tiny(tmp_path))
    specs = sweep.runs[:3]
    summaries = [
        {"latency_mean": 0.5, "n_tasks": 10, "p": None, "label": "x"},
        {"latency_mean": 0.25, "n_tasks": 12, "p": 1.5, "label": "y"},
        {"latency_mean": 1.0, "n_tasks": 7, "p": 2.0, "label": "z"},
    ]
    rows = list(zip(specs, summaries, strict=True))
    data = runs_table_bytes(sweep, rows)
    assert data == runs_table_bytes(sweep, rows)
    table = pq.read_table(pa_buffer(data)).to_pandas()
    assert list(table.columns) == [
        "run_id",
        "point",
        "replication",
        "policy",
        "servers.bandwidth",
        "latency_mean",
        "n_tasks",
        "p",
    ]  # text-valued summary keys are left out; numbers sorted by name
    assert np.isnan(table.p[0]) and table.n_tasks.dtype == np.float64


def pa_buffer(data: bytes):
    import pyarrow as pa

    return pa.BufferReader(data)


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    target = tmp_path / "x.bin"
    write_bytes_atomic(target, b"one")
    write_bytes_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["x.bin"]


def test_the_report_is_built_after_a_sweep_and_by_plot(tmp_path, monkeypatch, capsys):
    import sim.report

    calls: list[tuple[Path, bool]] = []

    def build_outputs(results_dir: Path, quiet: bool = False) -> dict[str, Path]:
        calls.append((Path(results_dir), quiet))
        return {"report.md": Path(results_dir) / "report.md"}

    monkeypatch.setattr(sim.report, "build_outputs", build_outputs)
    out = tmp_path / "out"
    args = [str(tiny(tmp_path)), "--executor", "inprocess", "--out", str(out), "--quiet"]
    assert cli.main(args) == 0
    assert calls == [(out, True)]
    assert capsys.readouterr().out.strip() == str(out)
    assert cli.main(["plot", str(out)]) == 0
    assert calls[-1] == (out, False)
    assert capsys.readouterr().out.strip() == str(out / "report.md")
    assert cli.main(["plot", str(tmp_path / "nowhere")]) == 2
    assert "no such results folder" in capsys.readouterr().err


def test_without_the_report_module_a_sweep_still_completes(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "sim.report" else real(name, *a),
    )
    out = tmp_path / "out"
    assert cli.main([str(tiny(tmp_path)), "--executor", "inprocess", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "report: skipped (sim.report is not available)" in err
    assert "8 of 8 runs finished" in err
    assert cli.main(["plot", str(out)]) == 1


def test_sweep_options_are_refused_for_a_single_scenario(capsys):
    path = Path(__file__).resolve().parent.parent / "scenarios" / "quickstart.yaml"
    assert cli.main(["run", str(path), "--workers", "2"]) == 2
    assert "--workers: only for sweeps" in capsys.readouterr().err
    assert cli.main(["sweep", str(path)]) == 2
    assert "has no 'sweep' block" in capsys.readouterr().err

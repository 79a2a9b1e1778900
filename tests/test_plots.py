"""Run figures: written from a table, from the summary alone, and from empty input."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.plots import FIGURES, plot_run
from sim.records import TASK_COLUMNS, TaskTableWriter
from sim.summary import SummaryAccumulator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_run(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0.0, 2.0, n))
    offload = rng.random(n) < 0.5
    dropped = rng.random(n) < 0.05
    tx_time = np.where(offload, rng.uniform(1e-4, 2e-3, n), 0.0)
    wait_up = np.where(offload, rng.exponential(5e-4, n), np.nan)
    wait_c = rng.exponential(1e-3, n)
    compute_time = rng.uniform(5e-4, 3e-3, n)
    latency = np.where(dropped, np.nan, np.nan_to_num(wait_up) + tx_time + wait_c + compute_time)
    energy = np.where(offload, 0.5 * tx_time, 1e-3 * rng.random(n))
    return {
        "task_id": np.arange(n, dtype=np.int64),
        "vehicle": rng.integers(0, 5, n).astype(np.int32),
        "arrival": arrival,
        "size_bits": np.full(n, 1e4),
        "cycles": np.full(n, 1e6),
        "deadline": arrival + 0.01,
        "priority": np.zeros(n),
        "offload": offload,
        "server": np.where(offload, 0, -1).astype(np.int32),
        "share": offload * 0.5,
        "power": offload * 0.5,
        "rate": np.where(offload, 1e7, np.nan),
        "tx_start": arrival + np.nan_to_num(wait_up),
        "tx_time": tx_time,
        "wait_uplink": wait_up,
        "wait_qpu": np.full(n, np.nan),
        "qpu_time": np.full(n, np.nan),
        "qpu_fidelity": np.full(n, np.nan),
        "semantic_accuracy": np.ones(n),
        "compute_start": arrival,
        "wait_compute": wait_c,
        "compute_time": compute_time,
        "completion": arrival + latency,
        "latency": latency,
        "energy": energy,
        "edge_energy": np.where(offload, 1e-3, 0.0),
        "cost": 0.5 * np.nan_to_num(latency) + 0.5 * energy,
        "status": dropped.astype(np.int8),
        "deadline_met": ~dropped & (latency <= 0.01),
        "in_flight": np.zeros(n, bool),
    }


def make_run(tmp_path: Path, n: int) -> tuple[Path, dict, tuple]:
    batch = small_run(n)
    acc = SummaryAccumulator(2.0, 0.2, 0.5)
    acc.add(batch)
    table = tmp_path / "tasks.parquet"
    with TaskTableWriter(table, 1000) as writer:
        writer.append(batch)
    return table, acc.result(), acc.latency_histogram()


def assert_figures(paths: list[Path], names: tuple[str, ...]) -> None:
    assert sorted(p.name for p in paths) == sorted(
        f"{n}.{ext}" for n in names for ext in ("png", "svg")
    )
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000, p
        head = p.read_bytes()[:200]
        assert (
            head.startswith(PNG_MAGIC)
            if p.suffix == ".png"
            else b"<svg" in head or b"<?xml" in head
        )


def test_all_figures_from_a_table(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("sim.plots._EXACT_CDF_LIMIT", 1000)  # CDF from binned rows too
    table, summary, hist = make_run(tmp_path, 3000)
    paths = plot_run(tmp_path, table, summary, hist)
    assert_figures(paths, FIGURES)
    assert all(p.parent == tmp_path / "figures" for p in paths)


def test_summary_only_mode_skips_table_figures(tmp_path: Path, caplog) -> None:
    _, summary, hist = make_run(tmp_path, 500)
    with caplog.at_level(logging.INFO, logger="sim.plots"):
        paths = plot_run(tmp_path / "run", None, summary, hist)
    assert_figures(paths, ("latency_cdf", "latency_breakdown"))
    skipped = caplog.text
    for name in ("latency_hist", "energy_by_decision", "latency_over_time"):
        assert f"{name} skipped" in skipped


def test_missing_table_file_falls_back_to_the_summary(tmp_path: Path) -> None:
    _, summary, hist = make_run(tmp_path, 200)
    paths = plot_run(tmp_path / "run", tmp_path / "nope.parquet", summary, hist)
    assert_figures(paths, ("latency_cdf", "latency_breakdown"))
    paths = plot_run(tmp_path / "bare", None, summary, None)
    assert_figures(paths, ("latency_breakdown",))


def test_empty_table_and_empty_summary(tmp_path: Path) -> None:
    table = tmp_path / "tasks.parquet"
    TaskTableWriter(table, 1000).close()
    acc = SummaryAccumulator(1.0, 0.0, 0.5)
    paths = plot_run(tmp_path, table, acc.result(), acc.latency_histogram())
    assert_figures(paths, FIGURES)


@pytest.mark.parametrize("rows", [1, 40])
def test_tiny_tables(tmp_path: Path, rows: int) -> None:
    table, summary, hist = make_run(tmp_path, rows)
    assert_figures(plot_run(tmp_path, table, summary, hist), FIGURES)


def test_modules_do_not_import_matplotlib_or_pandas() -> None:
    code = (
        "import sys, sim.plots, sim.records, sim.summary, sim.provenance; "
        "bad = [m for m in ('matplotlib', 'pandas') if m in sys.modules]; "
        "sys.exit(f'imported at import time: {bad}' if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    assert TASK_COLUMNS  # the table layout is importable without either

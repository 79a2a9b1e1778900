"""Figures of a run's QPU jobs, from its ``qpu_jobs.parquet``: utilisation per QPU, queue
length over time per site, and the distribution of job waits per kind.

Drawn from the stored table only, so :func:`plot_qpu` can redo them for any results
folder; written as PNG and SVG into ``figures/`` in the style of :mod:`sim.plots`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from qpu.service import waiting_steps
from sim.errors import SimError
from sim.plots import _STYLE, _new_figure, _no_data, _save, _time_unit

FIGURES = ("qpu_utilisation", "qpu_queue_length", "qpu_wait")
_COMPLETED = 0


def _utilisation(jobs: Mapping[str, np.ndarray], horizon: float):
    """Busy share of [0, horizon] per QPU: executions (batches counted once) clipped to it."""
    done = jobs["status"] == _COMPLETED
    qpu = jobs["qpu"][done].astype(np.int64)
    start = jobs["start"][done]
    end = jobs["end"][done]
    batch = jobs["batch"][done] if "batch" in jobs else np.zeros(qpu.size, np.int64)
    # the jobs of one batch share start and end on one QPU: count each interval once
    key = np.unique(np.stack([qpu, start, end, batch.astype(np.float64)], axis=1), axis=0)
    n_qpu = int(jobs["qpu"].max()) + 1 if jobs["qpu"].size else 0
    busy = np.zeros(max(n_qpu, 0))
    if key.size:
        span = np.clip(key[:, 2], 0, horizon) - np.clip(key[:, 1], 0, horizon)
        np.add.at(busy, key[:, 0].astype(np.int64), span)
    return busy / horizon


def _fig_utilisation(jobs, horizon):
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_title("QPU utilisation")
    util = _utilisation(jobs, horizon)
    if util.size == 0:
        _no_data(ax, "no QPU job ran")
        return fig
    x = np.arange(util.size)
    sites = np.full(util.size, -1)
    sites[jobs["qpu"][jobs["qpu"] >= 0].astype(np.int64)] = jobs["site"][jobs["qpu"] >= 0]
    ax.bar(x, util * 100, color="tab:purple", alpha=0.85)
    ax.set_xticks(x, [f"QPU {q}\nsite {s}" for q, s in zip(x, sites, strict=True)])
    ax.set_ylabel("busy time [% of horizon]")
    ax.set_ylim(0, max(100.0, float(util.max()) * 110))
    return fig


def _fig_queue(jobs, horizon):
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_title("Jobs waiting per QPU site")
    sites = np.unique(jobs["site"])
    if sites.size == 0:
        _no_data(ax, "no QPU job was submitted")
        return fig
    scale, unit = _time_unit(horizon)
    for s in sites:
        times, length = waiting_steps(
            jobs["site"] == s, jobs["status"], jobs["submit"], jobs["start"], jobs["end"]
        )
        t = np.concatenate([[0.0], times, [horizon]])
        n = np.concatenate([[0.0], length, length[-1:] if length.size else [0.0]])
        keep = t <= horizon
        ax.step(t[keep] * scale, n[keep], where="post", label=f"site {s}", lw=1.0)
    ax.set_xlabel(f"time [{unit}]")
    ax.set_ylabel("jobs waiting")
    ax.set_xlim(0, horizon * scale)
    ax.legend(loc="upper right")
    return fig


def _fig_wait(jobs):
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_title("QPU job waits (completed jobs)")
    done = jobs["status"] == _COMPLETED
    wait = (jobs["start"] - jobs["submit"])[done]
    kinds = np.asarray(jobs["kind"]).astype(str)[done]
    if wait.size == 0:
        _no_data(ax, "no QPU job completed")
        return fig
    scale, unit = _time_unit(max(float(wait.max()), 1e-9))
    for kind in np.unique(kinds):
        w = np.sort(wait[kinds == kind]) * scale
        p = np.arange(1, w.size + 1) / w.size
        ax.step(w, p, where="post", label=f"{kind} (n={w.size})")
    for q in (0.5, 0.95, 0.99):
        v = float(np.quantile(wait, q)) * scale
        ax.axvline(v, color="grey", ls=":", lw=1)
        ax.text(v, 0.02 + 0.1 * (q > 0.9) + 0.1 * (q > 0.98), f" p{q * 100:g}", fontsize=9)
    ax.set_xlabel(f"wait [{unit}]")
    ax.set_ylabel("fraction of jobs")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right")
    return fig


def plot_qpu_jobs(jobs: Mapping[str, np.ndarray], horizon: float, out_dir: Path) -> list[Path]:
    """Write the QPU figures of the job table ``jobs`` into ``out_dir``."""
    import matplotlib

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    with matplotlib.rc_context(_STYLE):
        paths += _save(_fig_utilisation(jobs, horizon), out_dir, "qpu_utilisation")
        paths += _save(_fig_queue(jobs, horizon), out_dir, "qpu_queue_length")
        paths += _save(_fig_wait(jobs), out_dir, "qpu_wait")
    return paths


def plot_qpu(results_dir: str | Path) -> list[Path]:
    """Write the QPU figures of the run in ``results_dir`` into its ``figures/``."""
    import pyarrow.parquet as pq
    import yaml

    results_dir = Path(results_dir)
    path = results_dir / "qpu_jobs.parquet"
    config_path = results_dir / "config.yaml"
    if not path.exists() or not config_path.exists():
        raise SimError(f"{results_dir} holds no QPU job table (qpu_jobs.parquet and config.yaml)")
    table = pq.read_table(path)
    jobs = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
    horizon = float(yaml.safe_load(config_path.read_text())["engine"]["horizon"])
    if not math.isfinite(horizon) or horizon <= 0:
        raise SimError(f"config.yaml has an invalid engine.horizon: {horizon!r}")
    return plot_qpu_jobs(jobs, horizon, results_dir / "figures")

"""Figures of the digital twin of one run: age of information and forecast error over time.

:func:`plot_twin` reads a results folder (``config.yaml``, ``twin_sync.parquet`` and
``twin_rate.parquet``, the twin's series of :class:`sim.engine.EngineResult`) and writes
``figures/twin_aoi`` and ``figures/twin_rate`` (PNG and SVG); :func:`plot_twin_series` draws
the same from the series in memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sim.errors import SimError
from sim.plots import _STYLE, _new_figure, _no_data, _save

FIGURES = ("twin_aoi", "twin_rate")
"""Figure names; each is written as ``<name>.png`` and ``<name>.svg``."""


def aoi_curve(sync: Mapping[str, np.ndarray], horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """The AoI sawtooth over [0, horizon] as polyline vertices (t, age).

    The age grows with slope one from the last reception and drops at each reception to
    the age of the report received; before the first it is the age of the deployment
    state taken at time 0.
    """
    got = ~np.asarray(sync["lost"], dtype=bool)
    received = np.asarray(sync["received"], dtype=np.float64)[got]
    generated = np.asarray(sync["generated"], dtype=np.float64)[got]
    inside = received <= horizon
    received, generated = received[inside], generated[inside]
    t = [0.0]
    age = [0.0]
    g = 0.0
    for r, gen in zip(received, generated, strict=True):
        t += [r, r]
        age += [r - g, r - gen]
        g = gen
    t.append(horizon)
    age.append(horizon - g)
    return np.asarray(t), np.asarray(age)


def _fig_aoi(sync: Mapping[str, np.ndarray], horizon: float, twin: Mapping):
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    if len(sync["generated"]) == 0:
        _no_data(ax, "no sync in the horizon")
        return fig
    t, age = aoi_curve(sync, horizon)
    ax.plot(t, age * 1e3, color="black", lw=0.8, label="age of information")
    # time average of the sawtooth
    mean = float(np.sum((age[1:] + age[:-1]) * 0.5 * np.diff(t))) / horizon
    ax.axhline(mean * 1e3, color="tab:blue", ls="-", lw=1, label=f"mean {mean * 1e3:.3g} ms")
    d, T, p = float(twin["delay"]), float(twin["sync_period"]), float(twin["loss_probability"])
    closed = d + T * (1 + p) / (2 * (1 - p))
    ax.axhline(
        closed * 1e3,
        color="tab:orange",
        ls="--",
        lw=1,
        label=f"d + T(1+p)/(2(1-p)) = {closed * 1e3:.3g} ms",
    )
    lost = np.asarray(sync["generated"])[np.asarray(sync["lost"], dtype=bool)]
    if lost.size:
        ax.plot(lost, np.zeros(lost.size), "x", color="tab:red", ms=4, label="lost report")
    ax.set_xlim(0, horizon)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("age of information [ms]")
    ax.set_title(f"Twin AoI (sync every {T * 1e3:g} ms, delay {d * 1e3:g} ms, loss {p:g})")
    ax.legend(loc="upper right")
    return fig


def _fig_rate(rate: Mapping[str, np.ndarray], eps: float):
    fig = _new_figure(height=6.0, hspace=0.3, bottom=0.1)
    top = fig.add_subplot(2, 1, 1)
    bottom = fig.add_subplot(2, 1, 2, sharex=top)
    vehicle = np.asarray(rate["vehicle"])
    if vehicle.size == 0:
        _no_data(top, "no report received")
        return fig
    t = np.asarray(rate["t"])
    est = np.asarray(rate["estimate"])
    true = np.asarray(rate["true"])
    mean = vehicle == -1
    top.plot(t[mean], true[mean], color="black", lw=1.2, label="true rate (mean)")
    top.plot(t[mean], est[mean], color="tab:blue", lw=1.2, label="estimate (mean)")
    top.fill_between(
        t[mean],
        est[mean] - eps,
        est[mean] + eps,
        color="tab:blue",
        alpha=0.15,
        label=f"estimate +- eps ({eps:g} /s)",
    )
    first = vehicle == 0
    if first.any():
        top.plot(t[first], est[first], color="tab:orange", lw=0.7, label="estimate (vehicle 0)")
        top.plot(t[first], true[first], color="tab:orange", lw=0.7, ls="--")
    top.set_ylabel("arrival rate [1/s]")
    top.set_title("Twin rate estimate against the true rate")
    top.legend(loc="upper right", fontsize=8)
    err = np.abs(est - true)
    bottom.plot(t[mean], err[mean], color="tab:blue", lw=1, label="|mean error|")
    per = ~mean
    if per.any():
        times, idx = np.unique(t[per], return_inverse=True)
        mae = np.bincount(idx, weights=err[per]) / np.bincount(idx)
        bottom.plot(times, mae, color="tab:green", lw=1, label="MAE over recorded vehicles")
    bottom.axhline(eps, color="tab:red", ls="--", lw=1, label="eps")
    bottom.set_xlabel("time [s]")
    bottom.set_ylabel("|estimate - true| [1/s]")
    bottom.legend(loc="upper right", fontsize=8)
    return fig


def plot_twin_series(
    series: Mapping[str, Mapping[str, np.ndarray]],
    horizon: float,
    twin: Mapping,
    out_dir: Path,
) -> list[Path]:
    """Write the twin's figures from ``series`` (``twin_sync``, ``twin_rate``) into
    ``out_dir``; ``twin`` is the scenario's twin section as a mapping (SI values)."""
    import matplotlib

    for name in ("twin_sync", "twin_rate"):
        if name not in series:
            raise SimError(f"no '{name}' series: was the twin enabled in this run?")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    with matplotlib.rc_context(_STYLE):
        paths += _save(_fig_aoi(series["twin_sync"], horizon, twin), out_dir, "twin_aoi")
        paths += _save(_fig_rate(series["twin_rate"], float(twin["eps"])), out_dir, "twin_rate")
    return paths


def plot_twin(results_dir: str | Path) -> list[Path]:
    """Write the twin's figures of the run in ``results_dir`` into its ``figures/``."""
    import pyarrow.parquet as pq
    import yaml

    results_dir = Path(results_dir)
    config_path = results_dir / "config.yaml"
    if not config_path.exists():
        raise SimError(f"{results_dir} is not a results folder: it has no config.yaml")
    config = yaml.safe_load(config_path.read_text())
    twin = config.get("twin") or {}
    if not twin.get("enabled"):
        raise SimError(f"the run in {results_dir} has the twin off (twin.enabled: false)")
    series = {}
    for name in ("twin_sync", "twin_rate"):
        path = results_dir / f"{name}.parquet"
        if not path.exists():
            raise SimError(f"{path} is missing: the run wrote no twin series")
        table = pq.read_table(path)
        series[name] = {c: table.column(c).to_numpy() for c in table.column_names}
    horizon = float(config["engine"]["horizon"])
    if not math.isfinite(horizon) or horizon <= 0:
        raise SimError(f"config.yaml has an invalid engine.horizon: {horizon!r}")
    return plot_twin_series(series, horizon, twin, results_dir / "figures")

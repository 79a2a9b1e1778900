"""Figures of the agent comparison (:mod:`models.compare`), each as PNG and SVG.

- ``learning_reward``, ``learning_cost``, ``learning_latency`` (the paper's Figs. 3, 6
  and 5): per agent the mean over training seeds of the moving-averaged training-log value
  against the episode, with its 95 % t-interval as a band (no band with one seed);
- ``eval_<metric>`` and ``eval_latency_cdf``, ``eval_latency_breakdown``,
  ``eval_utilisation``: the held-out evaluation per policy, drawn by
  :func:`sim.sweep_plots.plot_sweep` with each agent's models pooled.

Same style and canvas as the sweep figures (:mod:`sim.plots`), so the files depend only on
the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim import plots, sweep_plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CURVE_LABELS = {
    "reward": ("Episode reward", "reward per episode (sum over its decisions)"),
    "cost": ("Cost", "mean cost per decision"),
    "latency": ("Latency", "mean latency per decision"),
}
"""Title and y label of each learning-curve figure."""


def window_text(window: int) -> str:
    """How the curves are smoothed, as the figures and the report say it."""
    if window <= 1:
        return "raw per-episode values (no smoothing)"
    return f"trailing moving average over {window} episodes (fewer for the first {window - 1})"


def _curve_figure(curves: pd.DataFrame, metric: str, window: int) -> Figure | None:
    rows = curves[(curves["metric"] == metric) & (curves["window"] == window)]
    if rows.empty:
        return None
    agents = list(dict.fromkeys(rows["agent"]))
    colours = sweep_plots._colours(agents)
    scale, unit = 1.0, ""
    if metric == "latency":
        scale, unit = plots._time_unit(float(np.nanmax(np.abs(rows["mean"].to_numpy(float)))))
    fig = plots._new_figure(7.5, 4.6, top=0.86)
    ax = fig.add_subplot()
    seeds = []
    for agent in agents:
        r = rows[rows["agent"] == agent].sort_values("episode")
        n = int(r["n"].max())
        seeds.append(n)
        x = r["episode"].to_numpy(float)
        ax.plot(
            x,
            r["mean"].to_numpy(float) * scale,
            color=colours[agent],
            lw=1.6,
            ls=sweep_plots._line_style(agents, agent)["ls"],
            label=f"{agent} ({n} seed{'s' if n != 1 else ''})",
        )
        lo, hi = r["ci_low"].to_numpy(float) * scale, r["ci_high"].to_numpy(float) * scale
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, color=colours[agent], alpha=0.2, lw=0)
    title, ylabel = CURVE_LABELS[metric]
    ax.set_xlabel("episode")
    ax.set_ylabel(ylabel + (f" [{unit}]" if unit else ""))
    ax.legend(loc="best", fontsize=9)
    band = (
        "mean over training seeds, band: 95 % t-CI over seeds"
        if max(seeds) >= 2
        else "one training seed: no confidence band (it needs at least 2 seeds)"
    )
    sweep_plots._suptitle(fig, f"{title} during training: {band}\n{window_text(window)}", 10.5)
    return fig


def plot_learning_curves(out_dir: Path, curves: pd.DataFrame, window: int) -> list[Path]:
    """Draw ``learning_<metric>`` for reward, cost and latency into ``out_dir``."""
    import matplotlib

    written: list[Path] = []
    with matplotlib.rc_context(plots._STYLE):
        for metric in CURVE_LABELS:
            fig = _curve_figure(curves, metric, window)
            if fig is not None:
                written += plots._save(fig, Path(out_dir), f"learning_{metric}")
    return written


def plot_evaluation(
    out_dir: Path,
    agg: pd.DataFrame,
    runs: pd.DataFrame,
    policies: Sequence[str],
    runs_dir: Path,
) -> list[Path]:
    """The sweep figures of the pooled evaluation (bars per policy with 95 % CIs, latency
    CDF, latency breakdown), renamed ``eval_<name>``."""
    out_dir = Path(out_dir)
    tmp = out_dir / ".eval"
    manifest = {"axes": [{"path": "policy", "si_values": list(policies)}]}
    shape = sweep_plots.sweep_shape(manifest, runs, [])
    drawn = sweep_plots.plot_sweep(tmp, agg, runs, shape, runs_dir)
    final = []
    for path in drawn:
        target = out_dir / f"eval_{path.name}"
        path.replace(target)
        final.append(target)
    tmp.rmdir()
    return final

"""Figures of a sweep, drawn from its stored results only.

Inputs are the aggregate table of :mod:`sim.aggregate`, the ``runs.parquet`` frame, the
manifest's axes and the per-run ``latency_hist.npz`` histograms, so ``run_sim.py plot``
redraws every figure without running anything. Figures (each as PNG and SVG):

- ``<metric>`` for mean and p95 latency, energy, cost and deadline-miss rate: the metric
  against the swept axis, one line per policy with its 95 % confidence band;
- ``utilisation``: uplink, edge and local CPU utilisation the same way, one column each;
- ``latency_cdf``: latency CDF per policy, pooled over the replications of a setting;
- ``latency_breakdown``: mean latency components per task as stacked bars per policy.

Layout with several swept axes: the x axis is the first numeric axis with at least two
values; every combination of the other axes (those not zipped with it) is a panel of the
same figure, so a figure compares like with like on a shared y axis. Without a numeric axis
(e.g. only the policy is swept), the metrics are bars per policy (grouped by setting) with
95 % confidence intervals as error bars. The CDF and breakdown figures have one panel per
setting of all non-policy axes, at most :data:`MAX_PANELS` of them, evenly spread over the
settings when there are more.

Axis values are shown in the manifest's unit with an SI prefix that keeps the numbers
readable (Hz as MHz, s as ms, ...); metric values likewise (latency in ms or s, energy in
J or mJ, rates and utilisations in %). Drawing uses the per-run figures' style and Agg
canvas (:mod:`sim.plots`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim import plots

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

METRIC_FIGURES = ("latency_mean", "latency_p95", "energy_mean", "cost_mean", "deadline_miss_rate")
"""Metrics drawn against the swept axis, one figure each."""

UTILISATION = ("utilisation_uplink_mean", "utilisation_edge_mean", "utilisation_local_mean")
MAX_PANELS = 12
_MAX_COLUMNS = 4

_LABELS = {
    "latency_mean": "mean latency",
    "latency_p50": "median latency",
    "latency_p90": "p90 latency",
    "latency_p95": "p95 latency",
    "latency_p99": "p99 latency",
    "energy_mean": "mean energy per task",
    "edge_energy_mean": "mean edge energy per task",
    "cost_mean": "mean cost per task",
    "deadline_miss_rate": "deadline-miss rate",
    "drop_rate": "drop rate",
    "completion_rate": "completion rate",
    "offload_fraction": "offloaded fraction",
    "throughput": "throughput",
    "utilisation_uplink_mean": "uplink utilisation",
    "utilisation_edge_mean": "edge CPU utilisation",
    "utilisation_local_mean": "local CPU utilisation",
}
_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"))
_SMALL_PREFIXES = ((1e-6, "µ"), (1e-9, "n"))


# ---------------------------------------------------------------------------- units
def metric_label(metric: str) -> str:
    """A readable name of a summary metric (the key itself when none is known)."""
    return _LABELS.get(metric, metric.replace("_", " "))


def metric_unit(metric: str, values: Sequence[float] | np.ndarray = ()) -> tuple[float, str]:
    """Scale and unit that show ``metric`` (SI values) readably: time in s/ms/µs, energy in
    J/mJ/µJ, rates, fractions and utilisations in %, throughput in tasks/s; the cost of
    eq. [18] mixes seconds and joules and has no unit (empty string)."""
    finite = [abs(float(v)) for v in values if v is not None and np.isfinite(v)]
    top = max(finite, default=0.0)
    if _is_time(metric):
        return plots._time_unit(top)
    if metric.startswith(("energy", "edge_energy")):
        return plots._energy_unit(top)
    if metric.endswith(("_rate", "_fraction")) or metric.startswith("utilisation"):
        return 100.0, "%"
    if metric == "throughput":
        return 1.0, "tasks/s"
    return 1.0, ""


def _is_time(metric: str) -> bool:
    return metric.startswith(("latency", "wait_", "tx_time", "compute_time")) or (
        metric.startswith("qpu_") and ("time" in metric or "wait" in metric)
    )


def axis_unit(unit: str, values: Sequence[Any]) -> tuple[float, str]:
    """Scale and unit label for an axis in SI ``unit`` with these ``values``: an SI prefix
    for plain units (``Hz`` -> ``MHz``, ``s`` -> ``ms``, ``bit`` -> ``kbit``), the unit as
    is otherwise (compound or logarithmic units, no unit)."""
    if not unit or not unit.isalpha() or unit.lower().startswith("db"):
        return 1.0, unit
    finite = [abs(float(v)) for v in values if _is_number(v) and np.isfinite(float(v))]
    finite = [v for v in finite if v > 0]
    if not finite:
        return 1.0, unit
    top = max(finite)
    for factor, prefix in (*_PREFIXES, *_SMALL_PREFIXES):
        if top >= factor:
            return 1.0 / factor, prefix + unit
    return 1e9, "n" + unit


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def number_text(value: float) -> str:
    """``value`` to 3 significant digits, without an exponent from 0.001 to 10 million
    (``0.0123``, ``45.6``, ``1190``, ``2.5e-05``)."""
    v = float(value)
    if not np.isfinite(v):
        return "n/a"
    if 1e3 <= abs(v) < 1e7:
        return f"{float(f'{v:.3g}'):.0f}"
    return f"{v:.3g}"


def format_value(value: Any, scale: float = 1.0, unit: str = "") -> str:
    """``value`` times ``scale`` to 3 significant digits with its unit (``"5 MHz"``)."""
    if not _is_number(value):
        return str(value)
    v = float(value)
    if not np.isfinite(v):
        return "n/a"
    text = number_text(v * scale)
    return f"{text} {unit}" if unit else text


# ---------------------------------------------------------------------------- sweep shape
@dataclass
class Axis:
    """One swept (non-policy) axis as the figures need it."""

    path: str
    unit: str
    group: int | None
    numeric: bool
    values: list[Any]
    scale: float = 1.0
    label_unit: str = ""

    def show(self, value: Any) -> str:
        return format_value(value, self.scale, self.label_unit)

    def title(self) -> str:
        return f"{self.path} [{self.label_unit}]" if self.label_unit else self.path


@dataclass
class SweepShape:
    """The axes, policies and settings of a sweep, in display order."""

    axes: list[Axis]
    policies: list[str]
    settings: list[tuple]  # values of the non-policy axes, ordered by point
    x: Axis | None = None
    facet_axes: list[Axis] = field(default_factory=list)

    def setting_label(self, values: Sequence[Any], axes: Sequence[Axis] | None = None) -> str:
        axes = self.axes if axes is None else axes
        index = {a.path: i for i, a in enumerate(self.axes)}
        return ", ".join(f"{a.path} = {a.show(values[index[a.path]])}" for a in axes)


def sweep_shape(
    manifest: Mapping[str, Any], runs: pd.DataFrame, axis_cols: list[str]
) -> SweepShape:
    """Axes (with display units), policy order and settings of a sweep; chooses the x axis
    and facet axes of the metric figures (see the module docstring)."""
    by_path = {a.get("path"): a for a in manifest.get("axes", []) if isinstance(a, Mapping)}
    axes: list[Axis] = []
    for path in axis_cols:
        spec = by_path.get(path, {})
        col = runs[path] if path in runs.columns else pd.Series([], dtype=object)
        numeric = pd.api.types.is_numeric_dtype(col) and col.dtype != bool
        values = sorted(col.dropna().unique().tolist()) if numeric else _ordered(col)
        axis = Axis(path, str(spec.get("unit") or ""), spec.get("group"), numeric, values)
        if numeric:
            axis.scale, axis.label_unit = axis_unit(axis.unit, values)
        else:
            axis.label_unit = axis.unit
        axes.append(axis)
    policy_spec = by_path.get("policy", {})
    listed = [str(p) for p in policy_spec.get("si_values") or policy_spec.get("values") or []]
    present = sorted(runs["policy"].astype(str).unique()) if "policy" in runs.columns else []
    policies = [p for p in listed if p in present] + [p for p in present if p not in listed]
    settings: list[tuple] = []
    if not runs.empty:
        order = (
            runs.groupby(axis_cols, sort=False, dropna=False)["point"].min() if axis_cols else None
        )
        if order is None:
            settings = [()]
        else:
            keys = order.sort_values(kind="stable").index.tolist()
            settings = [k if isinstance(k, tuple) else (k,) for k in keys]
    shape = SweepShape(axes, policies, settings)
    for axis in axes:
        if axis.numeric and len(axis.values) >= 2:
            shape.x = axis
            break
    if shape.x is not None:
        x = shape.x
        shape.facet_axes = [
            a
            for a in axes
            if a is not x and (x.group is None or a.group != x.group) and len(a.values) > 1
        ]
    return shape


def _ordered(col: pd.Series) -> list[Any]:
    seen: dict[Any, None] = {}
    for v in col.tolist():
        seen.setdefault(v, None)
    return list(seen)


def _colours(policies: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {p: cmap(i % 10) for i, p in enumerate(policies)}


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_LINESTYLES = ("-", "--", "-.", ":")


def _line_style(policies: Sequence[str], policy: str) -> dict[str, Any]:
    """Marker and dash pattern of a policy, so that lines that coincide stay visible."""
    i = list(policies).index(policy)
    return {"marker": _MARKERS[i % len(_MARKERS)], "ls": _LINESTYLES[i % len(_LINESTYLES)]}


_AXES_HEIGHT = 2.7  # inches per panel
_AXES_WIDTH = 3.6
_TITLE_LINE = 0.22  # inches per line of a panel title


def _panels(n: int, ncols: int | None = None, title_lines: int = 0) -> tuple[Figure, list[Axes]]:
    """A figure of ``n`` panels in rows of ``ncols`` (default: up to four), sized so that
    panel titles of ``title_lines`` lines, axis labels and the figure title never overlap."""
    ncols = ncols or min(max(n, 1), _MAX_COLUMNS)
    nrows = max(1, math.ceil(n / ncols))
    gap_h = 0.6 + _TITLE_LINE * title_lines  # x label, tick labels and the next title
    gap_w = 0.95  # y tick labels and y label of the next panel
    top, bottom, left, right = 0.55 + _TITLE_LINE * title_lines, 0.6, 0.85, 0.2
    width = max(7.0, left + right + ncols * _AXES_WIDTH + (ncols - 1) * gap_w)
    axes_w = (width - left - right - (ncols - 1) * gap_w) / ncols
    height = top + bottom + nrows * _AXES_HEIGHT + (nrows - 1) * gap_h
    fig = plots._new_figure(
        width,
        height,
        left=left / width,
        right=1.0 - right / width,
        bottom=bottom / height,
        top=1.0 - top / height,
        wspace=gap_w / axes_w,
        hspace=gap_h / _AXES_HEIGHT,
    )
    axs = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axs[n:]:
        ax.set_visible(False)
    return fig, axs[:n]


def _suptitle(fig: Figure, text: str, fontsize: float = 12) -> None:
    """The figure title, a fixed distance below the top edge whatever the height."""
    fig.suptitle(text, fontsize=fontsize, y=1.0 - 0.1 / fig.get_figheight(), va="top")


def _plain_log_axis(ax: Axes, which: str = "x") -> None:
    """Log-scale axis labelled with plain numbers (``20``, ``30``) instead of powers."""
    from matplotlib.ticker import LogFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _pick(n: int, limit: int = MAX_PANELS) -> list[int]:
    if n <= limit:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, limit).round().astype(int).tolist()))


# ---------------------------------------------------------------------------- metric panels
def _facet_values(shape: SweepShape) -> list[tuple]:
    index = {a.path: i for i, a in enumerate(shape.axes)}
    out: dict[tuple, None] = {}
    for s in shape.settings:
        out.setdefault(tuple(s[index[a.path]] for a in shape.facet_axes), None)
    return list(out) or [()]


def _facet_rows(agg: pd.DataFrame, shape: SweepShape, facet: tuple) -> pd.DataFrame:
    mask = np.ones(len(agg), dtype=bool)
    for axis, value in zip(shape.facet_axes, facet, strict=True):
        mask &= (agg[axis.path] == value).to_numpy()
    return agg[mask]


def _draw_lines(
    ax: Axes,
    rows: pd.DataFrame,
    metric: str,
    shape: SweepShape,
    colours: Mapping[str, Any],
    scale: float,
) -> bool:
    """Lines with CI bands against ``shape.x``; returns whether anything was drawn."""
    x = shape.x
    assert x is not None
    drawn = False
    rows = rows[rows["metric"] == metric]
    for policy in shape.policies:
        r = rows[rows["policy"] == policy].sort_values(x.path)
        if r.empty or not np.isfinite(r["mean"]).any():
            continue
        xs = r[x.path].to_numpy(float) * x.scale
        ax.plot(
            xs,
            r["mean"].to_numpy(float) * scale,
            color=colours[policy],
            lw=1.6,
            ms=5,
            mfc="none",
            label=policy,
            **_line_style(shape.policies, policy),
        )
        lo, hi = r["ci_low"].to_numpy(float) * scale, r["ci_high"].to_numpy(float) * scale
        if np.isfinite(lo).any():
            ax.fill_between(xs, lo, hi, color=colours[policy], alpha=0.18, lw=0)
        drawn = True
    values = [v for v in x.values if _is_number(v)]
    if values and min(values) > 0 and max(values) / min(values) >= 50:
        _plain_log_axis(ax)
    ax.set_xlabel(x.title())
    return drawn


def _draw_bars(
    ax: Axes,
    rows: pd.DataFrame,
    metric: str,
    shape: SweepShape,
    colours: Mapping[str, Any],
    scale: float,
) -> bool:
    """Bars per policy (grouped by setting) with CI error bars."""
    rows = rows[rows["metric"] == metric]
    if rows.empty:
        return False
    n_pol = max(len(shape.policies), 1)
    width = 0.8 / n_pol
    drawn = False
    for j, policy in enumerate(shape.policies):
        for i, setting in enumerate(shape.settings):
            r = _setting_rows(rows, shape, setting)
            r = r[r["policy"] == policy]
            if r.empty or not np.isfinite(r["mean"].iloc[0]):
                continue
            mean, lo, hi = (float(r[c].iloc[0]) * scale for c in ("mean", "ci_low", "ci_high"))
            err = [[mean - lo], [hi - mean]] if np.isfinite(lo) else None
            ax.bar(
                i + (j - (n_pol - 1) / 2) * width,
                mean,
                width * 0.92,
                yerr=err,
                capsize=4,
                color=colours[policy],
                alpha=0.85,
                label=policy if i == 0 or not drawn else None,
            )
            drawn = True
    ticks = [shape.setting_label(s) or "all runs" for s in shape.settings]
    ax.set_xticks(range(len(shape.settings)), ticks, fontsize=9)
    ax.grid(axis="x", visible=False)
    return drawn


def _setting_rows(rows: pd.DataFrame, shape: SweepShape, setting: Sequence[Any]) -> pd.DataFrame:
    mask = np.ones(len(rows), dtype=bool)
    for axis, value in zip(shape.axes, setting, strict=True):
        col = rows[axis.path]
        mask &= (col.isna() if pd.isna(value) else col == value).to_numpy()
    return rows[mask]


def _dedupe_legend(ax: Axes, **kw: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    seen: dict[str, Any] = {}
    for h, lbl in zip(handles, labels, strict=True):
        seen.setdefault(lbl, h)
    if seen:
        ax.legend(list(seen.values()), list(seen), **kw)


def _metric_figure(
    agg: pd.DataFrame, shape: SweepShape, metrics: Sequence[str], title: str
) -> Figure | None:
    """One column per metric, one row per facet (or one row of facets for one metric)."""
    present = [m for m in metrics if (agg["metric"] == m).any()]
    if not present:
        return None
    facets = _facet_values(shape) if shape.x is not None else [()]
    panels = [(f, m) for f in facets for m in present]
    ncols = len(present) if len(present) > 1 else None
    title_lines = (len(present) > 1) + bool(facets[0])
    fig, axs = _panels(len(panels), ncols, title_lines)
    colours = _colours(shape.policies)
    missing_ci = False
    for ax, (facet, metric) in zip(axs, panels, strict=True):
        rows = _facet_rows(agg, shape, facet) if shape.x is not None else agg
        values = rows.loc[rows["metric"] == metric, ["mean", "ci_low", "ci_high"]].to_numpy()
        means = values[:, 0][np.isfinite(values[:, 0]) & (values[:, 0] > 0)]
        log_y = (
            shape.x is not None
            and not metric.endswith(("_rate", "_fraction"))
            and not metric.startswith("utilisation")
            and means.size > 1
            and means.max() >= 100 * means.min()
        )
        if log_y:  # values over orders of magnitude: a unit for the typical one
            scale, unit = metric_unit(metric, [float(np.median(means))])
        else:
            scale, unit = metric_unit(metric, values.ravel())
        draw = _draw_lines if shape.x is not None else _draw_bars
        if not draw(ax, rows, metric, shape, colours, scale):
            plots._no_data(ax, "no values")
            continue
        m_rows = rows[rows["metric"] == metric]
        missing_ci |= bool((m_rows["n"] < 2).any())
        ylabel = metric_label(metric) + (f" [{unit}]" if unit else "")
        if log_y:
            _plain_log_axis(ax, "y")
            ax.set_ylabel(ylabel + " (log scale)")
        else:
            ax.set_ylabel(ylabel)
            if unit == "%" or np.nanmin(values) >= 0:
                ax.set_ylim(bottom=0)
        parts = []
        if len(present) > 1:
            parts.append(metric_label(metric))
        if facet:
            parts.append(shape.setting_label(_expand(shape, facet), shape.facet_axes))
        if parts:
            ax.set_title("\n".join(parts), fontsize=10)
    _dedupe_legend(axs[0], loc="best", fontsize=9)
    note = " (no band where a point has a single replication)" if missing_ci else ""
    _suptitle(fig, f"{title}: mean and 95 % CI over replications{note}", fontsize=12)
    return fig


def _expand(shape: SweepShape, facet: tuple) -> tuple:
    """A full setting tuple carrying ``facet`` at its axes (for labels)."""
    values: list[Any] = [None] * len(shape.axes)
    index = {a.path: i for i, a in enumerate(shape.axes)}
    for axis, value in zip(shape.facet_axes, facet, strict=True):
        values[index[axis.path]] = value
    return tuple(values)


# ---------------------------------------------------------------------------- latency CDF
def pooled_histogram(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray] | None:
    """The latency histograms of ``paths`` (``latency_hist.npz`` files) added together.

    The summaries' histograms share one fixed bin grid, so bins are matched by their upper
    edge (the last one of each run is clamped to its maximum, the first lower edge to its
    minimum). Returns ``(edges, counts)`` with ``edges[0]`` the smallest lower edge, or
    None when no file could be read or none holds a completed task."""
    uppers: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    lowest = math.inf
    for path in paths:
        try:
            with np.load(path) as data:
                e, c = np.asarray(data["edges"], float), np.asarray(data["counts"], float)
        except (OSError, KeyError, ValueError) as err:
            log.warning("latency histogram %s unreadable: %s", path, err)
            continue
        if e.size < 2 or c.size != e.size - 1 or not c.sum():
            continue
        lowest = min(lowest, float(e[0]))
        uppers.append(e[1:])
        counts.append(c)
    if not uppers:
        return None
    upper, inverse = np.unique(np.concatenate(uppers), return_inverse=True)
    total = np.bincount(inverse, np.concatenate(counts), upper.size)
    return np.concatenate([[lowest], upper]), total


def _hist_paths(runs: pd.DataFrame, runs_dir: Path) -> list[Path]:
    return [runs_dir / str(r) / "latency_hist.npz" for r in runs["run_id"].tolist()]


def _cdf_figure(runs: pd.DataFrame, shape: SweepShape, runs_dir: Path) -> Figure | None:
    picked = [shape.settings[i] for i in _pick(len(shape.settings))]
    if not picked:
        return None
    fig, axs = _panels(len(picked), title_lines=int(bool(shape.axes)))
    colours = _colours(shape.policies)
    any_line = False
    for ax, setting in zip(axs, picked, strict=True):
        rows = _setting_rows(runs, shape, setting)
        curves = []
        for policy in shape.policies:
            r = rows[rows["policy"] == policy]
            pooled = pooled_histogram(_hist_paths(r, runs_dir)) if not r.empty else None
            if pooled is not None:
                xs, ys = plots._histogram_cdf(*pooled)
                keep = xs > 0
                curves.append((policy, len(r), xs[keep], ys[keep]))
        if not curves:
            plots._no_data(ax, "no latency histogram")
            continue
        any_line = True
        scale, unit = plots._time_unit(float(np.median(np.concatenate([c[2] for c in curves]))))
        for policy, n_runs, xs, ys in curves:
            ax.plot(
                xs * scale,
                ys,
                color=colours[policy],
                lw=1.5,
                ls=_line_style(shape.policies, policy)["ls"],
                drawstyle="steps-post",
                label=f"{policy} ({n_runs} runs)",
            )
        _plain_log_axis(ax)
        ax.set_xlabel(f"latency [{unit}] (log scale)")
        ax.set_ylim(0, 1.005)
        ax.set_ylabel("fraction of completed tasks")
        label = shape.setting_label(setting)
        if label:
            ax.set_title(label, fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    if not any_line:
        return None
    more = len(shape.settings) - len(picked)
    extra = f"; {len(picked)} of {len(shape.settings)} settings shown" if more else ""
    _suptitle(fig, f"Latency CDF per policy, tasks of all replications pooled{extra}", fontsize=12)
    return fig


# ---------------------------------------------------------------------------- breakdown
def qpu_columns(columns: Sequence[str]) -> list[str]:
    """Summary columns holding a mean QPU time per task (``qpu_*time*_mean`` and the like)."""
    return sorted(
        c
        for c in columns
        if c.startswith("qpu_") and c.endswith("_mean") and ("time" in c or "wait" in c)
    )


def breakdown(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean latency components per task of each run, as columns ``uplink wait``,
    ``transmission``, ``compute wait``, ``computation`` and any QPU columns.

    The summary's uplink wait and transmission means are over offloaded tasks; they are
    weighted by the offloaded fraction so that every component is per task and the stack
    is comparable with the mean latency. QPU columns are taken as stored.
    """
    frac = runs.get("offload_fraction", pd.Series(np.nan, index=runs.index)).astype(float)

    def col(name: str) -> pd.Series:
        return runs.get(name, pd.Series(np.nan, index=runs.index)).astype(float)

    offloaded = frac.fillna(0.0)
    out = pd.DataFrame(
        {
            "uplink wait": np.where(offloaded > 0, offloaded * col("wait_uplink_mean"), 0.0),
            "transmission": np.where(offloaded > 0, offloaded * col("tx_time_mean"), 0.0),
            "compute wait": col("wait_compute_mean"),
            "computation": col("compute_time_mean"),
        },
        index=runs.index,
    )
    for c in qpu_columns(list(runs.columns)):
        out["QPU " + c[4:-5].replace("_", " ")] = col(c)
    return out


_COMPONENT_COLOURS = {
    "uplink wait": "#f4a582",
    "transmission": "#d6604d",
    "compute wait": "#92c5de",
    "computation": "#4393c3",
}


def _breakdown_figure(runs: pd.DataFrame, shape: SweepShape) -> Figure | None:
    picked = [shape.settings[i] for i in _pick(len(shape.settings))]
    if not picked or runs.empty:
        return None
    parts = breakdown(runs)
    top = float(np.nanmax(np.r_[parts.to_numpy().sum(axis=1), runs.get("latency_mean", [0])]))
    scale, unit = plots._time_unit(top if np.isfinite(top) else 0.0)
    fig, axs = _panels(len(picked), title_lines=int(bool(shape.axes)))
    qpu_colours = iter(["#762a83", "#af8dc3", "#5aae61", "#1b7837"])
    colours = {c: _COMPONENT_COLOURS.get(c) or next(qpu_colours, "0.5") for c in parts.columns}
    for ax, setting in zip(axs, picked, strict=True):
        rows = _setting_rows(runs, shape, setting)
        x = np.arange(len(shape.policies))
        bottom = np.zeros(len(shape.policies))
        for comp in parts.columns:
            heights = np.array(
                [
                    _nanmean(parts.loc[rows.index[rows["policy"] == p], comp]) * scale
                    for p in shape.policies
                ]
            )
            heights = np.nan_to_num(heights)
            ax.bar(x, heights, 0.6, bottom=bottom, color=colours[comp], label=comp)
            bottom += heights
        means = [_nanmean(rows.loc[rows["policy"] == p, "latency_mean"]) for p in shape.policies]
        ax.plot(x, np.array(means) * scale, "k_", ms=22, mew=2, label="mean latency")
        ax.set_xticks(x, shape.policies, fontsize=9)
        ax.set_ylabel(f"mean time per task [{unit}]")
        ax.grid(axis="x", visible=False)
        label = shape.setting_label(setting)
        if label:
            ax.set_title(label, fontsize=10)
    _dedupe_legend(axs[0], loc="best", fontsize=8)
    more = len(shape.settings) - len(picked)
    extra = f"; {len(picked)} of {len(shape.settings)} settings shown" if more else ""
    _suptitle(
        fig,
        "Latency components per task, mean over replications (uplink terms × offloaded "
        f"fraction){extra}",
        fontsize=11,
    )
    return fig


def _nanmean(values: pd.Series | Sequence[float]) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


# ---------------------------------------------------------------------------- entry point
def plot_sweep(
    out_dir: Path,
    agg: pd.DataFrame,
    runs: pd.DataFrame,
    shape: SweepShape,
    runs_dir: Path,
) -> list[Path]:
    """Draw every sweep figure into ``out_dir`` (PNG and SVG) and return the paths.

    ``agg`` is :func:`sim.aggregate.aggregate` of ``runs``; ``runs_dir`` holds the per-run
    folders with ``latency_hist.npz``. Figures without data are skipped (and logged).
    """
    import matplotlib

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if runs.empty or agg.empty:
        return []
    builders = {
        m: (lambda m=m: _metric_figure(agg, shape, [m], metric_label(m).capitalize()))
        for m in METRIC_FIGURES
    }
    builders["utilisation"] = lambda: _metric_figure(agg, shape, UTILISATION, "Utilisation")
    builders["latency_cdf"] = lambda: _cdf_figure(runs, shape, runs_dir)
    builders["latency_breakdown"] = lambda: _breakdown_figure(runs, shape)
    written: list[Path] = []
    with matplotlib.rc_context(plots._STYLE):
        for name, build in builders.items():
            fig = build()
            if fig is None:
                log.info("sweep figure %s skipped: no data", name)
                continue
            written += plots._save(fig, out_dir, name)
    return written

"""Figures of one run, written as PNG and SVG into ``<results>/figures/``.

The task table is read once, column subset only, in bounded-size batches, and reduced to
fixed-size histograms and time bins, so a table of tens of millions of rows plots in
bounded memory. Without a table (summary-only runs) the figures that need per-task rows
are skipped; the latency CDF then comes from the summary's latency histogram and the
latency breakdown from the summary's means.

Matplotlib is imported inside the functions and drawn with the Agg canvas directly (no
pyplot, no global backend switch), so importing this module is cheap and safe anywhere.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.summary import LogHistogram

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

FIGURES = (
    "latency_cdf",
    "latency_hist",
    "latency_breakdown",
    "energy_by_decision",
    "latency_over_time",
)
"""Figure names; each is written as ``<name>.png`` and ``<name>.svg``."""

_TABLE_FIGURES = ("latency_hist", "energy_by_decision", "latency_over_time")
_SCAN_COLUMNS = ["arrival", "latency", "offload", "energy", "edge_energy", "status"]
_EXACT_CDF_LIMIT = 500_000  # completed tasks up to which the CDF is drawn from the rows
_CDF_POINTS = 4000
_DISPLAY_BINS = 60
_TIME_BINS = 2000
_SCATTER_POINTS = 10_000
_LOCAL, _OFFLOADED, _ALL = "tab:blue", "tab:orange", "black"
_STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "svg.hashsalt": "qvecsim",
}


# ---------------------------------------------------------------------------- table scan
@dataclass
class _Moments:
    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def add(self, x: np.ndarray) -> None:
        self.count += x.shape[0]
        self.total += float(np.sum(x))
        self.total_sq += float(np.dot(x, x))

    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def std(self) -> float:
        if self.count < 2:
            return 0.0
        var = (self.total_sq - self.total * self.total / self.count) / (self.count - 1)
        return math.sqrt(max(var, 0.0))


@dataclass
class _TableScan:
    """Fixed-size reductions of the task table, gathered in one streaming pass."""

    n_rows: int = 0
    n_completed: int = 0
    exact: list[np.ndarray] | None = field(default_factory=list)
    latency: LogHistogram = field(default_factory=LogHistogram)
    latency_by: dict[bool, LogHistogram] = field(
        default_factory=lambda: {False: LogHistogram(), True: LogHistogram()}
    )
    energy_by: dict[bool, LogHistogram] = field(
        default_factory=lambda: {False: LogHistogram(-70, 30), True: LogHistogram(-70, 30)}
    )
    energy: dict[bool, _Moments] = field(
        default_factory=lambda: {False: _Moments(), True: _Moments()}
    )
    edge_energy: dict[bool, _Moments] = field(
        default_factory=lambda: {False: _Moments(), True: _Moments()}
    )
    t_lo: float = 0.0
    t_hi: float = 1.0
    t_sum: dict[str, np.ndarray] = field(default_factory=dict)
    t_count: dict[str, np.ndarray] = field(default_factory=dict)
    scatter_t: list[np.ndarray] = field(default_factory=list)
    scatter_y: list[np.ndarray] = field(default_factory=list)

    def exact_latencies(self) -> np.ndarray | None:
        if self.exact is None:
            return None
        return np.sort(np.concatenate(self.exact)) if self.exact else np.zeros(0)


def _arrival_range(pf: Any) -> tuple[float, float] | None:
    """Arrival range from the row-group statistics, None if any group lacks them."""
    meta = pf.metadata
    index = pf.schema_arrow.get_field_index("arrival")
    lo, hi = math.inf, -math.inf
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(index).statistics
        if stats is None or not stats.has_min_max:
            return None
        lo, hi = min(lo, float(stats.min)), max(hi, float(stats.max))
    return (lo, hi) if lo <= hi else None


def _scan_table(path: Path, batch_rows: int = 1 << 20) -> _TableScan:
    import pyarrow.parquet as pq

    scan = _TableScan()
    with pq.ParquetFile(path) as pf:
        scan.n_rows = pf.metadata.num_rows
        span = _arrival_range(pf)
        if span is None and scan.n_rows:
            lo, hi = math.inf, -math.inf
            for rb in pf.iter_batches(batch_size=batch_rows, columns=["arrival"]):
                a = rb.column(0).to_numpy()
                lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
            span = (lo, hi)
        if span is not None:
            lo, hi = span
            scan.t_lo = lo
            scan.t_hi = hi if hi > lo else lo + 1e-6 * max(1.0, abs(lo))
        for key in ("all", "local", "offloaded"):
            scan.t_sum[key] = np.zeros(_TIME_BINS)
            scan.t_count[key] = np.zeros(_TIME_BINS, dtype=np.int64)
        stride = max(1, math.ceil(scan.n_rows / _SCATTER_POINTS))
        seen = 0
        for rb in pf.iter_batches(batch_size=batch_rows, columns=_SCAN_COLUMNS):
            cols = {
                name: rb.column(i).to_numpy(zero_copy_only=False)
                for i, name in enumerate(_SCAN_COLUMNS)
            }
            _scan_batch(scan, cols, seen, stride)
            seen += rb.num_rows
    return scan


def _scan_batch(scan: _TableScan, cols: dict[str, np.ndarray], seen: int, stride: int) -> None:
    arrival, latency = cols["arrival"], cols["latency"]
    offload = cols["offload"].astype(bool)
    done = (cols["status"] == 0) & np.isfinite(latency)
    scan.n_completed += int(np.count_nonzero(done))
    scan.latency.add(latency, done)
    if scan.exact is not None:
        if scan.n_completed <= _EXACT_CDF_LIMIT:
            scan.exact.append(latency[done])
        else:
            scan.exact = None
    for off in (False, True):
        mask = offload == off
        scan.latency_by[off].add(latency, done & mask)
        energy = cols["energy"][mask]
        energy = energy[np.isfinite(energy)]
        scan.energy[off].add(energy)
        scan.energy_by[off].add(energy, energy > 0)
        edge = cols["edge_energy"][mask]
        scan.edge_energy[off].add(edge[np.isfinite(edge)])
    width = (scan.t_hi - scan.t_lo) / _TIME_BINS
    index = np.clip(((arrival - scan.t_lo) / width).astype(np.int64), 0, _TIME_BINS - 1)
    for key, mask in (("all", done), ("local", done & ~offload), ("offloaded", done & offload)):
        scan.t_sum[key] += np.bincount(index[mask], latency[mask], _TIME_BINS)
        scan.t_count[key] += np.bincount(index[mask], minlength=_TIME_BINS)
    rows = np.arange(seen, seen + arrival.shape[0])
    pick = done & (rows % stride == 0)
    scan.scatter_t.append(arrival[pick])
    scan.scatter_y.append(latency[pick])


# ---------------------------------------------------------------------------- helpers
def _time_unit(value: float) -> tuple[float, str]:
    """Scale factor and unit label that show ``value`` seconds with readable numbers."""
    v = abs(value) if value is not None and math.isfinite(value) else 0.0
    if v >= 1.0 or v == 0.0:
        return 1.0, "s"
    if v >= 1e-3:
        return 1e3, "ms"
    if v >= 1e-6:
        return 1e6, "µs"
    return 1e9, "ns"


def _energy_unit(value: float) -> tuple[float, str]:
    scale, unit = _time_unit(value)
    return scale, {"s": "J", "ms": "mJ", "µs": "µJ", "ns": "nJ"}[unit]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _display_histogram(
    hist: LogHistogram, lo: float, hi: float, bins: int = _DISPLAY_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``hist`` re-binned onto ``bins`` geometric bins spanning [lo, hi]."""
    edges = np.geomspace(lo, hi, bins + 1)
    fine_edges = hist.edges()
    counts = hist.counts
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return edges, np.zeros(bins)
    a, b = fine_edges[nonzero], fine_edges[nonzero + 1]
    centre = np.sqrt(np.maximum(a, lo) * np.maximum(b, lo))
    where = np.clip(np.searchsorted(edges, centre, side="right") - 1, 0, bins - 1)
    return edges, np.bincount(where, counts[nonzero].astype(np.float64), bins)


def _positive_range(*hists: LogHistogram) -> tuple[float, float] | None:
    lo, hi = math.inf, -math.inf
    for h in hists:
        if h.n:
            lo, hi = min(lo, h.min), max(hi, h.max)
    if not math.isfinite(lo):
        return None
    lo = max(lo, 1e-12)
    hi = max(hi, lo * 1.01)
    return lo / 1.05, hi * 1.05


def _no_data(ax: Axes, text: str) -> None:
    ax.text(
        0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=12, color="0.4"
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _new_figure(width: float = 7.0, height: float = 4.5, **margins: float) -> Figure:
    """An Agg-backed figure with fixed margins (a layout engine would double the drawing
    time, which dominates plotting)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(**{"left": 0.11, "right": 0.97, "bottom": 0.13, "top": 0.92, **margins})
    return fig


def _save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    fig.savefig(png, format="png", metadata={"Software": None})
    fig.savefig(svg, format="svg", metadata={"Date": None})
    return [png, svg]


def _quantile_lines(ax: Axes, summary: Mapping[str, Any], scale: float = 1.0) -> None:
    for key, label, style in (
        ("latency_p50", "p50", ":"),
        ("latency_p95", "p95", "--"),
        ("latency_p99", "p99", "-."),
    ):
        v = _number(summary.get(key))
        if v is not None and v > 0:
            ax.axvline(v * scale, color="0.45", lw=1, ls=style, label=f"{label} (summary)")


# ---------------------------------------------------------------------------- figures
def _fig_latency_cdf(
    scan: _TableScan | None,
    summary: Mapping[str, Any],
    histogram: tuple[np.ndarray, np.ndarray] | None,
) -> Figure | None:
    xs: np.ndarray | None = None
    ys: np.ndarray | None = None
    source = ""
    if scan is not None:
        exact = scan.exact_latencies()
        if exact is not None:
            source = "all completed tasks"
            n = exact.shape[0]
            if n:
                idx = np.unique(np.linspace(0, n - 1, min(n, _CDF_POINTS)).astype(np.int64))
                xs, ys = exact[idx], (idx + 1) / n
        else:
            source = "task table, 0.1 % bins"
            edges, counts = scan.latency.histogram()
            xs, ys = _histogram_cdf(edges, counts)
    elif histogram is not None:
        source = "summary histogram, 0.1 % bins"
        edges, counts = (np.asarray(histogram[0], float), np.asarray(histogram[1], float))
        xs, ys = _histogram_cdf(edges, counts)
    else:
        return None
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_title(f"Latency CDF of completed tasks ({source})")
    if xs is None or ys is None or xs.size == 0:
        _no_data(ax, "no completed tasks")
        return fig
    keep = xs > 0
    ax.plot(xs[keep], ys[keep], color=_ALL, lw=1.6, drawstyle="steps-post", label="empirical CDF")
    _quantile_lines(ax, summary)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.005)
    ax.set_xlabel("latency [s] (log scale)")
    ax.set_ylabel("fraction of completed tasks")
    ax.legend(loc="lower right")
    return fig


def _histogram_cdf(edges: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = float(np.sum(counts))
    if total == 0 or edges.size < 2:
        return np.zeros(0), np.zeros(0)
    nonzero = np.flatnonzero(counts)
    cum = np.cumsum(counts)[nonzero] / total
    x = np.asarray(edges)[nonzero + 1]
    if x.size > _CDF_POINTS:
        idx = np.unique(np.linspace(0, x.size - 1, _CDF_POINTS).astype(np.int64))
        x, cum = x[idx], cum[idx]
    return x, cum


def _fig_latency_hist(scan: _TableScan) -> Figure:
    fig = _new_figure()
    ax = fig.add_subplot()
    local, offl = scan.latency_by[False], scan.latency_by[True]
    ax.set_title(f"Latency of completed tasks: local ({local.n:,}) vs offloaded ({offl.n:,})")
    span = _positive_range(local, offl)
    if span is None:
        _no_data(ax, "no completed tasks")
        return fig
    for hist, colour, label in ((local, _LOCAL, "local"), (offl, _OFFLOADED, "offloaded")):
        if hist.n == 0:
            continue
        edges, counts = _display_histogram(hist, *span)
        ax.stairs(counts, edges, color=colour, lw=1.5, label=label)
        ax.stairs(counts, edges, color=colour, alpha=0.2, fill=True)
    ax.set_xscale("log")
    ax.set_xlabel("latency [s] (log scale, equal-width bins in log)")
    ax.set_ylabel("tasks per bin")
    ax.legend()
    return fig


def _fig_latency_breakdown(summary: Mapping[str, Any]) -> Figure:
    parts = [
        ("wait_uplink_mean", "uplink wait\n(offloaded)", _OFFLOADED),
        ("tx_time_mean", "transmission\n(offloaded)", _OFFLOADED),
        ("wait_compute_mean", "compute wait\n(not dropped)", "tab:green"),
        ("compute_time_mean", "computation\n(not dropped)", "tab:green"),
    ]
    if _number(summary.get("qpu_time_mean")) is not None:  # runs with QPU jobs
        parts[2:2] = [
            ("wait_qpu_mean", "QPU wait\n(QPU jobs)", "tab:purple"),
            ("qpu_time_mean", "QPU execution\n(QPU jobs)", "tab:purple"),
        ]
    values = [_number(summary.get(k)) for k, _, _ in parts]
    mean = _number(summary.get("latency_mean"))
    known = [v for v in [*values, mean] if v is not None]
    fig = _new_figure(left=0.2)
    ax = fig.add_subplot()
    ax.set_title("Mean latency components per task")
    if not known:
        _no_data(ax, "no latency statistics in the summary")
        return fig
    scale, unit = _time_unit(max(known))
    y = np.arange(len(parts))
    shown = [0.0 if v is None else v * scale for v in values]
    ax.barh(y, shown, color=[c for _, _, c in parts], alpha=0.85)
    for yi, v, raw in zip(y, shown, values, strict=True):
        ax.text(v, yi, "  n/a" if raw is None else f"  {v:.3g} {unit}", va="center", fontsize=10)
    ax.set_yticks(y, [label for _, label, _ in parts])
    ax.invert_yaxis()
    if mean is not None:
        ax.axvline(
            mean * scale,
            color=_ALL,
            ls="--",
            lw=1.2,
            label=f"mean latency of completed tasks: {mean * scale:.3g} {unit}",
        )
        ax.legend(loc="lower right")
    ax.set_xlim(0, max([*shown, (mean or 0.0) * scale]) * 1.25 or 1.0)
    ax.set_xlabel(f"mean time [{unit}]")
    ax.grid(axis="y", visible=False)
    return fig


def _fig_energy(scan: _TableScan) -> Figure:
    fig = _new_figure(10.0, 4.8, left=0.08, right=0.98, bottom=0.16, top=0.85, wspace=0.22)
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.6])
    names = {False: "local", True: "offloaded"}
    colours = {False: _LOCAL, True: _OFFLOADED}
    fig.suptitle("Energy per task by decision")
    present = [off for off in (False, True) if scan.energy[off].count]
    if not present:
        _no_data(left, "no tasks")
        _no_data(right, "no tasks")
        return fig
    means = {off: scan.energy[off].mean() for off in present}
    edge = {
        off: scan.edge_energy[off].mean() if scan.edge_energy[off].count else 0.0 for off in present
    }
    scale, unit = _energy_unit(max([*means.values(), *edge.values()]))
    x = np.arange(len(present))
    vehicle = [means[off] * scale for off in present]
    std = [scan.energy[off].std() * scale for off in present]
    errors = [np.minimum(std, vehicle), std]  # energy is not negative: clip the lower bar
    ax = left
    ax.bar(
        x,
        vehicle,
        yerr=errors,
        capsize=6,
        color=[colours[o] for o in present],
        alpha=0.85,
        label="vehicle (± 1 std)",
    )
    if any(edge[off] > 0 for off in present):
        ax.bar(
            x,
            [edge[off] * scale for off in present],
            bottom=vehicle,
            color="none",
            edgecolor="0.3",
            hatch="//",
            label="edge server",
        )
        ax.legend(loc="upper left")
    ax.set_xticks(x, [f"{names[o]}\n({scan.energy[o].count:,} tasks)" for o in present])
    ax.set_ylabel(f"mean energy per task [{unit}]")
    ax.set_title("mean")
    ax.grid(axis="x", visible=False)
    ax = right
    span = _positive_range(*(scan.energy_by[o] for o in present))
    ax.set_title("distribution of vehicle energy (> 0)")
    if span is None:
        _no_data(ax, "no task with positive energy")
        return fig
    for off in present:
        hist = scan.energy_by[off]
        if hist.n == 0:
            continue
        edges, counts = _display_histogram(hist, *span)
        ax.stairs(counts, edges, color=colours[off], lw=1.5, label=names[off])
        ax.stairs(counts, edges, color=colours[off], alpha=0.2, fill=True)
    ax.set_xscale("log")
    ax.set_xlabel("vehicle energy per task [J] (log scale)")
    ax.set_ylabel("tasks per bin")
    ax.legend()
    return fig


def _fig_latency_over_time(scan: _TableScan, summary: Mapping[str, Any]) -> Figure:
    fig = _new_figure(9.0, 4.5, left=0.09, right=0.98)
    ax = fig.add_subplot()
    count = scan.t_count.get("all")
    if count is None or not count.any():
        ax.set_title("Latency over time")
        _no_data(ax, "no completed tasks")
        return fig
    # about 2 % of the time span, widened so that a window holds some 20 tasks on average
    window = min(
        _TIME_BINS // 4, max(_TIME_BINS // 50, math.ceil(20 * _TIME_BINS / int(count.sum())))
    )
    width = (scan.t_hi - scan.t_lo) / _TIME_BINS
    centres = scan.t_lo + (np.arange(_TIME_BINS) + 0.5) * width
    kernel = np.ones(window)
    mean_all = scan.t_sum["all"][count > 0] / count[count > 0]
    scale, unit = _time_unit(float(np.median(mean_all)))
    ax.set_title(f"Latency vs arrival time (rolling mean over {window * width:.3g} s of arrivals)")
    t = np.concatenate(scan.scatter_t) if scan.scatter_t else np.zeros(0)
    y = np.concatenate(scan.scatter_y) if scan.scatter_y else np.zeros(0)
    if t.size:
        few = t.size <= 2000
        ax.scatter(
            t,
            y * scale,
            s=10 if few else 3,
            color="0.55",
            alpha=0.6 if few else 0.35,
            lw=0,
            rasterized=True,
            label=f"tasks ({t.size:,} shown of {scan.n_completed:,})",
        )
    for key, colour in (("all", _ALL), ("local", _LOCAL), ("offloaded", _OFFLOADED)):
        c = np.convolve(scan.t_count[key], kernel, mode="same")
        if not c.any() or (key != "all" and scan.t_count[key].sum() == count.sum()):
            continue
        s = np.convolve(scan.t_sum[key], kernel, mode="same")
        with np.errstate(invalid="ignore", divide="ignore"):
            rolling = np.where(c > 0, s / c, np.nan)
        ax.plot(
            centres,
            rolling * scale,
            color=colour,
            lw=2 if key == "all" else 1.3,
            label=f"rolling mean, {key}",
        )
    warmup = _number(summary.get("warmup"))
    if warmup:
        ax.axvline(warmup, color="tab:red", ls=":", lw=1.2, label="end of warm-up")
    ax.set_xlabel("arrival time [s]")
    ax.set_ylabel(f"latency [{unit}]")
    if y.size:
        top = float(np.quantile(y, 0.995)) * scale
        if top > 0:
            ax.set_ylim(0, top * 1.1)
    ax.legend(loc="upper left", fontsize=9, markerscale=3)
    return fig


# ---------------------------------------------------------------------------- entry point
def plot_run(
    results_dir: Path,
    table_path: Path | None,
    summary: Mapping[str, Any],
    histogram: tuple[np.ndarray, np.ndarray] | None,
) -> list[Path]:
    """Write the run's figures into ``results_dir/figures`` and return their paths.

    ``table_path`` is the run's ``tasks.parquet`` (None, or a missing file, for a
    summary-only run), ``summary`` the dict of ``summary.json`` and ``histogram`` the
    ``(edges, counts)`` latency histogram of the summary. Figures whose data are missing
    are skipped and logged; figures whose data are present but empty (e.g. no completed
    task) are written with a note saying so.
    """
    import matplotlib

    out_dir = Path(results_dir) / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    table = Path(table_path) if table_path is not None else None
    if table is not None and not table.is_file():
        log.warning("task table %s not found: plotting from the summary only", table)
        table = None
    scan = _scan_table(table) if table is not None else None

    builders = {
        "latency_cdf": lambda: _fig_latency_cdf(scan, summary, histogram),
        "latency_hist": lambda: _fig_latency_hist(scan) if scan else None,
        "latency_breakdown": lambda: _fig_latency_breakdown(summary),
        "energy_by_decision": lambda: _fig_energy(scan) if scan else None,
        "latency_over_time": lambda: _fig_latency_over_time(scan, summary) if scan else None,
    }
    written: list[Path] = []
    with matplotlib.rc_context(_STYLE):
        for name in FIGURES:
            fig = builders[name]()
            if fig is None:
                why = (
                    "needs the task table"
                    if name in _TABLE_FIGURES
                    else "needs the task table or the summary histogram"
                )
                log.info("figure %s skipped: %s", name, why)
                continue
            written += _save(fig, out_dir, name)
    return written

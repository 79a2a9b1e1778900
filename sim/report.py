"""Reports of a results folder: tables, figures, ``report.md`` and a self-contained
``report.html``, built from stored files only.

:func:`build_outputs` takes either

- a sweep folder (``manifest.json``, ``runs.parquet``, ``runs/<run_id>/``): it writes the
  aggregate table (:func:`sim.aggregate.aggregate`) as ``aggregate.parquet`` and
  ``aggregate.csv``, the pairwise policy comparisons (:func:`sim.aggregate.compare`) as
  ``comparisons.parquet`` and ``comparisons.csv``, the figures of
  :mod:`sim.sweep_plots` into ``figures/``, and a report saying what was run (scenario,
  axes, replications, policies, seeds, code revision), the results with 95 % confidence
  intervals, the figures, and every pairwise policy difference with its Welch interval and
  p-value, with a sentence only where the interval excludes zero;
- or a single-run folder (``summary.json``, no ``runs.parquet``): a report of the run's
  headline figures and its ``figures/`` (drawn first if the folder has none).

Every file is written to a temporary name and renamed into place. Nothing in the output
depends on the time of writing, so the same stored results give byte-identical files.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim import sweep_plots
from sim.aggregate import aggregate, compare, direction, split_columns, write_bytes_atomic
from sim.aggregate import write_table as _write_table
from sim.errors import SimError
from sim.sweep_plots import format_value, metric_label, metric_unit, number_text

REPORT_METRICS = sweep_plots.METRIC_FIGURES
"""Metrics of the results table and of the comparison section."""

RUN_METRICS = (
    "n_tasks",
    "n_completed",
    "completion_rate",
    "latency_mean",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "energy_mean",
    "cost_mean",
    "deadline_miss_rate",
    "drop_rate",
    "offload_fraction",
    "throughput",
    "utilisation_uplink_mean",
    "utilisation_edge_mean",
    "utilisation_local_mean",
)
"""Headline figures of a single-run report."""


# ---------------------------------------------------------------------------- documents
@dataclass
class Document:
    """A report as a list of blocks, rendered to Markdown and to HTML alike.

    Blocks are ``("h1"|"h2"|"h3"|"p", text)``, ``("ul", items)``, ``("table", header,
    rows)`` and ``("img", path, caption)``; text may hold ``code`` in backticks.
    """

    title: str
    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append((f"h{level}", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(("table", list(header), [list(r) for r in rows]))

    def img(self, path: Path, rel: str, caption: str) -> None:
        self.blocks.append(("img", path, rel, caption))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for block in self.blocks:
            kind = block[0]
            if kind in ("h1", "h2", "h3"):
                out += ["#" * (int(kind[1]) + 1) + " " + block[1], ""]
            elif kind == "p":
                out += [block[1], ""]
            elif kind == "ul":
                out += [f"- {item}" for item in block[1]] + [""]
            elif kind == "table":
                header, rows = block[1], block[2]
                out.append("| " + " | ".join(_md_cell(c) for c in header) + " |")
                out.append("|" + "|".join("---" for _ in header) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
                out.append("")
            elif kind == "img":
                out += [f"![{block[3]}]({block[2]})", "", f"*{block[3]}*", ""]
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        body = [f"<h1>{_html_text(self.title)}</h1>"]
        for block in self.blocks:
            kind = block[0]
            if kind in ("h1", "h2", "h3"):
                level = int(kind[1]) + 1
                body.append(f"<h{level}>{_html_text(block[1])}</h{level}>")
            elif kind == "p":
                body.append(f"<p>{_html_text(block[1])}</p>")
            elif kind == "ul":
                items = "".join(f"<li>{_html_text(i)}</li>" for i in block[1])
                body.append(f"<ul>{items}</ul>")
            elif kind == "table":
                head = "".join(f"<th>{_html_text(c)}</th>" for c in block[1])
                rows = "".join(
                    "<tr>" + "".join(f"<td>{_html_text(c)}</td>" for c in r) + "</tr>"
                    for r in block[2]
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
                caption = _html_text(block[3])
                body.append(
                    f'<figure><img alt="{html.escape(block[3])}" '
                    f'src="data:image/png;base64,{data}"><figcaption>{caption}</figcaption>'
                    "</figure>"
                )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.45;color:#222}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}"
    "th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}th{background:#f2f2f2}"
    "figure{margin:1.5rem 0}img{max-width:100%}figcaption{font-size:.9rem;color:#555}"
    "code{background:#f4f4f4;padding:0 .2rem}"
)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _html_text(text: str) -> str:
    parts = re.split(r"`([^`]*)`", str(text))
    return "".join(
        f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts)
    )


# ---------------------------------------------------------------------------- formatting
def _ci_text(mean: float, lo: float, hi: float, n: int, scale: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    text = number_text(mean * scale)
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{text} {_interval(lo, hi, scale)}"
    return f"{text} (n = {n}, no CI)"


def _interval(lo: float, hi: float, scale: float) -> str:
    return f"[{number_text(lo * scale)}, {number_text(hi * scale)}]"


def _p_text(p: float) -> str:
    if not np.isfinite(p):
        return "p=n/a"
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.2g}"


def _signed(value: float, scale: float) -> str:
    text = number_text(value * scale)
    return text if text.startswith("-") else "+" + text


def _difference_cells(r: Mapping[str, Any], scale: float) -> list[str]:
    """The cells "A − B", difference, 95 % CI and Welch p of one pairwise comparison row."""
    diff = _signed(r["diff"], scale) if np.isfinite(r["diff"]) else "n/a"
    ci = _interval(r["ci_low"], r["ci_high"], scale) if np.isfinite(r["ci_low"]) else "n/a"
    return [f"`{r['policy_a']}` − `{r['policy_b']}`", diff, ci, _p_text(r["p_value"])]


# ---------------------------------------------------------------------------- entry point
def build_outputs(results_dir: Path, quiet: bool = False) -> dict[str, Path]:
    """Write the tables, figures and reports of ``results_dir``; return the written paths
    keyed by their path relative to ``results_dir``.

    A sweep folder (``manifest.json``) gets ``aggregate.parquet``/``.csv``,
    ``comparisons.parquet``/``.csv``, ``figures/*.png``/``*.svg``, ``report.md`` and
    ``report.html``; a single-run folder (``summary.json``) gets ``report.md`` and
    ``report.html`` (and ``figures/`` if it had none). Raises :class:`SimError` for a folder
    that is neither, or whose files cannot be read. ``quiet=False`` prints where the
    report went on standard error.
    """
    d = Path(results_dir)
    if not d.is_dir():
        raise SimError(f"results folder {d} does not exist or is not a folder")
    if (d / "manifest.json").is_file():
        written = _build_sweep(d)
    elif (d / "summary.json").is_file():
        written = _build_single(d)
    else:
        raise SimError(
            f"{d} is not a results folder: expected manifest.json and runs.parquet (a sweep) "
            "or summary.json (a single run)"
        )
    if not quiet:
        n_fig = sum(1 for k in written if k.startswith("figures/"))
        print(
            f"report: {written['report.html']} ({n_fig} figure files, {len(written)} files)",
            file=sys.stderr,
        )
    return written


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SimError(f"{path}: cannot be read as JSON: {err}") from err


# ---------------------------------------------------------------------------- sweep
@dataclass
class SweepInputs:
    """What a sweep report is built from."""

    root: Path
    manifest: dict
    runs: pd.DataFrame
    axes: list[str]  # every axis path of the manifest, policy included


def load_sweep(d: Path) -> SweepInputs:
    """Read ``manifest.json`` and ``runs.parquet`` (empty when no run has finished)."""
    manifest = _read_json(d / "manifest.json")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("axes"), list):
        raise SimError(f"{d / 'manifest.json'}: not a sweep manifest (no 'axes' list)")
    for i, axis in enumerate(manifest["axes"]):
        if not isinstance(axis, dict) or not isinstance(axis.get("path"), str):
            raise SimError(f"{d / 'manifest.json'}: axes[{i}] = {axis!r} has no 'path'")
    axes = [a["path"] for a in manifest["axes"]]
    table = d / "runs.parquet"
    if table.is_file():
        try:
            runs = pd.read_parquet(table)
        except Exception as err:  # pyarrow raises several types for a corrupt file
            raise SimError(f"{table}: cannot be read as Parquet: {err}") from err
    else:
        cols = ["run_id", "point", "replication", "policy", *[a for a in axes if a != "policy"]]
        runs = pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
        runs["point"] = runs["point"].astype("int64")
        runs["replication"] = runs["replication"].astype("int64")
    if "policy" in runs.columns:
        runs["policy"] = runs["policy"].astype(str)
    runs = runs.sort_values(["point", "policy", "replication"], kind="stable")
    return SweepInputs(d, manifest, runs.reset_index(drop=True), axes)


def _build_sweep(d: Path) -> dict[str, Path]:
    inputs = load_sweep(d)
    runs, axes = inputs.runs, inputs.axes
    axis_cols, _ = split_columns(runs, axes)
    shape = sweep_plots.sweep_shape(inputs.manifest, runs, axis_cols)
    agg = aggregate(runs, axes)
    comparisons = compare(runs, axes, shape.policies)
    written: dict[str, Path] = {}
    for path in _write_table(agg, d / "aggregate") + _write_table(comparisons, d / "comparisons"):
        written[path.name] = path
    figures = _write_figures(d, agg, runs, shape)
    for path in figures:
        written[f"figures/{path.name}"] = path
    doc = _sweep_document(inputs, agg, comparisons, shape, figures)
    written["report.md"] = write_bytes_atomic(d / "report.md", doc.markdown().encode())
    written["report.html"] = write_bytes_atomic(d / "report.html", doc.html().encode())
    return written


def _write_figures(
    d: Path, agg: pd.DataFrame, runs: pd.DataFrame, shape: sweep_plots.SweepShape
) -> list[Path]:
    return publish_figures(d, lambda tmp: sweep_plots.plot_sweep(tmp, agg, runs, shape, d / "runs"))


def publish_figures(d: Path, draw: Callable[[Path], list[Path]]) -> list[Path]:
    """``draw`` into a temporary folder of ``d``, rename each file (fsynced) into
    ``d/figures/``, then remove the figures of earlier builds that this one did not draw.
    Returns the published paths."""
    out = d / "figures"
    out.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".figures.", dir=d))
    try:
        final = []
        for path in draw(tmp):
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(path, out / path.name)
            final.append(out / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    keep = {p.name for p in final}
    for stale in out.iterdir():
        if stale.suffix in (".png", ".svg") and stale.name not in keep:
            stale.unlink()
    return final


def _run_provenance(d: Path, run_ids: Sequence[str]) -> dict[str, Any]:
    """Code revisions (with dirty flag), Python and package versions of the runs."""
    revisions: dict[str, int] = {}
    versions: dict[str, str] = {}
    python: set[str] = set()
    unreadable = 0
    for run_id in run_ids:
        path = d / "runs" / str(run_id) / "provenance.json"
        try:
            prov = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            unreadable += 1
            continue
        git = prov.get("git") or {}
        rev = git.get("revision") or "unknown"
        dirty = git.get("dirty")
        label = f"`{rev}`" + (" (uncommitted changes)" if dirty else "")
        revisions[label] = revisions.get(label, 0) + 1
        if prov.get("python"):
            python.add(str(prov["python"]))
        for name, version in (prov.get("packages") or {}).items():
            if version:
                versions.setdefault(name, str(version))
    return {
        "revisions": revisions,
        "python": sorted(python),
        "packages": versions,
        "unreadable": unreadable,
    }


def _sweep_document(
    inputs: SweepInputs,
    agg: pd.DataFrame,
    comparisons: pd.DataFrame,
    shape: sweep_plots.SweepShape,
    figures: Sequence[Path],
) -> Document:
    m, runs = inputs.manifest, inputs.runs
    name = m.get("scenario") or inputs.root.parent.name
    doc = Document(f"Sweep report: {name} / {m.get('sweep_id', inputs.root.name)}")
    planned = [r for r in m.get("runs", []) if isinstance(r, dict)]
    status: dict[str, int] = {}
    for r in planned:
        status[str(r.get("status"))] = status.get(str(r.get("status")), 0) + 1
    finished_ids = set(runs["run_id"].astype(str)) if "run_id" in runs.columns else set()
    prov = _run_provenance(inputs.root, sorted(finished_ids))

    doc.h(1, "What was run")
    items = [
        f"scenario: `{name}`",
        f"sweep id: `{m.get('sweep_id', inputs.root.name)}`",
        f"root seed: {m.get('root_seed', 'n/a')}",
        f"replications per setting and policy: {m.get('replications', 'n/a')}",
        "policies: " + (", ".join(f"`{p}`" for p in shape.policies) or "none finished"),
        f"runs: {len(planned)} planned, "
        + ", ".join(f"{v} {k}" for k, v in sorted(status.items()))
        + f"; {len(runs)} in the results table",
    ]
    if prov["revisions"]:
        items.append(
            "code revision: "
            + "; ".join(f"{rev} ({n} runs)" for rev, n in sorted(prov["revisions"].items()))
        )
    if prov["python"]:
        items.append("Python " + ", ".join(prov["python"]))
    if prov["packages"]:
        items.append(
            "packages: " + ", ".join(f"{k} {v}" for k, v in sorted(prov["packages"].items()))
        )
    doc.ul(items)
    axes_spec = [a for a in m.get("axes", []) if isinstance(a, dict)]
    if axes_spec:
        doc.p("Swept axes (zip axes of one group vary together, grid axes as a product):")
        doc.table(
            ["axis", "kind", "group", "values", "SI unit"],
            [
                [
                    f"`{a.get('path')}`",
                    str(a.get("kind", "")),
                    str(a.get("group", "")),
                    ", ".join(str(v) for v in a.get("values", [])),
                    str(a.get("unit") or ""),
                ]
                for a in axes_spec
            ],
        )
    problems = [r for r in planned if r.get("status") != "finished"]
    lost = [
        r
        for r in planned
        if r.get("status") == "finished" and str(r.get("run_id")) not in finished_ids
    ]
    if problems or lost:
        doc.h(2, "Runs without results")
        doc.p(
            "These runs are not in the tables below; settings with fewer replications have "
            "wider intervals, and a setting with one replication has none."
        )
        doc.table(
            ["run", "point", "policy", "replication", "status", "error"],
            [
                [
                    f"`{r.get('run_id')}`",
                    str(r.get("point")),
                    str(r.get("policy")),
                    str(r.get("replication")),
                    str(r.get("status")) if r not in lost else "finished, no results row",
                    _first_line(r.get("error")),
                ]
                for r in [*problems, *lost]
            ],
        )

    doc.h(1, "Results")
    if runs.empty:
        doc.p("No run has finished, so there is nothing to aggregate.")
    else:
        _results_table(doc, agg, shape)
        if bool((agg.loc[agg["metric"].isin(REPORT_METRICS), "n"] < 2).any()):
            doc.p(
                "Where a setting has a single replication (n = 1) the standard deviation and "
                "the confidence interval are undefined: the table says 'no CI' and no "
                "comparison there is called significant."
            )
        doc.p(
            "Every metric of the summaries is in `aggregate.csv` / `aggregate.parquet` (tidy: "
            "one row per setting, policy and metric with n, mean, std, sem, ci_low, ci_high; "
            "SI units)."
        )

    if figures:
        doc.h(1, "Figures")
        for path in figures:
            if path.suffix == ".png":
                doc.img(path, f"figures/{path.name}", _FIGURE_CAPTIONS.get(path.stem, path.stem))

    doc.h(1, "Policy comparisons")
    _comparison_section(doc, comparisons, shape)

    doc.h(1, "Method")
    doc.ul(
        [
            "Each run is one replication; a metric's value per run is its value in the run's "
            "`summary.json`. Runs without a value (e.g. no completed task) are left out of "
            "that metric's n.",
            "Confidence intervals: mean ± t(0.975, n − 1) · s / √n (Student's t, scipy).",
            "Comparisons: difference of means A − B with Welch's interval "
            "(Welch–Satterthwaite degrees of freedom) and the two-sided p-value of Welch's "
            "t test (`scipy.stats.ttest_ind(equal_var=False)`). A policy is said to be lower "
            "or higher only where the 95 % interval excludes zero; no correction for the "
            "number of comparisons is made.",
            "Lower is better for latency, energy, cost and deadline-miss rate.",
            "Runs that differ only in policy share their random draws (arrivals, sizes, "
            "mobility, channel), yet the Welch test treats the samples as independent, which "
            "is conservative.",
        ]
    )
    doc.h(1, "Runs")
    doc.table(
        ["run", "point", "policy", "replication", "seed path", "status"],
        [
            [
                f"`{r.get('run_id')}`",
                str(r.get("point")),
                str(r.get("policy")),
                str(r.get("replication")),
                str(r.get("seed_path")),
                str(r.get("status")),
            ]
            for r in planned
        ],
    )
    return doc


_FIGURE_CAPTIONS = {
    "latency_mean": "Mean latency per policy with 95 % confidence bands.",
    "latency_p95": "95th-percentile latency per policy with 95 % confidence bands.",
    "energy_mean": "Mean vehicle energy per task per policy with 95 % confidence bands.",
    "cost_mean": "Mean cost per task (eq. [18]) per policy with 95 % confidence bands.",
    "deadline_miss_rate": "Deadline-miss rate per policy with 95 % confidence bands.",
    "utilisation": "Mean utilisation of uplinks, edge CPUs and local CPUs per policy.",
    "latency_cdf": "Latency CDF per policy, completed tasks of all replications pooled.",
    "latency_breakdown": "Mean latency components per task, stacked, per policy.",
}


def _first_line(text: Any) -> str:
    if not text:
        return ""
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= 160 else line[:157] + "..."


def _setting_cells(shape: sweep_plots.SweepShape, row: Mapping[str, Any]) -> list[str]:
    return [axis.show(row[axis.path]) for axis in shape.axes]


def _results_table(doc: Document, agg: pd.DataFrame, shape: sweep_plots.SweepShape) -> None:
    metrics = [mt for mt in REPORT_METRICS if (agg["metric"] == mt).any()]
    units = {}
    for mt in metrics:  # a unit for the typical value: the median magnitude
        values = np.abs(agg.loc[agg["metric"] == mt, "mean"].to_numpy(float))
        values = values[np.isfinite(values) & (values > 0)]
        units[mt] = metric_unit(mt, [float(np.median(values))] if values.size else [])
    header = [a.title() for a in shape.axes] + ["policy", "n"]
    header += [metric_label(mt) + (f" [{units[mt][1]}]" if units[mt][1] else "") for mt in metrics]
    rows = []
    first = agg[agg["metric"] == metrics[0]] if metrics else agg.iloc[0:0]
    rank = {p: i for i, p in enumerate(shape.policies)}
    first = first.assign(_rank=first["policy"].map(rank)).sort_values(
        ["point", "_rank"], kind="stable"
    )
    for _, base in first.iterrows():
        cells = [*_setting_cells(shape, base), f"`{base['policy']}`"]
        same = (agg["point"] == base["point"]) & (agg["policy"] == base["policy"])
        n_values = set()
        metric_cells = []
        for mt in metrics:
            r = agg[same & (agg["metric"] == mt)]
            if r.empty:
                metric_cells.append("n/a")
                continue
            r = r.iloc[0]
            n_values.add(int(r["n"]))
            metric_cells.append(
                _ci_text(r["mean"], r["ci_low"], r["ci_high"], int(r["n"]), units[mt][0])
            )
        cells.append("/".join(str(n) for n in sorted(n_values)) or "0")
        rows.append(cells + metric_cells)
    doc.p(
        "Mean over replications with its 95 % confidence interval in brackets; n is the "
        "number of replications with a value."
    )
    doc.table(header, rows)


def _comparison_section(
    doc: Document, comparisons: pd.DataFrame, shape: sweep_plots.SweepShape
) -> None:
    if len(shape.policies) < 2:
        doc.p("Only one policy finished, so there is nothing to compare.")
        return
    rows_all = comparisons[comparisons["metric"].isin(REPORT_METRICS)]
    if rows_all.empty:
        doc.p("No comparison could be made (no metric values).")
        return
    claims: list[str] = []
    for metric in REPORT_METRICS:
        rows = rows_all[rows_all["metric"] == metric]
        if rows.empty:
            continue
        scale, unit = metric_unit(
            metric, np.r_[rows["diff"].to_numpy(), rows["ci_low"], rows["ci_high"]]
        )
        better_dir = direction(metric)
        doc.h(2, metric_label(metric).capitalize())
        table_rows = []
        for _, r in rows.iterrows():
            values = tuple(r[a.path] for a in shape.axes)
            setting = shape.setting_label(values)
            table_rows.append(
                [
                    *(a.show(v) for a, v in zip(shape.axes, values, strict=True)),
                    *_difference_cells(r, scale),
                    _verdict(r, better_dir),
                ]
            )
            if r["significant"]:
                claims.append(_claim(r, metric, setting, scale, unit))
        header = [a.title() for a in shape.axes] + [
            "A − B",
            "difference" + (f" [{unit}]" if unit else ""),
            "95 % CI",
            "Welch p",
            "verdict",
        ]
        doc.table(header, table_rows)
    doc.h(2, "Significant differences")
    if claims:
        doc.ul(claims)
    else:
        doc.p("No significant difference between any two policies in these metrics.")


def _verdict(r: Mapping[str, Any], better_dir: str | None) -> str:
    if not np.isfinite(r["ci_low"]):
        return "no CI (fewer than 2 replications)"
    if not r["significant"]:
        return "no significant difference"
    word = "lower" if r["diff"] < 0 else "higher"
    text = f"`{r['policy_a']}` {word} than `{r['policy_b']}`"
    if better_dir is not None and r["better"]:
        text += f" (`{r['better']}` better)"
    return text


def _claim(r: Mapping[str, Any], metric: str, setting: str, scale: float, unit: str) -> str:
    """The sentence for a significant difference, told from the better policy's side
    where the metric has a direction (``greedy has lower mean latency than local``)."""
    a, b = r["policy_a"], r["policy_b"]
    diff, lo, hi = r["diff"], r["ci_low"], r["ci_high"]
    if r["better"] == b:
        a, b, diff, lo, hi = b, a, -diff, -hi, -lo
    word = "lower" if diff < 0 else "higher"
    where = f" at {setting}" if setting else ""
    value = _signed(diff, scale) + (f" {unit}" if unit else "")
    p = _p_text(r["p_value"])
    return (
        f"`{a}` has {word} {metric_label(metric)} than `{b}`{where}: "
        f"{value} {_interval(lo, hi, scale)}, {p}"
    )


# ---------------------------------------------------------------------------- single run
def _build_single(d: Path) -> dict[str, Path]:
    summary = _read_json(d / "summary.json")
    if not isinstance(summary, dict):
        raise SimError(f"{d / 'summary.json'}: not a run summary (expected a JSON object)")
    prov = _read_json(d / "provenance.json") if (d / "provenance.json").is_file() else {}
    config = prov.get("config") if isinstance(prov, dict) else None
    if not isinstance(config, dict):
        config = _read_config(d / "config.yaml")
    written: dict[str, Path] = {}
    figures = _existing_figures(d)
    if not figures:
        for path in _draw_run_figures(d, summary):
            written[f"figures/{path.name}"] = path
        figures = _existing_figures(d)
    name = config.get("name") or d.parent.name
    doc = Document(f"Run report: {name}")
    doc.h(1, "What was run")
    git = (prov.get("git") or {}) if isinstance(prov, dict) else {}
    policy = config.get("policy")
    if isinstance(policy, dict):
        policy = policy.get("id")
    items = [
        f"scenario: `{name}`",
        f"policy: `{policy}`" if policy else "policy: n/a",
        f"seed: {prov.get('seed_root', config.get('seed', 'n/a'))}, seed path "
        f"{prov.get('seed_path', [])}",
        f"horizon: {format_value(summary.get('horizon'), 1.0, 's')}, warm-up: "
        f"{format_value(summary.get('warmup'), 1.0, 's')}",
    ]
    if git:
        items.append(
            f"code revision: `{git.get('revision') or 'unknown'}`"
            + (" (uncommitted changes)" if git.get("dirty") else "")
        )
    if prov.get("status"):
        items.append(f"status: {prov['status']}")
    doc.ul(items)
    doc.h(1, "Headline figures")
    rows = []
    for key in RUN_METRICS:
        if key not in summary:
            continue
        value = summary[key]
        if key.startswith("n_"):
            rows.append([metric_label(key), "n/a" if value is None else f"{int(value):,}"])
            continue
        scale, unit = metric_unit(key, [value] if value is not None else [])
        rows.append(
            [metric_label(key), format_value(value, scale, unit) if value is not None else "n/a"]
        )
    doc.table(["metric", "value"], rows)
    doc.p("Every statistic is in `summary.json` (SI units).")
    if figures:
        doc.h(1, "Figures")
        for path in figures:
            doc.img(path, f"figures/{path.name}", path.stem.replace("_", " "))
    else:
        doc.p("The run has no figures.")
    written["report.md"] = write_bytes_atomic(d / "report.md", doc.markdown().encode())
    written["report.html"] = write_bytes_atomic(d / "report.html", doc.html().encode())
    return written


def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise SimError(f"{path}: cannot be read as YAML: {err}") from err
    return data if isinstance(data, dict) else {}


def _existing_figures(d: Path) -> list[Path]:
    from sim.plots import FIGURES

    folder = d / "figures"
    if not folder.is_dir():
        return []
    order = {name: i for i, name in enumerate(FIGURES)}
    pngs = [p for p in folder.iterdir() if p.suffix == ".png"]
    return sorted(pngs, key=lambda p: (order.get(p.stem, len(order)), p.name))


def _draw_run_figures(d: Path, summary: Mapping[str, Any]) -> list[Path]:
    """Draw a run's figures (for a folder written with plots off) from its table, or from
    its summary and latency histogram, into a temporary folder renamed into place."""
    from sim.plots import plot_run

    histogram = None
    npz = d / "latency_hist.npz"
    if npz.is_file():
        try:
            with np.load(npz) as data:
                histogram = (np.asarray(data["edges"]), np.asarray(data["counts"]))
        except (OSError, KeyError, ValueError):
            histogram = None
    table = d / "tasks.parquet"
    tmp = Path(tempfile.mkdtemp(prefix=".figures.", dir=d))
    try:
        drawn = plot_run(tmp, table if table.is_file() else None, summary, histogram)
        out = d / "figures"
        out.mkdir(exist_ok=True)
        final = []
        for path in drawn:
            os.replace(path, out / path.name)
            final.append(out / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final

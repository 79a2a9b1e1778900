"""Sweep and run reports: tables, figures, Markdown and HTML from stored results only.

Sweep folders are written here in the layout the sweep runner produces (``manifest.json``,
``runs.parquet``, ``runs/<run_id>/`` with ``summary.json``, ``provenance.json`` and
``latency_hist.npz``): one with chosen numbers, so that every table entry and claim is
known in advance, and one from real runs of the quickstart scenario.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import scenario
from scipy import stats

from sim.aggregate import aggregate, welch
from sim.errors import SimError
from sim.report import build_outputs
from sim.summary import SummaryAccumulator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SWEEP_FIGURES = (
    "latency_mean",
    "latency_p95",
    "energy_mean",
    "cost_mean",
    "deadline_miss_rate",
    "utilisation",
    "latency_cdf",
    "latency_breakdown",
)
BANDWIDTH = {"path": "channel.bandwidth", "kind": "grid", "group": 0, "unit": "Hz"}


# ---------------------------------------------------------------------------- fixtures
def histogram(latencies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    acc = SummaryAccumulator(10.0, 0.0, 0.5)
    n = latencies.size
    zeros = np.zeros(n)
    acc.add(
        {
            "arrival": np.linspace(0.0, 9.0, n),
            "offload": np.ones(n, bool),
            "status": np.zeros(n, np.int8),
            "in_flight": np.zeros(n, bool),
            "deadline_met": np.ones(n, bool),
            "latency": latencies,
            "wait_uplink": zeros,
            "tx_time": zeros,
            "wait_compute": zeros,
            "compute_time": latencies,
            "energy": zeros,
            "edge_energy": zeros,
            "cost": zeros,
        }
    )
    return acc.latency_histogram()


def write_sweep(
    root: Path,
    axes: list[dict],
    rows: list[dict],
    replications: int,
    failed: list[dict] = (),
) -> Path:
    """A sweep folder with ``rows`` as finished runs (each needs run_id, point,
    replication, policy, the axis values and its summary metrics) and ``failed`` runs."""
    root.mkdir(parents=True)
    manifest_runs = []
    axis_paths = [a["path"] for a in axes if a["path"] != "policy"]
    for row in rows:
        run_dir = root / "runs" / row["run_id"]
        run_dir.mkdir(parents=True)
        summary = {k: v for k, v in row.items() if k not in ("run_id", "point", "replication")}
        summary = {k: v for k, v in summary.items() if k not in axis_paths and k != "policy"}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        prov = {
            "git": {"revision": "abc123", "dirty": False},
            "python": "3.11.2",
            "packages": {"numpy": np.__version__},
            "seed_root": 7,
            "seed_path": [row["point"], row["replication"]],
        }
        (run_dir / "provenance.json").write_text(json.dumps(prov))
        rng = np.random.default_rng(len(manifest_runs))
        edges, counts = histogram(rng.lognormal(math.log(row["latency_mean"]), 0.3, 200))
        np.savez(run_dir / "latency_hist.npz", edges=edges, counts=counts)
        manifest_runs.append(_manifest_run(row, axis_paths, "finished", None))
    for row in failed:
        manifest_runs.append(_manifest_run(row, axis_paths, "failed", row["error"]))
    manifest = {
        "format": 1,
        "scenario": "fixture",
        "sweep_id": "s1",
        "root_seed": 7,
        "replications": replications,
        "axes": axes,
        "runs": manifest_runs,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    if rows:
        frame = pd.DataFrame(rows)
        ids = ["run_id", "point", "replication", "policy", *axis_paths]
        metrics = [c for c in frame.columns if c not in ids]
        frame = frame[ids + metrics].astype({m: "float64" for m in metrics})
        frame = frame.sort_values(["point", "policy", "replication"])
        frame.to_parquet(root / "runs.parquet", index=False)
    return root


def _manifest_run(row: dict, axis_paths: list[str], status: str, error: str | None) -> dict:
    return {
        "run_id": row["run_id"],
        "point": row["point"],
        "replication": row["replication"],
        "policy": row["policy"],
        "params": {p: row[p] for p in axis_paths} | {"policy": row["policy"]},
        "seed_path": [row["point"], row["replication"]],
        "status": status,
        "error": error,
    }


# greedy is 20 ms faster than local at 5 MHz (clearly), equal at 10 MHz
LATENCY = {("local", 5e6): 0.040, ("greedy", 5e6): 0.020, ("local", 10e6): 0.030}
LATENCY[("greedy", 10e6)] = 0.030
JITTER = (-0.002, 0.0, 0.002, 0.001)


def known_rows(replications: int = 4, policies=("local", "greedy")) -> list[dict]:
    rows = []
    for point, bw in enumerate((5e6, 10e6)):
        for policy in policies:
            for rep in range(replications):
                lat = LATENCY[(policy, bw)] + JITTER[rep] * (1.5 if policy == "greedy" else 1.0)
                rows.append(
                    {
                        "run_id": f"p{point}-{policy}-r{rep}",
                        "point": point,
                        "replication": rep,
                        "policy": policy,
                        "channel.bandwidth": bw,
                        "latency_mean": lat,
                        "latency_p95": 2 * lat,
                        "energy_mean": 0.001 * (2 if policy == "local" else 1),
                        "cost_mean": 0.5 * lat + 0.0005,
                        "deadline_miss_rate": 0.1 if policy == "local" else 0.0,
                        "offload_fraction": 0.0 if policy == "local" else 1.0,
                        "wait_uplink_mean": None if policy == "local" else 0.002,
                        "tx_time_mean": None if policy == "local" else 0.008,
                        "wait_compute_mean": 0.3 * lat,
                        "compute_time_mean": 0.5 * lat,
                        "utilisation_uplink_mean": 0.0 if policy == "local" else 0.3,
                        "utilisation_edge_mean": 0.0 if policy == "local" else 0.2,
                        "utilisation_local_mean": 0.5 if policy == "local" else 0.0,
                        "n_tasks": 1000,
                    }
                )
    return rows


def known_sweep(root: Path, replications: int = 4, **kw) -> Path:
    axes = [
        {**BANDWIDTH, "values": ["5 MHz", "10 MHz"], "si_values": [5e6, 10e6]},
        {
            "path": "policy",
            "kind": "grid",
            "group": 1,
            "values": ["local", "greedy"],
            "si_values": ["local", "greedy"],
            "unit": "",
        },
    ]
    return write_sweep(root, axes, known_rows(replications), replications, **kw)


def assert_image(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 2000, path
    if path.suffix == ".png":
        assert data.startswith(PNG_MAGIC)
    else:
        assert b"<svg" in data[:500]


# ---------------------------------------------------------------------------- sweep reports
@pytest.fixture(scope="module")
def known(tmp_path_factory) -> tuple[Path, dict[str, Path], dict[str, bytes]]:
    """The known sweep with a failed run, a run marked finished whose results row is
    missing, and a run whose latency histogram is missing; built once."""
    root = known_sweep(
        tmp_path_factory.mktemp("known") / "sweep",
        failed=[
            {
                "run_id": "p1-greedy-r4",
                "point": 1,
                "replication": 4,
                "policy": "greedy",
                "channel.bandwidth": 10e6,
                "error": "Traceback (most recent call last):\n  ...\nRuntimeError: injected",
            }
        ],
    )
    manifest = json.loads((root / "manifest.json").read_text())
    lost = {**manifest["runs"][0], "run_id": "p0-local-r9", "replication": 9}
    manifest["runs"].append(lost)
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "runs" / "p0-local-r3" / "latency_hist.npz").unlink()
    written = build_outputs(root, quiet=True)
    return root, written, {k: p.read_bytes() for k, p in written.items()}


def test_sweep_outputs_are_written(known):
    root, written, _ = known
    expected = {"aggregate.parquet", "aggregate.csv", "comparisons.parquet", "comparisons.csv"}
    expected |= {"report.md", "report.html"}
    expected |= {f"figures/{n}.{ext}" for n in SWEEP_FIGURES for ext in ("png", "svg")}
    assert set(written) == expected
    for key, path in written.items():
        assert path == root / key and path.is_file()
        if key.startswith("figures/"):
            assert_image(path)
    leftovers = [p.name for p in root.rglob("*") if p.name.startswith(".")]
    assert leftovers == []  # no temporary file or folder is left behind


def test_aggregate_file_holds_the_statistics(known):
    root, _, _ = known
    agg = pd.read_parquet(root / "aggregate.parquet")
    runs = pd.read_parquet(root / "runs.parquet")
    pd.testing.assert_frame_equal(
        agg, aggregate(runs, ["channel.bandwidth", "policy"]), check_dtype=False
    )
    row = agg.query("point == 0 and policy == 'greedy' and metric == 'latency_mean'").iloc[0]
    lat = [0.020 + 1.5 * j for j in JITTER]
    assert row["n"] == 4 and row["mean"] == pytest.approx(np.mean(lat), rel=1e-14)
    lo, hi = stats.t.interval(0.95, 3, loc=np.mean(lat), scale=stats.sem(lat))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), rel=1e-12)
    local = agg.query("policy == 'local' and metric == 'wait_uplink_mean'")
    assert (local["n"] == 0).all() and local["mean"].isna().all()  # no offloaded task
    csv = pd.read_csv(root / "aggregate.csv")
    assert len(csv) == len(agg)


def test_report_states_only_significant_differences(known):
    root, _, _ = known
    md = (root / "report.md").read_text()
    # the results table: 5 MHz greedy latency mean 20.4 ms with its interval, in ms
    lat = np.array([0.020 + 1.5 * j for j in JITTER])
    lo, hi = stats.t.interval(0.95, 3, loc=lat.mean(), scale=stats.sem(lat))
    cell = f"{lat.mean() * 1e3:.3g} [{lo * 1e3:.3g}, {hi * 1e3:.3g}]"
    assert re.search(rf"\| 5 MHz \| `greedy` \| 4 \| {re.escape(cell)} \|", md), cell
    assert "| channel.bandwidth [MHz] | policy | n | mean latency [ms] |" in md
    # the claim at 5 MHz, with Welch's interval and p-value
    local = [0.040 + j for j in JITTER]
    w = welch(lat, local)  # told from the better side: greedy - local
    assert stats.ttest_ind(local, lat, equal_var=False).pvalue < 0.001
    claim = (
        f"`greedy` has lower mean latency than `local` at channel.bandwidth = 5 MHz: "
        f"{w['diff'] * 1e3:+.3g} ms [{w['ci_low'] * 1e3:.3g}, {w['ci_high'] * 1e3:.3g}], p<0.001"
    )
    assert claim.endswith(": -19.9 ms [-23.8, -16], p<0.001")
    assert claim in md
    claims = md.split("### Significant differences")[1].split("\n## ")[0]
    latency_claims = [ln for ln in claims.splitlines() if "mean latency than" in ln]
    assert latency_claims == [f"- {claim}"]  # none at 10 MHz, where the means are equal
    latency_table = md.split("## Mean latency")[1].split("## ")[0]
    row10 = [ln for ln in latency_table.splitlines() if ln.startswith("| 10 MHz")]
    assert len(row10) == 1 and row10[0].endswith("| no significant difference |")
    # constant metrics differ without noise: energy is lower for greedy in every run
    assert (
        "`greedy` has lower mean energy per task than `local` at channel.bandwidth = 10 MHz" in md
    )
    for verdict in re.findall(r"\| (`\w+` (?:lower|higher) than `\w+`[^|]*)\|", md):
        assert "better" in verdict  # every headline metric has a direction


def test_report_describes_the_sweep_and_its_failures(known):
    root, _, _ = known
    md = (root / "report.md").read_text()
    assert "# Sweep report: fixture / s1" in md
    assert "replications per setting and policy: 4" in md
    assert "runs: 18 planned, 1 failed, 17 finished; 16 in the results table" in md
    assert "code revision: `abc123` (16 runs)" in md
    assert "| `channel.bandwidth` | grid | 0 | 5 MHz, 10 MHz | Hz |" in md
    assert "| `p1-greedy-r4` | 1 | greedy | 4 | failed | RuntimeError: injected |" in md
    assert "| `p0-local-r9` | 0 | local | 9 | finished, no results row |  |" in md
    assert "| `p0-local-r2` | 0 | local | 2 | [0, 2] | finished |" in md
    for name in SWEEP_FIGURES:
        assert f"(figures/{name}.png)" in md


def test_html_is_self_contained(known):
    root, _, _ = known
    page = (root / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    images = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert len(images) == len(SWEEP_FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"(href|src)=\"(?!data:)", page)  # nothing loaded from elsewhere
    assert "<td>no significant difference</td>" in page


def test_outputs_are_byte_identical_when_rebuilt(known):
    root, written, first = known
    (root / "figures" / "old_figure.png").write_bytes(PNG_MAGIC)  # from an earlier build
    again = build_outputs(root, quiet=True)
    assert set(again) == set(written)
    assert {k: p.read_bytes() for k, p in again.items()} == first
    assert not (root / "figures" / "old_figure.png").exists()


def test_policy_only_sweep_with_a_single_replication(tmp_path):
    """Bars per policy; oracle ran once, so it has no interval and no comparison with it
    is called significant, while local and greedy (three runs each) are compared."""
    axes = [
        {
            "path": "policy",
            "kind": "grid",
            "group": 0,
            "values": ["local", "greedy", "oracle"],
            "si_values": ["local", "greedy", "oracle"],
            "unit": "",
        }
    ]
    rows = [r for r in known_rows(3, ("local", "greedy")) if r["channel.bandwidth"] == 5e6]
    rows += [{**rows[-1], "run_id": "oracle-r0", "policy": "oracle", "replication": 0}]
    for r in rows:
        del r["channel.bandwidth"]
    root = write_sweep(tmp_path / "cat", axes, rows, 3)
    written = build_outputs(root, quiet=True)
    assert {f"figures/{n}.png" for n in SWEEP_FIGURES} <= set(written)
    agg = pd.read_parquet(written["aggregate.parquet"])
    oracle = agg[agg.policy == "oracle"]
    assert (oracle["n"] == 1).all() and oracle["ci_low"].isna().all()
    md = written["report.md"].read_text()
    assert "| policy | n | mean latency [ms] |" in md
    assert re.search(r"\| `oracle` \| 1 \| [0-9.]+ \(n = 1, no CI\) \|", md)
    assert "single replication (n = 1)" in md
    assert "`greedy` has lower mean latency than `local`: " in md  # no setting to name
    assert "| `greedy` − `oracle` | " in md and "no CI (fewer than 2 replications)" in md
    claims = md.split("### Significant differences")[1].split("\n## ")[0]
    assert "`local`" in claims and "oracle" not in claims


def test_sweep_without_finished_runs(tmp_path):
    failed = [{"run_id": "x", "point": 0, "replication": 0, "policy": "local", "error": "boom"}]
    root = write_sweep(
        tmp_path / "none",
        [{"path": "policy", "kind": "grid", "group": 0, "values": ["local"], "unit": ""}],
        [],
        1,
        failed=failed,
    )
    written = build_outputs(root, quiet=True)
    md = written["report.md"].read_text()
    assert "No run has finished" in md and "| `x` | 0 | local | 0 | failed | boom |" in md
    assert pd.read_parquet(written["aggregate.parquet"]).empty


def test_not_a_results_folder(tmp_path):
    with pytest.raises(SimError, match="not a results folder"):
        build_outputs(tmp_path)
    with pytest.raises(SimError, match="does not exist"):
        build_outputs(tmp_path / "missing")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(SimError, match=r"manifest\.json"):
        build_outputs(tmp_path)


# ---------------------------------------------------------------------------- real runs
def run_histogram(run_dir: Path, horizon: float, warmup: float, weight: float):
    """The latency histogram of a run's summary, rebuilt from its task table."""
    import pyarrow.parquet as pq

    from sim.summary import SUMMARY_COLUMNS

    table = pq.read_table(run_dir / "tasks.parquet", columns=list(SUMMARY_COLUMNS))
    acc = SummaryAccumulator(horizon, warmup, weight)
    acc.add({c: table.column(c).to_numpy() for c in SUMMARY_COLUMNS})
    return acc, acc.latency_histogram()


def real_sweep(root: Path) -> Path:
    """Quickstart at two bandwidths x {local, greedy} x 2 replications, 2 s each, in the
    folder layout of a sweep (common random numbers: seed path = (setting, replication))."""
    from sim.runner import run_scenario

    bandwidths = (("5 MHz", 5e6), ("10 MHz", 10e6))
    policies = ("local", "greedy")
    axes = [
        {
            "path": "servers.bandwidth",
            "kind": "grid",
            "group": 0,
            "values": [b[0] for b in bandwidths],
            "si_values": [b[1] for b in bandwidths],
            "unit": "Hz",
        },
        {"path": "policy", "kind": "grid", "group": 1, "values": list(policies), "unit": ""},
    ]
    rows, manifest_runs = [], []
    for setting, (text, bw) in enumerate(bandwidths):
        for policy in policies:
            point = 2 * setting + policies.index(policy)
            for rep in range(2):
                sc = scenario(
                    engine={"horizon": "2 s", "epoch": "10 ms"},
                    servers={"bandwidth": text},
                    policy=policy,
                    output={"plots": False},
                )
                run_id = f"{point}-{policy}-{rep}"
                run_dir = root / "runs" / run_id
                result = run_scenario(sc, run_dir, quiet=True, seed_path=(setting, rep))
                acc, (edges, counts) = run_histogram(run_dir, 2.0, 0.0, 0.5)
                assert acc.result()["latency_mean"] == result.summary["latency_mean"]
                np.savez(run_dir / "latency_hist.npz", edges=edges, counts=counts)
                numeric = {
                    k: (math.nan if v is None else float(v))
                    for k, v in result.summary.items()
                    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                }
                ids = {"run_id": run_id, "point": point, "replication": rep, "policy": policy}
                rows.append({**ids, "servers.bandwidth": bw, **numeric})
                manifest_runs.append(
                    {
                        **ids,
                        "params": {"servers.bandwidth": bw, "policy": policy},
                        "seed_path": [setting, rep],
                        "status": "finished",
                        "error": None,
                    }
                )
    manifest = {
        "format": 1,
        "scenario": "quickstart",
        "sweep_id": "real",
        "root_seed": 1,
        "replications": 2,
        "axes": axes,
        "runs": manifest_runs,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    frame = pd.DataFrame(rows).sort_values(["point", "policy", "replication"])
    frame.to_parquet(root / "runs.parquet", index=False)
    return root


def test_report_of_real_runs(tmp_path):
    from sim.aggregate import compare, describe
    from sim.sweep_plots import pooled_histogram

    root = real_sweep(tmp_path / "real")
    written = build_outputs(root, quiet=True)
    assert {f"figures/{n}.svg" for n in SWEEP_FIGURES} <= set(written)
    runs = pd.read_parquet(root / "runs.parquet")
    agg = pd.read_parquet(written["aggregate.parquet"])
    assert len(agg) == 4 * len(set(agg["metric"])) and "utilisation_edge_mean" in set(agg.metric)
    for (bw, policy), group in runs.groupby(["servers.bandwidth", "policy"]):  # noqa: B007
        row = agg.query(
            "`servers.bandwidth` == @bw and policy == @policy and metric == 'latency_mean'"
        ).iloc[0]
        expected = describe(group["latency_mean"].to_numpy())
        assert row["mean"] == expected["mean"] and row["ci_low"] == expected["ci_low"]
        # the CDF pools every completed task of the setting's replications
        pooled = pooled_histogram([root / "runs" / r / "latency_hist.npz" for r in group.run_id])
        assert pooled is not None and pooled[1].sum() == group["n_completed"].sum()
    comp = pd.read_parquet(written["comparisons.parquet"])
    axes = ["servers.bandwidth", "policy"]
    pd.testing.assert_frame_equal(comp, compare(runs, axes, ["local", "greedy"]), check_dtype=False)
    md = written["report.md"].read_text()
    assert "# Sweep report: quickstart / real" in md
    assert "| servers.bandwidth [MHz] | policy | n | mean latency" in md
    claims = md.split("### Significant differences")[1].split("\n## ")[0]
    significant = comp[comp.significant & comp.metric.isin(SWEEP_FIGURES)]
    assert claims.count("\n- ") == len(significant)  # one sentence per significant pair


def test_single_run_report(tmp_path):
    from sim.runner import run_scenario

    sc = scenario(engine={"horizon": "2 s"}, output={"plots": False, "task_table": False})
    result = run_scenario(sc, tmp_path / "run", quiet=True)
    written = build_outputs(tmp_path / "run", quiet=True)
    assert {"report.md", "report.html"} <= set(written)
    # a run written without figures gets them drawn from its summary
    assert "figures/latency_breakdown.png" in written
    md = written["report.md"].read_text()
    assert "# Run report: quickstart" in md and "policy: `greedy`" in md
    latency = result.summary["latency_mean"]
    scale, unit = (1e3, "ms") if latency >= 1e-3 else (1e6, "µs")
    assert f"| mean latency | {latency * scale:.3g} {unit} |" in md
    assert f"| n tasks | {result.summary['n_tasks']:,} |" in md
    assert "(figures/latency_breakdown.png)" in md
    page = written["report.html"].read_text()
    assert page.count("data:image/png;base64,") == md.count("](figures/")


# ---------------------------------------------------------------------------- plot helpers
def test_axis_units_take_readable_prefixes():
    from sim.sweep_plots import axis_unit, number_text

    assert axis_unit("Hz", [2e6, 2e7]) == (1e-6, "MHz")
    assert axis_unit("Hz", [5e9]) == (1e-9, "GHz")
    assert axis_unit("s", [0.01, 0.05]) == (1e3, "ms")
    assert axis_unit("bit", [1e5, 4e5]) == (1e-3, "kbit")
    assert axis_unit("W", [0.1, 0.5]) == (1e3, "mW")
    assert axis_unit("W", [0.5, 1.0]) == (1.0, "W")
    assert axis_unit("", [3, 48]) == (1.0, "")
    assert axis_unit("dBm", [-70]) == (1.0, "dBm")
    assert axis_unit("m/s", [10.0]) == (1.0, "m/s")
    assert [number_text(v) for v in (0.0123, 45.64, 1187.2, 2.5e-5, -19.94)] == [
        "0.0123", "45.6", "1190", "2.5e-05", "-19.9",
    ]  # fmt: skip


def test_x_axis_and_facets_of_several_swept_axes():
    """x is the first numeric axis with two or more values; the other axes, except those
    zipped with x, are facets."""
    from sim.sweep_plots import sweep_shape

    rows = []
    point = 0
    for cpu in (5e9, 10e9):
        for bw, size in ((2e6, 1e5), (5e6, 2e5), (10e6, 4e5)):
            for policy in ("greedy", "local"):
                rows.append(
                    {"point": point, "policy": policy, "servers.cpu": cpu, "label": "a",
                     "servers.bandwidth": bw, "tasks.size": size, "replication": 0}
                )  # fmt: skip
                point += 1
    runs = pd.DataFrame(rows)
    manifest = {
        "axes": [
            {"path": "label", "kind": "grid", "group": 0, "unit": ""},
            {"path": "servers.bandwidth", "kind": "zip", "group": 1, "unit": "Hz"},
            {"path": "tasks.size", "kind": "zip", "group": 1, "unit": "bit"},
            {"path": "servers.cpu", "kind": "grid", "group": 2, "unit": "Hz"},
            {"path": "policy", "kind": "grid", "group": 3, "values": ["local", "greedy"]},
        ]
    }
    cols = ["label", "servers.bandwidth", "tasks.size", "servers.cpu"]
    shape = sweep_shape(manifest, runs, cols)
    assert shape.x is not None and shape.x.path == "servers.bandwidth"
    assert shape.x.label_unit == "MHz" and shape.x.title() == "servers.bandwidth [MHz]"
    assert [a.path for a in shape.facet_axes] == ["servers.cpu"]  # tasks.size is zipped
    assert shape.policies == ["local", "greedy"]  # the manifest's order
    assert len(shape.settings) == 6 and shape.settings[0] == ("a", 2e6, 1e5, 5e9)
    assert shape.setting_label(shape.settings[-1]) == (
        "label = a, servers.bandwidth = 10 MHz, tasks.size = 400 kbit, servers.cpu = 10 GHz"
    )


def test_pooled_histogram_equals_the_histogram_of_all_tasks(tmp_path):
    from sim.sweep_plots import pooled_histogram

    rng = np.random.default_rng(3)
    parts = [rng.lognormal(-4.0, 0.5, 300), rng.lognormal(-3.0, 0.2, 500)]
    paths = []
    for i, lat in enumerate(parts):
        edges, counts = histogram(lat)
        paths.append(tmp_path / f"{i}.npz")
        np.savez(paths[-1], edges=edges, counts=counts)
    edges, counts = pooled_histogram([*paths, tmp_path / "missing.npz"])
    all_edges, all_counts = histogram(np.concatenate(parts))
    keep = all_counts > 0
    assert counts.sum() == 800 and edges[0] == all_edges[0]
    # the pooled CDF steps at the same upper edges with the same cumulative counts
    np.testing.assert_array_equal(edges[1:][counts > 0], all_edges[1:][keep])
    np.testing.assert_array_equal(counts[counts > 0], all_counts[keep])

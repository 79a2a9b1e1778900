"""run_sim.py compare: learning curves, held-out evaluation and verdicts of trained agents,
checked against scipy on the stored values."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from scipy import stats

from models.compare import (
    EVAL_METRICS,
    EVAL_ROOT,
    HEURISTICS,
    CompareOptions,
    run_comparison,
    smooth,
)
from models.training import load_config, train
from sim.errors import SimError
from sim.executors import InProcessExecutor
from sim.sweep_plots import metric_label

SEEDS = (0, 1)
AGENTS = ("ddpg", "qddpg")
EVAL_SEEDS = 3
WINDOW = 2
DEVICES = ("fake_sherbrooke", "fake_torino")


def _training_file(folder: Path, output: Path) -> Path:
    path = folder / "tiny.yaml"
    data = {
        "name": "tiny",
        "scenario": str(REPO / "scenarios" / "rl" / "quickstart.yaml"),
        "agents": list(AGENTS),
        "seeds": list(SEEDS),
        "episodes": 3,
        "episode_steps": 5,
        "checkpoint_every": 3,
        "ddpg": {"learning_starts": 5, "pca_episodes": 2, "buffer_size": 1000},
        "output": str(output),
    }
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """2 agents x 2 seeds x 3 episodes of 5 decisions, compared on 1 s worlds."""
    root = tmp_path_factory.mktemp("compare")
    file = _training_file(root, root / "trained")
    cfg, scenario = load_config(file)
    train(cfg, scenario, progress=False)
    options = CompareOptions(
        eval_seeds=EVAL_SEEDS, horizon="1 s", devices=DEVICES, window=WINDOW, timing_budget=0.01
    )
    written = run_comparison(
        cfg,
        scenario,
        source=file,
        out=root / "report",
        options=options,
        executor=InProcessExecutor(),
        quiet=True,
    )
    return {"root": root, "file": file, "cfg": cfg, "out": root / "report", "written": written}


def _csv(compared, name: str) -> pd.DataFrame:
    return pd.read_csv(compared["out"] / f"{name}.csv")


def _labels() -> dict[str, str]:
    return {f"{a}/seed_{s}": a for a in AGENTS for s in SEEDS}


def test_the_tables_have_every_policy_model_and_device(compared):
    evaluation = _csv(compared, "evaluation")
    assert list(dict.fromkeys(evaluation["policy"])) == [*AGENTS, *HEURISTICS]
    models = _csv(compared, "evaluation_models")
    assert list(dict.fromkeys(models["policy"])) == list(
        dict.fromkeys(f"{a}/seed_{s}" for a in AGENTS for s in SEEDS)
    )
    pairs = _csv(compared, "comparisons")
    cost = pairs[pairs["metric"] == "cost_mean"]
    n = len(AGENTS) + len(HEURISTICS)
    assert len(cost) == n * (n - 1) // 2
    assert set(_csv(compared, "decision_latency")["backend"]) == set(DEVICES)
    forward = _csv(compared, "forward_time")
    assert set(forward["agent"]) == set(AGENTS)
    assert 1 in set(forward["batch_size"]) and (forward["mean"] > 0).all()
    agents = _csv(compared, "agents")
    assert len(agents) == len(AGENTS) * len(SEEDS)
    qddpg = agents[agents["agent"] == "qddpg"]
    assert (
        qddpg["actor_parameters"] < agents[agents["agent"] == "ddpg"]["actor_parameters"].min()
    ).all()


def test_held_out_worlds_are_disjoint_from_training(compared):
    manifest = json.loads((compared["out"] / "eval" / "manifest.json").read_text())
    assert manifest["root_seed"] == EVAL_ROOT and EVAL_ROOT not in SEEDS
    assert sorted({r["replication"] for r in manifest["runs"]}) == list(range(EVAL_SEEDS))
    with pytest.raises(SimError, match="is a training seed"):
        CompareOptions(eval_root=SEEDS[1]).check(SEEDS)


def test_evaluation_ci_equals_scipy_on_the_stored_runs(compared):
    runs = pd.read_parquet(compared["out"] / "eval" / "runs.parquet")
    runs["agent"] = runs["policy"].map(lambda p: _labels().get(p, p))
    evaluation = _csv(compared, "evaluation")
    for policy, group in runs.groupby("agent"):
        expected_n = EVAL_SEEDS * (len(SEEDS) if policy in AGENTS else 1)
        for metric in EVAL_METRICS:
            x = group[metric].to_numpy(float)
            row = evaluation[(evaluation["policy"] == policy) & (evaluation["metric"] == metric)]
            row = row.iloc[0]
            assert row["n"] == expected_n == x.size
            assert row["mean"] == pytest.approx(x.mean(), rel=1e-12, abs=1e-300)
            if x.std() == 0:
                assert row["ci_low"] == row["ci_high"] == pytest.approx(x[0])
                continue
            lo, hi = stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=stats.sem(x))
            assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), rel=1e-9)
    # over training seeds: one sample per model, its mean over the held-out runs
    seeds = _csv(compared, "evaluation_seeds")
    for agent in AGENTS:
        mine = runs[runs["agent"] == agent]
        for metric in EVAL_METRICS:
            x = mine.groupby("policy")[metric].mean().to_numpy(float)
            row = seeds[(seeds["policy"] == agent) & (seeds["metric"] == metric)].iloc[0]
            assert row["n"] == len(SEEDS) == x.size
            if x.std() == 0:
                assert row["ci_low"] == row["ci_high"] == pytest.approx(x[0])
                continue
            lo, hi = stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=stats.sem(x))
            assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), rel=1e-9)
    # per-run values as the report lists them are the stored ones
    per_run = _csv(compared, "evaluation_runs")
    assert len(per_run) == len(runs)
    merged = per_run.merge(
        runs, left_on=["model", "replication"], right_on=["policy", "replication"]
    )
    assert np.array_equal(merged["cost_mean_x"], merged["cost_mean_y"])


def test_welch_differences_equal_scipy(compared):
    runs = pd.read_parquet(compared["out"] / "eval" / "runs.parquet")
    runs["agent"] = runs["policy"].map(lambda p: _labels().get(p, p))
    pairs = _csv(compared, "comparisons")
    row = pairs[
        (pairs["metric"] == "cost_mean")
        & (pairs["policy_a"] == "qddpg")
        & (pairs["policy_b"] == "greedy")
    ].iloc[0]
    a = runs.loc[runs["agent"] == "qddpg", "cost_mean"].to_numpy(float)
    b = runs.loc[runs["agent"] == "greedy", "cost_mean"].to_numpy(float)
    test = stats.ttest_ind(a, b, equal_var=False)
    assert row["p_value"] == pytest.approx(test.pvalue, rel=1e-9)
    ci = test.confidence_interval(0.95)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)


@pytest.mark.parametrize("window", [1, WINDOW])
def test_learning_curve_ci_is_the_t_interval_of_the_seeds_logs(compared, window):
    curves = _csv(compared, "learning_curves")
    out = compared["root"] / "trained"
    for agent in AGENTS:
        logs = [pd.read_csv(out / agent / f"seed_{s}" / "log.csv") for s in SEEDS]
        for metric in ("reward", "cost", "latency"):
            for episode in (0, 2):
                values = np.array(
                    [smooth(log[metric].to_numpy(float), window)[episode] for log in logs]
                )
                if window > 1 and episode == 2:  # the mean of episodes 1 and 2
                    assert values == pytest.approx([log[metric].iloc[1:3].mean() for log in logs])
                row = curves[
                    (curves["agent"] == agent)
                    & (curves["metric"] == metric)
                    & (curves["window"] == window)
                    & (curves["episode"] == episode)
                ].iloc[0]
                lo, hi = stats.t.interval(
                    0.95, values.size - 1, loc=values.mean(), scale=stats.sem(values)
                )
                assert row["n"] == len(SEEDS)
                assert row["mean"] == pytest.approx(values.mean(), rel=1e-12)
                assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), rel=1e-9)


def _verdict_tables(report: str) -> dict[str, dict[str, str]]:
    """``{metric section title: {"`A` − `B`": verdict}}`` of the pairwise section."""
    part = report.split("## Pairwise differences", 1)[1].split("\n## ", 1)[0]
    out: dict[str, dict[str, str]] = {}
    for section in part.split("\n### ")[1:]:
        title, *lines = section.splitlines()
        cells = [ln.strip("|").split(" | ") for ln in lines if ln.startswith("| `")]
        out[title.strip()] = {c[0].strip(): c[-1].strip() for c in cells}
    return out


def test_the_report_says_better_only_where_the_ci_excludes_zero(compared):
    report = (compared["out"] / "report.md").read_text()
    tables = _verdict_tables(report)
    pairs = _csv(compared, "comparisons")
    claims = 0
    for metric in EVAL_METRICS:
        verdicts = tables[metric_label(metric).capitalize()]
        rows = pairs[pairs["metric"] == metric]
        assert len(verdicts) == len(rows)
        for _, r in rows.iterrows():
            got = verdicts[f"`{r['policy_a']}` − `{r['policy_b']}`"]
            excludes = r["ci_low"] > 0 or r["ci_high"] < 0
            if excludes:
                # lower is better for every evaluation metric
                better = r["policy_a"] if r["diff"] < 0 else r["policy_b"]
                worse = r["policy_b"] if better == r["policy_a"] else r["policy_a"]
                assert got == f"`{better}` is better than `{worse}`"
                claims += 1
            else:
                assert got == "no significant difference"
    # every 'better' of the summary is a significant pair of the table it names
    by_seed = _csv(compared, "comparisons_seeds")
    labels = {metric_label(m): m for m in EVAL_METRICS}
    summary = report.split("## Summary", 1)[1].split("\n## ", 1)[0]
    bullet = re.compile(
        r"^- (.+?), `(\S+)` − `(\S+)` over (runs|training seeds)[^:]*: (.+?) \((.+)\)$"
    )
    checked = 0
    for line in summary.splitlines():
        if not line.startswith("- "):
            continue
        label, a, b, level, said, _ = bullet.match(line).groups()
        table = pairs if level == "runs" else by_seed
        r = table[
            (table["metric"] == labels[label]) & (table["policy_a"] == a) & (table["policy_b"] == b)
        ].iloc[0]
        if r["significant"]:
            worse = b if r["better"] == a else a
            assert said == f"`{r['better']}` is better than `{worse}`"
        else:
            assert "better" not in said
        checked += 1
    assert checked == 2 * len(EVAL_METRICS) + len(AGENTS) * len(HEURISTICS)
    assert claims == int(pairs[pairs["metric"].isin(EVAL_METRICS)]["significant"].sum())


def test_decision_latency_on_the_qpu_agrees_with_the_summary_and_the_timing_model(compared):
    from qpu.templates import build_template
    from qpu.timing import TargetTiming

    out = compared["out"]
    per_run = _csv(compared, "decision_runs")
    runs = pd.read_parquet(out / "qpu" / "runs.parquet")
    assert len(per_run) == len(runs) == len(SEEDS) * len(DEVICES) * EVAL_SEEDS
    merged = per_run.merge(
        runs,
        left_on=["model", "device", "replication"],
        right_on=["policy", "qpu.device", "replication"],
    )
    np.testing.assert_allclose(
        merged["decision_latency_mean_x"], merged["decision_latency_mean_y"], rtol=1e-12
    )
    config = yaml.safe_load(next((out / "qpu" / "runs").glob("*/config.yaml")).read_text())
    job = config["qpu"]["jobs"]["policy_inference"]
    template = build_template("policy_inference", job["size"], **job["options"])
    shots = job["shots"] or config["qpu"]["shots"]
    table = _csv(compared, "decision_latency")
    for device in DEVICES:
        timing = TargetTiming(device, rep_delay=config["qpu"]["rep_delay"]).timing(template)
        row = table[(table["backend"] == device) & (table["statistic"] == "service_time_mean")]
        assert row["mean"].iloc[0] == pytest.approx(timing.job_time(shots), rel=1e-9)
        p95 = table[(table["backend"] == device) & (table["statistic"] == "decision_latency_p95")]
        mean = table[(table["backend"] == device) & (table["statistic"] == "decision_latency_mean")]
        assert p95["mean"].iloc[0] >= mean["mean"].iloc[0] >= row["mean"].iloc[0]


def test_figures_and_a_self_contained_report(compared):
    figures = compared["out"] / "figures"
    for name in ("learning_reward", "learning_cost", "learning_latency", "eval_cost_mean"):
        for suffix in (".png", ".svg"):
            assert (figures / f"{name}{suffix}").stat().st_size > 1000
    html = (compared["out"] / "report.html").read_text()
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(sources) == len(list(figures.glob("*.png")))
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    report = (compared["out"] / "report.md").read_text()
    assert f"moving average over {WINDOW} episodes" in report


def test_results_do_not_depend_on_the_workers(compared, tmp_path):
    from sim.compare import main

    file = compared["file"]
    status = main(
        [str(file), "--out", str(tmp_path / "two"), "--eval-seeds", str(EVAL_SEEDS),
         "--horizon", "1 s", "--window", str(WINDOW), "--workers", "2", "--quiet",
         "--devices", *DEVICES]
    )  # fmt: skip
    assert status == 0
    for name in ("evaluation", "evaluation_models", "evaluation_runs", "comparisons",
                 "evaluation_seeds", "comparisons_seeds", "learning_curves",
                 "decision_latency", "decision_runs", "agents"):  # fmt: skip
        for suffix in (".csv", ".parquet"):
            first = (compared["out"] / f"{name}{suffix}").read_bytes()
            assert first == (tmp_path / "two" / f"{name}{suffix}").read_bytes(), name


def test_missing_training_is_a_clear_error_with_exit_2(compared, tmp_path):
    file = _training_file(tmp_path, tmp_path / "nothing")
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_sim.py"), "compare", str(file), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    err = proc.stderr
    assert err.startswith("error: 4 of 4 (agent, seed) runs have not finished training")
    assert "ddpg seed 0" in err and "qddpg seed 1" in err
    assert f"run 'run_sim.py train {file}' first" in err
    # with the trained seeds and one more, only the new seed's runs are named
    from models.compare import load_trained

    cfg, _ = load_config(compared["file"], {"seeds": [*SEEDS, 7]})
    with pytest.raises(SimError, match=r"^2 of 6 .*: ddpg seed 7 \(.*not started\); qddpg seed 7"):
        load_trained(cfg)

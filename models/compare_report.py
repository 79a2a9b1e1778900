"""The report of an agent comparison (:mod:`models.compare`): ``report.md`` and
``report.html`` through :class:`sim.report.Document`, with the sweep report's table and
interval formatting.

A difference is called better only where its 95 % interval excludes zero; every verdict
comes from one function, :func:`verdict`, applied to a row of the comparisons table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sim import plots
from sim.aggregate import welch
from sim.report import (
    Document,
    _ci_text,
    _difference_cells,
    _interval,
    _p_text,
    _results_table,
    _run_provenance,
    _signed,
)
from sim.sweep_plots import metric_label, metric_unit, number_text, sweep_shape

CURVE_BETTER = {"reward": "higher", "cost": "lower", "latency": "lower"}
"""Which end of each training-log metric is better."""


# ---------------------------------------------------------------------- verdicts
def verdict(row: Mapping[str, Any]) -> str:
    """The verdict on one comparison row (A − B): ``"`X` is better than `Y`"`` where the
    interval excludes zero and the metric has a better direction, ``"no significant
    difference"`` where it does not, ``"no CI ..."`` where it is undefined."""
    lo, hi = float(row["ci_low"]), float(row["ci_high"])
    a, b = row["policy_a"], row["policy_b"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no CI (fewer than 2 values on a side)"
    if not row["significant"]:
        return "no significant difference"
    if row["better"]:
        worse = b if row["better"] == a else a
        return f"`{row['better']}` is better than `{worse}`"
    return f"`{a}` is {'lower' if row['diff'] < 0 else 'higher'} than `{b}`"


def _difference(row: Mapping[str, Any], scale: float, unit: str) -> str:
    if not np.isfinite(row["diff"]):
        return "n/a"
    text = _signed(row["diff"], scale) + (f" {unit}" if unit else "")
    if np.isfinite(row["ci_low"]):
        text += f" {_interval(row['ci_low'], row['ci_high'], scale)}"
    return f"{text}, {_p_text(row['p_value'])}"


def _unit(metric: str, rows: pd.DataFrame) -> tuple[float, str]:
    values = np.r_[rows["diff"].to_numpy(float), rows["ci_low"], rows["ci_high"]]
    return metric_unit(metric, values)


def _time(value: float) -> tuple[float, str]:
    return plots._time_unit(abs(value) if np.isfinite(value) else 0.0)


def _time_ci(mean: float, lo: float, hi: float, n: int) -> str:
    if not np.isfinite(mean):
        return "n/a"
    scale, unit = _time(mean)
    text = f"{number_text(mean * scale)} {unit}"
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{text} {_interval(lo, hi, scale)}"
    return text + (f" (n = {n}, no CI)" if n < 2 else "")


# ---------------------------------------------------------------------- document
def report_document(result) -> Document:
    """The comparison report of a :class:`models.compare.Comparison`."""
    doc = Document(f"Agent comparison: {result.scenario.name}")
    _what(doc, result)
    _summary(doc, result)
    _learning(doc, result)
    _evaluation(doc, result)
    _verdicts(doc, result)
    _sizes(doc, result)
    _decisions(doc, result)
    _method(doc, result)
    return doc


def _what(doc: Document, result) -> None:
    cfg, opts, sweep = result.cfg, result.options, result.eval_sweep
    engine = sweep.runs[0].scenario.engine
    steps = ", ".join(sorted({str(r.meta.get("episode_steps")) for r in result.runs}))
    episodes = ", ".join(sorted({str(len(r.log)) for r in result.runs}))
    seeds = ", ".join(str(s) for s in cfg.seeds)
    doc.h(1, "What was compared")
    items = [
        f"training file: `{result.source}`" if result.source else "training file: n/a",
        f"scenario: `{result.scenario.name}`; trained runs in `{result.runs_root}`",
        "agents: " + ", ".join(f"`{a}`" for a in cfg.agents) + f"; training seeds: {seeds}; "
        f"{episodes} episodes of {steps} decisions each",
        "heuristics: "
        + ", ".join(f"`{p}`" for p in result.evaluation["policy"].unique() if p not in cfg.agents),
        f"held-out evaluation: {opts.eval_seeds} replications per policy and model, "
        f"replication r on the world of root seed {opts.eval_root} and seed path (r,) "
        f"(training used root seeds {seeds} only); horizon "
        f"{number_text(engine.horizon)} s, warm-up {number_text(engine.warmup)} s",
    ]
    prov = _run_provenance(result.out / "eval", sorted(result.eval_runs["run_id"].astype(str)))
    if prov["revisions"]:
        items.append("code revision: " + "; ".join(sorted(prov["revisions"])))
    doc.ul(items)


def _pair(comparisons: pd.DataFrame, metric: str, a: str, b: str) -> pd.Series | None:
    rows = comparisons[
        (comparisons["metric"] == metric)
        & (
            ((comparisons["policy_a"] == a) & (comparisons["policy_b"] == b))
            | ((comparisons["policy_a"] == b) & (comparisons["policy_b"] == a))
        )
    ]
    return None if rows.empty else rows.iloc[0]


def _summary(doc: Document, result) -> None:
    comparisons, agents = result.comparisons, list(result.cfg.agents)
    by_seed = result.tables["comparisons_seeds"]
    n_seeds, n_eval = len(result.cfg.seeds), result.options.eval_seeds
    doc.h(1, "Summary")
    doc.p(
        "Held-out evaluation, difference of means A − B with its 95 % Welch interval and "
        "p-value; a policy is called better only where the interval excludes zero. Between "
        f"the agents two questions are answered: over their runs ({n_seeds} models x "
        f"{n_eval} held-out seeds each), whether these trained models differ; over their "
        f"training seeds (each model's mean, {n_seeds} per agent), whether training the one "
        "agent reliably ends better than training the other."
    )
    items = []
    pairs = []
    if "qddpg" in agents and "ddpg" in agents:
        pairs += [("qddpg", "ddpg", m) for m in result_metrics(result)]
    for a, b, metric in pairs:
        for table, over in (
            (comparisons, f"over runs ({n_seeds * n_eval} each)"),
            (by_seed, f"over training seeds ({n_seeds} each)"),
        ):
            row = _pair(table, metric, a, b)
            if row is None:
                continue
            scale, unit = _unit(metric, table[table["metric"] == metric])
            items.append(
                f"{metric_label(metric)}, `{row['policy_a']}` − `{row['policy_b']}` {over}: "
                f"{verdict(row)} ({_difference(row, scale, unit)})"
            )
    for agent in agents:
        others = [p for p in result.evaluation["policy"].unique() if p not in agents]
        for other in others:
            row = _pair(comparisons, "cost_mean", agent, other)
            if row is None:
                continue
            scale, unit = _unit("cost_mean", comparisons[comparisons["metric"] == "cost_mean"])
            items.append(
                f"{metric_label('cost_mean')}, `{row['policy_a']}` − `{row['policy_b']}` over "
                f"runs: {verdict(row)} ({_difference(row, scale, unit)})"
            )
    doc.ul(items)


def result_metrics(result) -> list[str]:
    from models.compare import EVAL_METRICS

    present = set(result.evaluation["metric"])
    return [m for m in EVAL_METRICS if m in present]


def _learning(doc: Document, result) -> None:
    from models.compare import smooth
    from models.compare_plots import window_text

    doc.h(1, "Learning curves")
    curves = result.curves
    n_seeds = len(result.cfg.seeds)
    how = (
        "the raw per-episode values"
        if result.window <= 1
        else f"the {window_text(result.window)}: each seed's series is smoothed first, then "
        "the interval is taken over seeds at every episode"
    )
    doc.p(
        f"Training-log values per episode (reward: the sum over the episode's decisions; "
        f"cost and latency: the mean per decision), mean over the {n_seeds} training seed"
        f"{'s' if n_seeds != 1 else ''} with the 95 % t-interval over seeds as a band; "
        f"curves show {how}. `learning_curves.csv` holds the raw values (window 1)"
        + (" and the smoothed ones." if result.window > 1 else ".")
    )
    if n_seeds < 2:
        doc.p("With one training seed there is no confidence interval: it needs at least 2 seeds.")
    for path in result.figures:
        if path.suffix == ".png" and path.stem.startswith("learning_"):
            metric = path.stem.removeprefix("learning_")
            doc.img(
                path,
                f"figures/{path.name}",
                f"{metric.capitalize()} per episode during training (Fig. "
                f"{ {'reward': 3, 'latency': 5, 'cost': 6}[metric] } of the paper), "
                f"{window_text(result.window)}.",
            )
    # the end of training: the last smoothed episode per seed
    doc.h(2, "End of training")
    agents = list(dict.fromkeys(r.agent for r in result.runs))
    last = {}
    for agent in agents:
        logs = [r.log for r in result.runs if r.agent == agent]
        n_ep = min(len(log) for log in logs)
        last[agent] = {
            m: np.array([smooth(log[m].to_numpy(float)[:n_ep], result.window)[-1] for log in logs])
            for m in CURVE_BETTER
        }
    header = ["agent", "seeds", *(f"{m} (last episode, smoothed)" for m in CURVE_BETTER)]
    rows = []
    for agent in agents:
        cells = [f"`{agent}`", str(len(last[agent]["reward"]))]
        for m in CURVE_BETTER:
            s = curves[(curves["agent"] == agent) & (curves["metric"] == m)]
            s = s[s["window"] == result.window].sort_values("episode").iloc[-1]
            scale = _time(s["mean"])[0] if m == "latency" else 1.0
            unit = f" {_time(s['mean'])[1]}" if m == "latency" else ""
            text = _ci_text(s["mean"], s["ci_low"], s["ci_high"], int(s["n"]), scale)
            cells.append(text + unit)
        rows.append(cells)
    doc.table(header, rows)
    if len(agents) == 2:
        a, b = agents
        items = []
        for m, better in CURVE_BETTER.items():
            w = welch(last[a][m], last[b][m])
            row = {
                **w,
                "policy_a": a,
                "policy_b": b,
                "significant": _excludes_zero(w["ci_low"], w["ci_high"]),
            }
            lower = a if w["diff"] < 0 else b
            row["better"] = (
                (lower if better == "lower" else (b if lower == a else a))
                if row["significant"]
                else ""
            )
            scale, unit = _time(w["diff"]) if m == "latency" else (1.0, "")
            items.append(
                f"{m} at the end of training, `{a}` − `{b}` (Welch over seeds): "
                f"{verdict(row)} ({_difference(row, scale, unit)})"
            )
        doc.ul(items)


def _excludes_zero(lo: float, hi: float) -> bool:
    return bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))


def _with_point(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(point=0)


def _evaluation(doc: Document, result) -> None:
    doc.h(1, "Held-out evaluation")
    n_models = {a: sum(r.agent == a for r in result.runs) for a in result.cfg.agents}
    seeds = result.options.eval_seeds
    pooled = ", ".join(
        f"`{a}`: {n} models x {seeds} = {n * seeds} runs" for a, n in n_models.items()
    )
    doc.p(
        "Each value is a run's summary figure (tasks after the warm-up). For a heuristic "
        f"the mean and its 95 % t-interval are over its {seeds} held-out runs; for a learned "
        "agent over all runs of all its models, training seeds x held-out seeds "
        f"({pooled}), each run one sample. Every policy sees the same worlds (common random "
        "numbers). With few training seeds this interval mostly reflects the spread between "
        "worlds: it describes these trained models; the spread between training seeds is in "
        "the per-model table and the interval over training seeds below."
    )
    shape = sweep_shape(
        {
            "axes": [
                {"path": "policy", "si_values": list(dict.fromkeys(result.evaluation["policy"]))}
            ]
        },
        result.tables["evaluation_runs"],
        [],
    )
    _results_table(doc, _with_point(result.evaluation), shape)
    doc.blocks[-2] = (
        "p",
        "Mean with its 95 % confidence interval in brackets; n is the number of runs with a value.",
    )
    shown = result.evaluation[result.evaluation["metric"].isin(result_metrics(result))]
    if (shown["n"] < 2).any():
        doc.p("A policy with fewer than 2 runs has no interval ('no CI').")
    captions = {
        "eval_cost_mean": "Mean cost per task per policy, 95 % CI (agents: models pooled).",
        "eval_latency_mean": "Mean latency per policy, 95 % CI.",
        "eval_latency_p95": "95th-percentile latency per policy, 95 % CI.",
        "eval_energy_mean": "Mean vehicle energy per task per policy, 95 % CI.",
        "eval_deadline_miss_rate": "Deadline-miss rate per policy, 95 % CI.",
        "eval_utilisation": "Utilisation of uplinks, edge CPUs and local CPUs per policy.",
        "eval_latency_cdf": "Latency CDF per policy, tasks of all held-out runs pooled.",
        "eval_latency_breakdown": "Mean latency components per task per policy.",
    }
    for path in result.figures:
        if path.suffix == ".png" and path.stem.startswith("eval_"):
            doc.img(path, f"figures/{path.name}", captions.get(path.stem, path.stem))
    doc.h(2, "Per trained model")
    doc.p(
        "Each model (one training seed) over its held-out runs: how far apart the training "
        "seeds end up."
    )
    by_model = result.tables["evaluation_models"]
    models = list(dict.fromkeys(by_model["policy"]))
    model_shape = sweep_shape({"axes": [{"path": "policy", "si_values": models}]}, by_model, [])
    _results_table(doc, _with_point(by_model), model_shape)
    doc.blocks[-2] = (
        "p",
        "Mean over the model's held-out runs with its 95 % confidence interval in brackets.",
    )
    doc.h(2, "Over training seeds")
    by_seed = result.tables["evaluation_seeds"]
    n_seeds = len(result.cfg.seeds)
    doc.p(
        f"Each agent as {n_seeds} samples, one per training seed: the model's mean over its "
        "held-out runs. The interval is over training seeds (n = "
        f"{n_seeds}; none with one seed) and says how reliably training ends where it did."
    )
    seed_shape = sweep_shape(
        {"axes": [{"path": "policy", "si_values": list(dict.fromkeys(by_seed["policy"]))}]},
        by_seed,
        [],
    )
    _results_table(doc, _with_point(by_seed), seed_shape)
    doc.blocks[-2] = (
        "p",
        "Mean over training seeds with its 95 % confidence interval in brackets; n is the "
        "number of training seeds.",
    )
    _verdict_tables(doc, result, result.tables["comparisons_seeds"], level=3)


def _verdicts(doc: Document, result) -> None:
    doc.h(1, "Pairwise differences")
    doc.p(
        "Difference of means A − B over the held-out runs (agents pooled as above) with "
        "Welch's 95 % interval and two-sided p-value; the verdict says better only where "
        "the interval excludes zero, and otherwise no significant difference. No "
        "correction for the number of comparisons is made."
    )
    _verdict_tables(doc, result, result.comparisons, level=2)


def _verdict_tables(doc: Document, result, comparisons: pd.DataFrame, level: int) -> None:
    """One table of A − B rows with their verdicts per evaluation metric."""
    for metric in result_metrics(result):
        rows = comparisons[comparisons["metric"] == metric]
        if rows.empty:
            continue
        scale, unit = _unit(metric, rows)
        doc.h(level, metric_label(metric).capitalize())
        table = []
        for _, r in rows.iterrows():
            table.append([*_difference_cells(r, scale), verdict(r)])
        doc.table(
            [
                "A − B",
                "difference" + (f" [{unit}]" if unit else ""),
                "95 % CI",
                "Welch p",
                "verdict",
            ],
            table,
        )


def _sizes(doc: Document, result) -> None:
    from sim.aggregate import describe

    doc.h(1, "Model size and training time")
    agents = result.agents
    rows = []
    for agent in dict.fromkeys(agents["agent"]):
        a = agents[agents["agent"] == agent]
        wall = describe(a["wall_time"].to_numpy(float))
        per_episode = describe((a["wall_time"] / a["episodes"]).to_numpy(float))
        actor = sorted(set(a["actor_parameters"].astype(int)))
        critic = sorted(set(a["critic_parameters"].astype(int)))
        rows.append(
            [
                f"`{agent}`",
                str(a["actor"].iloc[0]),
                "/".join(f"{v:,}" for v in actor),
                "/".join(f"{v:,}" for v in critic),
                str(len(a)),
                _time_ci(wall["mean"], wall["ci_low"], wall["ci_high"], wall["n"]),
                _time_ci(
                    per_episode["mean"],
                    per_episode["ci_low"],
                    per_episode["ci_high"],
                    per_episode["n"],
                ),
            ]
        )
    doc.table(
        [
            "agent",
            "actor",
            "actor parameters",
            "critic parameters",
            "seeds",
            "training wall time, mean [95 % CI] over seeds",
            "per episode",
        ],
        rows,
    )
    doc.p(
        "Trainable parameters and wall times as `agent.json` records them (the wall time of "
        "the whole training run, resumed runs included; measured, so it varies with the "
        "machine and its load)."
    )


def _decisions(doc: Document, result) -> None:
    from qpu.timing import SHIPPED_DEVICES

    doc.h(1, "Decision latency per backend")
    rows = []

    def stat(frame: pd.DataFrame, name: str) -> pd.Series | None:
        r = frame[frame["statistic"] == name]
        return None if r.empty else r.iloc[0]

    def cell(r: pd.Series | None) -> str:
        if r is None:
            return "n/a"
        return _time_ci(r["mean"], r["ci_low"], r["ci_high"], int(r["n"]))

    forward = result.forward
    total = sum(result.occurring.values())
    for agent in dict.fromkeys(forward["agent"]):
        mine = forward[forward["agent"] == agent]
        for b in sorted(set(mine["batch_size"])):
            at = mine[mine["batch_size"] == b]
            per_decision = stat(at, "forward_time_per_decision")
            if b == 0:
                rows.append(
                    [
                        f"`{agent}`",
                        "CPU, this process",
                        "batch sizes as they occur",
                        cell(per_decision) + " (weighted mean)",
                        "",
                        "",
                    ]
                )
                continue
            share = result.occurring.get(int(b), 0)
            note = f"{100 * share / total:.3g} % of epochs with tasks" if total else ""
            rows.append(
                [
                    f"`{agent}`",
                    "CPU, this process",
                    f"batch {b}",
                    cell(per_decision),
                    f"per call {cell(stat(at, 'forward_time_per_call'))}",
                    note,
                ]
            )
    table = result.decisions
    shots = None
    if result.qpu_sweep is not None:
        qpu = result.qpu_sweep.runs[0].scenario.qpu
        shots = qpu.shots_of("policy_inference")
        site = qpu.policy_site
        for device in dict.fromkeys(table["backend"]):
            at = table[table["backend"] == device]
            util = stat(at, "decision_qpu_utilisation_mean")
            miss = stat(at, "deadline_miss_rate")
            latency = stat(at, "latency_mean")
            notes = [f"QPU service time per decision {cell(stat(at, 'service_time_mean'))}"]
            if util is not None:
                notes.append(f"policy-site QPU utilisation {100 * util['mean']:.3g} %")
            if latency is not None:
                notes.append(f"task latency {cell(latency)}")
            if miss is not None:
                notes.append(f"deadline misses {100 * miss['mean']:.3g} %")
            rows.append(
                [
                    "`qddpg`",
                    f"`{device}` ({SHIPPED_DEVICES.get(device, 'calibrated fake device')}), "
                    f"{site.qpus} QPU at the policy site, timing-only",
                    "one policy-inference job per decision",
                    cell(stat(at, "decision_latency_mean")),
                    f"p95 {cell(stat(at, 'decision_latency_p95'))}",
                    "; ".join(notes),
                ]
            )
    doc.table(
        [
            "agent",
            "backend",
            "how",
            "time per decision, mean [95 % CI]",
            "tail / per call",
            "notes",
        ],
        rows,
    )
    doc.p(
        "CPU rows: wall time of the actor's forward pass (torch, one thread, no gradients; "
        "the PQC actor's circuit evaluated exactly) measured in this process on random "
        "states, per call and per decision (call time / batch size), mean and 95 % CI over "
        "the timing repeats; measured values change with the machine and its load, unlike "
        "everything else in this report. Batch sizes are those of the evaluation's decision "
        "epochs (tasks arriving in one epoch are decided together)."
    )
    if result.qpu_sweep is not None:
        n_models = sum(r.meta.get("actor") == "pqc" for r in result.runs)
        doc.p(
            "QPU rows: the held-out evaluation of the Q-DDPG models run again with "
            "`qpu.policy_site` set, so that every decision is a policy-inference job of "
            f"{shots} shots on the calibrated timing of the device (transpiled circuit "
            "duration plus the repetition delay per shot, see `qpu/timing.py`) and the task "
            "waits for it. Decision latency is from submission to the end of the job "
            "(queueing included), per run the mean and the 95th percentile of the decisions "
            "after the warm-up (`qpu_decisions.parquet`), then mean and 95 % CI over "
            f"{n_models} models x {result.options.eval_seeds} held-out seeds."
        )
        util = table[table["statistic"] == "decision_qpu_utilisation_mean"]
        if not util.empty and float(util["mean"].max()) > 0.95:
            doc.p(
                "The policy site is saturated (utilisation near 100 %): decisions arrive "
                "faster than one QPU serves them, their queue grows during the whole run, "
                "and the mean and p95 decision latencies grow with the horizon; the service "
                "time per decision is the figure that belongs to the device."
            )


def _method(doc: Document, result) -> None:
    doc.h(1, "Method and files")
    doc.ul(
        [
            "Confidence intervals: mean ± t(0.975, n − 1) · s / √n (Student's t); "
            "differences: Welch's interval with Welch–Satterthwaite degrees of freedom and "
            "the p-value of `scipy.stats.ttest_ind(equal_var=False)` (`sim/aggregate.py`).",
            "Held-out worlds: training episode e of seed s ran SeedTree(s, (e,)); evaluation "
            f"replication r runs SeedTree({result.options.eval_root}, (r,)); no root is "
            "shared.",
            "Lower is better for cost, latency, energy and deadline-miss rate; higher for reward.",
            "Runs of one replication share their random draws across policies, yet the Welch "
            "test treats the samples as independent, which is conservative.",
            "Tables (Parquet and CSV, SI units): `learning_curves`, `evaluation` (agents "
            "pooled), `comparisons`, `evaluation_models`, `evaluation_seeds`, "
            "`comparisons_seeds`, `evaluation_runs`, `agents`, "
            "`decision_latency`"
            + (", `decision_runs`" if result.qpu_values is not None else "")
            + "; the runs themselves in `eval/`"
            + (" and `qpu/`" if result.qpu_sweep else "")
            + " (`run_sim.py plot eval` makes their sweep report).",
        ]
    )

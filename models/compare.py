"""The comparison of trained DDPG and Q-DDPG agents: learning curves, held-out evaluation
against the heuristics and the oracle, model sizes, training time and decision latency.

:func:`run_comparison` takes a training file (:mod:`models.training`) whose agents have
finished training and writes into one folder:

- ``learning_curves``: per agent, episode and metric (reward, cost, latency of the training
  logs) the mean over training seeds with its 95 % t-interval, for the raw values
  (``window`` 1) and for a trailing moving average over ``window`` episodes (each seed's
  series is smoothed first, then the interval is taken over seeds); figures
  ``figures/learning_<metric>``;
- ``eval/``: a sweep (:mod:`sim.sweep`, run through :mod:`sim.executors` into a run store)
  of the training scenario over ``policy`` = every trained (agent, seed) model and every
  heuristic and the oracle, with replications on held-out worlds: replication ``r`` runs
  ``SeedTree(eval_root, (r,))`` while training saw ``SeedTree(s, (e,))`` for the training
  seeds ``s`` only, and ``eval_root`` is refused when it is one of them;
- ``evaluation``: per policy the statistics of every summary metric (:func:`sim.aggregate.
  aggregate`); a learned agent pools its models, so its ``n`` is training seeds x
  held-out seeds; ``comparisons``: Welch differences between every pair of policies
  (:func:`sim.aggregate.compare`); ``evaluation_models``: one row per model;
  ``evaluation_seeds`` and ``comparisons_seeds``: the agents over their models' means,
  n = training seeds (whether training reliably ends there, not only these models);
- ``agents``: actor and critic trainable parameters and training wall time per (agent,
  seed), from ``agent.json``;
- ``qpu/``: a second sweep in which each Q-DDPG model's decisions are policy-inference jobs
  on the QPUs of ``qpu.policy_site`` (backend ``timing-only``), once per calibrated device;
  ``decision_runs`` per run and ``decision_latency`` per device: the simulated decision
  latency (mean, p95), the QPU service time per decision, the policy site's utilisation;
- ``forward_time``: the CPU wall time of each agent's actor forward pass, measured in this
  process for batch 1 and the batch sizes of the evaluation's decision epochs;
- ``report.md`` and a self-contained ``report.html`` (:class:`sim.report.Document`).

Every table but ``forward_time`` (and the report, which shows it) depends only on the
inputs, not on the number of workers; the tables are written as Parquet and CSV
(:func:`sim.aggregate.write_table`).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.policies.learned import agent_circuit
from sim.aggregate import AGGREGATE_STATS, aggregate, compare, describe, write_table
from sim.errors import SimError

HEURISTICS = ("greedy", "nearest", "random", "local", "oracle")
"""The policies every agent is evaluated against; ``oracle`` is the myopic bound."""
CURVE_METRICS = ("reward", "cost", "latency")
"""Training-log columns drawn as learning curves (the paper's Figs. 3, 6 and 5)."""
EVAL_METRICS = ("cost_mean", "latency_mean", "latency_p95", "energy_mean", "deadline_miss_rate")
"""Summary metrics of the evaluation table and the verdicts."""
EVAL_ROOT = 1_000_000
"""Default root seed of the held-out evaluation worlds (training seeds are small numbers)."""
EVAL_SEEDS = 10
"""Default held-out replications per policy and model."""
DEVICES = ("fake_sherbrooke", "fake_torino")
"""Default devices of the decision-latency runs: an Eagle r3 and a Heron r1."""
MAX_TIMED_BATCHES = 8
"""Most batch sizes whose forward pass is timed."""
TIMING_REPEATS = 7


@dataclass
class CompareOptions:
    """How the trained agents are evaluated."""

    eval_seeds: int = EVAL_SEEDS
    eval_root: int = EVAL_ROOT
    horizon: str | float | None = None
    """Simulated time of each evaluation run (``"20 s"``); None: the scenario's."""
    devices: tuple[str, ...] = DEVICES
    """Calibrated devices the Q-DDPG decisions run on; empty: no QPU runs."""
    qpu_shots: int | None = None
    """Shots per decision job; None: the scenario's ``qpu`` (1024 by default)."""
    window: int | None = None
    """Moving-average window of the learning curves; None: :func:`default_window`."""
    timing_budget: float = 0.2
    """Seconds spent timing each (agent, batch size) forward pass."""

    def check(self, training_seeds: Sequence[int]) -> None:
        if self.eval_seeds < 1:
            raise SimError(f"--eval-seeds must be at least 1, got {self.eval_seeds}")
        if not 0 <= self.eval_root < 2**63:
            raise SimError(f"--eval-root must be in 0 .. 2**63 - 1, got {self.eval_root}")
        if self.eval_root in set(training_seeds):
            raise SimError(
                f"--eval-root {self.eval_root} is a training seed (training seeds: "
                f"{', '.join(map(str, training_seeds))}); the held-out worlds need a root "
                "that no training run used"
            )
        if self.window is not None and self.window < 1:
            raise SimError(f"--window must be at least 1 episode, got {self.window}")
        if self.qpu_shots is not None and self.qpu_shots < 1:
            raise SimError(f"--qpu-shots must be at least 1, got {self.qpu_shots}")


def default_window(episodes: int) -> int:
    """A tenth of the episodes, at most 10 (1 for fewer than 20 episodes)."""
    return max(1, min(10, episodes // 10))


# ---------------------------------------------------------------------- trained runs
@dataclass
class TrainedRun:
    """One finished (agent, seed) training run."""

    agent: str
    seed: int
    folder: Path
    meta: dict[str, Any]
    log: pd.DataFrame

    @property
    def label(self) -> str:
        """The model's policy label in the evaluation (``qddpg/seed_0``)."""
        return f"{self.agent}/seed_{self.seed}"


def load_trained(cfg, output: Path | None = None, hint: str = "run_sim.py train FILE") -> list:
    """The finished runs of every (agent, seed) of ``cfg`` under ``output`` (default: the
    file's), agents in the file's order, then seeds. Raises :class:`SimError` naming every
    unfinished pair and saying to run ``hint`` first."""
    from models.training import run_dir

    found, missing = [], []
    for agent in cfg.agents:
        for seed in cfg.seeds:
            folder = run_dir(cfg, agent, seed, output)
            if (folder / "agent.json").is_file() and (folder / "agent.zip").is_file():
                found.append((agent, seed, folder))
                continue
            pointer = folder / "checkpoint.json"
            state = "not started"
            if pointer.is_file():
                try:
                    done = json.loads(pointer.read_text())["episodes"]
                    state = f"stopped after {done} of {cfg.episodes} episodes"
                except (OSError, ValueError, KeyError):
                    state = "no finished agent"
            elif folder.is_dir():
                state = "no finished agent"
            missing.append(f"{agent} seed {seed} ({folder}: {state})")
    if missing:
        total = len(cfg.agents) * len(cfg.seeds)
        raise SimError(
            f"{len(missing)} of {total} (agent, seed) runs have not finished training: "
            f"{'; '.join(missing)}; run '{hint}' first"
        )
    runs = []
    for agent, seed, folder in found:
        try:
            meta = json.loads((folder / "agent.json").read_text())
        except (OSError, ValueError) as exc:
            raise SimError(f"{folder / 'agent.json'}: cannot be read: {exc}") from None
        log = _read_log(folder)
        runs.append(TrainedRun(agent, seed, folder, meta, log))
    return runs


def _read_log(folder: Path) -> pd.DataFrame:
    for name, reader in (("log.parquet", pd.read_parquet), ("log.csv", pd.read_csv)):
        path = folder / name
        if path.is_file():
            try:
                log = reader(path)
            except Exception as exc:  # pyarrow and pandas raise several types
                raise SimError(f"{path}: cannot be read: {exc}") from None
            absent = [c for c in ("episode", *CURVE_METRICS) if c not in log.columns]
            if absent:
                raise SimError(f"{path}: lacks the columns {', '.join(absent)}")
            return log.sort_values("episode", kind="stable").reset_index(drop=True)
    raise SimError(f"{folder}: no log.parquet or log.csv")


def fingerprint(runs: Sequence[TrainedRun]) -> dict[str, str]:
    """SHA-256 of each model's ``agent.zip`` by label."""
    return {
        r.label: hashlib.sha256((r.folder / "agent.zip").read_bytes()).hexdigest() for r in runs
    }


# ---------------------------------------------------------------------- learning curves
def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average: element ``e`` is the mean of ``values[max(0, e-w+1):e+1]``."""
    x = np.asarray(values, dtype=np.float64)
    if window <= 1:
        return x.copy()
    out = np.empty_like(x)
    for e in range(x.size):
        out[e] = math.fsum(x[max(0, e - window + 1) : e + 1]) / (e + 1 - max(0, e - window + 1))
    return out


def learning_curves(runs: Sequence[TrainedRun], window: int) -> pd.DataFrame:
    """Tidy table ``agent, window, metric, episode`` and :data:`AGGREGATE_STATS`: at each
    episode the statistics over training seeds of the raw log values (``window`` 1) and of
    each seed's trailing moving average over ``window`` episodes. Episodes beyond the
    shortest log of an agent are left out."""
    rows = []
    agents = list(dict.fromkeys(r.agent for r in runs))
    for agent in agents:
        logs = [r.log for r in runs if r.agent == agent]
        n_ep = min(len(log) for log in logs)
        for w in sorted({1, int(window)}):
            for metric in CURVE_METRICS:
                series = np.stack(
                    [smooth(log[metric].to_numpy(np.float64)[:n_ep], w) for log in logs]
                )
                episodes = logs[0]["episode"].to_numpy()[:n_ep]
                for e in range(n_ep):
                    rows.append(
                        {
                            "agent": agent,
                            "window": w,
                            "metric": metric,
                            "episode": int(episodes[e]),
                            **describe(series[:, e]),
                        }
                    )
    columns = ["agent", "window", "metric", "episode", *AGGREGATE_STATS]
    table = pd.DataFrame(rows, columns=columns)
    for col in ("window", "episode", "n"):
        table[col] = table[col].astype("int64")
    return table


# ---------------------------------------------------------------------- evaluation sweeps
def _base(scenario, options: CompareOptions) -> dict[str, Any]:
    """The training scenario on the held-out root, without per-run figures."""
    base = scenario.model_dump(mode="json")
    base["seed"] = int(options.eval_root)
    if options.horizon is not None:
        base["engine"]["horizon"] = options.horizon
    base["output"] = {**base.get("output", {}), "plots": False, "task_table": True}
    return base


def _model_value(run: TrainedRun) -> dict[str, Any]:
    return {"id": run.agent, "params": {"model": str(run.folder.resolve())}, "label": run.label}


def evaluation_sweep(scenario, runs: Sequence[TrainedRun], options: CompareOptions):
    """The held-out sweep: every model and every heuristic, ``eval_seeds`` replications."""
    from sim.sweep import expand

    policies = [_model_value(r) for r in runs] + list(HEURISTICS)
    block = {"grid": {"policy": policies}, "replications": int(options.eval_seeds)}
    return expand(_base(scenario, options), block, file="evaluation of the trained agents")


def qpu_section(scenario, meta: dict[str, Any], device: str, shots: int | None) -> dict:
    """The scenario's ``qpu`` section (or the defaults) with ``timing-only`` execution on
    ``device``, decisions on ``policy_site`` (one QPU at edge server 0 unless the scenario
    names one) and policy-inference jobs of the agent's circuit shape."""
    qpu = scenario.qpu.model_dump(mode="json") if scenario.qpu is not None else {}
    qpu.update(backend="timing-only", device=device)
    if not qpu.get("policy_site"):
        qpu["policy_site"] = {"location": "edge", "server": 0, "qpus": 1}
    ddpg = meta.get("ddpg", {})
    jobs = dict(qpu.get("jobs") or {})
    job = dict(jobs.get("policy_inference") or {})
    circuit = agent_circuit(ddpg)
    size = circuit.pop("size")
    job.update(enabled=True, size=size, options={**(job.get("options") or {}), **circuit})
    if shots is not None:
        job["shots"] = int(shots)
    jobs["policy_inference"] = job
    qpu["jobs"] = jobs
    return qpu


def qpu_sweep(scenario, runs: Sequence[TrainedRun], options: CompareOptions):
    """Q-DDPG models x devices with decisions on the QPU; None without either."""
    from qpu.timing import device_name
    from sim.sweep import expand

    quantum = [r for r in runs if r.meta.get("actor") == "pqc"]
    if not quantum or not options.devices:
        return None
    devices = list(dict.fromkeys(device_name(d) for d in options.devices))
    base = _base(scenario, options)
    base["qpu"] = qpu_section(scenario, quantum[0].meta, devices[0], options.qpu_shots)
    block = {
        "grid": {"policy": [_model_value(r) for r in quantum], "qpu.device": devices},
        "replications": int(options.eval_seeds),
    }
    return expand(base, block, file="decision latency of the Q-DDPG agents")


def run_store_sweep(sweep, folder: Path, executor, quiet: bool) -> pd.DataFrame:
    """Run (or resume) ``sweep`` in ``folder``; its runs table, sorted by point, policy and
    replication. Raises :class:`SimError` if a run failed."""
    from sim.report import load_sweep
    from sim.sweep import run_sweep

    report = run_sweep(sweep, folder, executor=executor, retry_failed=True, quiet=quiet)
    if report.failed:
        spec, error = report.failed[0]
        raise SimError(
            f"{len(report.failed)} of {report.total} runs in {folder} failed, the first "
            f"({spec.policy}, replication {spec.replication}): {error}; see "
            f"{folder / 'manifest.json'}"
        )
    return load_sweep(folder).runs


# ---------------------------------------------------------------------- tables
def policy_order(runs: Sequence[TrainedRun]) -> list[str]:
    return [*dict.fromkeys(r.agent for r in runs), *HEURISTICS]


def pooled(eval_runs: pd.DataFrame, runs: Sequence[TrainedRun]) -> pd.DataFrame:
    """The evaluation runs with each model's label replaced by its agent, its label kept
    in a ``model`` column (heuristics: their own name)."""
    agent_of = {r.label: r.agent for r in runs}
    out = eval_runs.copy()
    out.insert(out.columns.get_loc("policy") + 1, "model", out["policy"].astype(str))
    out["policy"] = out["model"].map(lambda p: agent_of.get(p, p))
    return out


def evaluation_tables(eval_runs: pd.DataFrame, runs: Sequence[TrainedRun]) -> dict:
    """The evaluation tables by name.

    - ``evaluation_runs``: each run's policy (agent or heuristic), model, replication and
      :data:`EVAL_METRICS`;
    - ``evaluation``: statistics per policy over its runs, an agent's models pooled (n =
      training seeds x held-out seeds); ``comparisons``: Welch differences between every
      pair of policies, agents first, then :data:`HEURISTICS`;
    - ``evaluation_models``: statistics per model over its held-out runs;
    - ``evaluation_seeds``: statistics per agent over its models' means (n = training
      seeds); ``comparisons_seeds``: Welch differences between the agents on those means.
    """
    order = policy_order(runs)
    frame = pooled(eval_runs, runs)
    rank = {p: i for i, p in enumerate(order)}
    model_rank = {r.label: i for i, r in enumerate(runs)}
    frame = frame.assign(
        _r=frame["policy"].map(rank), _m=frame["model"].map(lambda m: model_rank.get(m, -1))
    )
    frame = frame.sort_values(["_r", "_m", "replication"], kind="stable")
    frame = frame.drop(columns=["_r", "_m"]).reset_index(drop=True)
    keep = ["policy", "model", "replication", "n_tasks", *EVAL_METRICS]
    metrics_frame = frame.drop(columns=["model"])
    learned = eval_runs[eval_runs["policy"].isin(model_rank)]
    models = _ordered(aggregate(learned, ["policy"]), model_rank, "policy")
    # one row per model: its mean over the held-out runs, as one sample of its agent
    wide = models.pivot(index="policy", columns="metric", values="mean")
    agents = list(dict.fromkeys(r.agent for r in runs))
    per_model = pd.DataFrame(
        {
            "run_id": [r.label for r in runs],
            "point": 0,
            "replication": [r.seed for r in runs],
            "policy": [r.agent for r in runs],
        }
    )
    per_model = pd.concat([per_model, wide.loc[per_model["run_id"]].reset_index(drop=True)], axis=1)
    agent_rank = {a: i for i, a in enumerate(agents)}
    seeds = _ordered(aggregate(per_model, ["policy"]), agent_rank, "policy")
    return {
        "evaluation_runs": frame[[c for c in keep if c in frame.columns]].copy(),
        "evaluation": _ordered(aggregate(metrics_frame, ["policy"]), rank, "policy").drop(
            columns=["point"]
        ),
        "comparisons": compare(metrics_frame, ["policy"], order),
        "evaluation_models": models.drop(columns=["point"]),
        "evaluation_seeds": seeds.drop(columns=["point"]),
        "comparisons_seeds": compare(per_model, ["policy"], agents),
    }


def _ordered(table: pd.DataFrame, rank: dict[str, int], column: str) -> pd.DataFrame:
    table = table.assign(_r=table[column].map(rank))
    table = table.sort_values(["_r", "metric"], kind="stable").drop(columns="_r")
    return table.reset_index(drop=True)


def agent_table(runs: Sequence[TrainedRun]) -> pd.DataFrame:
    """One row per (agent, seed): episodes, steps, parameters, training wall time [s]."""
    rows = [
        {
            "agent": r.agent,
            "seed": r.seed,
            "actor": str(r.meta.get("actor", "")),
            "episodes": int(r.meta.get("episodes", len(r.log))),
            "episode_steps": int(r.meta.get("episode_steps", 0)),
            "actor_parameters": int(r.meta["actor_parameters"]),
            "critic_parameters": int(r.meta["critic_parameters"]),
            "wall_time": float(r.meta["wall_time"]),
        }
        for r in runs
    ]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- decision latency
def decision_run_values(qpu_runs: pd.DataFrame, folder: Path, warmup: float) -> pd.DataFrame:
    """Per QPU run: device, model, replication and the decision figures read from its
    ``qpu_decisions.parquet`` (jobs completed that were submitted after the warm-up):
    ``decision_latency_mean`` and ``decision_latency_p95`` (submission to end),
    ``service_time_mean`` (execution on the QPU), with the run's
    ``decision_qpu_utilisation_mean``, ``n_tasks``, ``latency_mean`` and
    ``deadline_miss_rate``."""
    rows = []
    for _, run in qpu_runs.iterrows():
        path = folder / "runs" / str(run["run_id"]) / "qpu_decisions.parquet"
        try:
            jobs = pd.read_parquet(path, columns=["submit", "end", "execution", "status"])
        except Exception as exc:  # pyarrow raises several types
            raise SimError(f"{path}: cannot be read: {exc}") from None
        done = jobs[(jobs["status"] == 0) & (jobs["submit"] >= warmup)]
        latency = (done["end"] - done["submit"]).to_numpy(np.float64)
        rows.append(
            {
                "device": str(run["qpu.device"]),
                "model": str(run["policy"]),
                "replication": int(run["replication"]),
                "decisions": int(latency.size),
                "decision_latency_mean": float(latency.mean()) if latency.size else math.nan,
                "decision_latency_p95": float(np.percentile(latency, 95))
                if latency.size
                else math.nan,
                "service_time_mean": float(done["execution"].mean()) if latency.size else math.nan,
                "decision_qpu_utilisation_mean": float(run["decision_qpu_utilisation_mean"]),
                "n_tasks": float(run["n_tasks"]),
                "latency_mean": float(run["latency_mean"]),
                "deadline_miss_rate": float(run["deadline_miss_rate"]),
            }
        )
    return pd.DataFrame(rows)


QPU_STATISTICS = (
    "decision_latency_mean",
    "decision_latency_p95",
    "service_time_mean",
    "decision_qpu_utilisation_mean",
    "latency_mean",
    "deadline_miss_rate",
)


def occurring_batches(eval_runs: pd.DataFrame, folder: Path, epoch: float) -> dict[int, int]:
    """How many decision epochs had each batch size (tasks decided together), counted in
    the task tables of the ``local`` runs (every policy sees the same arrivals)."""
    counts: dict[int, int] = {}
    for run_id in eval_runs.loc[eval_runs["policy"] == "local", "run_id"].astype(str):
        path = folder / "runs" / run_id / "tasks.parquet"
        if not path.is_file():
            continue
        arrival = pd.read_parquet(path, columns=["arrival"])["arrival"].to_numpy(np.float64)
        per_epoch = np.bincount(np.floor(arrival / epoch + 1e-9).astype(np.int64))
        sizes, n = np.unique(per_epoch[per_epoch > 0], return_counts=True)
        for s, c in zip(sizes.tolist(), n.tolist(), strict=True):
            counts[int(s)] = counts.get(int(s), 0) + int(c)
    return dict(sorted(counts.items()))


def timed_batches(occurring: dict[int, int]) -> list[int]:
    """Batch 1 and the occurring sizes (at most :data:`MAX_TIMED_BATCHES`, spread evenly)."""
    sizes = sorted({1, *occurring})
    if len(sizes) > MAX_TIMED_BATCHES:
        pick = np.linspace(0, len(sizes) - 1, MAX_TIMED_BATCHES).round().astype(int)
        sizes = sorted({sizes[i] for i in pick} | {1})
    return sizes


def _seconds_per_call(fn: Callable[[], Any], budget: float) -> list[float]:
    """:data:`TIMING_REPEATS` measurements of the time per call of ``fn``, each over enough
    calls to last about ``budget / TIMING_REPEATS`` seconds."""
    fn()
    fn()
    target = budget / TIMING_REPEATS
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= target or calls >= 1 << 20:
            break
        calls *= 2
    out = [elapsed / calls]
    for _ in range(TIMING_REPEATS - 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - start) / calls)
    return out


def time_forward(runs: Sequence[TrainedRun], batches: Sequence[int], budget: float) -> pd.DataFrame:
    """CPU wall time of each agent's actor forward pass (its first model, torch on one
    thread, no gradients) for each batch size: tidy rows ``agent, batch_size, statistic``
    (``forward_time_per_call``, ``forward_time_per_decision``) and
    :data:`AGGREGATE_STATS` over :data:`TIMING_REPEATS` measurements."""
    import torch

    from models.agents.ddpg import Ddpg

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        firsts = {}
        for r in runs:
            firsts.setdefault(r.agent, r)
        for agent, run in firsts.items():
            actor = Ddpg.load(run.folder / "agent.zip", device="cpu").actor
            actor.set_training_mode(False)
            width = len(run.meta["state_names"])
            rng = np.random.default_rng(0)
            for b in batches:
                states = torch.from_numpy(rng.uniform(-1, 1, (b, width)).astype(np.float32))

                def call(states=states, actor=actor):
                    with torch.no_grad():
                        return actor(states)

                per_call = np.asarray(_seconds_per_call(call, budget))
                for statistic, values in (
                    ("forward_time_per_call", per_call),
                    ("forward_time_per_decision", per_call / b),
                ):
                    rows.append(
                        {
                            "agent": agent,
                            "batch_size": int(b),
                            "statistic": statistic,
                            **describe(values),
                        }
                    )
    finally:
        torch.set_num_threads(threads)
    return pd.DataFrame(rows, columns=["agent", "batch_size", "statistic", *AGGREGATE_STATS])


def decision_table(qpu_values: pd.DataFrame | None) -> pd.DataFrame:
    """The simulated decision figures per device, pooled over the Q-DDPG models and
    held-out seeds: tidy rows ``backend, statistic`` (:data:`QPU_STATISTICS`) and
    :data:`AGGREGATE_STATS`."""
    rows = []
    if qpu_values is not None and not qpu_values.empty:
        for device in dict.fromkeys(qpu_values["device"]):
            values = qpu_values[qpu_values["device"] == device]
            for statistic in QPU_STATISTICS:
                rows.append(
                    {
                        "backend": device,
                        "statistic": statistic,
                        **describe(values[statistic].to_numpy(np.float64)),
                    }
                )
    table = pd.DataFrame(rows, columns=["backend", "statistic", *AGGREGATE_STATS])
    table["n"] = table["n"].astype("int64")
    return table


def forward_table(forward: pd.DataFrame, occurring: dict[int, int]) -> pd.DataFrame:
    """The measured forward times with, per agent, a row at batch size 0: the mean time
    per decision over the decisions of the occurring batch sizes, ``sum_b f_b t_b /
    sum_b b f_b`` (``f_b`` epochs of batch ``b``, ``t_b`` the mean time per call; ``n`` is
    the number of decisions; no interval)."""
    rows = [forward]
    for agent in dict.fromkeys(forward["agent"]):
        mine = forward[forward["agent"] == agent]
        per_call = mine[mine["statistic"] == "forward_time_per_call"].set_index("batch_size")
        timed = [b for b in occurring if b in per_call.index]
        decisions = sum(b * occurring[b] for b in timed)
        if decisions:
            total = sum(occurring[b] * float(per_call.loc[b, "mean"]) for b in timed)
            row = {
                "agent": agent,
                "batch_size": 0,
                "statistic": "forward_time_per_decision",
                "n": int(decisions),
                "mean": total / decisions,
                **dict.fromkeys(("std", "sem", "ci_low", "ci_high"), math.nan),
            }
            rows.append(pd.DataFrame([row], columns=forward.columns))
    table = pd.concat(rows, ignore_index=True)
    for col in ("batch_size", "n"):
        table[col] = table[col].astype("int64")
    return table


# ---------------------------------------------------------------------- orchestration
@dataclass
class Comparison:
    """Everything the report is made of."""

    cfg: Any
    scenario: Any
    source: Path | None
    runs_root: Path
    out: Path
    options: CompareOptions
    window: int
    runs: list
    curves: pd.DataFrame
    eval_sweep: Any
    eval_runs: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    """:func:`evaluation_tables`"""
    agents: pd.DataFrame
    qpu_sweep: Any = None
    qpu_values: pd.DataFrame | None = None
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    forward: pd.DataFrame = field(default_factory=pd.DataFrame)
    occurring: dict[int, int] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)

    @property
    def evaluation(self) -> pd.DataFrame:
        return self.tables["evaluation"]

    @property
    def comparisons(self) -> pd.DataFrame:
        return self.tables["comparisons"]


def default_out(cfg, runs_root: Path | None) -> Path:
    return Path(runs_root or cfg.output) / "compare"


def _check_inputs(out: Path, record: dict[str, Any]) -> None:
    """Refuse an output folder whose evaluation was made from other trained agents."""
    path = out / "inputs.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if old.get("models") != record["models"]:
        raise SimError(
            f"{out} holds the comparison of other trained agents (their agent.zip files "
            "differ); choose another folder with --out"
        )


def run_comparison(
    cfg,
    scenario,
    *,
    source: Path | None = None,
    runs_root: Path | None = None,
    out: Path | None = None,
    options: CompareOptions | None = None,
    executor=None,
    quiet: bool = False,
    hint: str = "run_sim.py train FILE",
) -> dict[str, Path]:
    """Evaluate the trained agents of ``cfg`` and write the comparison into ``out``
    (default ``<training output>/compare``); return the written files by name."""
    from sim.executors import ProcessExecutor
    from sim.provenance import write_json_atomic

    options = options or CompareOptions()
    options.check(cfg.seeds)
    runs = load_trained(cfg, runs_root, hint)
    out = Path(out) if out is not None else default_out(cfg, runs_root)
    episodes = min(len(r.log) for r in runs)
    window = options.window or default_window(episodes)
    say = (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr))

    eval_sweep = evaluation_sweep(scenario, runs, options)
    q_sweep = qpu_sweep(scenario, runs, options)
    record = {
        "training_file": str(source) if source else None,
        "training_output": str(Path(runs_root or cfg.output)),
        "models": fingerprint(runs),
        "eval_root": options.eval_root,
        "eval_seeds": options.eval_seeds,
        "horizon": eval_sweep.runs[0].scenario.engine.horizon,
        "devices": list(options.devices) if q_sweep is not None else [],
        "qpu_shots": options.qpu_shots,
    }
    out.mkdir(parents=True, exist_ok=True)
    _check_inputs(out, record)
    write_json_atomic(out / "inputs.json", record)

    own = executor is None
    executor = executor or ProcessExecutor()
    try:
        say(f"evaluation: {eval_sweep.shape_text()}")
        eval_runs = run_store_sweep(eval_sweep, out / "eval", executor, quiet)
        qpu_runs = None
        if q_sweep is not None:
            say(f"decision latency on QPUs: {q_sweep.shape_text()}")
            qpu_runs = run_store_sweep(q_sweep, out / "qpu", executor, quiet)
    finally:
        if own:
            executor.close()

    engine = eval_sweep.runs[0].scenario.engine
    qpu_values = (
        decision_run_values(qpu_runs, out / "qpu", float(engine.warmup))
        if qpu_runs is not None
        else None
    )
    occurring = occurring_batches(eval_runs, out / "eval", float(engine.epoch))
    say("timing the actors' forward passes")
    forward = time_forward(runs, timed_batches(occurring), options.timing_budget)
    result = Comparison(
        cfg=cfg,
        scenario=scenario,
        source=source,
        runs_root=Path(runs_root or cfg.output),
        out=out,
        options=options,
        window=window,
        runs=runs,
        curves=learning_curves(runs, window),
        eval_sweep=eval_sweep,
        eval_runs=eval_runs,
        tables=evaluation_tables(eval_runs, runs),
        agents=agent_table(runs),
        qpu_sweep=q_sweep,
        qpu_values=qpu_values,
        decisions=decision_table(qpu_values),
        forward=forward_table(forward, occurring),
        occurring=occurring,
    )
    return write_outputs(result, quiet)


def write_outputs(result: Comparison, quiet: bool = False) -> dict[str, Path]:
    """Write the tables, figures and reports of ``result`` into ``result.out``."""
    from models.compare_report import report_document
    from sim.aggregate import write_bytes_atomic

    out = result.out
    written: dict[str, Path] = {}
    tables = {
        "learning_curves": result.curves,
        **result.tables,
        "agents": result.agents,
        "decision_latency": result.decisions,
        "forward_time": result.forward,
    }
    if result.qpu_values is not None:
        tables["decision_runs"] = result.qpu_values
    for stem, table in tables.items():
        for path in write_table(table, out / stem):
            written[path.name] = path
    result.figures = _write_figures(result)
    for path in result.figures:
        written[f"figures/{path.name}"] = path
    doc = report_document(result)
    written["report.md"] = write_bytes_atomic(out / "report.md", doc.markdown().encode())
    written["report.html"] = write_bytes_atomic(out / "report.html", doc.html().encode())
    if not quiet:
        print(f"report: {written['report.html']}", file=sys.stderr)
    return written


def _write_figures(result: Comparison) -> list[Path]:
    """Draw the figures and publish them into ``figures/`` (:func:`sim.report.publish_figures`)."""
    from models.compare_plots import plot_evaluation, plot_learning_curves
    from sim.report import publish_figures

    def draw(tmp: Path) -> list[Path]:
        drawn = plot_learning_curves(tmp, result.curves, result.window)
        frame = pooled(result.eval_runs, result.runs)
        eval_agg = aggregate(frame.drop(columns=["model"]), ["policy"])
        return drawn + plot_evaluation(
            tmp, eval_agg, frame, policy_order(result.runs), result.out / "eval" / "runs"
        )

    return publish_figures(result.out, draw)

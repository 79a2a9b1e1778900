"""Training DDPG and Q-DDPG on a scenario: configuration, checkpoints, logs, saved agents.

A training file (:class:`TrainConfig`; a plain scenario file stands for a training file with
every default, the paper's settings) names a scenario, the agents
(``ddpg``: MLP actor, ``qddpg``: PQC actor), the seeds, the episode count and length, the MDP
(:class:`~models.agents.mdp.MdpParams`) and the shared hyper-parameters
(:class:`~models.agents.ddpg.DdpgParams`). Every (agent, seed) pair trains into
``<output>/<agent>/seed_<seed>/``:

- ``checkpoint.json`` names the latest complete checkpoint folder ``ckpt_<episodes>/``
  (model with optimiser states and noise, replay buffer, log rows, wall time). It is replaced
  atomically after the folder is written, so a run killed at any moment resumes from the
  last checkpoint, and resuming gives the same result as never stopping: episodes are
  seeded by index, and every random generator is part of the checkpoint;
- ``log.csv`` and ``log.parquet``: one row per episode (reward, cost, latency, energy,
  violations, offload fraction, wall time);
- ``agent.zip`` and ``agent.json`` when done: the trained agent and what the policies
  ``ddpg`` / ``qddpg`` (:mod:`models.policies.learned`) need to run it in the engine.

Both agents of a seed see the same worlds (episode ``e`` runs ``SeedTree(seed, (e,))``); the
agent's own streams come from the seed's ``policy`` stream, and the PQC's PCA is fitted on
random-action episodes with indices from 10**9 on, which training never uses.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.agents.mdp import ACTION_NAMES, MdpParams
from sim.errors import ScenarioError, SimError
from sim.seeds import SeedTree

AGENTS: dict[str, str] = {"ddpg": "mlp", "qddpg": "pqc"}
"""Agent id -> actor kind."""

PCA_EPISODE_OFFSET = 10**9
"""Episode indices of the random-action episodes the PCA is fitted on."""

LOG_COLUMNS = (
    "episode",
    "steps",
    "reward",
    "cost",
    "latency",
    "energy",
    "deadline_missed",
    "bandwidth_excess",
    "offload_fraction",
    "timesteps",
    "wall_time",
)


class TrainConfig(BaseModel):
    """A training file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("training", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    scenario: str | dict[str, Any] = Field(
        ..., description="scenario file (relative to the training file) or an inline scenario"
    )
    agents: list[str] = Field(["ddpg", "qddpg"], min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    episodes: int = Field(500, ge=1, description="episodes per (agent, seed) (paper: 500)")
    episode_steps: int = Field(20, ge=1, description="decisions per episode (paper: 20)")
    checkpoint_every: int = Field(25, ge=1, description="episodes between checkpoints")
    env: MdpParams = Field(default_factory=MdpParams)
    ddpg: dict[str, Any] = Field(default_factory=dict, description="DdpgParams")
    output: str = Field("results/rl", description="output folder (relative to the cwd)")
    # a training file is told from a scenario file by its 'scenario' key

    @field_validator("agents")
    @classmethod
    def _known_agents(cls, v: list[str]) -> list[str]:
        for a in v:
            if a not in AGENTS:
                raise ValueError(f"unknown agent {a!r}; allowed: {', '.join(AGENTS)}")
        if len(set(v)) != len(v):
            raise ValueError("an agent is listed twice")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if any(s < 0 for s in v) or len(set(v)) != len(v):
            raise ValueError("seeds must be distinct and >= 0")
        return v


def load_config(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None):
    """Read a training file, or a scenario file to train on with the default settings (the
    paper's); ``overrides`` replace top-level training keys. Returns (config, scenario)."""
    from sim.scenario import load_scenario, load_yaml, validate_data

    path = Path(path)
    data, _ = load_yaml(path)
    if not isinstance(data, dict) or "scenario" not in data:  # a scenario file
        data = {"scenario": path.name, "name": f"{path.stem}-rl"}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        cfg = TrainConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ScenarioError(
            err["msg"], key=key, value=err.get("input"), file=os.fspath(path)
        ) from None
    if isinstance(cfg.scenario, str):
        scenario = load_scenario(path.parent / cfg.scenario)
    else:
        scenario = validate_data(cfg.scenario, file=os.fspath(path))
    _ddpg_params(cfg)  # validate now, not after the first agent
    return cfg, scenario


def _ddpg_params(cfg: TrainConfig):
    from models.agents.ddpg import DdpgParams

    try:
        return DdpgParams.model_validate(cfg.ddpg)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = "ddpg." + ".".join(str(p) for p in err["loc"])
        raise ScenarioError(err["msg"], key=key, value=err.get("input")) from None


# ---------------------------------------------------------------------- episode log
class EpisodeLog:
    """Accumulates the per-step infos of the environment into one row per episode."""

    def __init__(self, rows: list[dict] | None = None) -> None:
        self.rows: list[dict] = list(rows or [])
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._sums = dict.fromkeys(
            (
                "reward",
                "cost",
                "latency",
                "energy",
                "deadline_missed",
                "bandwidth_excess",
                "offload",
            ),
            0.0,
        )

    def step(self, info: dict, reward: float) -> None:
        self._n += 1
        s = self._sums
        s["reward"] += float(reward)
        for key in ("cost", "latency", "energy", "deadline_missed", "bandwidth_excess", "offload"):
            s[key] += float(info[key])

    def end(self, episode: int, timesteps: int, wall_time: float) -> None:
        n, s = max(self._n, 1), self._sums
        self.rows.append(
            {
                "episode": episode,
                "steps": self._n,
                "reward": s["reward"],
                "cost": s["cost"] / n,
                "latency": s["latency"] / n,
                "energy": s["energy"] / n,
                "deadline_missed": int(s["deadline_missed"]),
                "bandwidth_excess": s["bandwidth_excess"],
                "offload_fraction": s["offload"] / n,
                "timesteps": timesteps,
                "wall_time": wall_time,
            }
        )
        self._reset()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(LOG_COLUMNS))


def _log_callback(log: EpisodeLog, clock):
    from stable_baselines3.common.callbacks import BaseCallback

    class _Callback(BaseCallback):
        def _on_step(self) -> bool:
            info = self.locals["infos"][0]
            log.step(info, float(self.locals["rewards"][0]))
            if self.locals["dones"][0]:
                log.end(len(log.rows), int(self.model.num_timesteps), clock())
            return True

    return _Callback()


# ---------------------------------------------------------------------- one run
def _pca_states(scenario, cfg: TrainConfig, seed: int) -> np.ndarray:
    """States from random-action episodes (indices from PCA_EPISODE_OFFSET)."""
    from models.env import OffloadEnv

    params = _ddpg_params(cfg)
    env = OffloadEnv(scenario, cfg.env, cfg.episode_steps, seed=seed)
    rng = np.random.Generator(
        np.random.PCG64(SeedTree(seed, (PCA_EPISODE_OFFSET,)).sequence("policy"))
    )
    states = []
    try:
        for e in range(params.pca_episodes):
            obs, _ = env.reset(options={"episode": PCA_EPISODE_OFFSET + e})
            done = False
            while not done:
                states.append(obs)
                obs, _, term, trunc, _ = env.step(rng.uniform(-1, 1, len(ACTION_NAMES)))
                done = term or trunc
    finally:
        env.close()
    return np.asarray(states, dtype=np.float64)


def _null_logger():
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[])


def run_dir(cfg: TrainConfig, agent: str, seed: int, output: Path | None = None) -> Path:
    return Path(output or cfg.output) / agent / f"seed_{seed}"


def _write_checkpoint(folder: Path, model, log: EpisodeLog, episodes: int, wall: float) -> None:
    ckpt = folder / f"ckpt_{episodes}"
    if ckpt.exists():
        shutil.rmtree(ckpt)
    ckpt.mkdir(parents=True)
    model.save(ckpt / "model.zip")
    model.save_replay_buffer(ckpt / "buffer.pkl")
    (ckpt / "state.json").write_text(
        json.dumps({"episodes": episodes, "wall_time": wall, "rows": log.rows})
    )
    pointer = folder / "checkpoint.json"
    tmp = folder / "checkpoint.json.tmp"
    tmp.write_text(json.dumps({"folder": ckpt.name, "episodes": episodes}))
    os.replace(tmp, pointer)
    for old in folder.glob("ckpt_*"):
        if old != ckpt:
            shutil.rmtree(old, ignore_errors=True)
    frame = log.frame()
    frame.to_csv(folder / "log.csv", index=False)
    frame.to_parquet(folder / "log.parquet", index=False)


def train_one(
    cfg: TrainConfig,
    scenario,
    agent: str,
    seed: int,
    output: Path | None = None,
    progress=None,
    stop_after: int | None = None,
) -> Path:
    """Train ``agent`` for ``seed`` into its run folder, resuming from its checkpoint.

    ``progress`` (a tqdm bar) is advanced by one per episode; ``stop_after`` ends the call
    after that many episodes in total (as a kill right after that checkpoint would; for
    tests). Returns the run folder.
    """
    import torch

    from models.agents.ddpg import Ddpg, build_agent, trainable_parameters
    from models.env import OffloadEnv

    if agent not in AGENTS:
        raise SimError(f"unknown agent {agent!r}; allowed: {', '.join(AGENTS)}")
    torch.set_num_threads(1)
    params = _ddpg_params(cfg)
    folder = run_dir(cfg, agent, seed, output)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "agent.json").exists():
        if progress is not None:
            progress.update(cfg.episodes)
        return folder
    env = OffloadEnv(scenario, cfg.env, cfg.episode_steps, seed=seed)
    pointer = folder / "checkpoint.json"
    if pointer.exists():
        ckpt = folder / json.loads(pointer.read_text())["folder"]
        state = json.loads((ckpt / "state.json").read_text())
        model = Ddpg.load(ckpt / "model.zip", env=env, device="cpu")
        model.load_replay_buffer(ckpt / "buffer.pkl")
        done, wall0 = int(state["episodes"]), float(state["wall_time"])
        log = EpisodeLog(state["rows"])
        model._last_obs = None  # the next learn() resets into episode `done`
        model.get_env().set_options({"episode": done})
    else:
        pca = _pca_states(scenario, cfg, seed) if AGENTS[agent] == "pqc" else None
        model = build_agent(
            AGENTS[agent], env, params, SeedTree(seed).sequence("policy"), pca_states=pca
        )
        done, wall0 = 0, 0.0
        log = EpisodeLog()
    model.set_logger(_null_logger())
    if progress is not None:
        progress.update(done)
    start = time.perf_counter()

    def clock() -> float:
        return wall0 + time.perf_counter() - start

    callback = _log_callback(log, clock)
    target = cfg.episodes if stop_after is None else min(cfg.episodes, stop_after)
    try:
        while done < target:
            n = min(cfg.checkpoint_every, target - done)
            model.learn(n * cfg.episode_steps, callback=callback, reset_num_timesteps=False)
            if len(log.rows) != done + n or any(
                r["steps"] != cfg.episode_steps for r in log.rows[done:]
            ):
                raise SimError(
                    f"scenario '{scenario.name}': an episode ended before its "
                    f"{cfg.episode_steps} decisions (the horizon passed); lengthen "
                    "engine.horizon or shorten episode_steps"
                )
            done += n
            _write_checkpoint(folder, model, log, done, clock())
            if progress is not None:
                progress.update(n)
    finally:
        env.close()
    if done >= cfg.episodes:
        model.save(folder / "agent.zip")
        meta = {
            "agent": agent,
            "actor": AGENTS[agent],
            "seed": seed,
            "episodes": done,
            "episode_steps": cfg.episode_steps,
            "scenario": scenario.name,
            "env": cfg.env.model_dump(),
            "ddpg": params.model_dump(),
            "state_names": env.mdp.names,
            "actor_parameters": trainable_parameters(model.actor),
            "critic_parameters": trainable_parameters(model.critic),
            "wall_time": clock(),
        }
        tmp = folder / "agent.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, folder / "agent.json")
    return folder


def train(
    cfg: TrainConfig,
    scenario,
    output: Path | None = None,
    progress: bool = True,
) -> list[Path]:
    """Train every configured (agent, seed) pair; returns their run folders."""
    from tqdm import tqdm

    total = cfg.episodes * len(cfg.agents) * len(cfg.seeds)
    folders = []
    with tqdm(total=total, unit="episode", disable=not progress, desc=cfg.name) as bar:
        for seed in cfg.seeds:
            for agent in cfg.agents:
                bar.set_postfix_str(f"{agent} seed {seed}")
                folders.append(train_one(cfg, scenario, agent, seed, output, bar))
    return folders

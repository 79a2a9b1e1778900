"""A gymnasium environment over the simulator: one step is one task's offloading decision.

The environment drives the real engine (:class:`sim.engine.Engine`: the world's mobility,
channel and arrivals, the Numba queue kernels, the digital twin when the scenario runs it).
The engine runs in a worker thread and hands each decision epoch's batch of tasks over to
the environment, which presents the tasks one at a time to the agent and hands the batch's
actions back; exactly one of the two threads runs at any time, so a run is as deterministic
as the engine itself.

State, action and reward are those of :mod:`models.agents.mdp` (MODEL.md [20]-[22]).
Episodes are ``episode_steps`` decisions long (20 in the paper) and end early, as terminal,
only when the scenario's horizon passes first. Episode ``e`` after ``reset(seed=s)`` runs the
world of ``SeedTree(s, (e,))``: a fresh world each episode, the same one for the same
``(s, e)``. ``reset(options={"episode": e})`` starts episode ``e`` directly (used to resume).
"""

from __future__ import annotations

import queue
import threading

import gymnasium as gym
import numpy as np

from models.agents.mdp import (
    ACTION_NAMES,
    OBS_BOUND,
    EpochLedger,
    MdpParams,
    MdpSpec,
    decode_action,
    task_states,
)
from models.policies.base import Policy
from sim.engine import Engine
from sim.errors import SimError
from sim.observation import Actions, Observation
from sim.seeds import SeedTree


class _Abort(Exception):
    """Raised inside the engine thread to end an episode's run early."""


class _DropSink:
    """The engine's sink for training runs: finished tasks are not kept."""

    needs_table = False

    def add(self, batch: dict) -> None:
        pass


class _Handoff(Policy):
    """The engine-side end of the handoff: passes each batch to the environment."""

    id = "rl-environment"

    def __init__(self, runner: _EngineRunner) -> None:
        self.runner = runner

    def decide(self, obs: Observation) -> Actions:
        return self.runner.exchange(obs)


class _EngineRunner:
    """One episode's engine, run in a worker thread, paused at every decision epoch."""

    def __init__(self, scenario, seeds: SeedTree) -> None:
        self._to_env: queue.SimpleQueue = queue.SimpleQueue()
        self._to_engine: queue.SimpleQueue = queue.SimpleQueue()
        self.engine = Engine(scenario, _Handoff(self), seeds, _DropSink())
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._waiting = False

    def start(self) -> tuple[str, object]:
        self._thread.start()
        return self._receive()

    def _run(self) -> None:
        try:
            self.engine.run()
            self._to_env.put(("end", None))
        except _Abort:
            self._to_env.put(("aborted", None))
        except BaseException as exc:  # handed to the environment's thread
            self._to_env.put(("error", exc))

    def exchange(self, obs: Observation) -> Actions:
        """Engine thread: hand ``obs`` over and wait for the actions."""
        self._to_env.put(("decide", obs))
        actions = self._to_engine.get()
        if actions is None:
            raise _Abort
        return actions

    def _receive(self) -> tuple[str, object]:
        kind, payload = self._to_env.get()
        if kind == "error":
            self._thread.join()
            raise payload  # type: ignore[misc]
        self._waiting = kind == "decide"
        return kind, payload

    def answer(self, actions: Actions) -> tuple[str, object]:
        """Environment thread: give the batch's actions and wait for the next batch."""
        self._to_engine.put(actions)
        return self._receive()

    def release(self) -> None:
        """Let a paused engine thread end, without waiting for it."""
        if self._waiting:
            self._to_engine.put(None)
            self._waiting = False

    def stop(self) -> None:
        if self._waiting:
            self._to_engine.put(None)
            self._receive()
            self._waiting = False
        if self._thread.is_alive():
            self._thread.join()


class OffloadEnv(gym.Env):
    """Task offloading over ``scenario`` (a validated :class:`sim.config.Scenario`)."""

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        scenario,
        params: MdpParams | dict | None = None,
        episode_steps: int = 20,
        seed: int | None = None,
    ) -> None:
        if episode_steps < 1:
            raise SimError(f"episode_steps must be >= 1, got {episode_steps}")
        if isinstance(params, dict):
            params = MdpParams.model_validate(params)
        self.scenario = scenario
        self.mdp = MdpSpec.of(scenario, params)
        self.episode_steps = int(episode_steps)
        self.observation_space = gym.spaces.Box(
            -OBS_BOUND, OBS_BOUND, (self.mdp.n_features,), dtype=np.float32
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (len(ACTION_NAMES),), dtype=np.float32)
        self._root = int(scenario.seed if seed is None else seed)
        self._episode = 0  # index of the next episode
        self._runner: _EngineRunner | None = None
        self._obs: Observation | None = None
        self._ended = True
        self.episode = -1  # index of the running episode

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._root = int(seed)
            self._episode = 0
        if options and "episode" in options:
            self._episode = int(options["episode"])
        self._stop()
        self.episode = self._episode
        self._episode += 1
        self._runner = _EngineRunner(self.scenario, SeedTree(self._root, (self.episode,)))
        self._take(self._runner.start())
        if self._ended:
            raise SimError(
                f"scenario '{self.scenario.name}' has no task before its horizon; "
                "an episode needs at least one decision"
            )
        self._steps = 0
        return self._state(), {"episode": self.episode}

    def step(self, action):
        if self._ended or self._obs is None:
            raise SimError("step() called on a finished episode; call reset() first")
        obs, k = self._obs, self._k
        server, share, power = decode_action(obs, k, action, self.mdp)
        self._actions.server[k] = server
        self._actions.share[k] = share
        self._actions.power[k] = power
        outcome = self._ledger.commit(k, self._actions)
        self._steps += 1
        self._k += 1
        if self._k == obs.n_tasks:
            assert self._runner is not None
            self._take(self._runner.answer(self._actions))
        terminated = self._ended
        truncated = not terminated and self._steps >= self.episode_steps
        state = self._state() if not terminated else np.zeros(self.mdp.n_features, np.float32)
        info = dict(vars(outcome))  # asdict() of its flat fields, without the deep copies
        info["offload"] = server >= 0
        return state, outcome.reward, terminated, truncated, info

    def close(self) -> None:
        self._stop()

    def __del__(self) -> None:
        # release a paused engine thread without waiting for it (it is a daemon)
        runner = getattr(self, "_runner", None)
        if runner is not None:
            runner.release()

    # ------------------------------------------------------------------ internals
    def _take(self, message: tuple[str, object]) -> None:
        kind, payload = message
        if kind != "decide":
            self._ended = True
            self._obs = None
            return
        obs = payload
        assert isinstance(obs, Observation)
        self._ended = False
        self._obs = obs
        self._states = task_states(obs, self.mdp).astype(np.float32)
        self._ledger = EpochLedger(obs, self.mdp)
        k = obs.n_tasks
        self._actions = Actions(
            server=np.full(k, -1, dtype=np.int64), share=np.ones(k), power=np.ones(k)
        )
        self._k = 0

    def _state(self) -> np.ndarray:
        return self._states[self._k].copy()

    def _stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        self._obs = None
        self._ended = True

"""The training environment: gymnasium's checks, seeding, and rewards equal to the engine's
own costs of the committed decisions."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_table, scenario
from gymnasium.utils.env_checker import check_env

from models.agents.mdp import EpochLedger, MdpParams, MdpSpec, decode_actions
from models.env import OffloadEnv
from models.policies.base import Policy


def _env(**overrides) -> OffloadEnv:
    return OffloadEnv(scenario(engine={"horizon": "5 s"}, **overrides))


def _rollout(env: OffloadEnv, seed: int | None, actions: np.ndarray):
    obs, _ = env.reset(seed=seed)
    states, rewards = [obs], []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        states.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return np.array(states), np.array(rewards)


def test_check_env_passes():
    env = _env()
    check_env(env, skip_render_check=True)
    env.close()


def test_spaces_and_episode_length():
    env = _env()
    assert env.observation_space.shape == (env.mdp.n_features,) == (11,)
    assert env.action_space.shape == (4,)
    actions = np.zeros((30, 4), dtype=np.float32)
    states, rewards = _rollout(env, 0, actions)
    assert len(rewards) == 20  # the paper's episode length, then truncation
    assert env.observation_space.contains(states[-1])
    env.close()


def test_seeded_resets_are_deterministic_and_episodes_differ():
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (20, 4)).astype(np.float32)
    a, b = _env(), _env()
    s1, r1 = _rollout(a, 7, actions)
    s2, r2 = _rollout(b, 7, actions)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(r1, r2)
    # the next episode is a different world; reset(seed=7) gives the first one back
    s3, _ = _rollout(a, None, actions)
    assert not np.array_equal(s1[0], s3[0])
    s4, r4 = _rollout(a, 7, actions)
    np.testing.assert_array_equal(s1, s4)
    np.testing.assert_array_equal(r1, r4)
    # an episode index reached directly is the same world
    s5, _ = _rollout(b, None, actions)  # b's second episode
    a.reset(seed=7)
    s6, _ = _rollout_from(a, {"episode": 1}, actions)
    np.testing.assert_array_equal(s5, s6)
    a.close()
    b.close()


def _rollout_from(env: OffloadEnv, options: dict, actions: np.ndarray):
    obs, _ = env.reset(options=options)
    states, rewards = [obs], []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        states.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return np.array(states), np.array(rewards)


class _ConstantAgentPolicy(Policy):
    """Decodes one fixed agent action per task and records what the ledger commits."""

    id = "test-constant-agent"

    def __init__(self, scenario, action) -> None:
        super().__init__(None, scenario, np.random.default_rng(0))
        self.spec = MdpSpec.of(scenario, MdpParams())
        self.action = np.asarray(action, dtype=np.float64)
        self.outcomes: dict[int, tuple[float, float]] = {}
        self._ids: list[np.ndarray] = []

    def decide(self, obs):
        k = obs.n_tasks
        # alternate local / offload by arrival order so both paths are exercised
        acts = np.tile(self.action, (k, 1))
        first = sum(len(i) for i in self._ids)
        acts[:, 2] = np.where((first + np.arange(k)) % 3 == 0, -1.0, 1.0)
        actions = decode_actions(obs, acts, self.spec)
        ledger = EpochLedger(obs, self.spec)
        for j in range(k):
            out = ledger.commit(j, actions)
            self.outcomes[first + j] = (out.latency, out.energy)
        self._ids.append(np.arange(first, first + k))
        return actions


def test_ledger_latency_and_energy_equal_the_engines_for_one_vehicle_fifo():
    """With one vehicle (no shared server band, FIFO queues) the committed latency and
    energy of each decision are the engine's realized values for that task."""
    sc = scenario(vehicles={"count": 1}, engine={"horizon": "3 s"}, tasks={"arrival_rate": "40 /s"})
    policy = _ConstantAgentPolicy(sc, [0.2, -0.1, 1.0, -1.0])
    table, _ = run_table(sc, policy=policy)
    assert len(table) > 50 and 0 < table.offload.mean() < 1
    latency = np.array([policy.outcomes[i][0] for i in table.task_id])
    energy = np.array([policy.outcomes[i][1] for i in table.task_id])
    np.testing.assert_allclose(latency, table.latency.to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(energy, table.energy.to_numpy(), rtol=1e-9, atol=1e-15)
    # at least some tasks waited in a queue, so the waits are part of what was checked
    assert (table.wait_compute.fillna(0) + table.wait_uplink.fillna(0) > 0).any()


def test_reward_is_scaled_cost_minus_deadline_penalty():
    """A 10 MHz vehicle CPU misses the 50 ms deadline locally: reward = -cost/ref - 1."""
    env = _env(vehicles={"cpu": "10 MHz"})
    env.reset(seed=3)
    _, reward, _, _, info = env.step(np.array([0, 0, -1, 0], dtype=np.float32))  # local
    assert info["deadline_missed"] and not info["offload"]
    assert reward == pytest.approx(-info["cost"] / env.mdp.cost - 1.0, rel=1e-12)
    sc = env.scenario
    cycles_latency = info["latency"]  # s_c / C_i plus any wait
    assert cycles_latency >= sc.tasks.complexity.low / 10e6
    env.close()

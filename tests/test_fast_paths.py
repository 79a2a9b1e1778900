"""The fast paths of RL training equal the code they replace: the policy circuit's
vector-Jacobian product against its Jacobian and the parameter-shift rule on Qiskit's
Statevector, DDPG training steps against Stable-Baselines3's own ``TD3.train`` (bit for
bit), the environment's one-task action decoding against the batch decoding."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import qiskit_values, run_table, scenario
from stable_baselines3 import TD3
from stable_baselines3.common.logger import Logger
from stable_baselines3.td3.policies import TD3Policy

from models.agents.ddpg import AgentPolicy, Ddpg, DdpgParams, build_agent
from models.agents.mdp import MdpParams, MdpSpec, decode_action, decode_actions
from models.policies.base import Policy
from models.quantum_actor import PqcLayer
from qpu.statevector import BLOCK, PolicyCircuit
from qpu.templates import TemplateError, policy_inference
from sim.errors import SimError

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "n, layers, gamma, entanglement, linear",
    [
        (6, 1, 1.0, "ring", 0.0),
        (6, 2, 0.5, "chain", 0.0),
        (3, 1, 2.0, "ring", 0.0),
        (5, 3, 1.0, "ring", 0.0),
        (6, 1, 1.0, "ring", 0.9),
        (4, 2, 0.5, "chain", -0.4),
    ],
)
def test_vjp_is_the_jacobian_contracted_with_the_upstream_gradient(
    n, layers, gamma, entanglement, linear
):
    pc = PolicyCircuit(n, layers, gamma, entanglement, linear)
    rng = np.random.default_rng(10 * n + layers)
    b = 2 * BLOCK + 3  # full blocks and a partial one
    x = rng.uniform(-2, 2, (b, n))
    g = rng.normal(size=(b, n))
    shared = rng.uniform(-math.pi, math.pi, pc.n_weights)
    per_row = rng.uniform(-math.pi, math.pi, (b, pc.n_weights))
    _, jac = pc.gradients(x, shared)
    got = pc.vjp(x, shared, g)
    assert got.shape == (pc.n_weights,)
    np.testing.assert_allclose(got, np.einsum("bq,bqp->p", g, jac), rtol=0, atol=1e-11)
    _, jac_rows = pc.gradients(x, per_row)
    got_rows = pc.vjp(x, per_row, g)
    assert got_rows.shape == (b, pc.n_weights)
    np.testing.assert_allclose(got_rows, np.einsum("bq,bqp->bp", g, jac_rows), rtol=0, atol=1e-12)


@pytest.mark.parametrize("linear", [0.0, 0.5])
def test_vjp_equals_parameter_shift_on_qiskit(linear):
    t = policy_inference(6, 2, 0.7, "ring", linear)
    pc = PolicyCircuit.from_template(t)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.5, 1.5, (4, 6))
    g = rng.normal(size=(4, 6))
    theta = rng.uniform(-math.pi, math.pi, pc.n_weights)
    shift = np.zeros(pc.n_weights)
    for p in range(pc.n_weights):
        e = np.zeros(pc.n_weights)
        e[p] = math.pi / 2
        for i in range(4):
            plus, minus = qiskit_values(t, x[i], theta + e), qiskit_values(t, x[i], theta - e)
            shift[p] += g[i] @ (plus - minus) / 2
    np.testing.assert_allclose(pc.vjp(x, theta, g), shift, rtol=0, atol=1e-10)
    # a zero upstream gradient gives zero, one on a single observable its Jacobian row
    assert not pc.vjp(x, theta, np.zeros((4, 6))).any()
    one = np.zeros((4, 6))
    one[2, 4] = 1.0
    np.testing.assert_allclose(
        pc.vjp(x, theta, one), pc.gradients(x[2:3], theta)[1][0, 4], atol=1e-13
    )


def test_vjp_input_errors():
    pc = PolicyCircuit()
    with pytest.raises(TemplateError, match="gout must be"):
        pc.vjp(np.zeros((3, 6)), np.zeros(12), np.zeros((3, 5)))
    with pytest.raises(TemplateError, match="upstream gradients must be finite"):
        pc.vjp(np.zeros((3, 6)), np.zeros(12), np.full((3, 6), np.inf))


def test_pqc_layer_backward_sees_the_angles_of_its_forward_pass():
    """The optimiser changes theta in place after a forward pass; a backward pass run after
    that still differentiates at the angles the forward pass used."""
    layer = PqcLayer(6, 1)
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (4, 6)))
    theta0 = layer.theta.detach().numpy().copy()
    out = layer(x)
    with torch.no_grad():
        layer.theta.add_(0.3)
    out.sum().backward()
    want = layer.circuit.vjp(x.numpy(), theta0, np.ones((4, 6)))
    np.testing.assert_allclose(layer.theta.grad.numpy(), want, rtol=0, atol=0)


class DriftEnv(gym.Env):
    """Random states, a reward that depends on state and action, 20-step episodes."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1, 1, (7,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (4,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.s = self.np_random.uniform(-1, 1, 7).astype(np.float32)
        return self.s, {}

    def step(self, action):
        reward = -float(np.sum((np.asarray(action) - self.s[:4]) ** 2)) + 0.1 * float(self.s[4])
        self.t += 1
        self.s = self.np_random.uniform(-1, 1, 7).astype(np.float32)
        return self.s, reward, False, self.t >= 20, {}


def _trained(actor: str, steps: int) -> Ddpg:
    env = DriftEnv()
    env.reset(seed=4)
    sample = np.random.default_rng(5).uniform(-1, 1, (100, 7))
    params = DdpgParams(learning_starts=30, buffer_size=5000, actor_lr=1e-3, critic_lr=1e-3)
    model = build_agent(actor, env, params, np.random.SeedSequence(6), sample)
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(steps)
    return model


@pytest.mark.parametrize("actor", ["mlp", "pqc"])
def test_training_steps_equal_sb3_train_bit_for_bit(actor, monkeypatch):
    fast = _trained(actor, 250)
    with monkeypatch.context() as m:
        m.setattr(Ddpg, "train", TD3.train)
        m.setattr(AgentPolicy, "set_training_mode", TD3Policy.set_training_mode)
        reference = _trained(actor, 250)
    assert fast._n_updates == reference._n_updates == 250 - 30
    got, want = fast.policy.state_dict(), reference.policy.state_dict()
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name
    # the networks moved away from their initial values and the targets followed
    start = _trained(actor, 30).policy.state_dict()
    assert any(not torch.equal(start[k], want[k]) for k in want if k.startswith("actor."))
    assert any(not torch.equal(start[k], want[k]) for k in want if k.startswith("critic_target"))
    for opt in ("actor", "critic"):
        a = getattr(fast, opt).optimizer.state_dict()["state"]
        b = getattr(reference, opt).optimizer.state_dict()["state"]
        for i in b:
            for key in b[i]:
                assert torch.equal(a[i][key], b[i][key]), (opt, i, key)


def test_training_mode_switches_actor_and_critic_not_targets():
    model = _trained("pqc", 0)
    policy = model.policy
    policy.set_training_mode(True)
    assert all(m.training for net in (policy.actor, policy.critic) for m in net.modules())
    assert not any(
        m.training for net in (policy.actor_target, policy.critic_target) for m in net.modules()
    )
    policy.set_training_mode(False)
    assert not any(m.training for m in policy.modules())


class _DecodeBoth(Policy):
    """Decodes random agent actions (with edge values) both ways at every epoch."""

    id = "test-decode-both"

    def __init__(self, sc) -> None:
        super().__init__(None, sc, np.random.default_rng(0))
        self.spec = MdpSpec.of(sc, MdpParams(servers_observed=3))
        self.rng = np.random.default_rng(8)
        self.compared = 0
        self.offloaded = 0

    def decide(self, obs):
        k = obs.n_tasks
        acts = self.rng.uniform(-1.2, 1.2, (k, 4))
        edges = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1e-300, 0.999999])
        mask = self.rng.random((k, 4)) < 0.3
        acts[mask] = self.rng.choice(edges, mask.sum())
        batch = decode_actions(obs, acts, self.spec)
        for j in range(k):
            server, share, power = decode_action(obs, j, acts[j], self.spec)
            assert server == batch.server[j]
            assert share == batch.share[j] and power == batch.power[j]  # same floats
            self.offloaded += server >= 0
        self.compared += k
        return batch


def test_one_task_decoding_equals_the_batch_decoding():
    sc = scenario(engine={"horizon": "5 s"}, servers={"count": 4})
    policy = _DecodeBoth(sc)
    run_table(sc, policy=policy)
    assert policy.compared > 100 and 0 < policy.offloaded < policy.compared
    obs_spec = policy.spec
    with pytest.raises(SimError, match="agent action of shape"):
        decode_action(None, 0, np.zeros(3), obs_spec)  # type: ignore[arg-type]

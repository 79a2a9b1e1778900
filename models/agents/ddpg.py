"""DDPG and Q-DDPG: one algorithm (Stable-Baselines3's TD3 configured as DDPG), two actors.

:class:`Ddpg` is SB3's ``TD3`` with one critic, no target-policy smoothing and an actor update
at every step (that is DDPG, as SB3's own ``DDPG`` class sets it up), plus separate actor and
critic learning rates (the paper: 1e-4 and 2e-4; SB3 has one rate for both). The two agents
differ only in the actor that :class:`AgentPolicy` builds:

- ``mlp``: SB3's actor, an MLP with tanh output (DDPG);
- ``pqc``: :class:`QuantumActor`, the PQC of :mod:`models.quantum_actor` (Q-DDPG).

Critic (MLP), replay buffer, OU exploration noise, soft target updates and every
hyper-parameter are shared (:class:`DdpgParams`). Randomness has no global state:
:class:`SeededReplayBuffer` samples with its own generator, :class:`OrnsteinUhlenbeckNoise`
draws from its own, network initialisation runs under :func:`torch.random.fork_rng` with a
seed from the run's :class:`~sim.seeds.SeedTree`; all of them are saved with the model.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field
from stable_baselines3 import TD3
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.td3.policies import Actor, TD3Policy
from torch import nn

from models.quantum_actor import PcaAngles, QuantumActorNet

ACTOR_KINDS = ("mlp", "pqc")


class DdpgParams(BaseModel):
    """Hyper-parameters shared by DDPG and Q-DDPG (defaults: the paper where it says)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(4, ge=1, description="mini-batch (paper: 4)")
    actor_lr: float = Field(1e-4, gt=0, description="actor learning rate (paper: 1e-4)")
    critic_lr: float = Field(2e-4, gt=0, description="critic learning rate (paper: 2e-4)")
    buffer_size: int = Field(1_000_000, ge=1, description="replay buffer (paper: 1e6)")
    tau: float = Field(0.005, gt=0, le=1, description="soft target update rate rho [28], [29]")
    gamma: float = Field(
        0.9, ge=0, lt=1, description="discount; a decision mostly sets its own task's cost"
    )
    learning_starts: int = Field(100, ge=0, description="uniformly random actions before this")
    noise_theta: float = Field(0.15, ge=0, description="OU mean reversion per step")
    noise_sigma: float = Field(0.2, ge=0, description="OU volatility per step")
    critic_net: list[int] = Field([64, 64], description="critic hidden layers")
    actor_net: list[int] = Field([64, 64], description="MLP actor hidden layers (DDPG)")
    n_qubits: int = Field(6, ge=2, le=16, description="PQC qubits = PCA components (paper: 6)")
    layers: int = Field(1, ge=1, description="PQC layers (paper: 1)")
    gamma_zz: float = Field(1.0, description="ZZ encoding strength gamma")
    entanglement: Literal["ring", "chain"] = "ring"
    output_scaling: bool = Field(True, description="trainable tanh(w z + b) on the PQC outputs")
    pca_episodes: int = Field(10, ge=1, description="random-action episodes the PCA is fitted on")


class OrnsteinUhlenbeckNoise(ActionNoise):
    """OU process ``x += theta (0 - x) + sigma N(0, 1)`` per step, reset to 0 each episode,
    drawn from its own generator."""

    def __init__(self, size: int, theta: float, sigma: float, seed: int) -> None:
        super().__init__()
        self.theta = float(theta)
        self.sigma = float(sigma)
        self.rng = np.random.default_rng(seed)
        self.x = np.zeros(size)

    def __call__(self) -> np.ndarray:
        self.x = self.x - self.theta * self.x + self.sigma * self.rng.standard_normal(self.x.shape)
        return self.x.astype(np.float32)

    def reset(self) -> None:
        self.x = np.zeros_like(self.x)


class SeededReplayBuffer(ReplayBuffer):
    """SB3's replay buffer sampling from its own generator; pickles only the filled part."""

    def __init__(self, *args, seed: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int, env=None):
        upper = self.buffer_size if self.full else self.pos
        idx = self.rng.integers(0, upper, size=batch_size)
        return self._get_samples(idx, env=env)

    _ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        n = self.buffer_size if self.full else self.pos
        for name in self._ARRAYS:
            arr = state.get(name)
            if isinstance(arr, np.ndarray):
                state[name] = (arr.shape, arr.dtype, arr[:n].copy())
        return state

    def __setstate__(self, state: dict) -> None:
        for name in self._ARRAYS:
            value = state.get(name)
            if isinstance(value, tuple):
                shape, dtype, filled = value
                arr = np.zeros(shape, dtype=dtype)
                arr[: filled.shape[0]] = filled
                state[name] = arr
        self.__dict__.update(state)


class QuantumActor(Actor):
    """SB3's TD3 actor interface around :class:`~models.quantum_actor.QuantumActorNet`."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        pqc: dict[str, Any],
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            [],
            features_extractor,
            features_dim,
            activation_fn,
            normalize_images,
        )
        self.pqc_options = dict(pqc)
        opts = dict(pqc)
        pca = PcaAngles(
            np.asarray(opts.pop("pca_mean")),
            np.asarray(opts.pop("pca_scale")),
            np.asarray(opts.pop("pca_components")),
        )
        self.mu = QuantumActorNet(pca, int(np.prod(action_space.shape)), **opts)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["pqc"] = self.pqc_options
        return data


class AgentPolicy(TD3Policy):
    """TD3Policy whose actor is the MLP (``actor="mlp"``) or the PQC (``actor="pqc"``)."""

    def __init__(self, *args, actor: str = "mlp", pqc: dict | None = None, **kwargs) -> None:
        if actor not in ACTOR_KINDS:
            raise ValueError(f"actor {actor!r} unknown; allowed: {', '.join(ACTOR_KINDS)}")
        if actor == "pqc" and not pqc:
            raise ValueError("the pqc actor needs its options (PCA arrays, circuit shape)")
        self.actor_kind = actor
        self.pqc_options = pqc
        super().__init__(*args, **kwargs)

    def make_actor(self, features_extractor=None) -> Actor:
        if self.actor_kind == "mlp":
            return super().make_actor(features_extractor)
        kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return QuantumActor(pqc=self.pqc_options, **kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(actor=self.actor_kind, pqc=self.pqc_options)
        return data


class Ddpg(TD3):
    """TD3 configured as DDPG, with separate actor and critic learning rates."""

    def __init__(self, *args, actor_lr: float = 1e-4, critic_lr: float = 2e-4, **kwargs) -> None:
        self.actor_lr = float(actor_lr)
        self.critic_lr = float(critic_lr)
        kwargs.setdefault("learning_rate", self.actor_lr)
        super().__init__(*args, **kwargs)

    def _update_learning_rate(self, optimizers) -> None:
        self.logger.record("train/learning_rate", self.actor_lr)
        for group in self.actor.optimizer.param_groups:
            group["lr"] = self.actor_lr
        for group in self.critic.optimizer.param_groups:
            group["lr"] = self.critic_lr


def trainable_parameters(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def build_agent(
    actor: str,
    env,
    params: DdpgParams,
    seeds: np.random.SeedSequence,
    pca_states: np.ndarray | None = None,
) -> Ddpg:
    """A fresh agent over ``env``; ``seeds`` gives the initialisation, noise, replay and
    warm-up streams; the PQC actor's PCA is fitted on ``pca_states``."""
    if actor not in ACTOR_KINDS:
        raise ValueError(f"actor {actor!r} unknown; allowed: {', '.join(ACTOR_KINDS)}")
    init, noise, replay, warmup = (int(s.generate_state(1)[0]) for s in seeds.spawn(4))
    n_actions = int(np.prod(env.action_space.shape))
    policy_kwargs: dict[str, Any] = {
        "net_arch": {"pi": list(params.actor_net), "qf": list(params.critic_net)},
        "n_critics": 1,
        "actor": actor,
    }
    if actor == "pqc":
        if pca_states is None:
            raise ValueError("the pqc actor needs sample states to fit its PCA")
        pca = PcaAngles.fit(pca_states, params.n_qubits)
        policy_kwargs["pqc"] = {
            "pca_mean": pca.mean.numpy().tolist(),
            "pca_scale": pca.scale.numpy().tolist(),
            "pca_components": pca.components.numpy().tolist(),
            "n_qubits": params.n_qubits,
            "layers": params.layers,
            "gamma": params.gamma_zz,
            "entanglement": params.entanglement,
            "output_scaling": params.output_scaling,
        }
    with torch.random.fork_rng():
        torch.manual_seed(init)
        model = Ddpg(
            AgentPolicy,
            env,
            actor_lr=params.actor_lr,
            critic_lr=params.critic_lr,
            buffer_size=params.buffer_size,
            learning_starts=params.learning_starts,
            batch_size=params.batch_size,
            tau=params.tau,
            gamma=params.gamma,
            train_freq=1,
            gradient_steps=1,
            action_noise=OrnsteinUhlenbeckNoise(
                n_actions, params.noise_theta, params.noise_sigma, noise
            ),
            replay_buffer_class=SeededReplayBuffer,
            replay_buffer_kwargs={"seed": replay},
            policy_kwargs=policy_kwargs,
            policy_delay=1,
            target_policy_noise=0.0,
            target_noise_clip=0.0,
            device="cpu",
            verbose=0,
        )
    model.action_space.seed(warmup)
    return model

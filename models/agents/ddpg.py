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
from torch.nn import functional as F

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
    linear_zz: float = Field(
        0.0,
        description="first-order encoding RY(2 b x_j) strength b; the paper's 0 makes the "
        "PQC actor an even function of its PCA inputs",
    )
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

    @property
    def device(self) -> torch.device:
        """SB3's (the device of the first parameter, CPU without parameters), from a kept
        reference to that parameter: SB3 reads it at every prediction, walking the tree."""
        first = self.__dict__.get("_first_parameter")
        if first is None:
            first = next(self.parameters(), None)
            if first is None:  # not built yet
                return torch.device("cpu")
            self.__dict__["_first_parameter"] = first
        return first.device

    def set_training_mode(self, mode: bool) -> None:
        """SB3's switch (actor and critic; the targets stay in evaluation mode), setting each
        module's flag directly: ``nn.Module.train`` walks the tree through ``__setattr__``,
        and the switch happens twice per training step. A tree with a module that defines
        its own ``train`` takes SB3's path."""
        modules = self.__dict__.get("_mode_modules")
        if modules is None:
            modules = [m for net in (self.actor, self.critic) for m in net.modules()]
            if any(type(m).train is not nn.Module.train for m in modules):
                modules = []
            self.__dict__["_mode_modules"] = modules
        if not modules:
            super().set_training_mode(mode)
            return
        for m in modules:
            m.__dict__["training"] = mode  # what nn.Module.train sets
        self.training = mode

    def target_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The critic's and actor's parameters and their targets' (same order), for the soft
        target update."""
        pairs = self.__dict__.get("_target_pairs")
        if pairs is None:
            sources = [*self.critic.parameters(), *self.actor.parameters()]
            targets = [*self.critic_target.parameters(), *self.actor_target.parameters()]
            if len(sources) != len(targets):
                raise ValueError("a network and its target have different parameter lists")
            pairs = self.__dict__["_target_pairs"] = (sources, targets)
        return pairs


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

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3's ``TD3.train``, the same operations in the same order on the same tensors,
        without its per-step overhead, which at batch 4 outweighs the arithmetic: the soft
        target update runs over cached parameter lists with one ``_foreach`` call per
        operation (``mul_(1 - tau)``, then ``add_(alpha=tau)``, as ``polyak_update``),
        gradients are reset by setting them to None (``zero_grad()``'s default) and no
        target-policy noise is drawn when its scale is 0 (it would be exactly 0).
        ``tests/test_fast_paths.py`` checks that training ends bit for bit where SB3's own
        ``train`` does."""
        generic = (
            self.policy_delay != 1 or self.actor_batch_norm_stats or self.critic_batch_norm_stats
        )
        if generic or not isinstance(self.policy, AgentPolicy):
            super().train(gradient_steps, batch_size)
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        sources, targets = self.policy.target_pairs()
        actor_losses, critic_losses = [], []
        for _ in range(gradient_steps):
            self._n_updates += 1
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = data.discounts if data.discounts is not None else self.gamma
            with torch.no_grad():
                next_actions = self.actor_target(data.next_observations)
                if self.target_policy_noise > 0:
                    noise = data.actions.clone().data.normal_(0, self.target_policy_noise)
                    noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
                    next_actions = next_actions + noise
                next_actions = next_actions.clamp(-1, 1)
                next_q = self.critic_target(data.next_observations, next_actions)
                if len(next_q) == 1:
                    next_q_values = next_q[0]
                else:
                    next_q_values, _ = torch.min(torch.cat(next_q, dim=1), dim=1, keepdim=True)
                target_q = data.rewards + (1 - data.dones) * discounts * next_q_values
            current_q = self.critic(data.observations, data.actions)
            critic_loss = F.mse_loss(current_q[0], target_q)
            for q in current_q[1:]:
                critic_loss = critic_loss + F.mse_loss(q, target_q)
            critic_losses.append(critic_loss.item())
            _clear_grads(self.critic.optimizer)
            critic_loss.backward()
            self.critic.optimizer.step()

            actor_loss = -self.critic.q1_forward(
                data.observations, self.actor(data.observations)
            ).mean()
            actor_losses.append(actor_loss.item())
            _clear_grads(self.actor.optimizer)
            actor_loss.backward()
            self.actor.optimizer.step()

            with torch.no_grad():
                torch._foreach_mul_(targets, 1 - self.tau)
                torch._foreach_add_(targets, sources, alpha=self.tau)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if actor_losses:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))


def _clear_grads(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.zero_grad()`` (set_to_none), without its profiler bookkeeping."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


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
            "linear": params.linear_zz,
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

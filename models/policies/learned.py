"""Trained agents as policies: ``ddpg`` (MLP actor) and ``qddpg`` (PQC actor).

``policy: {id: qddpg, params: {model: results/rl/qddpg/seed_0}}`` runs the agent that
``run_sim.py train`` saved in that folder (``agent.zip`` and ``agent.json``; the path is
taken relative to the working directory). Each epoch, every task's state [20] is built from
the observation as in training (:func:`models.agents.mdp.task_states`), the actor maps the
batch to actions without exploration noise, and :func:`models.agents.mdp.decode_actions`
turns them into the engine's actions.

The PQC actor's circuit is evaluated exactly, unless the scenario runs the decisions of
quantum policies on QPUs (``qpu.policy_site``) with a sampling backend (``aer``,
``aer-noisy:<device>``, ``ibm:<backend>``): then each epoch's decisions are one submission
of the policy circuit (:func:`qpu.templates.policy_inference` with the agent's shape, its
PCA angles as inputs and its trained angles as weights) with ``shots`` of
``qpu.jobs.policy_inference``, and the actions come from the sampled ``<Z>`` values, so shot
noise and device noise act on the policy. The run summary then reports how far the sampled
actions were from the exact ones (``policy_action_error_mean`` / ``_max``, in action units
of [-1, 1]) and the backend submissions (``policy_qpu_submissions``). With ``exact`` or
``timing-only`` the actions are exact. The QPU time a decision waits for is that of the
scenario's ``qpu.jobs.policy_inference`` template, which must have the agent's shape
(checked).

The MDP module is imported when a policy is built (it imports the heuristics, which are
registered by this package). Needs the ``rl`` extra (torch, stable-baselines3) when a
scenario uses one of these ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.policies.base import Policy, register
from sim.errors import SimError
from sim.observation import Actions, Observation


class LearnedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(
        ..., description="folder (or its agent.zip) of an agent saved by 'run_sim.py train'"
    )


def _files(model: str) -> tuple[Path, Path]:
    path = Path(model)
    folder = path.parent if path.suffix == ".zip" else path
    return folder / "agent.zip", folder / "agent.json"


class _Learned(Policy):
    actor_kind: ClassVar[str] = ""
    Params = LearnedParams

    @classmethod
    def check(cls, params, scenario) -> list[tuple[str, str]]:
        zip_path, meta_path = _files(params.model)
        if not zip_path.is_file() or not meta_path.is_file():
            return [
                (
                    "policy.params.model",
                    f"no trained agent at '{params.model}' (needs agent.zip and agent.json; "
                    "run 'run_sim.py train' first)",
                )
            ]
        from models.agents.mdp import MdpParams, MdpSpec

        meta = json.loads(meta_path.read_text())
        if meta.get("actor") != cls.actor_kind:
            return [
                (
                    "policy.params.model",
                    f"'{params.model}' holds a '{meta.get('agent')}' agent, not a '{cls.id}' one",
                )
            ]
        names = MdpSpec.of(scenario, MdpParams.model_validate(meta["env"])).names
        if names != meta["state_names"]:
            return [
                (
                    "policy.params.model",
                    f"the agent was trained on states {meta['state_names']}; this scenario "
                    f"gives {names} (servers observed or the twin differ)",
                )
            ]
        return cls._check_circuit(meta, scenario)

    @classmethod
    def _check_circuit(cls, meta: dict, scenario) -> list[tuple[str, str]]:
        return []

    def __init__(self, params: LearnedParams, scenario, rng: np.random.Generator) -> None:
        super().__init__(params, scenario, rng)
        problems = self.check(params, scenario)
        if problems:
            raise SimError(problems[0][1])
        import torch

        from models.agents import mdp
        from models.agents.ddpg import Ddpg

        zip_path, meta_path = _files(params.model)
        meta = json.loads(meta_path.read_text())
        self._mdp = mdp
        self.mdp = mdp.MdpSpec.of(scenario, mdp.MdpParams.model_validate(meta["env"]))
        model = Ddpg.load(zip_path, device="cpu")
        self.actor = model.actor
        self.actor.set_training_mode(False)
        self._torch = torch

    def decide(self, obs: Observation) -> Actions:
        states = self._mdp.task_states(obs, self.mdp).astype(np.float32)
        with self._torch.no_grad():
            action = self.actor(self._torch.from_numpy(states)).double().numpy()
        return self._mdp.decode_actions(obs, action, self.mdp)


@register
class LearnedDdpg(_Learned):
    """A DDPG agent (MLP actor) trained by ``run_sim.py train``."""

    id = "ddpg"
    actor_kind = "mlp"


def agent_circuit(ddpg: dict) -> dict:
    """The policy circuit's shape as the agent was trained (its DdpgParams, as saved in
    ``agent.json``): ``size`` and the template options of ``policy_inference``."""
    return {
        "size": int(ddpg.get("n_qubits", 6)),
        "layers": int(ddpg.get("layers", 1)),
        "gamma": float(ddpg.get("gamma_zz", 1.0)),
        "entanglement": str(ddpg.get("entanglement", "ring")),
        "linear": float(ddpg.get("linear_zz", 0.0)),
    }


def _job_circuit(qpu) -> dict:
    """The shape of the scenario's policy-inference job template."""
    from qpu.templates import build_template

    t = build_template(
        "policy_inference", qpu.size("policy_inference"), **qpu.jobs["policy_inference"].options
    )
    opts = dict(t.options)
    return {
        "size": int(t.size),
        "layers": int(opts["layers"]),
        "gamma": float(opts["gamma"]),
        "entanglement": str(opts["entanglement"]),
        "linear": float(opts["linear"]),
    }


_EXACT_BACKENDS = ("exact", "timing-only", "timing_only")


@register
class LearnedQddpg(_Learned):
    """A Q-DDPG agent (PQC actor) trained by ``run_sim.py train``."""

    id = "qddpg"
    actor_kind = "pqc"
    runs_on_qpu = True

    @classmethod
    def _check_circuit(cls, meta: dict, scenario) -> list[tuple[str, str]]:
        qpu = getattr(scenario, "qpu", None)
        if qpu is None or qpu.policy_site is None:
            return []
        agent, job = agent_circuit(meta.get("ddpg", {})), _job_circuit(qpu)
        if agent != job:
            shown = ", ".join(f"{k} {v}" for k, v in agent.items())
            return [
                (
                    "qpu.jobs.policy_inference",
                    f"the agent's circuit is ({shown}) but the policy-inference jobs are "
                    f"({', '.join(f'{k} {v}' for k, v in job.items())}); give the job "
                    f"size {agent['size']} and options {{layers: {agent['layers']}, "
                    f"gamma: {agent['gamma']}, entanglement: {agent['entanglement']}, "
                    f"linear: {agent['linear']}}}",
                )
            ]
        return []

    def __init__(self, params: LearnedParams, scenario, rng: np.random.Generator) -> None:
        super().__init__(params, scenario, rng)
        self._backend = None
        self._errors: list[np.ndarray] = []
        self._submissions = 0
        qpu = getattr(scenario, "qpu", None)
        if qpu is None or qpu.policy_site is None:
            return
        if qpu.backend.split(":")[0].strip().lower() in _EXACT_BACKENDS:
            return
        from qpu.backends import make_backend
        from qpu.templates import build_template
        from sim.seeds import SeedTree

        net = self.actor.mu
        circuit = net.pqc.circuit
        self._template = build_template(
            "policy_inference",
            circuit.n_qubits,
            layers=circuit.layers,
            gamma=circuit.gamma,
            entanglement=circuit.entanglement,
            linear=circuit.linear,
        )
        self._shots = qpu.shots_of("policy_inference")
        # the backend's shot seeds come from the policy's own stream
        self._backend = make_backend(qpu.backend, SeedTree(int(rng.integers(0, 2**63 - 1))))

    def decide(self, obs: Observation) -> Actions:
        if self._backend is None:
            return super().decide(obs)
        torch = self._torch
        states = self._mdp.task_states(obs, self.mdp).astype(np.float32)
        if states.shape[0] == 0:
            return super().decide(obs)
        net = self.actor.mu
        with torch.no_grad():
            x = torch.from_numpy(states).double()
            angles = net.pca(x)
            theta = net.pqc.theta.detach().double().numpy()
            result = self._backend.run(self._template, angles.numpy(), theta, self._shots)
            self._submissions += 1
            z = torch.from_numpy(np.asarray(result.values, dtype=np.float64))
            sampled = net.out(z).numpy()
            exact = net.out(net.pqc(angles)).numpy()
        self._errors.append(np.abs(sampled - exact).ravel())
        return self._mdp.decode_actions(obs, sampled, self.mdp)

    def metrics(self) -> dict[str, float]:
        if self._backend is None:
            return {}
        err = np.concatenate(self._errors) if self._errors else np.zeros(0)
        return {
            "policy_qpu_submissions": float(self._submissions),
            "policy_action_error_mean": float(err.mean()) if err.size else float("nan"),
            "policy_action_error_max": float(err.max()) if err.size else float("nan"),
        }

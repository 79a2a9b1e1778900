"""Trained agents as policies: ``ddpg`` (MLP actor) and ``qddpg`` (PQC actor).

``policy: {id: qddpg, params: {model: results/rl/qddpg/seed_0}}`` runs the agent that
``run_sim.py train`` saved in that folder (``agent.zip`` and ``agent.json``; the path is
taken relative to the working directory). Each epoch, every task's state [20] is built from
the observation as in training (:func:`models.agents.mdp.task_states`), the actor maps the
batch to actions without exploration noise, and :func:`models.agents.mdp.decode_actions`
turns them into the engine's actions. The PQC actor's circuit is evaluated exactly.

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


@register
class LearnedQddpg(_Learned):
    """A Q-DDPG agent (PQC actor) trained by ``run_sim.py train``."""

    id = "qddpg"
    actor_kind = "pqc"
    runs_on_qpu = True

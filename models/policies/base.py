"""The policy interface and its registry."""

from __future__ import annotations

import difflib
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from sim.observation import Actions, Observation


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Policy:
    """Maps an observation batch to actions. Subclasses set ``id`` and may set ``Params``.

    ``check(scenario)`` returns a list of ``(key, message)`` problems found against the
    scenario before anything runs (e.g. a server index that does not exist).
    """

    id: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    # a quantum policy: with ``qpu.policy_site`` each decision is a policy-inference job
    # there, and the task waits for it (see sim.qpu_link)
    runs_on_qpu: ClassVar[bool] = False

    def __init__(self, params: BaseModel, scenario, rng: np.random.Generator) -> None:
        self.params = params
        self.scenario = scenario
        self.rng = rng

    @classmethod
    def check(cls, params: BaseModel, scenario) -> list[tuple[str, str]]:
        return []

    def decide(self, obs: Observation) -> Actions:
        raise NotImplementedError

    def metrics(self) -> dict[str, float]:
        """Figures of the policy's own for the run summary (``policy_*``), after the run."""
        return {}


class UnknownPolicy(KeyError):
    def __init__(self, policy_id: str) -> None:
        near = difflib.get_close_matches(policy_id, available(), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        self.message = (
            f"unknown policy '{policy_id}'{hint}; known policies: {', '.join(available())}"
        )
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


_REGISTRY: dict[str, type[Policy]] = {}


def register(cls: type[Policy]) -> type[Policy]:
    if not cls.id:
        raise ValueError(f"{cls.__name__} has no id")
    if cls.id in _REGISTRY and _REGISTRY[cls.id] is not cls:
        raise ValueError(f"policy id '{cls.id}' is registered twice")
    _REGISTRY[cls.id] = cls
    return cls


def available() -> list[str]:
    return sorted(_REGISTRY)


def get(policy_id: str) -> type[Policy]:
    try:
        return _REGISTRY[policy_id]
    except KeyError:
        raise UnknownPolicy(policy_id) from None

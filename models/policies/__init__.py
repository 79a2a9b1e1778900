"""Policies registered by string id.

A policy maps an :class:`sim.observation.Observation` (one epoch's batch of tasks) to
:class:`sim.observation.Actions`. Register a class with :func:`register`; look one up with
:func:`get`, which names the known ids when asked for an unknown one.
"""

from __future__ import annotations

from models.policies.base import Policy, UnknownPolicy, available, get, register

__all__ = ["Policy", "UnknownPolicy", "available", "get", "make", "register"]


def make(policy_id: str, params: dict, scenario, rng):
    """Build the policy ``policy_id`` with validated ``params`` for ``scenario``."""
    cls = get(policy_id)
    return cls(cls.Params.model_validate(params), scenario, rng)


# Importing the modules registers their policies.
from models.policies import heuristics as _heuristics  # noqa: E402,F401
from models.policies import learned as _learned  # noqa: E402,F401
from models.policies import oracle as _oracle  # noqa: E402,F401
from models.policies import qaoa as _qaoa  # noqa: E402,F401
from models.policies import twin_aware as _twin_aware  # noqa: E402,F401

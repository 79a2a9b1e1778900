"""Shared helpers: scenarios built in code and an in-memory sink for the engine."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sim.config import Scenario
from sim.engine import RECORD_COLUMNS, simulate

REPO = Path(__file__).resolve().parent.parent


class CollectSink:
    """Keeps every finished task in memory (tests only)."""

    def __init__(self) -> None:
        self.batches: list[dict] = []

    def add(self, batch: dict) -> None:
        self.batches.append(batch)

    def frame(self) -> pd.DataFrame:
        if not self.batches:
            return pd.DataFrame({k: [] for k in RECORD_COLUMNS})
        cols = {k: np.concatenate([b[k] for b in self.batches]) for k in RECORD_COLUMNS}
        return pd.DataFrame(cols).sort_values("task_id", kind="stable").reset_index(drop=True)


def scenario(**overrides) -> Scenario:
    """The quickstart scenario with nested overrides, e.g. ``tasks={"deadline": "1 s"}``."""
    data = yaml.safe_load((REPO / "scenarios" / "quickstart.yaml").read_text())
    data = copy.deepcopy(data)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return Scenario.model_validate(data)


def qiskit_values(template, x, w=None) -> np.ndarray:
    """<Z> of each of ``template``'s observables on Qiskit's exact Statevector, for inputs
    ``x`` and weights ``w`` (the reference the fast circuit paths are checked against)."""
    from qiskit.quantum_info import Statevector

    sv = Statevector(template.bind(np.asarray(x, dtype=float), w))
    return np.array([sv.expectation_value(o).real for o in template.observables])


def run_table(sc: Scenario, seeds=None, policy=None):
    sink = CollectSink()
    result = simulate(sc, sink, policy=policy, seeds=seeds)
    return sink.frame(), result


@pytest.fixture
def quickstart() -> Scenario:
    return scenario()

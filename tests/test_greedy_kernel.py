"""The compiled ``greedy`` equals its array-formula reference on the engine's observations."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_table, scenario

from models.policies import make
from models.policies.heuristics import estimated_costs

WORLDS = {
    "quickstart": {},
    "fading-interference": dict(
        vehicles={"count": 12},
        servers={"count": 3},
        channel={"fading": {"model": "rayleigh"}, "interference": {"enabled": True}},
    ),
    "busy-server": dict(
        vehicles={"count": 20},
        servers={"count": 1},
        tasks={"complexity": ["2e7 cycles", "6e7 cycles"]},
    ),
    "density-noise-heavy": dict(
        channel={"noise": "-174 dBm/Hz", "noise_kind": "density"},
        servers={"bandwidth": "1 MHz"},
        tasks={"size": ["1e4 bit", "4e5 bit"], "complexity": ["1e6 cycles", "4e6 cycles"]},
    ),
}


class _Both:
    """``greedy`` that also runs the reference on every observation and keeps both."""

    id = "greedy"
    runs_on_qpu = False

    def __init__(self, sc, use_backlog: bool) -> None:
        self.inner = make("greedy", {"use_backlog": use_backlog}, sc, np.random.default_rng(0))
        self.use_backlog = use_backlog
        self.pairs = []
        self.observations = []

    def decide(self, obs):
        self.observations.append(obs)
        fast, local, offload = self.inner.decide_with_costs(obs)
        ref = self.inner.decide_reference(obs, self.use_backlog)
        self.pairs.append((fast, ref))
        # the same estimates, bit for bit
        ref_local, ref_offload = estimated_costs(obs, self.use_backlog)
        np.testing.assert_array_equal(local, ref_local)
        np.testing.assert_array_equal(offload, ref_offload)
        return fast

    def metrics(self):
        return {}


@pytest.mark.parametrize("world", sorted(WORLDS))
@pytest.mark.parametrize("use_backlog", [True, False])
def test_compiled_greedy_equals_the_array_formulas(world, use_backlog):
    sc = scenario(engine={"horizon": "2 s"}, policy="greedy", **WORLDS[world])
    spy = _Both(sc, use_backlog)
    run_table(sc, policy=spy)
    tasks = sum(len(f.server) for f, _ in spy.pairs)
    assert tasks > 50
    both = [(f.server >= 0).sum() for f, _ in spy.pairs]
    if world == "density-noise-heavy":  # both choices occur
        assert 0 < sum(both) < tasks
    if world == "busy-server" and use_backlog:  # the queues' backlog enters the estimates
        assert any((obs.server_backlog > 0).any() for obs in spy.observations)
    for fast, ref in spy.pairs:
        np.testing.assert_array_equal(fast.server, ref.server)
        np.testing.assert_array_equal(fast.share, ref.share)
        np.testing.assert_array_equal(fast.power, ref.power)

"""Policies: registry, each heuristic's rule, greedy's estimates, the oracle as a bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import run_table, scenario

from models.policies import UnknownPolicy, available, get, make
from models.policies.heuristics import estimated_costs
from sim.channel import ChannelState
from sim.config import Channel
from sim.observation import Observation
from sim.seeds import SeedTree
from sim.world import World


def test_registry_lists_every_policy_and_names_them_on_a_typo():
    assert {"local", "nearest", "fixed", "random", "greedy", "oracle"} <= set(available())
    with pytest.raises(UnknownPolicy, match=r"did you mean 'greedy'.*known policies"):
        get("gredy")


def test_local_never_offloads():
    table, _ = run_table(scenario(policy="local", engine={"horizon": "2 s"}))
    assert not table.offload.any() and (table.server == -1).all()
    assert table.rate.isna().all() and table.tx_time.isna().all()


def test_nearest_offloads_to_the_nearest_server_with_an_equal_share():
    sc = scenario(
        policy="nearest",
        mobility={"model": "static"},
        vehicles={"count": 7},
        servers={"count": 3},
        engine={"horizon": "2 s"},
    )
    table, _ = run_table(sc)
    world = World(sc, SeedTree(sc.seed))
    d = np.linalg.norm(world.positions[:, None, :] - world.server_position[None], axis=2)
    nearest = d.argmin(axis=1)
    assert (table.server == nearest[table.vehicle]).all()
    cell = np.bincount(nearest, minlength=3)
    np.testing.assert_allclose(table.share, 1.0 / cell[table.server])
    assert (table.power == sc.vehicles.power_max).all()


def test_fixed_sends_everything_to_its_server():
    sc = scenario(policy={"id": "fixed", "params": {"server": 1}}, engine={"horizon": "2 s"})
    table, _ = run_table(sc)
    assert (table.server == 1).all()


def test_random_offloads_with_its_probability_to_any_server():
    sc = scenario(
        policy={"id": "random", "params": {"offload_probability": 0.3}},
        servers={"count": 3},
        tasks={"arrival_rate": "500 /s"},
        engine={"horizon": "10 s"},
    )
    table, _ = run_table(sc)
    n = len(table)
    assert abs(table.offload.mean() - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
    counts = np.bincount(table.server[table.offload], minlength=3)
    assert counts.min() > 0.8 * counts.mean()


def test_greedy_follows_the_cheaper_side():
    slow_cpu = scenario(policy="greedy", vehicles={"cpu": "10 MHz"}, engine={"horizon": "2 s"})
    assert run_table(slow_cpu)[0].offload.all()
    thin_band = scenario(policy="greedy", servers={"bandwidth": "2 kHz"}, engine={"horizon": "2 s"})
    assert not run_table(thin_band)[0].offload.any()


def observation(**over) -> Observation:
    """One vehicle at (0, 0), servers at 100 m and 300 m, one task."""
    ch = Channel.model_validate({"reference_gain": "-40 dB", "noise": "-70 dBm"})
    vpos = np.array([[0.0, 0.0]])
    spos = np.array([[100.0, 0.0], [300.0, 0.0]])
    base = dict(
        t=0.0,
        epoch=0.01,
        task_vehicle=np.array([0]),
        task_arrival=np.array([0.001]),
        task_size=np.array([2e4]),
        task_cycles=np.array([1e6]),
        task_deadline=np.array([0.051]),
        task_priority=np.array([0.0]),
        vehicle_position=vpos,
        vehicle_cpu=np.array([1e9]),
        vehicle_power_max=np.array([1.0]),
        vehicle_local_free=np.array([0.004]),
        vehicle_uplink_free=np.array([0.0]),
        vehicle_nearest=np.array([0]),
        server_position=spos,
        server_cpu=np.array([10e9, 20e9]),
        server_cores=np.array([1, 1]),
        server_bandwidth=np.array([10e6, 10e6]),
        server_core_free=np.array([[0.006], [0.0]]),
        server_cell_size=np.array([1, 0]),
        channel=ChannelState(vpos, spos, ch, np.array([1.0]), None, 2),
        noise=1e-10,
        noise_is_density=False,
        semantic_efficiency=0.8,
        local_accuracy=1.0,
        edge_accuracy=1.0,
        energy_coefficient=1e-27,
        latency_weight=0.5,
    )
    base.update(over)
    return Observation(**base)


def test_greedy_estimates_are_the_paper_formulas_plus_backlog():
    obs = observation()
    local, off = estimated_costs(obs)
    # local: backlog (0.004 - 0) + 1e6 / 1e9; energy kappa C^2 s_c
    assert local[0] == pytest.approx(0.5 * (0.004 + 1e-3) + 0.5 * 1e-27 * 1e18 * 1e6)
    # serving server 0 at 100 m, full band (alone in its cell): 20 dB SNR
    r0 = 10e6 * math.log2(1 + 1e-4 / 100**2 / 1e-10)
    tx0 = 2e4 * 0.8 / r0
    want = 0.5 * (tx0 + 1e6 / 10e9 + 0.006) + 0.5 * tx0
    assert off[0] == pytest.approx(want, rel=1e-12)
    assert local[0] < off[0]  # the server's 6 ms backlog outweighs the local one
    assert make("greedy", {}, None, None).decide(obs).server[0] == -1
    idle = observation(server_core_free=np.array([[0.0], [0.0]]))
    assert make("greedy", {}, None, None).decide(idle).server[0] == 0


def test_oracle_uses_exact_queue_state_and_trades_power_for_energy():
    busy = observation(server_core_free=np.array([[0.5], [0.0]]))
    assert make("oracle", {}, None, None).decide(busy).server[0] == -1
    # latency-blind: the lowest power level is the cheapest way to send
    frugal = observation(
        latency_weight=0.0, vehicle_local_free=np.array([0.0]), energy_coefficient=1.0
    )
    act = make("oracle", {"power_levels": 4}, None, None).decide(frugal)
    assert act.server[0] == 0 and act.power[0] == pytest.approx(1.0 / 8)
    # latency only: full power
    hurried = observation(latency_weight=1.0, server_core_free=np.array([[0.0], [0.0]]))
    act = make("oracle", {"power_levels": 4}, None, None).decide(hurried)
    assert act.server[0] == 0 and act.power[0] == 1.0


@pytest.mark.parametrize(
    "world",
    [
        dict(
            vehicles={"count": 6, "cpu": "0.5 GHz"},
            servers={"count": 2, "cpu": "5 GHz"},
            tasks={"arrival_rate": "150 /s"},
        ),
        dict(
            vehicles={"count": 3},
            servers={"count": 2, "bandwidth": "3 MHz"},
            tasks={"arrival_rate": "100 /s"},
        ),
    ],
)
def test_oracle_is_the_cheapest_heuristic(world):
    costs = {}
    for policy in ("local", "nearest", "random", "greedy", "oracle"):
        sc = scenario(policy=policy, engine={"horizon": "10 s"}, **world)
        costs[policy] = run_table(sc)[0].cost.mean()
    others = min(v for k, v in costs.items() if k != "oracle")
    assert costs["oracle"] < others, costs

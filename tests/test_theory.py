"""The engine against queueing theory and the paper's closed forms.

Degenerate worlds (stationary vehicles, every task on one kind of queue, exponential or
deterministic service) must reproduce M/M/1, Erlang-C M/M/c and Pollaczek-Khinchine M/D/1
waiting times: theory inside the 99% confidence interval over replications, the interval no
wider than +-1% of theory. Replications are independent queues: each vehicle's CPU in the
local case, each run in the edge case.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import run_table, scenario
from scipy import stats

from sim.channel import path_gain, shannon_rate
from sim.engine import simulate
from sim.seeds import SeedTree
from sim.units import parse_quantity
from sim.world import World

MU = 1000.0  # service rate [1/s]: 1e6 cycles on a 1 GHz CPU


class PerQueueWait:
    """Sum and count of compute waits per vehicle or server, after a warm-up."""

    def __init__(self, n: int, key: str, warmup: float) -> None:
        self.total = np.zeros(n)
        self.count = np.zeros(n)
        self.key, self.warmup = key, warmup

    def add(self, batch: dict) -> None:
        keep = batch["arrival"] >= self.warmup
        q = batch[self.key][keep].astype(np.int64)
        self.total += np.bincount(q, weights=batch["wait_compute"][keep], minlength=self.total.size)
        self.count += np.bincount(q, minlength=self.count.size)


def confidence(samples: np.ndarray, level: float = 0.99) -> tuple[float, float]:
    mean = float(np.mean(samples))
    half = (
        stats.t.ppf(0.5 + level / 2, len(samples) - 1)
        * np.std(samples, ddof=1)
        / math.sqrt(len(samples))
    )
    return mean, float(half)


def erlang_c_wait(c: int, lam: float, mu: float) -> float:
    """Mean waiting time in queue of M/M/c (Erlang C)."""
    a = lam / mu
    rho = a / c
    tail = a**c / math.factorial(c) / (1 - rho)
    p_wait = tail / (sum(a**k / math.factorial(k) for k in range(c)) + tail)
    return p_wait / (c * mu - lam)


def local_queues(
    rho: float, service: dict, vehicles: int, horizon: float, warmup: float, seed: int
):
    sc = scenario(
        seed=seed,
        engine={"horizon": horizon, "epoch": 1.0, "warmup": warmup},
        vehicles={"count": vehicles, "cpu": "1 GHz"},
        mobility={"model": "static", "step": 1.0},
        tasks={"arrival_rate": rho * MU, "complexity": service, "deadline": "1 h"},
        policy="local",
        output={"task_table": False},
    )
    sink = PerQueueWait(vehicles, "vehicle", warmup)
    simulate(sc, sink)
    return sink.total / sink.count, int(sink.count.sum())


def check(samples: np.ndarray, theory: float) -> None:
    mean, half = confidence(samples)
    assert abs(mean - theory) <= half, f"theory {theory} outside {mean} +- {half}"
    assert half <= 0.01 * theory, f"interval +-{half / theory:.2%} wider than +-1%"


@pytest.mark.parametrize(
    "rho,vehicles,horizon", [(0.5, 40, 200.0), (0.8, 100, 250.0), (0.9, 100, 600.0)]
)
def test_mm1_waiting_time(rho, vehicles, horizon):
    waits, _n = local_queues(
        rho, {"kind": "exponential", "mean": 1e6}, vehicles, horizon, 20.0, seed=11
    )
    check(waits, rho / (MU - rho * MU))


def test_md1_waiting_time_pollaczek_khinchine():
    rho = 0.8
    waits, _ = local_queues(rho, {"kind": "fixed", "value": 1e6}, 60, 200.0, 10.0, seed=12)
    check(waits, rho / (2 * MU * (1 - rho)))


@pytest.mark.parametrize("cores,rho", [(2, 0.5), (4, 0.9)])
def test_mmc_waiting_time_erlang_c(cores, rho):
    """All vehicles offload zero-bit tasks to one c-core server: arrivals stay Poisson."""
    lam = rho * cores * MU
    reps = 32
    horizon = {0.5: 150.0, 0.9: 700.0}[rho]
    waits = []
    for r in range(reps):
        sc = scenario(
            seed=22,
            engine={"horizon": horizon, "epoch": 1.0, "warmup": 10.0},
            vehicles={"count": 10},
            servers={"count": 1, "cores": cores, "cpu": "1 GHz"},
            mobility={"model": "static", "step": 1.0},
            tasks={
                "arrival_rate": lam / 10,
                "size": 0,
                "deadline": "1 h",
                "complexity": {"kind": "exponential", "mean": 1e6},
            },
            policy={"id": "fixed", "params": {"server": 0}},
            output={"task_table": False},
        )
        sink = PerQueueWait(1, "server", 10.0)
        simulate(sc, sink, seeds=SeedTree(sc.seed, (r,)))
        waits.append(sink.total[0] / sink.count[0])
    check(np.array(waits), erlang_c_wait(cores, lam, MU))


def test_littles_law():
    """Time-average number in system equals arrival rate times mean sojourn (one path)."""
    sc = scenario(
        engine={"horizon": 400.0, "epoch": 0.5},
        mobility={"model": "static", "step": 0.5},
        vehicles={"count": 4},
        servers={"count": 1, "cores": 2, "cpu": "2 GHz"},
        tasks={"arrival_rate": "300 /s", "deadline": "1 h"},
        policy="nearest",
    )
    table, _ = run_table(sc)
    t_end = sc.engine.horizon
    # sweep over arrivals (+1) and completions (-1) inside [0, t_end]
    times = np.concatenate((table.arrival.to_numpy(), table.completion.to_numpy()))
    steps = np.concatenate((np.ones(len(table)), -np.ones(len(table))))
    order = np.argsort(times, kind="stable")
    times, steps = times[order], steps[order]
    inside = times <= t_end
    n_t = np.cumsum(steps)[inside]
    dt = np.diff(np.append(times[inside], t_end))
    area = float(np.sum(n_t * dt))
    l_avg = area / t_end
    # tasks that finish after t_end contribute only their part inside the window
    sojourn = np.minimum(table.completion, t_end) - table.arrival
    lam_w = float(sojourn.sum()) / t_end
    assert l_avg == pytest.approx(lam_w, rel=1e-9)
    lam = len(table) / t_end
    assert l_avg == pytest.approx(lam * table.latency.mean(), rel=0.01)
    assert lam == pytest.approx(4 * 300, rel=0.01)


def test_rate_of_model_md_example():
    """MODEL.md: g0 = -40 dB, 100 m, alpha 2, 1 W, 10 MHz, -70 dBm -> 20 dB, ~66.6 Mbit/s."""
    g = path_gain(100.0, parse_quantity("-40 dB", "ratio"), 1.0, 2.0, 1.0)
    noise = parse_quantity("-70 dBm", "power")
    snr = 1.0 * g / noise
    assert 10 * math.log10(snr) == pytest.approx(20.0)
    rate = shannon_rate(10e6, 1.0 * g, noise)
    assert rate == pytest.approx(10e6 * math.log2(101.0), rel=1e-15)
    assert rate == pytest.approx(66.58e6, rel=1e-3)


def test_engine_rates_are_shannon():
    sc = scenario(mobility={"model": "static"}, policy="nearest", engine={"horizon": 2.0})
    table, _ = run_table(sc)
    world = World(sc, SeedTree(sc.seed))
    v = table.vehicle.to_numpy()
    s = table.server.to_numpy()
    d = np.hypot(*(world.positions[v] - world.server_position[s]).T)
    h = 1e-4 * np.maximum(d, 1.0) ** -2.0
    want = table.share * 10e6 * np.log2(1 + table.power * h / 1e-10)
    np.testing.assert_allclose(table.rate, want, rtol=1e-12)
    np.testing.assert_allclose(table.tx_time, table.size_bits / table.rate, rtol=1e-12)
    np.testing.assert_allclose(table.energy, table.power * table.tx_time, rtol=1e-12)


def test_local_latency_and_energy_are_eqs_12_and_16():
    sc = scenario(
        policy="local",
        vehicles={
            "count": 2,
            "cpu": "0.8 GHz",
            "semantic_accuracy": 0.7,
            "energy_coefficient": 2e-27,
        },
        engine={"horizon": 5.0},
    )
    table, _ = run_table(sc)
    expect_time = table.cycles * 0.7 / 0.8e9
    np.testing.assert_allclose(table.compute_time, expect_time, rtol=1e-15)
    np.testing.assert_allclose(table.energy, 2e-27 * 0.8e9**2 * table.cycles * 0.7, rtol=1e-15)
    np.testing.assert_allclose(
        table.latency, table.wait_compute + table.compute_time, rtol=1e-12, atol=1e-15
    )
    idle = table.wait_compute == 0
    assert idle.mean() > 0.9
    np.testing.assert_allclose(table.latency[idle], expect_time[idle], rtol=1e-12)
    w1 = sc.cost.latency_weight
    np.testing.assert_allclose(table.cost, w1 * table.latency + (1 - w1) * table.energy, rtol=1e-12)

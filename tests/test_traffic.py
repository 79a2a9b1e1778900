"""Task arrivals are independent Poisson processes per vehicle; attributes follow the config."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sim.config import Tasks
from sim.traffic import TaskSource, draw


def source(rates, seed=1, **tasks):
    cfg = Tasks.model_validate(tasks)
    src = TaskSource(cfg, len(rates), np.random.default_rng(seed), np.random.default_rng(seed + 1))
    src.set_rates(np.asarray(rates, dtype=float))
    return src


def collect(src, epoch, n_epochs):
    out = [src.sample(k * epoch, (k + 1) * epoch) for k in range(n_epochs)]
    return {key: np.concatenate([o[key] for o in out]) for key in out[0]}


def test_batches_are_sorted_by_vehicle_then_arrival_inside_the_epoch():
    src = source([5.0, 50.0, 0.0, 20.0])
    for k in range(50):
        b = src.sample(k * 0.1, (k + 1) * 0.1)
        assert np.all(np.diff(b["vehicle"]) >= 0)
        same = np.diff(b["vehicle"]) == 0
        assert np.all(np.diff(b["arrival"])[same] >= 0)
        assert np.all((b["arrival"] >= k * 0.1) & (b["arrival"] < (k + 1) * 0.1))


@pytest.mark.parametrize("rates", [[10.0] * 8, [1.0, 4.0, 0.0, 30.0]])
def test_each_vehicle_is_a_poisson_process_of_its_rate(rates):
    src = source(rates, seed=3)
    horizon = 4000.0
    data = collect(src, 0.5, int(horizon / 0.5))
    counts = np.bincount(data["vehicle"], minlength=len(rates))
    for v, lam in enumerate(rates):
        # count over the horizon: Poisson(lambda T), within 4 standard deviations
        assert abs(counts[v] - lam * horizon) <= 4 * np.sqrt(max(lam * horizon, 1))
        if lam == 0:
            continue
        t = data["arrival"][data["vehicle"] == v]
        gaps = np.diff(t)
        assert stats.kstest(gaps, "expon", args=(0, 1 / lam)).pvalue > 1e-3
        # counts in disjoint windows: Poisson, so variance equals mean
        per_window = np.bincount((t // 1.0).astype(int), minlength=int(horizon))
        assert per_window.var() == pytest.approx(per_window.mean(), rel=0.1)
    # independent vehicles: counts per window uncorrelated
    windows = np.zeros((len(rates), int(horizon)))
    for v in range(len(rates)):
        t = data["arrival"][data["vehicle"] == v]
        windows[v] = np.bincount((t // 1.0).astype(int), minlength=int(horizon))
    live = [v for v, lam in enumerate(rates) if lam > 0]
    corr = np.corrcoef(windows[live])
    off = corr[~np.eye(len(live), dtype=bool)]
    assert np.abs(off).max() < 4 / np.sqrt(horizon)


def test_arrival_times_are_uniform_inside_each_epoch():
    src = source([30.0] * 5, seed=9)
    data = collect(src, 0.25, 4000)
    phase = (data["arrival"] % 0.25) / 0.25
    assert stats.kstest(phase, "uniform").pvalue > 1e-3


def test_attributes_follow_their_distributions():
    rng = np.random.default_rng(5)
    cfg = Tasks.model_validate(
        {
            "size": ["1e4 bit", "2e4 bit"],
            "complexity": {"kind": "exponential", "mean": "1.5 Mcycles"},
        }
    )
    size = draw(cfg.size, rng, 200_000)
    assert size.min() >= 1e4 and size.max() <= 2e4
    assert stats.kstest(size, "uniform", args=(1e4, 1e4)).pvalue > 1e-3
    cyc = draw(cfg.complexity, rng, 200_000)
    assert stats.kstest(cyc, "expon", args=(0, 1.5e6)).pvalue > 1e-3
    fixed = Tasks.model_validate({"size": "2 kB"})
    assert np.all(draw(fixed.size, rng, 10) == 16_000)


def test_deadline_and_priority_follow_eqs_4_and_7():
    src = source([20.0], deadline="30 ms", priority={"phi": 2e-6, "beta": -50.0})
    b = collect(src, 1.0, 20)
    np.testing.assert_allclose(b["deadline"], b["arrival"] + 0.03)
    np.testing.assert_allclose(b["priority"], 2e-6 * b["cycles"] - 50.0 * b["deadline"])
    assert np.array_equal(b["task_id"], np.arange(len(b["task_id"])))


@pytest.mark.parametrize(
    "size, complexity",
    [
        (["1e4 bit", "2e4 bit"], ["1e6 cycles", "2e6 cycles"]),  # both uniform: one fused draw
        (["1e4 bit", "2e4 bit"], {"kind": "exponential", "mean": "1.5e6 cycles"}),
        ({"kind": "fixed", "value": "3e4 bit"}, ["1e6 cycles", "3e6 cycles"]),
    ],
)
def test_sizes_and_complexities_are_the_generators_own_draws(size, complexity):
    # each epoch takes k sizes then k complexities from the task_sizes stream, as
    # Generator.uniform / exponential (or a fixed value) give them, to the last bit
    src = source([10.0, 30.0, 5.0], seed=7, size=size, complexity=complexity)
    twin = np.random.default_rng(8)  # the same stream as src.sizes
    for k in range(30):
        b = src.sample(k * 0.1, (k + 1) * 0.1)
        n = b["task_id"].shape[0]
        order = np.argsort(b["task_id"])  # back to arrival order, in which they were drawn
        want_size = draw(src.cfg.size, twin, n)
        want_cycles = draw(src.cfg.complexity, twin, n)
        np.testing.assert_array_equal(b["size_bits"][order], want_size)
        np.testing.assert_array_equal(b["cycles"][order], want_cycles)

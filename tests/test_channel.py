"""Channel: path gain, fading statistics, interference, nearest server, lazy pair gains."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sim.channel import (
    ChannelState,
    fading_power,
    gain_matrix,
    interference,
    nearest_server,
    path_gain,
)
from sim.config import Channel


@pytest.mark.parametrize("alpha", [2.0, 3.5])
def test_gain_matrix_is_eq_3_with_clipping(alpha):
    ch = Channel(
        path_loss_exponent=alpha, reference_gain=1e-3, reference_distance=2.0, min_distance=5.0
    )
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 300, (40, 2))
    s = rng.uniform(0, 300, (7, 2))
    v[0] = s[3] + [1.0, 0.0]  # closer than min_distance
    g, d2 = gain_matrix(v, s, ch)
    d = np.sqrt(((v[:, None, :] - s[None]) ** 2).sum(-1))
    np.testing.assert_allclose(d2, d**2, rtol=1e-12)
    want = 1e-3 * (np.maximum(d, 5.0) / 2.0) ** -alpha
    np.testing.assert_allclose(g, want, rtol=1e-12)
    np.testing.assert_allclose(path_gain(d, 1e-3, 2.0, alpha, 5.0), want, rtol=1e-12)


@pytest.mark.parametrize("fading", [None, "rayleigh"])
@pytest.mark.parametrize("alpha", [2.0, 2.7])
def test_pair_gains_equal_the_matrix(fading, alpha):
    ch = Channel(path_loss_exponent=alpha)
    rng = np.random.default_rng(1)
    v = rng.uniform(0, 500, (30, 2))
    s = rng.uniform(0, 500, (5, 2))
    f = fading_power(rng, fading, 0.0, (30, 5)) if fading else None
    lazy = ChannelState(v, s, ch, np.ones(30), f, 3)
    vi = rng.integers(0, 30, 50)
    si = rng.integers(0, 5, 50)
    pairs = lazy.gain_of(vi, si)
    full = ChannelState(v, s, ch, np.ones(30), f, 3).gain
    np.testing.assert_allclose(pairs, full[vi, si], rtol=1e-13)


def test_rayleigh_and_rician_power_have_unit_mean_and_the_right_law():
    rng = np.random.default_rng(2)
    ray = fading_power(rng, "rayleigh", 0.0, 200_000)
    assert ray.mean() == pytest.approx(1.0, rel=0.01)
    assert stats.kstest(ray, "expon").pvalue > 1e-3
    k = 10**0.6  # 6 dB
    ric = fading_power(rng, "rician", k, 200_000)
    assert ric.mean() == pytest.approx(1.0, rel=0.01)
    # |h|^2 (K + 1) * 2 is non-central chi-square with 2 dof and non-centrality 2K
    assert stats.kstest(ric * 2 * (k + 1), "ncx2", args=(2, 2 * k)).pvalue > 1e-3
    with pytest.raises(ValueError, match="known"):
        fading_power(rng, "nakagami", 1.0, 3)


def test_interference_counts_only_other_cells():
    gain = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    serving = np.array([0, 0, 1])
    power = np.array([1.0, 2.0, 0.5])
    got = interference(gain, serving, power, 0.5)
    # server 0 hears vehicle 2 (0.5 * 5); server 1 hears vehicles 0 and 1 (1*2 + 2*4)
    np.testing.assert_allclose(got, [0.5 * 2.5, 0.5 * 10.0])


def _argmin_lowest_index(v, s):
    """The nearest server by a full numpy scan (argmin keeps the lowest index on ties)."""
    return (((v[:, None, :] - s[None]) ** 2).sum(-1)).argmin(axis=1)


@pytest.mark.parametrize("layout", ["random", "grid", "line", "cluster", "coincident"])
def test_nearest_server_through_the_server_grid_equals_a_full_scan(layout):
    rng = np.random.default_rng(11)
    side = 5000.0
    if layout == "random":
        s = rng.uniform(0, side, (150, 2))
    elif layout == "grid":  # many exact ties between neighbouring servers
        c = np.arange(10) * 500.0 + 250.0
        s = np.stack(np.meshgrid(c, c), -1).reshape(-1, 2)
    elif layout == "line":
        s = np.c_[np.linspace(0, side, 40), np.full(40, side / 2)]
    elif layout == "cluster":
        s = rng.normal(side / 2, 10.0, (30, 2))
    else:
        s = np.full((20, 2), 7.0)
    inside = rng.uniform(0, side, (4000, 2))
    lattice = np.round(rng.uniform(0, 20, (2000, 2))) * 250.0  # on cell and Voronoi edges
    far = rng.uniform(-50 * side, 50 * side, (500, 2))  # outside the grid: full scan
    for v in (inside, lattice, far, np.vstack((inside, far))):
        np.testing.assert_array_equal(nearest_server(v, s), _argmin_lowest_index(v, s))


def test_nearest_server_and_candidates():
    rng = np.random.default_rng(3)
    v = rng.uniform(0, 1000, (200, 2))
    s = rng.uniform(0, 1000, (12, 2))
    d = ((v[:, None, :] - s[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(nearest_server(v, s), d.argmin(axis=1))
    state = ChannelState(v, s, Channel(), np.ones(200), None, 4)
    np.testing.assert_array_equal(state.candidates, np.argsort(d, axis=1)[:, :4])
    np.testing.assert_array_equal(state.cell_size, np.bincount(d.argmin(axis=1), minlength=12))


def test_far_away_points_do_not_stretch_the_server_grid():
    """Parked vehicles far from the road network are scanned in full; the grid stays fine."""
    from sim.channel import ServerGrid

    rng = np.random.default_rng(2)
    s = rng.uniform(0, 1000, (50, 2))
    v = np.vstack((rng.uniform(0, 1000, (500, 2)), np.full((300, 2), -1e7)))
    grid = ServerGrid(s, v)
    assert grid.cell < 100.0
    np.testing.assert_array_equal(nearest_server(v, s), _argmin_lowest_index(v, s))
    got, outside = grid.nearest(v)
    assert outside == 300
    np.testing.assert_array_equal(got, _argmin_lowest_index(v, s))

"""The compiled random-waypoint positions against the array formula they replace."""

from __future__ import annotations

import numpy as np
import pytest

from sim.mobility import leg_positions, leg_velocities


def numpy_positions(t, t0, dur, origin, vel, width, height):
    """Elapsed time clamped into [0, dur], origin + vel * elapsed, clamped into the area."""
    elapsed = t - t0
    np.maximum(elapsed, 0.0, out=elapsed)
    np.minimum(elapsed, dur, out=elapsed)
    x = origin[0] + vel[0] * elapsed
    y = origin[1] + vel[1] * elapsed
    np.maximum(x, 0.0, out=x)
    np.minimum(x, width, out=x)
    np.maximum(y, 0.0, out=y)
    np.minimum(y, height, out=y)
    return np.stack([x, y], axis=1)


@pytest.mark.parametrize("seed", range(5))
def test_leg_positions_equal_the_array_formula_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    n, width, height = 3000, 700.0, 300.0
    t = float(rng.uniform(0.0, 100.0))
    t0 = t + rng.normal(0.0, 20.0, n)
    t0[:50] = t  # departing now
    dur = rng.exponential(30.0, n)
    dur[50:100] = 0.0  # paused at a waypoint
    dur[100:150] = np.inf  # a leg that never ends (zero speed)
    dur[150:155] = np.nan
    origin = rng.uniform(-1.0, 1.0, (2, n)) * [[width], [height]] * 1.2
    vel = rng.normal(0.0, 20.0, (2, n))
    vel[:, 100:150] = 0.0
    vel[:, 155:160] = np.nan
    got = leg_positions(t, t0, dur, origin, vel, width, height)
    want = numpy_positions(t, t0, dur, origin, vel, width, height)
    assert got.shape == (n, 2) and got.flags.c_contiguous
    assert got.tobytes() == want.tobytes()
    # clamped into the area wherever the result is a number
    ok = ~np.isnan(got)
    assert (got[ok] >= 0.0).all()
    assert (got[:, 0][ok[:, 0]] <= width).all() and (got[:, 1][ok[:, 1]] <= height).all()
    # the NaN inputs really reach the output, so the comparison above covers them
    assert np.isnan(got[150:160]).any()


def test_leg_velocities_equal_the_array_update():
    rng = np.random.default_rng(9)
    n, t = 500, 10.0
    previous = rng.normal(size=(n, 2))
    t0 = t + rng.normal(0.0, 1.0, n)
    t0[:5] = t
    t0[5:8] = np.nan
    vel = rng.normal(size=(2, n))
    vel[0, :3] = -0.0
    changed = np.concatenate([np.arange(10), rng.integers(0, n, 40), [3, 3]])
    want = previous.copy()
    want[changed] = np.where(t0[changed] <= t, vel[:, changed], 0.0).T
    got = leg_velocities(previous, changed, t, t0, vel)
    assert got.tobytes() == want.tobytes()
    assert got.flags.c_contiguous and got is not previous
    got = leg_velocities(previous, np.empty(0, dtype=np.int64), t, t0, vel)
    assert got.tobytes() == previous.tobytes()

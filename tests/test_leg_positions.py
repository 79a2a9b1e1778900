"""The compiled random-waypoint positions against the array formula they replace."""

from __future__ import annotations

import numpy as np
import pytest

from sim.mobility import leg_positions, leg_velocities, set_legs


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


def numpy_set_legs(state, idx, origin, dest, speed, depart):
    """The leg state update as array formulas (state: origin, dest, vel, t0, dur, t1)."""
    o_origin, o_dest, o_vel, o_t0, o_dur, o_t1 = state
    delta = dest - origin
    length = np.hypot(delta[0], delta[1])
    moving = (length > 0.0) & (speed > 0.0)
    safe_length = np.where(moving, length, 1.0)
    safe_speed = np.where(moving, speed, 1.0)
    dur = np.where(moving, safe_length / safe_speed, np.where(length > 0.0, np.inf, 0.0))
    o_origin[:, idx] = origin
    o_dest[:, idx] = dest
    o_vel[:, idx] = delta * np.where(moving, safe_speed / safe_length, 0.0)
    o_t0[idx] = depart
    o_dur[idx] = dur
    o_t1[idx] = depart + dur


@pytest.mark.parametrize("seed", range(3))
def test_set_legs_equals_the_array_formulas_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    n, k = 400, 150
    idx = rng.permutation(n)[:k]
    origin = rng.uniform(0.0, 1000.0, (2, k))
    dest = rng.uniform(0.0, 1000.0, (2, k))
    dest[:, :10] = origin[:, :10]  # a leg of length 0
    dest[0, 10:20] = origin[0, 10:20]  # along one axis only
    dest[:, 20:25] = np.nan
    speed = rng.uniform(5.0, 30.0, k)
    speed[25:35] = 0.0  # never arrives
    speed[35:38] = np.nan
    depart = rng.uniform(0.0, 50.0, k)
    want = [rng.normal(size=(2, n)), rng.normal(size=(2, n)), rng.normal(size=(2, n))]
    want += [rng.normal(size=n) for _ in range(3)]
    got = [a.copy() for a in want]
    numpy_set_legs(want, idx, origin, dest, speed, depart)
    set_legs(idx, origin, dest, speed, depart, *got)
    for g, w in zip(got, want, strict=True):
        assert g.tobytes() == w.tobytes()
    assert np.isinf(got[4][idx[25:35]]).all() and (got[4][idx[:10]] == 0.0).all()


def test_legs_ended_and_with_departed_equal_the_array_formulas():
    """The ended and departed legs, in the order the array formulas give them (NaN times,
    ties with ``t`` and an empty result included)."""
    from sim.mobility import legs_ended, with_departed

    rng = np.random.default_rng(8)
    for n in (0, 1, 7, 300):
        t1 = rng.uniform(0.0, 10.0, n).round(1)
        t0 = t1 - rng.uniform(0.0, 5.0, n).round(1)
        t1[::11] = np.nan
        t0[::13] = np.nan
        for t in (-1.0, 3.0, 5.0, 20.0):
            want = np.flatnonzero(t1 <= t)
            got = legs_ended(t1, t)
            assert got.dtype == want.dtype and got.tolist() == want.tolist()
            for since in (-np.inf, 2.0, 3.0):
                departed = np.flatnonzero((t0 > since) & (t0 <= t))
                want_all = np.concatenate([want, departed])
                got_all = with_departed(got, t0, since, t)
                assert got_all.dtype == want_all.dtype
                assert got_all.tolist() == want_all.tolist()

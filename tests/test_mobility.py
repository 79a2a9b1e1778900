"""Mobility models and server placement: geometry, exact motion, determinism, statistics."""

from __future__ import annotations

import math
from typing import get_args

import numpy as np
import pytest

from sim.config import SUMO_MODELS, Area, Mobility, Servers, ServerSpec
from sim.mobility import (
    MOBILITY_MODELS,
    MobilityModel,
    RandomWaypoint,
    _junction_table,
    make_mobility,
    mean_distance_in_rectangle,
)
from sim.placement import grid_shape, place_servers, server_attributes

ALL_MODELS = get_args(Mobility.model_fields["model"].annotation)
# the models that need no input files (the SUMO ones are tested in test_sumo.py)
MODELS = tuple(m for m in ALL_MODELS if m not in SUMO_MODELS)


def build(n: int = 200, seed: int = 0, **cfg) -> MobilityModel:
    return make_mobility(Mobility(**cfg), n, np.random.default_rng(seed))


def trajectory(model: MobilityModel, steps: list[float]) -> np.ndarray:
    out = [model.positions]
    for dt in steps:
        model.advance(dt)
        out.append(model.positions)
    return np.stack(out)


# --------------------------------------------------------------------------- registry
def test_registry_has_exactly_the_config_ids():
    assert set(MOBILITY_MODELS) == set(ALL_MODELS)
    for model_id, cls in MOBILITY_MODELS.items():
        assert cls.id == model_id
    for model_id in MODELS:
        assert isinstance(build(3, model=model_id), MOBILITY_MODELS[model_id])


def test_unknown_model_error_lists_known_ids():
    cfg = Mobility().model_copy(update={"model": "teleport"})
    with pytest.raises(KeyError) as err:
        make_mobility(cfg, 3, np.random.default_rng(0))
    message = str(err.value)
    assert "teleport" in message
    for model_id in MODELS:
        assert model_id in message


@pytest.mark.parametrize("model", MODELS)
def test_negative_dt_rejected(model):
    with pytest.raises(ValueError, match="dt"):
        build(3, model=model).advance(-0.1)


@pytest.mark.parametrize("model", MODELS)
def test_no_vehicles(model):
    m = build(0, model=model)
    m.advance(1.0)
    assert m.positions.shape == (0, 2) and m.velocities.shape == (0, 2)


# --------------------------------------------------------------------------- shared properties
AREAS = [
    {"area": Area(width=1000.0, height=1000.0)},
    {"area": Area(width=730.0, height=260.0), "block": 120.0, "lanes": 4},
    {"area": Area(width=100.0, height=3000.0), "block": 100.0 / 3.0, "pause": 2.0},
]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("extra", AREAS, ids=["square", "wide", "tall"])
def test_positions_stay_inside_the_area(model, extra):
    m = build(300, seed=1, model=model, speed=(5.0, 40.0), **extra)
    w, h = extra["area"].width, extra["area"].height
    rng = np.random.default_rng(2)
    steps = [0.1] * 200 + list(rng.uniform(0.0, 30.0, size=40)) + [0.0, 500.0]
    for dt in steps:
        m.advance(dt)
        p, v = m.positions, m.velocities
        assert p.shape == (300, 2) and v.shape == (300, 2)
        assert p.dtype == np.float64 and v.dtype == np.float64
        assert np.isfinite(p).all() and np.isfinite(v).all()
        assert (p[:, 0] >= 0).all() and (p[:, 0] <= w).all()
        assert (p[:, 1] >= 0).all() and (p[:, 1] <= h).all()


@pytest.mark.parametrize("model", MODELS)
def test_same_seed_same_trajectory(model):
    steps = [0.1] * 50 + [3.7, 0.05, 12.0]
    a = trajectory(build(150, seed=7, model=model), steps)
    b = trajectory(build(150, seed=7, model=model), steps)
    np.testing.assert_array_equal(a, b)
    if model != "static":
        c = trajectory(build(150, seed=8, model=model), steps)
        assert not np.array_equal(a, c)


@pytest.mark.parametrize("model", MODELS)
def test_published_arrays_are_read_only_snapshots(model):
    m = build(50, model=model)
    before = m.positions
    kept = before.copy()
    with pytest.raises(ValueError):
        m.positions[0, 0] = 1.0
    with pytest.raises(ValueError):
        m.velocities[0, 0] = 1.0
    m.advance(5.0)
    np.testing.assert_array_equal(before, kept)


@pytest.mark.parametrize("model", MODELS)
def test_every_vehicle_stays_present(model):
    """Vehicles of these models never leave: ``present`` is all True, read-only, and the
    same array after any step (so the world never has to change arrival rates)."""
    m = build(40, model=model)
    present = m.present
    assert present.dtype == bool and present.shape == (40,) and present.all()
    with pytest.raises(ValueError):
        m.present[0] = False
    m.advance(3.0)
    assert m.present is present
    m.close()


@pytest.mark.parametrize("model", ["random_waypoint", "manhattan"])
def test_one_long_step_equals_many_short_ones(model):
    """With one vehicle the draws come in the same order however time is cut, so the exact
    piecewise-linear motion makes the end point independent of the step length, across
    many waypoints or junctions."""
    cfg = {"model": model, "pause": 1.5, "block": 50.0, "area": Area(width=400, height=300)}
    fine = build(1, seed=3, **cfg)
    for _ in range(10_000):
        fine.advance(0.03)
    coarse = build(1, seed=3, **cfg)
    coarse.advance(300.0)
    np.testing.assert_allclose(coarse.positions, fine.positions, atol=1e-6)
    np.testing.assert_allclose(coarse.velocities, fine.velocities, atol=1e-9)
    ragged = build(1, seed=3, **cfg)
    for dt in np.full(7, 300.0 / 7):
        ragged.advance(float(dt))
    np.testing.assert_allclose(ragged.positions, fine.positions, atol=1e-6)


# --------------------------------------------------------------------------- static
def test_static_never_moves():
    m = build(500, model="static", area=Area(width=300, height=200))
    start = m.positions.copy()
    for dt in (0.1, 5.0, 1e4):
        m.advance(dt)
    np.testing.assert_array_equal(m.positions, start)
    assert not m.velocities.any()
    assert start[:, 0].std() > 50 and start[:, 1].std() > 30  # spread over the area


@pytest.mark.parametrize("model", ["static", "highway"])
def test_two_half_steps_equal_one_step(model):
    halves = build(400, seed=5, model=model, area=Area(width=250, height=100), lanes=2)
    whole = build(400, seed=5, model=model, area=Area(width=250, height=100), lanes=2)
    for dt in (0.1, 0.7, 13.0, 0.1):
        halves.advance(dt / 2)
        halves.advance(dt / 2)
        whole.advance(dt)
        np.testing.assert_allclose(halves.positions, whole.positions, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(halves.velocities, whole.velocities)


# --------------------------------------------------------------------------- highway
def test_highway_lanes_directions_speeds_and_wrap():
    w, h, lanes, lw = 500.0, 200.0, 3, 3.5
    m = build(
        600,
        seed=2,
        model="highway",
        area=Area(width=w, height=h),
        lanes=lanes,
        lane_width=lw,
        speed=(20.0, 35.0),
    )
    above = h / 2 + (np.arange(lanes) + 0.5) * lw
    below = h / 2 - (np.arange(lanes) + 0.5) * lw
    y0 = m.positions[:, 1].copy()
    assert np.isin(y0, np.concatenate([above, below])).all()
    assert len(np.unique(y0)) == 2 * lanes
    vx = m.velocities[:, 0].copy()
    assert not m.velocities[:, 1].any()
    assert ((y0 > h / 2) == (vx > 0)).all()
    assert ((np.abs(vx) >= 20.0) & (np.abs(vx) <= 35.0)).all()

    dt, wrapped = 0.5, np.zeros(600, dtype=bool)
    for _ in range(100):
        x_old = m.positions[:, 0].copy()
        m.advance(dt)
        x_new = m.positions[:, 0]
        laps = (x_new - x_old - vx * dt) / w
        np.testing.assert_allclose(laps, np.round(laps), atol=1e-9)
        assert set(np.round(laps).astype(int).tolist()) <= {-1, 0, 1}
        wrapped |= np.round(laps) != 0
        np.testing.assert_array_equal(m.positions[:, 1], y0)
        np.testing.assert_array_equal(m.velocities[:, 0], vx)
    assert wrapped.all()  # 50 s at >= 20 m/s is more than two laps of 500 m


def test_highway_one_way_lanes_are_centred():
    m = build(
        300,
        model="highway",
        area=Area(width=1000, height=50),
        lanes=4,
        lane_width=3.0,
        bidirectional=False,
    )
    centres = 25.0 + np.array([-4.5, -1.5, 1.5, 4.5])
    assert np.isin(m.positions[:, 1], centres).all()
    assert (m.velocities[:, 0] > 0).all()


def test_highway_wider_than_area_rejected():
    with pytest.raises(ValueError, match="highway"):
        build(3, model="highway", area=Area(width=100, height=20), lanes=3, lane_width=3.5)


# --------------------------------------------------------------------------- manhattan
def on_street(p: np.ndarray, block: float) -> np.ndarray:
    def multiple(c: np.ndarray) -> np.ndarray:
        return np.abs(c - block * np.round(c / block)) <= 1e-9

    return multiple(p[:, 0]) | multiple(p[:, 1])


@pytest.mark.parametrize(
    "block,width,height",
    [(200.0, 1000.0, 1000.0), (130.0, 900.0, 500.0), (100.0 / 3.0, 100.0, 100.0)],
)
def test_manhattan_vehicles_stay_on_streets(block, width, height):
    m = build(
        400,
        seed=4,
        model="manhattan",
        block=block,
        area=Area(width=width, height=height),
        turn_probability=0.6,
    )
    assert on_street(m.positions, block).all()
    for dt in [0.1] * 300 + [7.3, 41.0]:
        m.advance(dt)
        assert on_street(m.positions, block).all()
        v = m.velocities
        assert ((v[:, 0] == 0) | (v[:, 1] == 0)).all()  # along one axis only
        horizontal = v[:, 0] != 0
        y = m.positions[horizontal, 1]
        np.testing.assert_allclose(y, block * np.round(y / block), atol=1e-9)
        x = m.positions[~horizontal, 0]
        np.testing.assert_allclose(x, block * np.round(x / block), atol=1e-9)


def test_manhattan_initial_positions_uniform_on_network():
    m = build(20_000, seed=9, model="manhattan", block=100.0, area=Area(width=400.0, height=200.0))
    # 3 horizontal streets of 400 m and 5 vertical ones of 200 m
    horizontal = m.velocities[:, 0] != 0
    assert abs(horizontal.mean() - 1200 / 2200) < 0.015
    x = m.positions[horizontal, 0]
    counts = np.histogram(x, bins=8, range=(0, 400))[0]
    assert counts.min() > 0.85 * counts.mean()
    assert abs((m.velocities[horizontal, 0] > 0).mean() - 0.5) < 0.02


def test_manhattan_distance_per_step_is_speed_times_dt():
    """With speed * dt below a block a vehicle passes at most one junction per step, and
    straight or turning, its path then has the L1 length of its displacement."""
    m = build(
        500,
        seed=6,
        model="manhattan",
        block=50.0,
        speed=(5.0, 30.0),
        area=Area(width=300.0, height=200.0),
        turn_probability=0.5,
    )
    dt = 0.5
    speed = np.hypot(*m.velocities.T)
    assert ((speed >= 5.0) & (speed <= 30.0)).all()
    turned = 0
    for _ in range(400):
        old, v_old = m.positions.copy(), m.velocities.copy()
        m.advance(dt)
        l1 = np.abs(m.positions - old).sum(axis=1)
        np.testing.assert_allclose(l1, speed * dt, rtol=0, atol=1e-9)
        np.testing.assert_allclose(np.hypot(*m.velocities.T), speed, rtol=1e-12)
        turned += int((m.velocities != v_old).any(axis=1).sum())
    assert turned > 1000


def test_manhattan_turning_statistics():
    """On a grid so large that its border is rarely reached, a vehicle turns at a fraction
    ``turn_probability`` of the junctions it passes, left and right equally often."""
    p, block, dt, steps = 0.3, 100.0, 1.0, 100
    m = build(
        3000,
        seed=11,
        model="manhattan",
        block=block,
        turn_probability=p,
        speed=(10.0, 30.0),
        area=Area(width=1e5, height=1e5),
    )
    travelled = np.hypot(*m.velocities.T).sum() * dt * steps
    left = right = 0
    for _ in range(steps):
        v_old = m.velocities.copy()
        m.advance(dt)
        cross = v_old[:, 0] * m.velocities[:, 1] - v_old[:, 1] * m.velocities[:, 0]
        left += int((cross > 0).sum())
        right += int((cross < 0).sum())
    junctions = travelled / block
    assert abs((left + right) / junctions - p) < 0.02
    assert abs(left / (left + right) - 0.5) < 0.03


def test_manhattan_without_turns_goes_straight_until_the_border():
    m = build(
        300,
        seed=12,
        model="manhattan",
        block=100.0,
        turn_probability=0.0,
        area=Area(width=1000.0, height=1000.0),
        speed=(10.0, 10.0),
    )
    for _ in range(50):
        v_old, p_old = m.velocities.copy(), m.positions.copy()
        m.advance(1.0)
        changed = (m.velocities != v_old).any(axis=1)
        # a vehicle changes heading only at a border street
        at_border = (
            (np.abs(m.positions - 0.0) < 10.0 + 1e-9)
            | (np.abs(m.positions - 1000.0) < 10.0 + 1e-9)
            | (np.abs(p_old - 0.0) < 10.0 + 1e-9)
            | (np.abs(p_old - 1000.0) < 10.0 + 1e-9)
        ).any(axis=1)
        assert not (changed & ~at_border).any()


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3, 0.5, 0.7, 1.0])
def test_manhattan_junction_choices_only_open_ways(p):
    heads, cum = _junction_table(p)
    for mask in range(16):
        for head in range(4):
            row = mask * 4 + head
            probs = np.diff(np.concatenate([[0.0], cum[row]]))
            chosen = heads[row][probs > 0]
            assert probs.sum() == 1.0 and len(chosen) > 0
            if mask & (1 << head | 1 << (head + 1) % 4 | 1 << (head + 3) % 4):
                assert all(mask >> h & 1 for h in chosen)
            else:
                assert set(chosen.tolist()) == {(head + 2) % 4}
            u = np.array([0.0, np.nextafter(1.0, 0.0)])
            pick = (u >= cum[row, 0]).astype(int) + (u >= cum[row, 1])
            assert all(probs[k] > 0 for k in pick)
    interior = 15 * 4  # every way open
    np.testing.assert_allclose(
        np.diff(np.concatenate([[0.0], cum[interior]])), [1 - p, p / 2, p / 2], atol=1e-15
    )


def test_manhattan_single_street_reverses_at_the_ends():
    m = build(
        50,
        seed=13,
        model="manhattan",
        block=100.0,
        area=Area(width=500.0, height=60.0),
        speed=(10.0, 20.0),
    )
    assert not m.positions[:, 1].any()  # the only street is y = 0
    x_seen = []
    for _ in range(300):
        m.advance(1.0)
        assert not m.positions[:, 1].any()
        x_seen.append(m.positions[:, 0].copy())
    x_seen = np.array(x_seen)
    assert x_seen.min() < 20 and x_seen.max() > 480


def test_manhattan_without_streets_rejected():
    with pytest.raises(ValueError, match="no streets"):
        build(3, model="manhattan", block=500.0, area=Area(width=100, height=100))


# --------------------------------------------------------------------------- random waypoint
def test_mean_distance_in_rectangle():
    assert mean_distance_in_rectangle(1.0, 1.0) == pytest.approx(0.5214054331647207, rel=1e-12)
    assert mean_distance_in_rectangle(7.0, 1e-9) == pytest.approx(7.0 / 3.0, rel=1e-8)
    assert mean_distance_in_rectangle(2.0, 5.0) == mean_distance_in_rectangle(5.0, 2.0)
    rng = np.random.default_rng(0)
    for w, h in [(3.0, 1.0), (1000.0, 40.0)]:
        a = rng.random((2, 400_000)) * [[w], [h]]
        b = rng.random((2, 400_000)) * [[w], [h]]
        assert mean_distance_in_rectangle(w, h) == pytest.approx(
            np.hypot(*(a - b)).mean(), rel=3e-3
        )


def test_rwp_speeds_in_range_and_motion_exact_within_a_leg():
    lo, hi, dt = 4.0, 25.0, 0.2
    m = build(
        1000, seed=3, model="random_waypoint", speed=(lo, hi), area=Area(width=600, height=400)
    )
    for _ in range(300):
        old, v_old = m.positions.copy(), m.velocities.copy()
        m.advance(dt)
        speed = np.hypot(*m.velocities.T)
        assert ((speed >= lo - 1e-9) & (speed <= hi + 1e-9)).all()
        moved = np.hypot(*(m.positions - old).T)
        assert (moved <= hi * dt + 1e-9).all()
        same_leg = (m.velocities == v_old).all(axis=1)
        np.testing.assert_allclose(
            m.positions[same_leg] - old[same_leg], v_old[same_leg] * dt, rtol=0, atol=1e-9
        )
        # a vehicle that changed leg went at its old, then at its new speed
        changed = ~same_leg
        fastest = np.maximum(np.hypot(*v_old.T), speed)[changed]
        assert (moved[changed] <= fastest * dt + 1e-9).all()
    assert 0 < (~same_leg).sum()


def test_rwp_stationary_start_is_stationary():
    """Started from the stationary law, the mean speed (the harmonic mean of the range, as
    time is spent at each speed in proportion to 1/speed) and the density profile are the
    same at t = 0 as after many legs; a uniform start begins at the arithmetic mean."""
    lo, hi, n = 2.0, 30.0, 20_000
    area = Area(width=500.0, height=500.0)
    stationary_speed = (hi - lo) / math.log(hi / lo)

    def stats(m: RandomWaypoint) -> tuple[float, float]:
        centre_dist = np.hypot(*(m.positions - 250.0).T)
        return np.hypot(*m.velocities.T).mean(), centre_dist.mean()

    m = build(n, seed=21, model="random_waypoint", speed=(lo, hi), area=area)
    assert isinstance(m, RandomWaypoint) and m.stationary_start
    speed0, dist0 = stats(m)
    for _ in range(60):
        m.advance(5.0)
    speed1, dist1 = stats(m)
    assert speed0 == pytest.approx(stationary_speed, rel=0.03)
    assert speed1 == pytest.approx(stationary_speed, rel=0.03)
    assert dist0 == pytest.approx(dist1, rel=0.02)
    # uniform positions have mean distance 0.3826 * side from the centre; RWP is nearer
    assert dist0 < 0.37 * 500.0

    u = make_mobility(
        Mobility(model="random_waypoint", speed=(lo, hi), area=area),
        n,
        np.random.default_rng(21),
        start="uniform",
    )
    assert not u.stationary_start
    u.advance(1e-9)  # leave the initial zero-length pause
    assert stats(u)[0] == pytest.approx((lo + hi) / 2, rel=0.03)
    assert stats(u)[1] == pytest.approx(0.3826 * 500.0, rel=0.02)


def test_rwp_pause_fraction_and_paused_vehicles_stay():
    pause = 20.0
    m = build(
        20_000,
        seed=5,
        model="random_waypoint",
        speed=(10.0, 20.0),
        pause=pause,
        area=Area(width=400, height=400),
    )
    expected = m.paused_fraction
    assert 0.2 < expected < 0.9
    for _ in range(10):
        before, v_before = m.positions.copy(), m.velocities.copy()
        m.advance(1.0)
        paused = ~(v_before.any(axis=1))
        still = ~(m.velocities.any(axis=1))
        assert abs(paused.mean() - expected) < 0.02
        # paused before and after the step: still, unless a whole (short) leg fitted between
        moved = np.hypot(*(m.positions - before).T)[paused & still]
        assert (moved <= 20.0 * 1.0 + 1e-9).all()
        assert (moved > 0).mean() < 0.01


@pytest.mark.parametrize("model", ["random_waypoint", "manhattan"])
def test_velocities_updated_for_every_vehicle_that_changed(model):
    """Velocities are republished only for vehicles that reached a waypoint, ended a pause
    or turned; they must equal a full recomputation after every step."""
    m = build(
        2000,
        seed=14,
        model=model,
        pause=0.7,
        block=40.0,
        speed=(5.0, 15.0),
        area=Area(width=200, height=120),
    )
    for dt in [0.1] * 300 + [0.3, 1e-6, 0.0, 0.7, 2.1]:
        m.advance(dt)
        incremental = m.velocities
        m._refresh()
        np.testing.assert_array_equal(incremental, m.velocities)


def test_rwp_zero_minimum_speed_falls_back_to_uniform_start():
    m = build(500, model="random_waypoint", speed=(0.0, 10.0))
    assert not m.stationary_start
    m.advance(50.0)
    assert (np.hypot(*m.velocities.T) <= 10.0).all()


def test_rwp_unknown_start_rejected():
    with pytest.raises(ValueError, match="start"):
        make_mobility(Mobility(), 3, np.random.default_rng(0), start="middle")


# --------------------------------------------------------------------------- placement
@pytest.mark.parametrize(
    "count,shape",
    [
        (1, (1, 1)),
        (2, (1, 2)),
        (3, (2, 2)),
        (4, (2, 2)),
        (5, (2, 3)),
        (7, (3, 3)),
        (10, (3, 4)),
        (100, (10, 10)),
        (101, (10, 11)),
    ],
)
def test_grid_shape_is_most_square(count, shape):
    assert grid_shape(count) == shape
    rows, cols = shape
    assert rows * cols >= count > (rows - 1) * cols  # no empty row
    assert grid_shape(count, width=1.0, height=2.0) == (cols, rows)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 100])
def test_grid_placement(count):
    area = Area(width=1200.0, height=600.0)
    pos = place_servers(Servers(count=count, placement="grid"), area)
    rows, cols = grid_shape(count, 1200.0, 600.0)
    assert pos.shape == (count, 2) and pos.dtype == np.float64
    cw, ch = 1200.0 / cols, 600.0 / rows
    k = np.arange(count)
    np.testing.assert_allclose(pos[:, 0], (k % cols + 0.5) * cw)
    np.testing.assert_allclose(pos[:, 1], (k // cols + 0.5) * ch)
    assert len({tuple(p) for p in pos.tolist()}) == count


def test_grid_placement_examples():
    area = Area(width=1000.0, height=1000.0)
    np.testing.assert_allclose(place_servers(Servers(count=2), area), [[250, 500], [750, 500]])
    np.testing.assert_allclose(
        place_servers(Servers(count=3), area), [[250, 250], [750, 250], [250, 750]]
    )
    five = place_servers(Servers(count=5), area)
    np.testing.assert_allclose(five[:, 0], np.array([1, 3, 5, 1, 3]) * 1000 / 6)
    np.testing.assert_allclose(five[:, 1], [250, 250, 250, 750, 750])


@pytest.mark.parametrize("count", [1, 2, 3, 5, 100])
def test_line_placement(count):
    pos = place_servers(Servers(count=count, placement="line"), Area(width=900, height=300))
    np.testing.assert_allclose(pos[:, 0], (np.arange(count) + 0.5) * 900 / count)
    np.testing.assert_allclose(pos[:, 1], 150.0)


def list_servers() -> Servers:
    return Servers(
        count=3,
        placement="list",
        cpu=5e9,
        cores=2,
        bandwidth=20e6,
        sites=[
            ServerSpec(position=(10.0, 20.0)),
            ServerSpec(position=("0.5 km", 300), cpu="8 GHz", cores=4),
            ServerSpec(position=(1000.0, 0.0), bandwidth="1 MHz"),
        ],
    )


def test_list_placement_and_attributes():
    cfg = list_servers()
    pos = place_servers(cfg, Area(width=1000, height=1000))
    np.testing.assert_array_equal(pos, [[10, 20], [500, 300], [1000, 0]])
    attrs = server_attributes(cfg)
    np.testing.assert_array_equal(attrs["cpu"], [5e9, 8e9, 5e9])
    np.testing.assert_array_equal(attrs["cores"], [2, 4, 2])
    np.testing.assert_array_equal(attrs["bandwidth"], [20e6, 20e6, 1e6])
    assert attrs["cores"].dtype == np.int64
    assert attrs["cpu"].dtype == attrs["bandwidth"].dtype == np.float64


def test_list_site_outside_area_rejected():
    with pytest.raises(ValueError, match=r"sites\[2\]"):
        place_servers(list_servers(), Area(width=900, height=1000))


def test_default_attributes():
    attrs = server_attributes(Servers(count=4, cpu=3e9, cores=8, bandwidth=5e6))
    np.testing.assert_array_equal(attrs["cpu"], np.full(4, 3e9))
    np.testing.assert_array_equal(attrs["cores"], np.full(4, 8))
    np.testing.assert_array_equal(attrs["bandwidth"], np.full(4, 5e6))

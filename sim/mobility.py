"""Vehicle mobility: where every vehicle is, and how fast it goes, at each mobility step.

A model holds the state of all ``n`` vehicles in numpy arrays and moves them together, so
10,000 vehicles cost about as much per step as a handful of numpy operations. Motion is
exact for any step length: a vehicle that reaches a waypoint or a junction inside a step
goes on along its next leg for the rest of the step, so the positions do not depend on
step-length approximations and never leave the area ``[0, width] x [0, height]``.

Models are looked up by the ids of :class:`sim.config.Mobility` ``model`` through
:func:`make_mobility`. Each draws from the :class:`numpy.random.Generator` it is given and
from nothing else, so a model built from the same generator state and advanced by the same
sequence of steps follows the same trajectory. Static and highway vehicles draw only when
built, so their trajectories do not depend on how time is cut into steps either; random
waypoint and Manhattan vehicles draw at waypoints and junctions, in the order in which the
steps meet them, so cutting the same span differently keeps every motion exact but gives
the draws to the vehicles in another order.

``positions`` and ``velocities`` are read-only arrays replaced by every :meth:`advance`:
holding on to one keeps a snapshot, and no caller can change the model's state by writing
into them. ``present`` says which of the ``n`` vehicles are on the road; it is all True for
the models here, whose vehicles never leave, and is replaced (never written into) when it
changes, so a caller can tell a change by identity. The models driven by Eclipse SUMO
(``sumo-trace``, ``sumo``), whose vehicles come and go, live in :mod:`sim.sumo`.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar, Literal

import numpy as np
from numba import njit

from sim.config import Mobility

__all__ = [
    "MOBILITY_MODELS",
    "Highway",
    "Manhattan",
    "MobilityModel",
    "RandomWaypoint",
    "Static",
    "make_mobility",
    "mean_distance_in_rectangle",
]

# Manhattan headings: 0 east (+x), 1 north (+y), 2 west (-x), 3 south (-y).
_HEAD_X = np.array([1.0, 0.0, -1.0, 0.0])
_HEAD_Y = np.array([0.0, 1.0, 0.0, -1.0])


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class MobilityModel(abc.ABC):
    """The positions and velocities of ``n`` vehicles, moved forward in time by ``advance``.

    Attributes:
        positions: ``(n, 2)`` float64 current positions [m], inside the area.
        velocities: ``(n, 2)`` float64 current velocity vectors [m/s].
        present: ``(n,)`` bool, which vehicles are on the road (absent ones generate no
            tasks); a new array whenever it changes.
        time: time advanced since construction [s].
    """

    id: ClassVar[str] = ""

    positions: np.ndarray
    velocities: np.ndarray
    present: np.ndarray

    def __init__(self, cfg: Mobility, n: int, rng: np.random.Generator) -> None:
        if n < 0:
            raise ValueError(f"the number of vehicles must be >= 0, got {n}")
        self.cfg = cfg
        self.n = int(n)
        self.present = _frozen(np.ones(self.n, dtype=bool))
        self.rng = rng
        self.width = float(cfg.area.width)
        self.height = float(cfg.area.height)
        self.speed_min, self.speed_max = (float(v) for v in cfg.speed)
        self.time = 0.0
        self._extent = np.array([[self.width], [self.height]])

    def advance(self, dt: float) -> None:
        """Move every vehicle forward by ``dt`` seconds along its exact piecewise-linear path."""
        dt = float(dt)
        if not dt >= 0.0:
            raise ValueError(f"dt must be a non-negative number of seconds, got {dt}")
        self.time += dt
        self._advance(dt)

    @abc.abstractmethod
    def _advance(self, dt: float) -> None:
        """Move the state by ``dt`` and publish new ``positions`` and ``velocities``."""

    def close(self) -> None:
        """Release what the model holds outside Python (nothing here; SUMO for ``sumo``)."""
        return

    def _publish(self, x: np.ndarray, y: np.ndarray, velocities: np.ndarray | None = None) -> None:
        """Publish positions from coordinate arrays ``x`` and ``y``, which are clamped into
        the area in place against rounding at its border.

        ``velocities`` is published when given; otherwise the previous (read-only) array
        stays valid.
        """
        np.maximum(x, 0.0, out=x)
        np.minimum(x, self.width, out=x)
        np.maximum(y, 0.0, out=y)
        np.minimum(y, self.height, out=y)
        self.positions = _frozen(np.stack([x, y], axis=1))
        if velocities is not None:
            self.velocities = _frozen(velocities)

    def _uniform_in_area(self, k: int) -> np.ndarray:
        """``(2, k)`` points drawn uniformly in the area (row 0: x, row 1: y)."""
        return self.rng.random((2, k)) * self._extent

    def _speeds(self, k: int) -> np.ndarray:
        return self.rng.uniform(self.speed_min, self.speed_max, size=k)


MOBILITY_MODELS: dict[str, type[MobilityModel]] = {}


def _register(cls: type[MobilityModel]) -> type[MobilityModel]:
    MOBILITY_MODELS[cls.id] = cls
    return cls


def make_mobility(cfg: Mobility, n: int, rng: np.random.Generator, **options: Any) -> MobilityModel:
    """Build the mobility model ``cfg.model`` for ``n`` vehicles drawing from ``rng``.

    ``options`` go to the model's constructor (e.g. ``start="uniform"`` for the random
    waypoint model). Raises ``KeyError`` naming the known ids for an unknown model id.
    """
    try:
        cls = MOBILITY_MODELS[cfg.model]
    except KeyError:
        known = ", ".join(sorted(MOBILITY_MODELS))
        raise KeyError(f"unknown mobility model {cfg.model!r}; known: {known}") from None
    return cls(cfg, n, rng, **options)


# --------------------------------------------------------------------------- static
@_register
class Static(MobilityModel):
    """Vehicles placed uniformly at random in the area that never move."""

    id = "static"

    def __init__(self, cfg: Mobility, n: int, rng: np.random.Generator) -> None:
        super().__init__(cfg, n, rng)
        x, y = self._uniform_in_area(self.n)
        self._publish(x, y, np.zeros((self.n, 2)))

    def _advance(self, dt: float) -> None:
        return


# --------------------------------------------------------------------------- random waypoint
@njit(cache=True)
def leg_positions(t, t0, dur, origin, vel, width, height):
    """``(n, 2)`` positions at time ``t`` of vehicles on legs leaving ``origin`` (2, n) at
    ``t0`` with velocity ``vel`` (2, n) for ``dur`` seconds, clamped into the area.

    The same floating-point operations, in the same order, as clamping the elapsed time
    into [0, dur] with ``np.maximum``/``np.minimum``, evaluating ``origin + vel * elapsed``
    and clamping the result into [0, width] x [0, height] (NaN propagates as there).
    """
    n = t0.shape[0]
    out = np.empty((n, 2))
    for i in range(n):
        e = t - t0[i]
        if e < 0.0:
            e = 0.0
        d = dur[i]
        if d < e or d != d:
            e = d
        x = origin[0, i] + vel[0, i] * e
        y = origin[1, i] + vel[1, i] * e
        if x < 0.0:
            x = 0.0
        if x > width:
            x = width
        if y < 0.0:
            y = 0.0
        if y > height:
            y = height
        out[i, 0] = x
        out[i, 1] = y
    return out


@njit(cache=True)
def legs_ended(t1, t):
    """``np.flatnonzero(t1 <= t)``: the vehicles whose leg has ended by ``t``."""
    out = np.empty(t1.shape[0], dtype=np.int64)
    m = 0
    for i in range(t1.shape[0]):
        if t1[i] <= t:
            out[m] = i
            m += 1
    return out[:m]


@njit(cache=True)
def with_departed(arrived, t0, since, t):
    """``arrived`` followed by the vehicles that left after ``since`` and by ``t``:
    ``np.concatenate([arrived, np.flatnonzero((t0 > since) & (t0 <= t))])``."""
    a = arrived.shape[0]
    out = np.empty(a + t0.shape[0], dtype=np.int64)
    out[:a] = arrived
    m = a
    for i in range(t0.shape[0]):
        if t0[i] > since and t0[i] <= t:
            out[m] = i
            m += 1
    return out[:m]


@njit(cache=True)
def leg_velocities(previous, changed, t, t0, vel):
    """A copy of the ``(n, 2)`` velocities ``previous`` with those of vehicles ``changed``
    set to their leg's ``vel`` (2, n) if they have left (``t0 <= t``), else to 0."""
    out = previous.copy()
    for i in changed:
        if t0[i] <= t:
            out[i, 0] = vel[0, i]
            out[i, 1] = vel[1, i]
        else:
            out[i, 0] = 0.0
            out[i, 1] = 0.0
    return out


@njit(cache=True)
def set_legs(idx, origin, dest, speed, depart, o_origin, o_dest, o_vel, o_t0, o_dur, o_t1):
    """Start legs from ``origin`` to ``dest`` (2, k) at ``speed``, leaving at ``depart``,
    for vehicles ``idx``: written into the leg state ``o_*`` (columns per vehicle).

    A leg of length 0 or speed 0 has velocity 0 and lasts 0 (no length) or forever; the
    length is ``hypot`` (the C library's, as NumPy's), the velocity delta * (speed / length)
    and the duration length / speed, as in the array formulas."""
    for j in range(idx.shape[0]):
        i = idx[j]
        dx = dest[0, j] - origin[0, j]
        dy = dest[1, j] - origin[1, j]
        length = np.hypot(dx, dy)
        if length > 0.0 and speed[j] > 0.0:
            dur = length / speed[j]
            f = speed[j] / length
        else:
            dur = np.inf if length > 0.0 else 0.0
            f = 0.0
        o_origin[0, i] = origin[0, j]
        o_origin[1, i] = origin[1, j]
        o_dest[0, i] = dest[0, j]
        o_dest[1, i] = dest[1, j]
        o_vel[0, i] = dx * f
        o_vel[1, i] = dy * f
        o_t0[i] = depart[j]
        o_dur[i] = dur
        o_t1[i] = depart[j] + dur


def mean_distance_in_rectangle(width: float, height: float) -> float:
    """Mean distance between two points drawn uniformly in a ``width x height`` rectangle.

    The closed form (Ghosh, 1951) is rewritten in the aspect ratio ``r <= 1`` so that it
    stays accurate for very thin rectangles, where it tends to ``length / 3``.
    """
    a, b = max(width, height), min(width, height)
    if a <= 0.0:
        return 0.0
    r = b / a
    if r == 0.0:
        return a / 3.0
    s = math.sqrt(1.0 + r * r)
    bracket = (
        r**3
        + s * (3.0 - r * r)
        - 1.0 / (1.0 + s)
        + 2.5 * (r * r * math.log((1.0 + s) / r) + math.asinh(r) / r)
    )
    return a * bracket / 15.0


@_register
class RandomWaypoint(MobilityModel):
    """Random waypoint: legs to uniform waypoints at a speed uniform in ``cfg.speed``.

    At each waypoint a vehicle pauses ``cfg.pause`` seconds, then draws the next waypoint
    uniformly in the area and a speed uniform in ``[min, max]`` for that leg.

    ``start="stationary"`` (the default) draws the initial state from the model's
    stationary distribution (Navidi and Camp, 2004; Le Boudec and Vojnovic, 2005), so the
    node density and the mean speed are the same at time 0 as after a long run. Without it
    a run starts in a transient lasting many legs (tens of seconds to minutes): vehicles
    start uniform over the area and drift toward its centre, and the mean speed falls from
    the arithmetic to the harmonic mean of the speed range. A vehicle is paused with
    probability ``pause / (pause + E[leg length] E[1/speed])``, with the residual pause
    uniform; otherwise its leg is drawn with density proportional to the leg length, its
    speed with density proportional to ``1/speed`` and its position uniform along the leg.

    ``start="uniform"`` places vehicles uniformly in the area, each at the start of a pause
    at a waypoint. It is also used when the stationary distribution does not exist, i.e.
    when the minimum speed is 0 (the mean time per leg is infinite and the mean speed decays
    toward 0 over the run).
    """

    id = "random_waypoint"

    def __init__(
        self,
        cfg: Mobility,
        n: int,
        rng: np.random.Generator,
        start: Literal["stationary", "uniform"] = "stationary",
    ) -> None:
        super().__init__(cfg, n, rng)
        if start not in ("stationary", "uniform"):
            raise ValueError(f"start must be 'stationary' or 'uniform', got {start!r}")
        self.pause = float(cfg.pause)
        n = self.n
        # Leg state, one column per vehicle; rows are (x, y) where two-dimensional.
        self._origin = np.zeros((2, n))
        self._dest = np.zeros((2, n))
        self._vel = np.zeros((2, n))  # velocity while moving on the current leg
        self._t0 = np.zeros(n)  # departure from origin (end of the pause)
        self._dur = np.zeros(n)  # travel time of the leg
        self._t1 = np.zeros(n)  # arrival at dest
        self.stationary_start = start == "stationary" and self.speed_min > 0.0
        if self.stationary_start:
            self._start_stationary()
        else:
            self._origin[:] = self._uniform_in_area(n)
            self._new_legs(np.arange(n), np.full(n, self.pause))
        self._refresh()

    @property
    def paused_fraction(self) -> float:
        """Long-run fraction of time a vehicle spends paused (0 without a stationary regime)."""
        if self.speed_min <= 0.0:
            return 0.0
        lo, hi = self.speed_min, self.speed_max
        inv_speed = 1.0 / lo if hi == lo else math.log(hi / lo) / (hi - lo)
        travel = mean_distance_in_rectangle(self.width, self.height) * inv_speed
        total = self.pause + travel
        return self.pause / total if total > 0.0 else 1.0

    def _new_legs(self, idx: np.ndarray, depart: np.ndarray) -> None:
        """Start a new leg from ``_origin`` for vehicles ``idx``, leaving at ``depart``."""
        k = idx.size
        dest = self._uniform_in_area(k)
        speed = self._speeds(k)
        self._set_legs(idx, self._origin[:, idx], dest, speed, depart)

    def _set_legs(
        self,
        idx: np.ndarray,
        origin: np.ndarray,
        dest: np.ndarray,
        speed: np.ndarray,
        depart: np.ndarray,
    ) -> None:
        set_legs(
            np.asarray(idx, dtype=np.int64),
            np.ascontiguousarray(origin, dtype=np.float64),
            np.ascontiguousarray(dest, dtype=np.float64),
            np.ascontiguousarray(speed, dtype=np.float64),
            np.ascontiguousarray(depart, dtype=np.float64),
            self._origin,
            self._dest,
            self._vel,
            self._t0,
            self._dur,
            self._t1,
        )

    def _start_stationary(self) -> None:
        rng, n = self.rng, self.n
        paused = rng.random(n) < self.paused_fraction
        p_idx = np.flatnonzero(paused)
        m_idx = np.flatnonzero(~paused)

        self._origin[:, p_idx] = self._uniform_in_area(p_idx.size)
        self._new_legs(p_idx, rng.uniform(0.0, self.pause, size=p_idx.size))

        k = m_idx.size
        origin, dest = self._length_biased_legs(k)
        lo, hi = self.speed_min, self.speed_max
        u = rng.random(k)
        speed = np.full(k, lo) if hi == lo else lo * (hi / lo) ** u
        self._set_legs(m_idx, origin, dest, speed, np.zeros(k))
        done = rng.random(k) * self._dur[m_idx]
        self._t0[m_idx] = -done
        self._t1[m_idx] = self._dur[m_idx] - done

    def _length_biased_legs(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``k`` waypoint pairs with density proportional to their distance (by rejection)."""
        diagonal = math.hypot(self.width, self.height)
        accept_rate = mean_distance_in_rectangle(self.width, self.height) / diagonal
        origins, dests, have = [np.zeros((2, 0))], [np.zeros((2, 0))], 0
        while have < k:
            m = int((k - have) / accept_rate * 1.1) + 16
            a, b = self._uniform_in_area(m), self._uniform_in_area(m)
            d = np.hypot(*(b - a))
            keep = self.rng.random(m) * diagonal < d
            origins.append(a[:, keep])
            dests.append(b[:, keep])
            have += int(keep.sum())
        return (np.concatenate(origins, axis=1)[:, :k], np.concatenate(dests, axis=1)[:, :k])

    def _advance(self, dt: float) -> None:
        t = self.time
        idx = legs_ended(self._t1, t)
        arrived = idx
        while idx.size:
            arrival = self._t1[idx]
            self._origin[:, idx] = self._dest[:, idx]
            self._new_legs(idx, arrival + self.pause)
            idx = idx[self._t1[idx] <= t]
        if self.pause > 0.0:
            arrived = with_departed(arrived, self._t0, self._published_at, t)
        self._refresh(arrived)

    def _refresh(self, changed: np.ndarray | None = None) -> None:
        """Publish the state at ``self.time``; only vehicles ``changed`` (all when None)
        can have a new velocity since the last publication."""
        t = self.time
        if changed is None:
            self.velocities = _frozen(np.where(self._t0 <= t, self._vel, 0.0).T.copy())
        elif changed.size:
            self.velocities = _frozen(
                leg_velocities(self.velocities, changed, t, self._t0, self._vel)
            )
        # one compiled pass instead of a dozen array operations (see leg_positions)
        self.positions = _frozen(
            leg_positions(t, self._t0, self._dur, self._origin, self._vel, self.width, self.height)
        )
        self._published_at = t


# --------------------------------------------------------------------------- highway
@_register
class Highway(MobilityModel):
    """A straight road along x at mid height; each vehicle keeps its lane and its speed.

    With ``cfg.bidirectional`` the ``cfg.lanes`` lanes above the centre line go +x and the
    ``cfg.lanes`` lanes below go -x; otherwise ``cfg.lanes`` lanes centred on mid height all
    go +x. Vehicles sit on lane centres, start uniformly along x in a lane drawn uniformly,
    keep a speed drawn uniformly in ``cfg.speed``, and wrap around at the ends of the area
    (x modulo the width), which keeps the traffic density constant.
    """

    id = "highway"

    def __init__(self, cfg: Mobility, n: int, rng: np.random.Generator) -> None:
        super().__init__(cfg, n, rng)
        lanes, w = int(cfg.lanes), float(cfg.lane_width)
        mid = 0.5 * self.height
        if cfg.bidirectional:
            k = np.arange(lanes) + 0.5
            centres = np.concatenate([mid + k * w, mid - k * w])
            heading = np.concatenate([np.ones(lanes), -np.ones(lanes)])
        else:
            centres = mid + (np.arange(lanes) - 0.5 * (lanes - 1)) * w
            heading = np.ones(lanes)
        road = (centres.max() - centres.min()) + w
        if road > self.height:
            raise ValueError(
                f"the highway is {road:g} m wide ({centres.size} lanes of "
                f"{w:g} m) but the area is only {self.height:g} m high"
            )
        self.lane_centres = centres
        self.lane = rng.integers(0, centres.size, size=self.n)
        self._x = rng.uniform(0.0, self.width, size=self.n)
        self._y = centres[self.lane]
        self.speed = self._speeds(self.n)
        self._vx = heading[self.lane] * self.speed
        self._publish(self._x, self._y, np.stack([self._vx, np.zeros(self.n)], axis=1))

    def _advance(self, dt: float) -> None:
        x = self._x + self._vx * dt
        out = np.flatnonzero((x < 0.0) | (x >= self.width))
        if out.size:
            x[out] = np.mod(x[out], self.width)
        self._x = x
        self._publish(x, self._y)


# --------------------------------------------------------------------------- manhattan
def _junction_table(turn_probability: float) -> tuple[np.ndarray, np.ndarray]:
    """The heading chosen at a junction, for each (open ways, heading) pair.

    Row ``open_mask * 4 + heading`` (bit ``h`` of ``open_mask`` set when heading ``h`` leads
    along a street) holds the three candidate headings [straight, left, right] and the
    cumulative probabilities of choosing them (a uniform ``u`` in [0, 1) picks the first
    candidate whose cumulative probability exceeds it); a dead end holds the reverse heading
    with probability 1.
    """
    base = np.array([1.0 - turn_probability, 0.5 * turn_probability, 0.5 * turn_probability])
    heads = np.zeros((64, 3), dtype=np.int64)
    cum = np.ones((64, 3))
    for mask in range(16):
        for head in range(4):
            row = mask * 4 + head
            ways = np.array([head, (head + 1) % 4, (head + 3) % 4])
            can = np.array([(mask >> w) & 1 for w in ways], dtype=float)
            weights = base * can
            if weights.sum() > 0.0:
                prob = weights / weights.sum()
            elif can.sum() > 0.0:
                prob = can / can.sum()
            else:
                ways[:] = (head + 2) % 4
                prob = np.array([1.0, 0.0, 0.0])
            bounds = np.cumsum(prob)
            bounds[np.flatnonzero(prob)[-1] :] = 1.0  # no rounding path to a closed way
            heads[row] = ways
            cum[row] = bounds
    return heads, cum


@_register
class Manhattan(MobilityModel):
    """A grid of streets every ``cfg.block`` metres; vehicles drive along them.

    Streets run along ``x = i * block`` and ``y = j * block`` for every multiple of the
    block inside the area, from 0 to the last such multiple (a margin narrower than a block
    at the top or right of the area has no street). At a junction a vehicle goes straight
    with probability ``1 - turn_probability`` and turns left or right with
    ``turn_probability / 2`` each. Where some of those ways leave the network (at its
    border) the choice is made among the remaining ones with their probabilities
    renormalised, or uniformly among them when those probabilities are all 0 (e.g. going
    straight at the border with ``turn_probability = 0``); a vehicle reverses only at a dead
    end, which exists only when the network is a single street. Speeds are drawn uniformly
    in ``cfg.speed`` once per vehicle; initial positions are uniform over the total street
    length and the initial heading is either way along the street with equal chance.
    """

    id = "manhattan"

    def __init__(self, cfg: Mobility, n: int, rng: np.random.Generator) -> None:
        super().__init__(cfg, n, rng)
        b = float(cfg.block)
        self.block = b
        # A multiple of the block within rounding of the area's side is a border street.
        nx = math.floor(self.width / b * (1.0 + 1e-12))
        ny = math.floor(self.height / b * (1.0 + 1e-12))
        self.nx, self.ny = nx, ny
        self.street_x = np.minimum(np.arange(nx + 1) * b, self.width)
        self.street_y = np.minimum(np.arange(ny + 1) * b, self.height)
        length_h = (ny + 1) * self.street_x[-1]
        length_v = (nx + 1) * self.street_y[-1]
        if length_h + length_v <= 0.0:
            raise ValueError(
                f"block ({b:g} m) is longer than both sides of the area "
                f"({self.width:g} m x {self.height:g} m): there are no streets"
            )
        self._table_heads, self._table_cum = _junction_table(float(cfg.turn_probability))

        n = self.n
        horizontal = rng.random(n) * (length_h + length_v) < length_h
        along = rng.random(n)
        street = rng.random(n)
        forward = rng.random(n) < 0.5
        self.speed = self._speeds(n)

        self._head = np.zeros(n, dtype=np.int64)
        self._ti = np.zeros(n, dtype=np.int64)  # target junction (column, row)
        self._tj = np.zeros(n, dtype=np.int64)
        self._rem = np.zeros(n)  # distance left to the target junction
        self._place(horizontal, along, street, forward)
        self._jx = self.street_x[self._ti]
        self._jy = self.street_y[self._tj]
        self._ux = _HEAD_X[self._head]
        self._uy = _HEAD_Y[self._head]
        self._refresh()

    def _place(
        self, horizontal: np.ndarray, along: np.ndarray, street: np.ndarray, forward: np.ndarray
    ) -> None:
        for is_h, coords, n_streets in (
            (True, self.street_x, self.ny),
            (False, self.street_y, self.nx),
        ):
            idx = np.flatnonzero(horizontal == is_h)
            if idx.size == 0:
                continue
            last = coords.size - 1
            s = along[idx] * coords[-1]
            seg = np.clip(np.searchsorted(coords, s, side="right") - 1, 0, last - 1)
            fwd = forward[idx]
            target = np.where(fwd, seg + 1, seg)
            rem = np.where(fwd, coords[np.minimum(seg + 1, last)] - s, s - coords[seg])
            cross = np.minimum((street[idx] * (n_streets + 1)).astype(np.int64), n_streets)
            if is_h:
                self._head[idx] = np.where(fwd, 0, 2)
                self._ti[idx], self._tj[idx] = target, cross
            else:
                self._head[idx] = np.where(fwd, 1, 3)
                self._ti[idx], self._tj[idx] = cross, target
            self._rem[idx] = np.maximum(rem, 0.0)

    def _turn(self, idx: np.ndarray) -> None:
        """Choose the next street of vehicles ``idx``, which stand at their target junction."""
        i, j = self._ti[idx], self._tj[idx]
        open_mask = (i < self.nx) + 2 * (j < self.ny) + 4 * (i > 0) + 8 * (j > 0)
        row = open_mask * 4 + self._head[idx]
        u = self.rng.random(idx.size)
        cum = self._table_cum[row]
        pick = (u >= cum[:, 0]).astype(np.int64) + (u >= cum[:, 1])
        head = self._table_heads[row, pick]

        ux, uy = _HEAD_X[head], _HEAD_Y[head]
        ti = i + ux.astype(np.int64)
        tj = j + uy.astype(np.int64)
        jx, jy = self.street_x[ti], self.street_y[tj]
        seg = np.abs(jx - self.street_x[i]) + np.abs(jy - self.street_y[j])
        self._head[idx] = head
        self._ti[idx], self._tj[idx] = ti, tj
        self._jx[idx], self._jy[idx] = jx, jy
        self._ux[idx], self._uy[idx] = ux, uy
        self._rem[idx] += seg

    def _advance(self, dt: float) -> None:
        self._rem -= self.speed * dt
        idx = np.flatnonzero(self._rem <= 0.0)
        turned = idx
        while idx.size:
            self._turn(idx)
            idx = idx[self._rem[idx] <= 0.0]
        self._refresh(turned)

    def _refresh(self, changed: np.ndarray | None = None) -> None:
        """Publish the state; only vehicles ``changed`` (all when None) can have turned
        since the last publication."""
        if changed is None:
            velocities = np.stack([self._ux * self.speed, self._uy * self.speed], axis=1)
        elif changed.size:
            velocities = self.velocities.copy()
            speed = self.speed[changed]
            velocities[changed, 0] = self._ux[changed] * speed
            velocities[changed, 1] = self._uy[changed] * speed
        else:
            velocities = None
        rem = self._rem
        self._publish(self._jx - self._ux * rem, self._jy - self._uy * rem, velocities)


# The SUMO-driven models register themselves on import (sim.sumo imports this module).
from sim import sumo as _sumo  # noqa: E402, F401

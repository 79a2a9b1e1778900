"""Poisson semantic task arrivals [5], [6] and task attributes [4].

An epoch's arrivals are sampled for all vehicles at once, as the superposition of their
Poisson processes: a Poisson number of arrivals at the total rate, at sorted uniform times
(given the count, the times of a Poisson process are sorted uniforms), each given to vehicle
i with probability lambda_i / sum(lambda). Thinning a Poisson process this way yields
independent Poisson processes of rates lambda_i, so this is exact, and it costs time in
proportion to the number of arrivals rather than the number of vehicles.

A time-varying true rate lambda_i(t) = lambda_i g(t + offset_i) (``tasks.rate_profile``, the
deviation the twin must track, eq. [9]) is sampled exactly by thinning: candidates are drawn
as above at the profile's maximum rate lambda_i g_max, and a candidate of vehicle i at time t
is kept with probability g(t + offset_i) / g_max. The constant profile skips the thinning
and makes the same draws as without a profile.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.kernels import counting_offsets


@njit(cache=True)
def _arrival_times(spacings, k, t0, t1):
    """``k`` sorted times in [t0, t1) from ``k + 1`` exponential spacings."""
    total = 0.0
    for x in spacings:
        total += x
    last = np.nextafter(t1, -np.inf)
    span = t1 - t0
    out = np.empty(k)
    csum = 0.0
    for i in range(k):
        csum += spacings[i]
        out[i] = min(t0 + span * (csum / total), last)
    return out


@njit(cache=True)
def _assemble(
    spacings,
    vehicle,
    size,
    size_low,
    size_range,
    cycles,
    cycles_low,
    cycles_range,
    t0,
    t1,
    deadline,
    phi,
    beta,
    first_id,
    n_vehicles,
):
    """One epoch's task arrays from raw draws, sorted by (vehicle, arrival).

    ``spacings`` (k + 1 exponentials) give k sorted arrival times in [t0, t1); a stable
    counting sort by ``vehicle`` keeps each vehicle's arrivals in time order. Sizes are
    ``size_low + size_range * size`` and complexities likewise: standard uniforms scaled
    exactly as ``Generator.uniform`` scales them, or drawn values with low 0 and range 1
    (which leave them unchanged).
    """
    k = vehicle.shape[0]
    times = _arrival_times(spacings, k, t0, t1)
    sz = np.empty(k)
    cy = np.empty(k)
    for i in range(k):
        sz[i] = size_low + size_range * size[i]
        cy[i] = cycles_low + cycles_range * cycles[i]
    return _place(times, vehicle, sz, cy, deadline, phi, beta, first_id, n_vehicles)


@njit(cache=True)
def _place(times, vehicle, size, cycles, deadline, phi, beta, first_id, n_vehicles):
    """Task arrays of arrivals at sorted ``times``, sorted by (vehicle, arrival).

    A stable counting sort: each task's place first, then one scatter loop per column
    (about a third faster than one loop writing every column)."""
    k = vehicle.shape[0]
    offsets = counting_offsets(vehicle, n_vehicles)
    place = np.empty(k, dtype=np.int64)
    for i in range(k):
        v = vehicle[i]
        place[i] = offsets[v]
        offsets[v] += 1
    o_vehicle = np.empty(k, dtype=np.int64)
    o_time = np.empty(k)
    o_size = np.empty(k)
    o_cycles = np.empty(k)
    o_deadline = np.empty(k)
    o_priority = np.empty(k)
    o_id = np.empty(k, dtype=np.int64)
    for i in range(k):
        o_vehicle[place[i]] = vehicle[i]
    for i in range(k):
        o_time[place[i]] = times[i]
    for i in range(k):
        o_size[place[i]] = size[i]
    for i in range(k):
        o_cycles[place[i]] = cycles[i]
    for i in range(k):
        d = times[i] + deadline
        o_deadline[place[i]] = d
        # eq. [7]: S = phi s_c + beta (L_D - t); the -beta t term is common to every task
        # compared at one instant, so the static part orders the queue exactly
        o_priority[place[i]] = phi * cycles[i] + beta * d
    for i in range(k):
        o_id[place[i]] = first_id + i  # tasks are numbered in order of arrival
    return o_id, o_vehicle, o_time, o_size, o_cycles, o_deadline, o_priority


def draw(dist, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws of a :class:`sim.config.Distribution` (already in SI units)."""
    if dist.kind == "fixed":
        return np.full(n, float(dist.value))
    if dist.kind == "uniform":
        return rng.uniform(dist.low, dist.high, n)
    return rng.exponential(dist.mean, n)


class RateProfile:
    """The multiplier g(t + offset_i) of each vehicle's rate (``tasks.rate_profile``)."""

    def __init__(self, cfg, n_vehicles: int) -> None:
        self.kind = cfg.kind
        self.cfg = cfg
        periodic = cfg.kind in ("sinusoid", "bursts")
        if periodic and cfg.stagger:
            self.offset = np.arange(n_vehicles) * (cfg.period / max(n_vehicles, 1))
        else:
            self.offset = np.zeros(n_vehicles)
        if cfg.kind == "steps":
            self._times = np.asarray(cfg.times, dtype=np.float64)
            self._factors = np.asarray(cfg.factors, dtype=np.float64)
        if cfg.kind == "constant":
            self.g_max = 1.0
        elif cfg.kind == "steps":
            self.g_max = max(1.0, float(self._factors.max()))
        elif cfg.kind == "sinusoid":
            self.g_max = 1.0 + cfg.amplitude
        else:
            self.g_max = max(1.0, cfg.burst_factor)

    @property
    def constant(self) -> bool:
        return self.kind == "constant"

    def factor(self, t, vehicle) -> np.ndarray:
        """g(t + offset_vehicle) (broadcast over ``t`` and ``vehicle``)."""
        t = np.asarray(t, dtype=np.float64)
        vehicle = np.asarray(vehicle, dtype=np.int64)
        c = self.cfg
        if self.kind == "constant":
            return np.ones(np.broadcast_shapes(t.shape, vehicle.shape))
        if self.kind == "steps":
            idx = np.searchsorted(self._times, t, side="right") - 1
            g = np.where(idx >= 0, self._factors[np.maximum(idx, 0)], 1.0)
            return np.broadcast_to(g, np.broadcast_shapes(t.shape, vehicle.shape)).copy()
        u = t + self.offset[vehicle]
        if self.kind == "sinusoid":
            return 1.0 + c.amplitude * np.sin(2.0 * np.pi * u / c.period)
        return np.where(np.mod(u, c.period) < c.burst_duration, c.burst_factor, 1.0)

    def _cumulative(self, t: float, vehicle: np.ndarray) -> np.ndarray:
        """Integral of g(s + offset) over s in [0, t] (t >= 0), per vehicle."""
        c = self.cfg
        if self.kind == "constant":
            return np.full(vehicle.shape, float(t))
        if self.kind == "steps":
            edges = np.concatenate(([0.0], self._times, [np.inf]))
            levels = np.concatenate(([1.0], self._factors))
            covered = np.clip(t, edges[:-1], edges[1:]) - edges[:-1]
            return np.full(vehicle.shape, float(covered @ levels))
        u0 = self.offset[vehicle]
        u1 = u0 + t
        if self.kind == "sinusoid":
            w = 2.0 * np.pi / c.period
            return t - c.amplitude / w * (np.cos(w * u1) - np.cos(w * u0))

        def h(u):
            return u + (c.burst_factor - 1.0) * (
                np.floor(u / c.period) * c.burst_duration
                + np.minimum(np.mod(u, c.period), c.burst_duration)
            )

        return h(u1) - h(u0)

    def integral(self, t0: float, t1: float, vehicle) -> np.ndarray:
        """Integral of g(s + offset_vehicle) over [t0, t1) (0 <= t0 <= t1), per vehicle."""
        vehicle = np.asarray(vehicle, dtype=np.int64)
        return self._cumulative(t1, vehicle) - self._cumulative(t0, vehicle)


_COLUMNS = ("task_id", "vehicle", "arrival", "size_bits", "cycles", "deadline", "priority")


def _empty_batch() -> dict[str, np.ndarray]:
    """An epoch without arrivals: the columns of :meth:`TaskSource.sample`, empty."""
    empty_f, empty_i = np.empty(0), np.empty(0, dtype=np.int64)
    return {c: empty_i if c in ("task_id", "vehicle") else empty_f for c in _COLUMNS}


class TaskSource:
    """Draws the tasks of each epoch from the ``arrivals`` and ``task_sizes`` streams."""

    def __init__(
        self, tasks_cfg, n_vehicles: int, arrivals: np.random.Generator, sizes: np.random.Generator
    ) -> None:
        self.cfg = tasks_cfg
        self.profile = RateProfile(tasks_cfg.rate_profile, n_vehicles)
        self.set_rates(np.full(n_vehicles, float(tasks_cfg.arrival_rate)))
        self.arrivals = arrivals
        self.sizes = sizes
        self.next_id = 0
        p = tasks_cfg.priority
        self._phi, self._beta = float(p.phi), float(p.beta)
        sz, cx = tasks_cfg.size, tasks_cfg.complexity
        self._uniform = None  # (size low, size range, complexity low, complexity range)
        if sz.kind == "uniform" and cx.kind == "uniform":
            s_low, c_low = float(sz.low), float(cx.low)
            self._uniform = (s_low, float(sz.high) - s_low, c_low, float(cx.high) - c_low)

    def set_rates(self, rates: np.ndarray) -> None:
        """Arrival rate of each vehicle [1/s] from now on."""
        self.rates = np.asarray(rates, dtype=np.float64)
        self._cum_rates = np.cumsum(self.rates)
        self._total_rate = float(self._cum_rates[-1]) if self.rates.size else 0.0
        self._equal_rates = bool(self.rates.size) and bool(np.all(self.rates == self.rates[0]))

    def true_rates(self, t: float) -> np.ndarray:
        """Each vehicle's true arrival rate lambda_i(t) [1/s]."""
        if self.profile.constant:
            return self.rates.copy()
        return self.rates * self.profile.factor(t, np.arange(self.rates.shape[0]))

    def mean_counts(self, t0: float, t1: float) -> np.ndarray:
        """Expected number of arrivals of each vehicle in [t0, t1)."""
        return self.rates * self.profile.integral(t0, t1, np.arange(self.rates.shape[0]))

    def sample(self, t0: float, t1: float) -> dict[str, np.ndarray]:
        """Tasks arriving in [t0, t1), sorted by (vehicle, arrival)."""
        rng = self.arrivals
        n = self.rates.shape[0]
        g_max = self.profile.g_max
        k = int(rng.poisson(self._total_rate * g_max * (t1 - t0)))
        spacings = rng.standard_exponential(k + 1)
        if k == 0:  # no arrival: nothing else is drawn (the draws below take k values)
            return _empty_batch()
        if self._equal_rates:
            vehicle = rng.integers(0, n, k)
        else:
            vehicle = np.minimum(
                np.searchsorted(self._cum_rates, rng.random(k) * self._total_rate, side="right"),
                n - 1,
            )
        if self.profile.constant:
            times = None
        else:  # thinning: keep a candidate with probability g(t + offset) / g_max
            times = _arrival_times(spacings, k, t0, t1)
            keep = rng.random(k) * g_max < self.profile.factor(times, vehicle)
            times, vehicle = times[keep], vehicle[keep]
            k = times.shape[0]
        if times is None and self._uniform is not None:
            # both uniform: one call for the 2k standard uniforms, which is the same stream
            # as two calls of k, scaled in the kernel as Generator.uniform would
            s_low, s_range, c_low, c_range = self._uniform
            u = self.sizes.random(2 * k)
            size, cycles = u[:k], u[k:]
        else:
            size = draw(self.cfg.size, self.sizes, k)
            cycles = draw(self.cfg.complexity, self.sizes, k)
            s_low, s_range, c_low, c_range = 0.0, 1.0, 0.0, 1.0
        if times is None:
            cols = _assemble(
                spacings,
                vehicle,
                size,
                s_low,
                s_range,
                cycles,
                c_low,
                c_range,
                t0,
                t1,
                self.cfg.deadline,
                self._phi,
                self._beta,
                self.next_id,
                n,
            )
        else:
            cols = _place(
                times,
                vehicle,
                size,
                cycles,
                self.cfg.deadline,
                self._phi,
                self._beta,
                self.next_id,
                n,
            )
        self.next_id += k
        return dict(zip(_COLUMNS, cols, strict=True))

"""Poisson semantic task arrivals [5], [6] and task attributes [4].

An epoch's arrivals are sampled for all vehicles at once, as the superposition of their
Poisson processes: a Poisson number of arrivals at the total rate, at sorted uniform times
(given the count, the times of a Poisson process are sorted uniforms), each given to vehicle
i with probability lambda_i / sum(lambda). Thinning a Poisson process this way yields
independent Poisson processes of rates lambda_i, so this is exact, and it costs time in
proportion to the number of arrivals rather than the number of vehicles.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.kernels import counting_offsets


@njit(cache=True)
def _assemble(spacings, vehicle, size, cycles, t0, t1, deadline, phi, beta, first_id, n_vehicles):
    """One epoch's task arrays from raw draws, sorted by (vehicle, arrival).

    ``spacings`` (k + 1 exponentials) give k sorted arrival times in [t0, t1); a stable
    counting sort by ``vehicle`` keeps each vehicle's arrivals in time order.
    """
    k = vehicle.shape[0]
    total = 0.0
    for x in spacings:
        total += x
    offsets = counting_offsets(vehicle, n_vehicles)
    last = np.nextafter(t1, -np.inf)
    span = t1 - t0
    o_vehicle = np.empty(k, dtype=np.int64)
    o_time = np.empty(k)
    o_size = np.empty(k)
    o_cycles = np.empty(k)
    o_deadline = np.empty(k)
    o_priority = np.empty(k)
    o_id = np.empty(k, dtype=np.int64)
    csum = 0.0
    for i in range(k):
        csum += spacings[i]
        t = min(t0 + span * (csum / total), last)
        v = vehicle[i]
        j = offsets[v]
        offsets[v] += 1
        o_vehicle[j] = v
        o_time[j] = t
        o_size[j] = size[i]
        o_cycles[j] = cycles[i]
        d = t + deadline
        o_deadline[j] = d
        # eq. [7]: S = phi s_c + beta (L_D - t); the -beta t term is common to every task
        # compared at one instant, so the static part orders the queue exactly
        o_priority[j] = phi * cycles[i] + beta * d
        o_id[j] = first_id + i  # tasks are numbered in order of arrival
    return o_id, o_vehicle, o_time, o_size, o_cycles, o_deadline, o_priority


def draw(dist, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws of a :class:`sim.config.Distribution` (already in SI units)."""
    if dist.kind == "fixed":
        return np.full(n, float(dist.value))
    if dist.kind == "uniform":
        return rng.uniform(dist.low, dist.high, n)
    return rng.exponential(dist.mean, n)


class TaskSource:
    """Draws the tasks of each epoch from the ``arrivals`` and ``task_sizes`` streams."""

    def __init__(
        self, tasks_cfg, n_vehicles: int, arrivals: np.random.Generator, sizes: np.random.Generator
    ) -> None:
        self.cfg = tasks_cfg
        self.set_rates(np.full(n_vehicles, float(tasks_cfg.arrival_rate)))
        self.arrivals = arrivals
        self.sizes = sizes
        self.next_id = 0
        p = tasks_cfg.priority
        self._phi, self._beta = float(p.phi), float(p.beta)

    def set_rates(self, rates: np.ndarray) -> None:
        """Arrival rate of each vehicle [1/s] from now on."""
        self.rates = np.asarray(rates, dtype=np.float64)
        self._cum_rates = np.cumsum(self.rates)
        self._total_rate = float(self._cum_rates[-1]) if self.rates.size else 0.0
        self._equal_rates = bool(self.rates.size) and bool(np.all(self.rates == self.rates[0]))

    def sample(self, t0: float, t1: float) -> dict[str, np.ndarray]:
        """Tasks arriving in [t0, t1), sorted by (vehicle, arrival)."""
        rng = self.arrivals
        n = self.rates.shape[0]
        k = int(rng.poisson(self._total_rate * (t1 - t0)))
        spacings = rng.standard_exponential(k + 1)
        if self._equal_rates:
            vehicle = rng.integers(0, n, k)
        else:
            vehicle = np.minimum(
                np.searchsorted(self._cum_rates, rng.random(k) * self._total_rate, side="right"),
                n - 1,
            )
        size = draw(self.cfg.size, self.sizes, k)
        cycles = draw(self.cfg.complexity, self.sizes, k)
        cols = _assemble(
            spacings,
            vehicle,
            size,
            cycles,
            t0,
            t1,
            self.cfg.deadline,
            self._phi,
            self._beta,
            self.next_id,
            n,
        )
        self.next_id += k
        return dict(
            zip(
                ("task_id", "vehicle", "arrival", "size_bits", "cycles", "deadline", "priority"),
                cols,
                strict=True,
            )
        )

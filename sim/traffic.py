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


def sorted_uniforms(rng: np.random.Generator, k: int) -> np.ndarray:
    """``k`` sorted U(0, 1) draws, in linear time.

    With E_1..E_{k+1} i.i.d. exponential, the partial sums divided by their total are
    distributed as the order statistics of k uniforms.
    """
    if k == 0:
        return np.empty(0)
    csum = np.cumsum(rng.standard_exponential(k + 1))
    return csum[:-1] / csum[-1]


@njit(cache=True)
def _by_vehicle(vehicle: np.ndarray, n_vehicles: int) -> np.ndarray:
    """Stable counting sort of arrivals by vehicle: the permutation."""
    offsets = np.zeros(n_vehicles + 1, dtype=np.int64)
    for v in vehicle:
        offsets[v + 1] += 1
    for i in range(n_vehicles):
        offsets[i + 1] += offsets[i]
    order = np.empty(vehicle.shape[0], dtype=np.int64)
    for i in range(vehicle.shape[0]):
        v = vehicle[i]
        order[offsets[v]] = i
        offsets[v] += 1
    return order


def draw(dist, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws of a :class:`sim.config.Distribution` (already in SI units)."""
    if dist.kind == "fixed":
        return np.full(n, float(dist.value))
    if dist.kind == "uniform":
        return rng.uniform(dist.low, dist.high, n)
    return rng.exponential(dist.mean, n)


class TaskSource:
    """Draws the tasks of each epoch from the ``arrivals`` and ``task_sizes`` streams."""

    def __init__(self, tasks_cfg, n_vehicles: int, arrivals: np.random.Generator,
                 sizes: np.random.Generator) -> None:
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
        k = int(rng.poisson(self._total_rate * (t1 - t0)))
        times = sorted_uniforms(rng, k)
        times *= t1 - t0
        times += t0
        # rounding can reach t1 itself; keep arrivals strictly inside the epoch
        np.minimum(times, np.nextafter(t1, -np.inf), out=times)
        if self._equal_rates:
            vehicle = rng.integers(0, self.rates.shape[0], k)
        else:
            vehicle = np.searchsorted(self._cum_rates, rng.random(k) * self._total_rate,
                                      side="right")
        order = _by_vehicle(vehicle, self.rates.shape[0])
        vehicle = vehicle[order]
        times = times[order]
        size = draw(self.cfg.size, self.sizes, k)
        cycles = draw(self.cfg.complexity, self.sizes, k)
        deadline = times + self.cfg.deadline
        ids = np.arange(self.next_id, self.next_id + k, dtype=np.int64)
        self.next_id += k
        # eq. [7]: S = phi s_c + beta (L_D - t); the -beta t term is common to every task
        # compared at one instant, so the static part orders the queue exactly.
        priority = self._phi * cycles + self._beta * deadline
        return {"task_id": ids, "vehicle": vehicle, "arrival": times, "size_bits": size,
                "cycles": cycles, "deadline": deadline, "priority": priority}

"""Poisson semantic task arrivals [5], [6] and task attributes [4].

An epoch's arrivals are sampled for all vehicles at once: a Poisson count per vehicle, then
that many sorted uniform times in the epoch. Given the count, the arrival times of a Poisson
process are distributed as sorted uniforms, so this is an exact Poisson process.
"""

from __future__ import annotations

import numpy as np


def sorted_uniforms(rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
    """For each segment of ``counts``, that many sorted U(0, 1) draws, concatenated.

    Uses exponential spacings: with E_1..E_{c+1} i.i.d. exponential, the partial sums
    divided by their total are distributed as the order statistics of c uniforms. This is
    linear in the number of draws, where sorting is not.
    """
    k = int(counts.sum())
    n = counts.shape[0]
    if k == 0:
        return np.empty(0)
    spacings = rng.standard_exponential(k + n)
    csum = np.cumsum(spacings)
    seg_end = np.cumsum(counts + 1) - 1  # index of each segment's closing spacing
    seg_start_sum = np.concatenate(([0.0], csum[seg_end[:-1]]))
    total = csum[seg_end] - seg_start_sum
    keep = np.ones(k + n, dtype=bool)
    keep[seg_end] = False
    owner = np.repeat(np.arange(n), counts)
    return (csum[keep] - seg_start_sum[owner]) / total[owner]


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
        self.rates = np.full(n_vehicles, float(tasks_cfg.arrival_rate))
        self.arrivals = arrivals
        self.sizes = sizes
        self.next_id = 0
        p = tasks_cfg.priority
        self._phi, self._beta = float(p.phi), float(p.beta)

    def sample(self, t0: float, t1: float) -> dict[str, np.ndarray]:
        """Tasks arriving in [t0, t1), sorted by (vehicle, arrival)."""
        counts = self.arrivals.poisson(self.rates * (t1 - t0))
        k = int(counts.sum())
        times = sorted_uniforms(self.arrivals, counts)
        times *= t1 - t0
        times += t0
        # rounding can reach t1 itself; keep arrivals strictly inside the epoch
        np.minimum(times, np.nextafter(t1, -np.inf), out=times)
        vehicle = np.repeat(np.arange(counts.shape[0], dtype=np.int64), counts)
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

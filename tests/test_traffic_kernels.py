"""The compiled placement of an epoch's arrivals against a stable sort in NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from sim.traffic import _arrival_times, _place


def numpy_place(times, vehicle, size, cycles, deadline, phi, beta, first_id):
    """Arrivals sorted by vehicle, stably (so by time within a vehicle), with their ids in
    order of arrival, absolute deadlines and static priorities phi s_c + beta (t + D)."""
    order = np.argsort(vehicle, kind="stable")
    d = times + deadline
    ids = first_id + np.arange(vehicle.shape[0], dtype=np.int64)
    return (
        ids[order],
        vehicle[order].astype(np.int64),
        times[order],
        size[order],
        cycles[order],
        d[order],
        (phi * cycles + beta * d)[order],
    )


@pytest.mark.parametrize(("k", "n_vehicles"), [(0, 3), (1, 1), (50, 3), (3000, 1000)])
def test_place_equals_a_stable_sort_by_vehicle(k, n_vehicles):
    rng = np.random.default_rng(k)
    times = _arrival_times(rng.standard_exponential(k + 1), k, 2.0, 2.1)
    vehicle = rng.integers(0, n_vehicles, k)
    size = rng.uniform(1e4, 2e4, k)
    cycles = rng.uniform(1e6, 2e6, k)
    args = (times, vehicle, size, cycles, 0.05, 1e-7, 3.0, 17)
    got = _place(*args, n_vehicles)
    want = numpy_place(*args)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.tobytes() == w.tobytes()
    if k > 1:
        v, t = got[1], got[2]
        assert np.all((v[1:] > v[:-1]) | ((v[1:] == v[:-1]) & (t[1:] >= t[:-1])))

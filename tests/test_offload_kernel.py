"""offload_to's compiled pass against the array formulas it replaces."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from models.policies.heuristics import _offload_arrays, equal_share, offload_to


def _obs(rng, n=40, m=6, k=300):
    nearest = rng.integers(0, m, n)
    return SimpleNamespace(
        task_vehicle=rng.integers(0, n, k),
        vehicle_nearest=nearest,
        server_cell_size=np.bincount(nearest, minlength=m),  # some cells empty
        vehicle_power_max=rng.uniform(0.1, 1.0, n),
    )


def _plain(obs, server):
    server = np.asarray(server, dtype=np.int64)
    share = np.where(server >= 0, equal_share(obs, server), 0.0)
    return share, obs.vehicle_power_max[obs.task_vehicle].copy()


def test_offload_to_equals_the_array_formulas():
    """Same shares and powers, byte for byte: local tasks, the serving cell, other cells
    (one more user), empty cells and other negative servers."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        obs = _obs(rng)
        m = obs.server_cell_size.shape[0]
        server = rng.integers(-2, m, obs.task_vehicle.shape[0])
        server[::7] = obs.vehicle_nearest[obs.task_vehicle[::7]]
        share, power, ok = _offload_arrays(
            server,
            obs.task_vehicle,
            obs.server_cell_size,
            obs.vehicle_nearest,
            obs.vehicle_power_max,
        )
        want_share, want_power = _plain(obs, server)
        assert ok
        assert share.tobytes() == want_share.tobytes()
        assert power.dtype == want_power.dtype and power.tobytes() == want_power.tobytes()
        actions = offload_to(obs, server)
        assert actions.share.tobytes() == want_share.tobytes()
        assert actions.power.tobytes() == want_power.tobytes()
        assert (actions.server == server).all()


def test_offload_to_out_of_range_server_fails_as_before():
    """A server past the last: the compiled pass declines and numpy's IndexError stands."""
    rng = np.random.default_rng(4)
    obs = _obs(rng)
    server = np.zeros(obs.task_vehicle.shape[0], dtype=np.int64)
    server[5] = obs.server_cell_size.shape[0]
    assert not _offload_arrays(
        server, obs.task_vehicle, obs.server_cell_size, obs.vehicle_nearest, obs.vehicle_power_max
    )[2]
    with pytest.raises(IndexError):
        offload_to(obs, server)

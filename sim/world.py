"""The physical world of one run: vehicles, servers, their positions and the channel.

The world owns the random draws that do not depend on decisions (mobility, fading, task
arrivals and attributes), so the fast engine and the reference engine, and runs that differ
only in policy, see the same world.
"""

from __future__ import annotations

import numpy as np

from sim.channel import ChannelState, fading_power
from sim.mobility import make_mobility
from sim.placement import place_servers, server_attributes
from sim.seeds import SeedTree
from sim.traffic import TaskSource

MAX_CANDIDATES = 8


class World:
    """Vehicles, servers and channel state, advanced one mobility step at a time."""

    def __init__(self, scenario, seeds: SeedTree) -> None:
        self.scenario = sc = scenario
        n = sc.vehicles.count
        self.n_vehicles = n
        self.mobility = make_mobility(sc.mobility, n, seeds.generator("mobility"))
        self.server_position = place_servers(sc.servers, sc.mobility.area)
        attrs = server_attributes(sc.servers)
        self.server_cpu = np.asarray(attrs["cpu"], dtype=np.float64)
        self.server_cores = np.asarray(attrs["cores"], dtype=np.int64)
        self.server_bandwidth = np.asarray(attrs["bandwidth"], dtype=np.float64)
        self.n_servers = m = self.server_position.shape[0]
        self.vehicle_cpu = np.full(n, sc.vehicles.cpu)
        self.vehicle_power_max = np.full(n, sc.vehicles.power_max)
        self.tasks = TaskSource(
            sc.tasks, n, seeds.generator("arrivals"), seeds.generator("task_sizes")
        )
        self._fading_rng = seeds.generator("fading")
        self.k_candidates = min(m, MAX_CANDIDATES)
        self.update_channel()

    @property
    def positions(self) -> np.ndarray:
        return self.mobility.positions

    def advance(self, dt: float) -> None:
        """Move the vehicles by ``dt`` and draw the next fading block."""
        self.mobility.advance(dt)
        self.update_channel()

    def update_channel(self) -> None:
        """Fading draws and the channel state for the current positions."""
        ch = self.scenario.channel
        if ch.fading.model != "none":
            self.fading = fading_power(
                self._fading_rng,
                ch.fading.model,
                ch.fading.rician_k,
                (self.n_vehicles, self.n_servers),
            )
        else:
            self.fading = None
        self.channel = ChannelState(
            self.positions,
            self.server_position,
            ch,
            self.vehicle_power_max,
            self.fading,
            self.k_candidates,
        )

    @property
    def nearest(self) -> np.ndarray:
        return self.channel.nearest

    @property
    def cell_size(self) -> np.ndarray:
        return self.channel.cell_size

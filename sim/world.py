"""The physical world of one run: vehicles, servers, their positions and the channel.

The world owns the random draws that do not depend on decisions (mobility, fading, task
arrivals and attributes), so the fast engine and the reference engine, and runs that differ
only in policy, see the same world.

Vehicles that are not on the road (``mobility.present`` False, for SUMO-driven mobility
whose vehicles come and go) have arrival rate 0, so they generate no tasks; they are left
out of the cell sizes and transmit no interference. They keep their slot in every per-vehicle
array, parked far away (see :mod:`sim.sumo`).
"""

from __future__ import annotations

import numpy as np

from sim.channel import ChannelState, fading_power
from sim.config import SUMO_MODELS
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
        network = None
        if sc.mobility.model in SUMO_MODELS or sc.servers.placement in ("junctions", "roads"):
            from sim.sumo import network_of

            network = network_of(sc.mobility)
        self.network = network
        self.server_position = place_servers(sc.servers, sc.mobility.area, network)
        self.mobility = make_mobility(sc.mobility, n, seeds.generator("mobility"))
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
        self._present: np.ndarray | None = None
        self._all_present = True
        self.update_presence()
        self._fading_rng = seeds.generator("fading")
        self.k_candidates = min(m, MAX_CANDIDATES)
        self.update_channel()

    @property
    def positions(self) -> np.ndarray:
        return self.mobility.positions

    @property
    def present(self) -> np.ndarray:
        """``(N,)`` bool, which vehicles are on the road."""
        return self.mobility.present

    def advance(self, dt: float) -> None:
        """Move the vehicles by ``dt``, follow vehicles entering or leaving the road, and
        draw the next fading block."""
        self.mobility.advance(dt)
        self.update_presence()
        self.update_channel()

    def update_presence(self) -> None:
        """Give absent vehicles arrival rate 0 (and present ones the configured rate) when
        the mobility model's vehicle set has changed."""
        present = self.mobility.present
        if present is self._present:
            return
        self._present = present
        self._all_present = bool(present.all())
        rate = float(self.scenario.tasks.arrival_rate)
        self.tasks.set_rates(np.where(present, rate, 0.0))

    def close(self) -> None:
        """Release what the mobility model holds (an in-process SUMO simulation)."""
        self.mobility.close()

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
        power = self.vehicle_power_max
        if not self._all_present:
            power = np.where(self.mobility.present, power, 0.0)  # absent: no interference
        self.channel = ChannelState(
            self.positions, self.server_position, ch, power, self.fading, self.k_candidates
        )
        if not self._all_present:
            self.channel.cell_size = np.bincount(
                self.channel.nearest[self.mobility.present], minlength=self.n_servers
            )

    @property
    def nearest(self) -> np.ndarray:
        return self.channel.nearest

    @property
    def cell_size(self) -> np.ndarray:
        return self.channel.cell_size

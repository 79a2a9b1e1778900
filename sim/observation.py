"""What a policy sees: one decision epoch's tasks and the world state it may use.

Policies see the world only through this object, never through engine internals. Arrays
are indexed by task (``task_*``), vehicle (``vehicle_*``) or server (``server_*``).

Information model. The fields hold the exact state at the epoch start; who could know what
in a deployed network differs, and each policy says which part it reads:

- the vehicle's own instantaneous report, known at the moment of decision without any twin:
  its tasks (``task_*``), its position, CPU, P_max, local and uplink queues
  (``vehicle_local_free``, ``vehicle_uplink_free``), its serving cell (``vehicle_nearest``)
  and its measured channel (``channel``, ``interference``), plus what the serving cell
  broadcasts (``server_*`` constants: position, CPU, cores, B_max, cell size);
- the servers' queue state ``server_core_free`` (and ``server_backlog``): network state that
  a vehicle does not see. It is exact and instantaneous here, for the policies defined with
  perfect information (the ``oracle`` by definition; ``greedy`` as a perfect-information
  baseline);
- the digital twin's view ``twin`` (:class:`TwinView`): stale by its age of information,
  with estimates and predictions; None when the scenario runs without the twin. Policies
  that model a network without a twin (``twin-greedy`` with the twin off) use only the first
  group.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from sim.channel import ChannelState, nearest_server, path_gain, shannon_rate


@dataclass
class TwinView:
    """The digital twin's stale and predicted view at a decision (see :mod:`sim.twin`).

    Reported values are those of the freshest report the twin received, taken at
    ``generated``; predicted values are for the decision time plus ``lead``. The arrays are
    shared between decisions: read-only. The projected positions and what depends on them
    are computed when first read.
    """

    generated: float  # time the freshest received report was taken [s]
    age: float  # age of information at the decision: t - generated [s]
    lead: float  # predictions are for t + lead [s]
    arrival_rate: np.ndarray  # (N,) lambda_hat [1/s], eq. [9]
    arrival_rate_max: np.ndarray  # (N,) lambda_hat + eps [1/s], eq. [19i]
    expected_arrivals: np.ndarray  # (N,) lambda_hat times the epoch length
    server_backlog_reported: np.ndarray  # (M,) mean committed work per core at generated [s]
    server_work_rate: np.ndarray  # (M,) estimated edge work offered per second [s/s]
    server_backlog: np.ndarray  # (M,) predicted mean work per core at t + lead [s]
    server_backlog_max: np.ndarray  # (M,) the same with the cells' rates at lambda_max [s]
    interference: np.ndarray  # (M,) reported interference [W]
    reported_position: np.ndarray  # (N, 2) positions at generated [m]
    reported_velocity: np.ndarray  # (N, 2) velocities at generated [m/s]
    server_position: np.ndarray  # (M, 2) [m]
    area: tuple[float, float]  # (width, height) [m]: projections are clipped to it
    channel: Any  # the scenario's channel section (path-loss parameters)

    @cached_property
    def vehicle_position(self) -> np.ndarray:
        """(N, 2) reported position + velocity (age + lead), clipped to the area [m]."""
        pos = self.reported_position + self.reported_velocity * (self.age + self.lead)
        np.clip(pos[:, 0], 0.0, self.area[0], out=pos[:, 0])
        np.clip(pos[:, 1], 0.0, self.area[1], out=pos[:, 1])
        return pos

    @cached_property
    def vehicle_server(self) -> np.ndarray:
        """(N,) int64 nearest server of the projected position."""
        return nearest_server(self.vehicle_position, self.server_position)

    @cached_property
    def vehicle_gain(self) -> np.ndarray:
        """(N,) predicted path gain to ``vehicle_server`` at the projected position."""
        return self.predicted_gain(np.arange(self.vehicle_server.shape[0]), self.vehicle_server)

    def predicted_gain(self, vehicle: np.ndarray, server: np.ndarray) -> np.ndarray:
        """Path gain of eq. [3] (no fading: its mean is one) from the projected positions."""
        ch = self.channel
        pos = self.vehicle_position
        d = np.hypot(
            pos[vehicle, 0] - self.server_position[server, 0],
            pos[vehicle, 1] - self.server_position[server, 1],
        )
        return path_gain(
            d, ch.reference_gain, ch.reference_distance, ch.path_loss_exponent, ch.min_distance
        )


@dataclass
class Observation:
    t: float  # epoch start [s]
    epoch: float  # epoch length [s]
    # tasks of the epoch, sorted by (vehicle, arrival)
    task_vehicle: np.ndarray  # int64 (K,)
    task_arrival: np.ndarray  # float64 (K,) [s]
    task_size: np.ndarray  # float64 (K,) [bits], before semantic efficiency
    task_cycles: np.ndarray  # float64 (K,) [cycles]
    task_deadline: np.ndarray  # float64 (K,) absolute [s]
    task_priority: np.ndarray  # float64 (K,) priority score, higher first
    # vehicles
    vehicle_position: np.ndarray  # (N, 2) [m]
    vehicle_cpu: np.ndarray  # (N,) [cycles/s]
    vehicle_power_max: np.ndarray  # (N,) [W]
    vehicle_local_free: np.ndarray  # (N,) [s] time the local CPU finishes its started work
    vehicle_uplink_free: np.ndarray  # (N,) [s] time the transmitter finishes its started work
    vehicle_nearest: np.ndarray  # (N,) int64 nearest server (the serving cell)
    # servers
    server_position: np.ndarray  # (M, 2) [m]
    server_cpu: np.ndarray  # (M,) per core [cycles/s]
    server_cores: np.ndarray  # (M,) int
    server_bandwidth: np.ndarray  # (M,) B_max [Hz]
    server_core_free: np.ndarray  # (M, C) [s] free-at time of each core (cores beyond
    #                               server_cores[j] are unused)
    server_cell_size: np.ndarray  # (M,) int64 vehicles whose nearest server this is
    # channel at t: gain, candidates and interference are computed when first read
    channel: ChannelState
    noise: float  # [W] total, or [W/Hz] when noise_is_density
    noise_is_density: bool
    semantic_efficiency: float  # sigma_ij
    local_accuracy: float  # sigma_i
    edge_accuracy: float  # sigma_j
    energy_coefficient: float  # kappa of the vehicles
    latency_weight: float  # w1
    twin: TwinView | None = None  # the digital twin's view; None without the twin

    @property
    def n_tasks(self) -> int:
        return int(self.task_vehicle.shape[0])

    @property
    def n_vehicles(self) -> int:
        return int(self.vehicle_position.shape[0])

    @property
    def n_servers(self) -> int:
        return int(self.server_position.shape[0])

    @property
    def gain(self) -> np.ndarray:
        """(N, M) channel power gain h_ij, fading included."""
        return self.channel.gain

    @property
    def interference(self) -> np.ndarray:
        """(M,) mean co-channel interference at each server [W]."""
        return self.channel.interference

    @property
    def vehicle_candidates(self) -> np.ndarray:
        """(N, k) int64: the k nearest servers of each vehicle, nearest first."""
        return self.channel.candidates

    @property
    def vehicle_local_backlog(self) -> np.ndarray:
        """Work [s] already committed to each local CPU at the epoch start."""
        return np.maximum(self.vehicle_local_free - self.t, 0.0)

    @property
    def vehicle_uplink_backlog(self) -> np.ndarray:
        """Transmission time [s] already committed to each vehicle's uplink."""
        return np.maximum(self.vehicle_uplink_free - self.t, 0.0)

    @property
    def server_backlog(self) -> np.ndarray:
        """Mean committed work per core [s] of each edge server at the epoch start."""
        c = self.server_core_free.shape[1]
        if c == 1:  # one core each: the same numbers without the mask and the sum
            return np.maximum(self.server_core_free[:, 0] - self.t, 0.0) / self.server_cores
        used = np.arange(c)[None, :] < self.server_cores[:, None]
        left = np.where(used, np.maximum(self.server_core_free - self.t, 0.0), 0.0)
        return left.sum(axis=1) / self.server_cores

    def rate(
        self, vehicle: np.ndarray, server: np.ndarray, share: np.ndarray, power: np.ndarray
    ) -> np.ndarray:
        """Uplink rate [bit/s] of eq. [10] for the given pairs, shares of B_max and powers."""
        bw = share * self.server_bandwidth[server]
        noise = self.noise * bw if self.noise_is_density else self.noise
        return shannon_rate(
            bw, power * self.channel.gain_of(vehicle, server), self.interference[server] + noise
        )


@dataclass
class Actions:
    """A policy's decision for each task of an observation.

    ``server`` is -1 for local execution; ``share`` is the fraction of the target server's
    B_max used for the transmission; ``power`` the transmit power [W]. Shares and powers of
    local tasks are ignored.
    """

    server: np.ndarray  # int64 (K,)
    share: np.ndarray  # float64 (K,)
    power: np.ndarray  # float64 (K,)

    @property
    def offload(self) -> np.ndarray:
        return self.server >= 0

"""Heuristic policies: local, nearest, fixed, random and greedy.

Bandwidth: each server's band is split equally among the vehicles of its cell (the vehicles
whose nearest server it is), so a vehicle offloading to its serving server uses
1 / (cell size) of B_max and the band is never oversubscribed. A policy that sends a task
to another server (``random``, ``fixed``) asks for one more equal share there; when the
shares held at a server in an epoch sum above one, the engine scales them down and counts a
(19k) violation. Unless a policy says otherwise it transmits at P_max.
"""

from __future__ import annotations

import operator

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field

from models.policies.base import Policy, register
from sim.observation import Actions, Observation


def equal_share(obs: Observation, server: np.ndarray) -> np.ndarray:
    """Share of B_max for each task's vehicle at ``server`` (1 / users of the cell)."""
    srv = np.maximum(server, 0)
    v = obs.task_vehicle
    users = obs.server_cell_size[srv] + (obs.vehicle_nearest[v] != srv)
    return 1.0 / np.maximum(users, 1)


_FOUR_ARRAYS = [np.ndarray] * 4
_EMPTY = np.empty((0, 0))  # no gain matrix / no fading, for greedy_actions
_FOUR_ONES = [1] * 4
_ndim_of = operator.attrgetter("ndim")


@njit(cache=True)
def _offload_arrays(server, vehicle, cell_size, nearest, power_max):
    """``offload_to``'s share and power in one pass; ``ok`` False (and the arrays
    undefined) when an index is out of range, for the array formulas to report."""
    k = server.shape[0]
    share = np.empty(k)
    power = np.empty(k, dtype=power_max.dtype)
    m = cell_size.shape[0]
    n = min(nearest.shape[0], power_max.shape[0])
    for i in range(k):
        v = vehicle[i]
        s = server[i]
        if v < 0 or v >= n or s >= m:
            return share, power, False
        power[i] = power_max[v]
        if s >= 0:
            share[i] = 1.0 / max(cell_size[s] + (nearest[v] != s), 1)
        else:
            share[i] = 0.0
    return share, power, True


def offload_to(obs: Observation, server: np.ndarray) -> Actions:
    """Actions sending each task to ``server`` (-1: local) with equal share and full power."""
    server = np.asarray(server, dtype=np.int64)
    arrays = (obs.task_vehicle, obs.server_cell_size, obs.vehicle_nearest, obs.vehicle_power_max)
    if (
        server.ndim == 1
        and list(map(type, arrays)) == _FOUR_ARRAYS
        and list(map(_ndim_of, arrays)) == _FOUR_ONES
        and arrays[0].shape == server.shape
    ):
        share, power, ok = _offload_arrays(server, *arrays)
        if ok:
            return Actions(server=server, share=share, power=power)
    share = np.where(server >= 0, equal_share(obs, server), 0.0)
    power = obs.vehicle_power_max[obs.task_vehicle].copy()
    return Actions(server=server, share=share, power=power)


@register
class Local(Policy):
    """Every task runs on its vehicle's CPU."""

    id = "local"

    def decide(self, obs: Observation) -> Actions:
        return offload_to(obs, np.full(obs.n_tasks, -1, dtype=np.int64))


@register
class Nearest(Policy):
    """Every task is offloaded to the vehicle's nearest server."""

    id = "nearest"

    def decide(self, obs: Observation) -> Actions:
        return offload_to(obs, obs.vehicle_nearest[obs.task_vehicle])


class FixedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    server: int = Field(0, ge=0, description="index of the server every task goes to")


@register
class Fixed(Policy):
    """Every task is offloaded to one given server (all vehicles share its band equally)."""

    id = "fixed"
    Params = FixedParams

    @classmethod
    def check(cls, params, scenario) -> list[tuple[str, str]]:
        m = scenario.servers.count
        if params.server >= m:
            return [
                (
                    "policy.params.server",
                    f"server index {params.server} does not exist; allowed: 0 to {m - 1}",
                )
            ]
        return []

    def decide(self, obs: Observation) -> Actions:
        server = np.full(obs.n_tasks, self.params.server, dtype=np.int64)
        share = np.full(obs.n_tasks, 1.0 / obs.n_vehicles)
        return Actions(
            server=server, share=share, power=obs.vehicle_power_max[obs.task_vehicle].copy()
        )


class RandomParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offload_probability: float = Field(0.5, ge=0, le=1)


@register
class Random(Policy):
    """Offload with a given probability to a server drawn uniformly among all servers."""

    id = "random"
    Params = RandomParams

    def decide(self, obs: Observation) -> Actions:
        k = obs.n_tasks
        go = self.rng.random(k) < self.params.offload_probability
        target = self.rng.integers(0, obs.n_servers, k)
        return offload_to(obs, np.where(go, target, -1))


def local_time_and_energy(obs: Observation) -> tuple[np.ndarray, np.ndarray]:
    """Computation time [12] and energy [16] of each task on its vehicle's CPU."""
    cpu = obs.vehicle_cpu[obs.task_vehicle]
    work = obs.task_cycles * obs.local_accuracy
    return work / cpu, obs.energy_coefficient * cpu**2 * work


def estimated_costs(
    obs: Observation, include_backlog: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Estimated cost of running each task locally and at its serving server, (K,) each.

    Latency is the committed backlog at the epoch start (if ``include_backlog``) plus the
    transmission and computation times of eqs. [12], [13]; energy follows [15], [16]; cost
    is w1 L + (1 - w1) E of eq. [18]. Offloading uses the equal cell share and P_max.
    """
    v = obs.task_vehicle
    w1 = obs.latency_weight
    cyc = obs.task_cycles
    lat_loc, e_loc = local_time_and_energy(obs)
    if include_backlog:
        lat_loc = lat_loc + obs.vehicle_local_backlog[v]
    local = w1 * lat_loc + (1 - w1) * e_loc
    srv = obs.vehicle_nearest[v]
    share = equal_share(obs, srv)
    power = obs.vehicle_power_max[v]
    tx = obs.task_size * obs.semantic_efficiency / obs.rate(v, srv, share, power)
    lat_off = tx + cyc * obs.edge_accuracy / obs.server_cpu[srv]
    if include_backlog:
        lat_off = lat_off + obs.vehicle_uplink_backlog[v] + obs.server_backlog[srv]
    offload = w1 * lat_off + (1 - w1) * power * tx
    return local, offload


class GreedyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    use_backlog: bool = Field(
        True,
        description="add the queues' committed work at the epoch start to the latency estimate",
    )


@register
class Greedy(Policy):
    """Per task, local or the serving server, whichever has the least estimated cost.

    The estimate uses the state reported at the epoch start: it does not see the other
    decisions of the same epoch, so a batch can herd onto one side.
    """

    id = "greedy"
    Params = GreedyParams

    def decide(self, obs: Observation) -> Actions:
        return self.decide_with_costs(obs)[0]

    def decide_with_costs(self, obs: Observation) -> tuple[Actions, np.ndarray, np.ndarray]:
        """The actions and the estimated (local, offload) costs, in one compiled pass
        (:mod:`models.policies.greedy_kernel`)."""
        from models.policies.greedy_kernel import greedy_actions

        k = obs.n_tasks
        use_backlog = self.params.use_backlog
        server = np.empty(k, dtype=np.int64)
        share = np.empty(k)
        power = np.empty(k)
        local = np.empty(k)
        offload = np.empty(k)
        ch = obs.channel
        matrix = ch.computed_gain
        cfg = ch.cfg
        greedy_actions(
            obs.task_vehicle,
            obs.task_size,
            obs.task_cycles,
            float(obs.t),
            ch.vehicles,
            ch.servers,
            _EMPTY if matrix is None else matrix,
            _EMPTY if ch.fading is None else ch.fading,
            float(cfg.reference_gain),
            float(cfg.reference_distance),
            float(cfg.path_loss_exponent),
            float(cfg.min_distance),
            obs.vehicle_cpu,
            obs.vehicle_power_max,
            obs.vehicle_local_free,
            obs.vehicle_uplink_free,
            obs.vehicle_nearest,
            obs.server_cell_size,
            obs.server_bandwidth,
            obs.server_cpu,
            obs.server_backlog if use_backlog else obs.server_cpu,
            obs.interference,
            float(obs.noise),
            bool(obs.noise_is_density),
            float(obs.semantic_efficiency),
            float(obs.local_accuracy),
            float(obs.edge_accuracy),
            float(obs.energy_coefficient),
            float(obs.latency_weight),
            use_backlog,
            server,
            share,
            power,
            local,
            offload,
        )
        return Actions(server=server, share=share, power=power), local, offload

    @staticmethod
    def decide_reference(obs: Observation, use_backlog: bool = True) -> Actions:
        """The same actions from the array formulas of :func:`estimated_costs`."""
        local, offload = estimated_costs(obs, use_backlog)
        v = obs.task_vehicle
        return offload_to(obs, np.where(offload < local, obs.vehicle_nearest[v], -1))

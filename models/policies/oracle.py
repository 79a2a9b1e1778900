"""The myopic oracle: per task, the exhaustive minimum cost with perfect information.

It sees the exact queue state (free-at time of every CPU core and transmitter), the exact
channel and every task's size and complexity. Taking the epoch's tasks in arrival order, it
computes the completion time and energy of every option (local, or any server, with an
equal band share and full power), picks the cheapest and commits it to its copy of the
queue state before deciding the next task. It is myopic (it never delays one task for a
later one) and predicts queues as FIFO, so it is a strong reference, not the optimum of
problem (19a).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from models.policies.base import Policy, register
from models.policies.heuristics import offload_to
from sim.observation import Actions, Observation


@njit(cache=True)
def _decide(order, vehicle, arrival, local_time, local_energy, tx_time, tx_energy,
            edge_time, local_free, uplink_free, core_free, cores, w1):
    k = order.shape[0]
    m = tx_time.shape[1]
    choice = np.full(k, -1, dtype=np.int64)
    for j in range(k):
        i = order[j]
        v = vehicle[i]
        a = arrival[i]
        done = max(a, local_free[v]) + local_time[i]
        best_cost = w1 * (done - a) + (1.0 - w1) * local_energy[i]
        best = -1
        best_core = 0
        tx_start = max(a, uplink_free[v])
        for s in range(m):
            tx_end = tx_start + tx_time[i, s]
            c_best = 0
            f = core_free[s, 0]
            for c in range(1, cores[s]):
                if core_free[s, c] < f:
                    f = core_free[s, c]
                    c_best = c
            end = max(tx_end, f) + edge_time[i, s]
            cost = w1 * (end - a) + (1.0 - w1) * tx_energy[i, s]
            if cost < best_cost:
                best_cost = cost
                best = s
                best_core = c_best
        choice[i] = best
        if best < 0:
            local_free[v] = max(a, local_free[v]) + local_time[i]
        else:
            tx_end = tx_start + tx_time[i, best]
            uplink_free[v] = tx_end
            f = core_free[best, best_core]
            core_free[best, best_core] = max(tx_end, f) + edge_time[i, best]
    return choice


@register
class Oracle(Policy):
    """Exhaustive per-task minimum of w1 L + (1 - w1) E with perfect information."""

    id = "oracle"

    def decide(self, obs: Observation) -> Actions:
        k, m = obs.n_tasks, obs.n_servers
        if k == 0:
            return offload_to(obs, np.empty(0, dtype=np.int64))
        v = obs.task_vehicle
        cpu = obs.vehicle_cpu[v]
        local_time = obs.task_cycles * obs.local_accuracy / cpu
        local_energy = obs.energy_coefficient * cpu**2 * obs.task_cycles * obs.local_accuracy
        servers = np.broadcast_to(np.arange(m)[None, :], (k, m))
        vv = np.broadcast_to(v[:, None], (k, m))
        share = 1.0 / np.maximum(
            obs.server_cell_size[servers] + (obs.vehicle_nearest[vv] != servers), 1)
        power = np.broadcast_to(obs.vehicle_power_max[v][:, None], (k, m))
        rate = obs.rate(vv, servers, share, power)
        tx_time = obs.task_size[:, None] * obs.semantic_efficiency / rate
        tx_energy = power * tx_time
        edge_time = obs.task_cycles[:, None] * obs.edge_accuracy / obs.server_cpu[None, :]
        order = np.argsort(obs.task_arrival, kind="stable")
        choice = _decide(order, v, obs.task_arrival, local_time, local_energy,
                         np.ascontiguousarray(tx_time), np.ascontiguousarray(tx_energy),
                         np.ascontiguousarray(edge_time), obs.vehicle_local_free.copy(),
                         obs.vehicle_uplink_free.copy(), obs.server_core_free.copy(),
                         obs.server_cores, obs.latency_weight)
        return offload_to(obs, choice)

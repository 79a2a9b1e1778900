"""The myopic oracle: per task, the exhaustive minimum cost with perfect information.

It sees the exact queue state (the free-at time of every CPU core and transmitter), the
exact channel and every task's size and complexity. Taking the epoch's tasks in arrival
order, it computes the completion time and energy of every option: the local CPU, or the
serving server at each of ``power_levels`` transmit powers (P_max, P_max/2, P_max/4, ...;
lower power saves transmission energy and costs time) with the cell's equal band share. It
picks the cheapest under w1 L + (1 - w1) E and commits it to its copy of the queue state
before deciding the next task.

Its predictions are exact for FIFO queues; with priority queues or deadline drops they are
not (a later, more urgent task can overtake). It is myopic: it never delays one task for a
later one, so it bounds what per-task heuristics achieve rather than the optimum of (19a).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field

from models.policies.base import Policy, register
from models.policies.heuristics import equal_share, local_time_and_energy
from sim.observation import Actions, Observation


@njit(cache=True)
def _decide(
    order,
    vehicle,
    server,
    arrival,
    local_time,
    local_energy,
    tx_time,
    power,
    edge_time,
    local_free,
    uplink_free,
    core_free,
    cores,
    w1,
):
    k = order.shape[0]
    n_levels = tx_time.shape[1]
    choice = np.full(k, -1, dtype=np.int64)
    level = np.zeros(k, dtype=np.int64)
    for j in range(k):
        i = order[j]
        v = vehicle[i]
        s = server[i]
        a = arrival[i]
        done = max(a, local_free[v]) + local_time[i]
        best_cost = w1 * (done - a) + (1.0 - w1) * local_energy[i]
        best = -1
        tx_start = max(a, uplink_free[v])
        c_best = 0
        f = core_free[s, 0]
        for c in range(1, cores[s]):
            if core_free[s, c] < f:
                f = core_free[s, c]
                c_best = c
        for p in range(n_levels):
            tx_end = tx_start + tx_time[i, p]
            end = max(tx_end, f) + edge_time[i]
            cost = w1 * (end - a) + (1.0 - w1) * power[i, p] * tx_time[i, p]
            if cost < best_cost:
                best_cost = cost
                best = p
        if best < 0:
            local_free[v] = done
        else:
            choice[i] = s
            level[i] = best
            tx_end = tx_start + tx_time[i, best]
            uplink_free[v] = tx_end
            core_free[s, c_best] = max(tx_end, f) + edge_time[i]
    return choice, level


class OracleParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    power_levels: int = Field(
        6, ge=1, le=64, description="transmit powers tried: P_max, P_max/2, ..., P_max/2^(levels-1)"
    )


@register
class Oracle(Policy):
    """Exhaustive per-task minimum of w1 L + (1 - w1) E with perfect information."""

    id = "oracle"
    Params = OracleParams

    def decide(self, obs: Observation) -> Actions:
        k = obs.n_tasks
        v = obs.task_vehicle
        srv = obs.vehicle_nearest[v]
        local_time, local_energy = local_time_and_energy(obs)
        levels = 0.5 ** np.arange(self.params.power_levels)
        power = obs.vehicle_power_max[v][:, None] * levels[None, :]
        share = equal_share(obs, srv)
        vv = np.broadcast_to(v[:, None], power.shape)
        ss = np.broadcast_to(srv[:, None], power.shape)
        rate = obs.rate(vv, ss, np.broadcast_to(share[:, None], power.shape), power)
        tx_time = np.ascontiguousarray(obs.task_size[:, None] * obs.semantic_efficiency / rate)
        edge_time = obs.task_cycles * obs.edge_accuracy / obs.server_cpu[srv]
        order = np.argsort(obs.task_arrival, kind="stable")
        choice, level = _decide(
            order,
            v,
            srv,
            obs.task_arrival,
            local_time,
            local_energy,
            tx_time,
            np.ascontiguousarray(power),
            edge_time,
            obs.vehicle_local_free.copy(),
            obs.vehicle_uplink_free.copy(),
            obs.server_core_free.copy(),
            obs.server_cores,
            obs.latency_weight,
        )
        return Actions(
            server=choice, share=np.where(choice >= 0, share, 0.0), power=power[np.arange(k), level]
        )

"""The ``greedy`` policy's decisions in one compiled pass.

:func:`greedy_actions` computes, per task, the same estimates as
:func:`models.policies.heuristics.estimated_costs` (its slow, array-formula reference; a test
checks both give the same actions) and the actions ``greedy`` takes from them, with the
operations in the same order, so the costs are the same floating-point numbers. The channel
gains of the tasks' serving pairs come in precomputed (``ChannelState.gain_of``: path loss
and fading belong to the channel model).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def greedy_actions(
    task_vehicle,
    task_size,
    task_cycles,
    gain,
    vehicle_cpu,
    power_max,
    local_backlog,
    uplink_backlog,
    nearest,
    cell_size,
    server_bandwidth,
    server_cpu,
    server_backlog,
    interference,
    noise,
    noise_is_density,
    semantic_efficiency,
    local_accuracy,
    edge_accuracy,
    energy_coefficient,
    latency_weight,
    use_backlog,
    out_server,
    out_share,
    out_power,
    out_local,
    out_offload,
):
    """Fill ``out_server`` (-1: local), ``out_share`` and ``out_power`` for every task: the
    serving server when its estimated cost is below the local one; ``out_local`` and
    ``out_offload`` get the two estimated costs. ``gain`` (K,) is the gain of each task's
    vehicle to its serving server."""
    w1 = latency_weight
    for i in range(task_vehicle.shape[0]):
        v = task_vehicle[i]
        cpu = vehicle_cpu[v]
        work = task_cycles[i] * local_accuracy
        lat_loc = work / cpu
        e_loc = energy_coefficient * cpu**2 * work
        if use_backlog:
            lat_loc = lat_loc + local_backlog[v]
        local = w1 * lat_loc + (1 - w1) * e_loc
        srv = nearest[v]
        share = 1.0 / max(cell_size[srv], 1)
        power = power_max[v]
        bw = share * server_bandwidth[srv]
        n0 = noise * bw if noise_is_density else noise
        rate = bw * np.log2(1.0 + power * gain[i] / (interference[srv] + n0))
        tx = task_size[i] * semantic_efficiency / rate
        lat_off = tx + task_cycles[i] * edge_accuracy / server_cpu[srv]
        if use_backlog:
            lat_off = lat_off + uplink_backlog[v] + server_backlog[srv]
        offload = w1 * lat_off + (1 - w1) * power * tx
        out_local[i] = local
        out_offload[i] = offload
        out_power[i] = power
        if offload < local:
            out_server[i] = srv
            out_share[i] = share
        else:
            out_server[i] = -1
            out_share[i] = 0.0

"""The ``greedy`` policy's decisions in one compiled pass.

:func:`greedy_actions` computes, per task, the same estimates as
:func:`models.policies.heuristics.estimated_costs` (its slow, array-formula reference; a test
checks both give the same actions and costs, bit for bit) and the actions ``greedy`` takes
from them, with the operations in the same order, so the costs are the same floating-point
numbers. What depends only on the vehicle (its serving server, channel gain and rate, and
its queues' backlog) is computed once for a run of tasks of the same vehicle; the engine
hands the tasks over sorted by vehicle. The channel gain of a serving pair is read from the
gain matrix when the channel has computed it, and otherwise from the path-loss formula of
:func:`sim.channel.pair_gain` times the fading, as ``ChannelState.gain_of`` does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.channel import pair_gain


@njit(cache=True)
def greedy_actions(
    task_vehicle,
    task_size,
    task_cycles,
    t,
    vehicle_position,
    server_position,
    gain_matrix,
    fading,
    reference_gain,
    reference_distance,
    exponent,
    min_distance,
    vehicle_cpu,
    power_max,
    local_free,
    uplink_free,
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
    ``out_offload`` get the two estimated costs.

    ``gain_matrix`` is the channel's (N, M) gain matrix, or (0, 0) when it has not been
    computed; ``fading`` the (N, M) fading powers, or (0, 0) without fading. ``local_free``
    and ``uplink_free`` are the times each vehicle's CPU and uplink are free; the backlog
    at ``t`` is what is left of them. ``server_backlog`` is the observation's (M,) mean
    committed work per core (read only with ``use_backlog``)."""
    w1 = latency_weight
    have_matrix = gain_matrix.shape[0] > 0
    have_fading = fading.shape[0] > 0
    last = -1
    cpu = 0.0
    loc_wait = 0.0
    srv = 0
    share = 0.0
    power = 0.0
    rate = 0.0
    up_wait = 0.0
    srv_wait = 0.0
    for i in range(task_vehicle.shape[0]):
        v = task_vehicle[i]
        if v != last:  # what depends only on the vehicle
            last = v
            cpu = vehicle_cpu[v]
            srv = nearest[v]
            share = 1.0 / max(cell_size[srv], 1)
            power = power_max[v]
            if have_matrix:
                gain = gain_matrix[v, srv]
            else:
                gain = pair_gain(
                    vehicle_position[v, 0],
                    vehicle_position[v, 1],
                    server_position[srv, 0],
                    server_position[srv, 1],
                    reference_gain,
                    reference_distance,
                    exponent,
                    min_distance,
                )
                if have_fading:
                    gain *= fading[v, srv]
            bw = share * server_bandwidth[srv]
            n0 = noise * bw if noise_is_density else noise
            rate = bw * np.log2(1.0 + power * gain / (interference[srv] + n0))
            if use_backlog:
                loc_wait = max(local_free[v] - t, 0.0)
                up_wait = max(uplink_free[v] - t, 0.0)
                srv_wait = server_backlog[srv]
        work = task_cycles[i] * local_accuracy
        lat_loc = work / cpu
        e_loc = energy_coefficient * cpu**2 * work
        if use_backlog:
            lat_loc = lat_loc + loc_wait
        local = w1 * lat_loc + (1 - w1) * e_loc
        tx = task_size[i] * semantic_efficiency / rate
        lat_off = tx + task_cycles[i] * edge_accuracy / server_cpu[srv]
        if use_backlog:
            lat_off = lat_off + up_wait + srv_wait
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

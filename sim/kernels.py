"""The compiled queue core: multi-server FIFO and non-preemptive priority queues.

One call serves one *stage* (local CPUs, uplinks or edge CPUs) for one decision epoch. Each
queue keeps the free-at time of each of its servers (cores) between calls, so the recursion
(Lindley / Kiefer-Wolfowitz for FIFO) carries across epochs.

Exactness across epochs: the tasks of later epochs are unknown when an epoch is served, but
none of them can reach a stage before ``t_known`` (the end of the current epoch). A service
decision taken at time ``tau`` only needs the tasks that have arrived by ``tau``, so it is
final when ``tau < t_known``; later decisions are *deferred*: the task is handed back and
served in the next call together with the new arrivals. FIFO decisions are final as soon as
the chosen task itself arrived before ``t_known``, since no unknown task can precede it.
The result equals an event-by-event simulation of the same queues (see ``sim.reference``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.channel import pair_gain

STARTED = 0
DROPPED = 1
DEFERRED = 2


@njit(cache=True, inline="always")
def _before(key, arrival, a, b):
    """Strict order of the priority heap: key, then arrival, then index."""
    if key[a] != key[b]:
        return key[a] < key[b]
    if arrival[a] != arrival[b]:
        return arrival[a] < arrival[b]
    return a < b


@njit(cache=True)
def _push(heap, size, item, key, arrival):
    i = size
    heap[i] = item
    while i > 0:
        parent = (i - 1) >> 1
        if _before(key, arrival, heap[i], heap[parent]):
            heap[i], heap[parent] = heap[parent], heap[i]
            i = parent
        else:
            break
    return size + 1


@njit(cache=True)
def _pop(heap, size, key, arrival):
    top = heap[0]
    size -= 1
    heap[0] = heap[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        best = left
        right = left + 1
        if right < size and _before(key, arrival, heap[right], heap[left]):
            best = right
        if _before(key, arrival, heap[best], heap[i]):
            heap[i], heap[best] = heap[best], heap[i]
            i = best
        else:
            break
    return top, size


@njit(cache=True)
def _gather(idx, a):
    out = np.empty(idx.shape[0], dtype=a.dtype)
    for j in range(idx.shape[0]):
        out[j] = a[idx[j]]
    return out


@njit(cache=True)
def counting_offsets(keys, n_keys):
    """Start of each key's block in a stable counting sort of ``keys`` (n_keys + 1,)."""
    offsets = np.zeros(n_keys + 1, dtype=np.int64)
    for k in keys:
        offsets[k + 1] += 1
    for j in range(n_keys):
        offsets[j + 1] += offsets[j]
    return offsets


@njit(cache=True)
def _group_by_queue(queue, arrival, n_queues):
    """Indices grouped by queue, each group sorted by arrival (stable), and group offsets."""
    n = queue.shape[0]
    offsets = counting_offsets(queue, n_queues)
    grouped_already = True
    for i in range(1, n):
        if queue[i] < queue[i - 1] or (queue[i] == queue[i - 1] and arrival[i] < arrival[i - 1]):
            grouped_already = False
            break
    if grouped_already:
        return np.arange(n), offsets
    # stable counting sort by queue, then a stable sort of each group by arrival
    fill = offsets[:-1].copy()
    grouped = np.empty(n, dtype=np.int64)
    for i in range(n):
        q = queue[i]
        grouped[fill[q]] = i
        fill[q] += 1
    for q in range(n_queues):
        lo = offsets[q]
        hi = offsets[q + 1]
        ordered = True
        for j in range(lo + 1, hi):
            if arrival[grouped[j]] < arrival[grouped[j - 1]]:
                ordered = False
                break
        if not ordered and not _insertion_sort(grouped, lo, hi, arrival, 8 * (hi - lo)):
            members = grouped[lo:hi].copy()
            order = np.argsort(_gather(members, arrival), kind="mergesort")
            for j in range(hi - lo):
                grouped[lo + j] = members[order[j]]
    return grouped, offsets


@njit(cache=True)
def _insertion_sort(idx, lo, hi, key, budget):
    """Stable in-place sort of ``idx[lo:hi]`` by ``key``, in time linear in the number of
    inversions; gives up (False, ``idx`` left a permutation) after ``budget`` moves."""
    moves = 0
    for j in range(lo + 1, hi):
        item = idx[j]
        k = key[item]
        m = j - 1
        while m >= lo and key[idx[m]] > k:
            idx[m + 1] = idx[m]
            m -= 1
            moves += 1
        idx[m + 1] = item
        if moves > budget:
            return False
    return True


@njit(cache=True, inline="always")
def _earliest_core(free, q, ncores):
    best = 0
    f = free[q, 0]
    for c in range(1, ncores):
        if free[q, c] < f:
            f = free[q, c]
            best = c
    return best, f


@njit(cache=True, inline="always")
def _busy_within(start, end, horizon):
    a = min(start, horizon)
    b = min(end, horizon)
    return b - a


@njit(cache=True)
def serve_stage(
    queue, arrival, service, key, deadline, free, cores, last, busy, t_known, fifo, drop, horizon
):
    """Serve the tasks of one stage.

    Parameters are per task: ``queue`` (int64 queue index), ``arrival`` at this stage [s],
    ``service`` time [s], ``key`` (lower is served first; ignored for FIFO), ``deadline``
    (absolute [s]; used when ``drop``). Per queue state, updated in place: ``free`` (Q, C)
    free-at time of each core, ``cores`` (Q,) cores in use, ``last`` (Q,) time of the last
    service decision, ``busy`` (Q,) busy core-seconds inside [0, horizon].

    Returns ``(start, status)``: start of service (or time of the drop) and STARTED,
    DROPPED or DEFERRED for each task.
    """
    n = queue.shape[0]
    start = np.full(n, np.nan)
    status = np.full(n, DEFERRED, dtype=np.int8)
    if n == 0:
        return start, status
    n_queues = free.shape[0]
    grouped, offsets = _group_by_queue(queue, arrival, n_queues)
    # Both disciplines start a service with the same few lines, written out in each: as a
    # function call (array arguments) they cost several times the rest of the loop.
    heap = np.empty(n, dtype=np.int64)
    for q in range(n_queues):
        lo = offsets[q]
        hi = offsets[q + 1]
        if lo == hi:
            continue
        ncores = cores[q]
        if fifo:
            for j in range(lo, hi):
                i = grouped[j]
                if arrival[i] >= t_known:
                    break  # an unknown task may arrive before this one
                c, f = _earliest_core(free, q, ncores)
                tau = max(f, arrival[i], last[q])
                last[q] = tau
                start[i] = tau
                if drop and tau > deadline[i]:
                    status[i] = DROPPED
                    continue
                free[q, c] = tau + service[i]
                busy[q] += _busy_within(tau, tau + service[i], horizon)
                status[i] = STARTED
        else:
            size = 0
            ptr = lo
            while ptr < hi or size > 0:
                c, f = _earliest_core(free, q, ncores)
                tau = max(f, last[q])
                if size == 0:
                    tau = max(tau, arrival[grouped[ptr]])
                if tau >= t_known:
                    break  # an unknown task could arrive first and win: decide later
                while ptr < hi and arrival[grouped[ptr]] <= tau:
                    size = _push(heap, size, grouped[ptr], key, arrival)
                    ptr += 1
                i, size = _pop(heap, size, key, arrival)
                last[q] = tau
                start[i] = tau
                if drop and tau > deadline[i]:
                    status[i] = DROPPED
                    continue
                free[q, c] = tau + service[i]
                busy[q] += _busy_within(tau, tau + service[i], horizon)
                status[i] = STARTED
    return start, status


@njit(cache=True)
def bandwidth_load(vehicle, server, share, n_servers):
    """Sum over vehicles of the bandwidth share each holds at each server (19k).

    A vehicle sending several tasks to one server in an epoch holds the largest of their
    shares. Tasks must be sorted by vehicle.
    """
    load = np.zeros(n_servers)
    held = np.full(n_servers, -1.0)  # the current vehicle's largest share at each server
    touched = np.empty(n_servers, dtype=np.int64)
    n = vehicle.shape[0]
    lo = 0
    while lo < n:
        hi = lo
        n_touched = 0
        while hi < n and vehicle[hi] == vehicle[lo]:
            s = server[hi]
            if s >= 0:
                if held[s] < 0.0:
                    touched[n_touched] = s
                    n_touched += 1
                    held[s] = share[hi]
                elif share[hi] > held[s]:
                    held[s] = share[hi]
            hi += 1
        for t in range(n_touched):
            s = touched[t]
            load[s] += held[s]
            held[s] = -1.0
        lo = hi
    return load


@njit(cache=True)
def finish_tasks(
    idx,
    task_id,
    offload,
    status,
    vehicle,
    server,
    arrival,
    size_bits,
    deadline,
    priority,
    cycles,
    share,
    power,
    rate,
    tx_start,
    tx_time,
    compute_start,
    compute_time,
    drop_time,
    local_energy_per_cycle,
    edge_energy_per_cycle,
    latency_weight,
    include_edge_energy,
    horizon,
    full,
):
    """The task-table rows of the finished tasks ``idx``, in one pass.

    Returns the columns of :data:`sim.engine.RECORD_COLUMNS`, in that order: the inputs
    taken at ``idx`` and the derived wait_uplink, wait_compute, completion, latency, energy
    (vehicle side: eq. [15] or [16]), edge_energy, cost (w1 L + (1 - w1) E of eq. [18]; a
    dropped task costs the time until its drop and the energy spent until then),
    deadline_met and in_flight. Unless ``full``, the columns that the run summary does not
    read (task_id, vehicle, size_bits, cycles, deadline, priority, server, share, power,
    rate, tx_start, compute_start, completion) come back empty.
    """
    n = idx.shape[0]
    m = n if full else 0
    nan = np.nan
    o_id = np.empty(m, dtype=np.int64)
    o_vehicle = np.empty(m, dtype=np.int32)
    o_arrival = np.empty(n)
    o_size = np.empty(m)
    o_cycles = np.empty(m)
    o_deadline = np.empty(m)
    o_priority = np.empty(m)
    o_offload = np.empty(n, dtype=np.bool_)
    o_server = np.empty(m, dtype=np.int32)
    o_share = np.empty(m)
    o_power = np.empty(m)
    o_rate = np.empty(m)
    o_tx_start = np.empty(m)
    o_tx_time = np.empty(n)
    o_compute_start = np.empty(m)
    o_compute_time = np.empty(n)
    o_status = np.empty(n, dtype=np.int8)
    wait_uplink = np.full(n, nan)
    wait_compute = np.full(n, nan)
    completion = np.full(m, nan)
    latency = np.full(n, nan)
    energy = np.zeros(n)
    edge_energy = np.zeros(n)
    cost = np.empty(n)
    met = np.zeros(n, dtype=np.bool_)
    in_flight = np.zeros(n, dtype=np.bool_)
    w1 = latency_weight
    for j in range(n):
        i = idx[j]
        a = arrival[i]
        o_arrival[j] = a
        o_offload[j] = offload[i]
        o_tx_time[j] = tx_time[i]
        o_compute_time[j] = compute_time[i]
        o_status[j] = status[i]
        if full:
            o_id[j] = task_id[i]
            o_vehicle[j] = vehicle[i]
            o_size[j] = size_bits[i]
            o_cycles[j] = cycles[i]
            o_deadline[j] = deadline[i]
            o_priority[j] = priority[i]
            o_server[j] = server[i]
            o_share[j] = share[i]
            o_power[j] = power[i]
            o_rate[j] = rate[i]
            o_tx_start[j] = tx_start[i]
            o_compute_start[j] = compute_start[i]
        computed = not np.isnan(compute_start[i])
        if offload[i]:
            if not np.isnan(tx_start[i]):
                wait_uplink[j] = tx_start[i] - a
                energy[j] = power[i] * tx_time[i]
                if computed:
                    wait_compute[j] = compute_start[i] - (tx_start[i] + tx_time[i])
                    edge_energy[j] = cycles[i] * edge_energy_per_cycle[server[i]]
        elif computed:
            wait_compute[j] = compute_start[i] - a
            energy[j] = cycles[i] * local_energy_per_cycle[vehicle[i]]
        if status[i] == 1:
            end = drop_time[i]
        else:
            end = compute_start[i] + compute_time[i]
            if full:
                completion[j] = end
            latency[j] = end - a
            met[j] = end <= deadline[i]
        e = energy[j] + edge_energy[j] if include_edge_energy else energy[j]
        cost[j] = w1 * (end - a) + (1.0 - w1) * e
        in_flight[j] = end > horizon
    return (
        o_id,
        o_vehicle,
        o_arrival,
        o_size,
        o_cycles,
        o_deadline,
        o_priority,
        o_offload,
        o_server,
        o_share,
        o_power,
        o_rate,
        o_tx_start,
        o_tx_time,
        wait_uplink,
        o_compute_start,
        wait_compute,
        o_compute_time,
        completion,
        latency,
        energy,
        edge_energy,
        cost,
        o_status,
        met,
        in_flight,
    )


@njit(cache=True)
def finish_summary(
    idx,
    task_id,
    offload,
    status,
    vehicle,
    server,
    arrival,
    size_bits,
    deadline,
    priority,
    cycles,
    share,
    power,
    rate,
    tx_start,
    tx_time,
    compute_start,
    compute_time,
    drop_time,
    local_energy_per_cycle,
    edge_energy_per_cycle,
    latency_weight,
    include_edge_energy,
    horizon,
):
    """The columns of :func:`finish_tasks` that the run summary reads (arrival, offload,
    tx_time, wait_uplink, wait_compute, compute_time, latency, energy, edge_energy, cost,
    status, deadline_met, in_flight, in that order), without handing back the others."""
    c = finish_tasks(
        idx,
        task_id,
        offload,
        status,
        vehicle,
        server,
        arrival,
        size_bits,
        deadline,
        priority,
        cycles,
        share,
        power,
        rate,
        tx_start,
        tx_time,
        compute_start,
        compute_time,
        drop_time,
        local_energy_per_cycle,
        edge_energy_per_cycle,
        latency_weight,
        include_edge_energy,
        horizon,
        False,
    )
    return c[2], c[7], c[13], c[14], c[16], c[17], c[19], c[20], c[21], c[22], c[23], c[24], c[25]


PHASE_FIRST = 0  # waiting for the local CPU or the uplink
PHASE_EDGE = 1  # transmitted (and through its QPU job, if any), waiting for the edge CPU
PHASE_DONE = 2  # completed or dropped
PHASE_QPU = 3  # transmitted, waiting for its QPU job
PHASE_DECIDE = 4  # waiting for its decision (a quantum policy's inference job)


@njit(cache=True)
def _run_stage(
    idx,
    queue,
    arrival,
    service,
    key,
    deadline,
    free,
    cores,
    last,
    busy,
    t_known,
    fifo,
    drop,
    horizon,
    start_col,
    next_phase,
    phase,
    status,
    drop_time,
):
    start, st = serve_stage(
        _gather(idx, queue),
        _gather(idx, arrival),
        _gather(idx, service),
        _gather(idx, key),
        _gather(idx, deadline),
        free,
        cores,
        last,
        busy,
        t_known,
        fifo,
        drop,
        horizon,
    )
    for j in range(idx.shape[0]):
        i = idx[j]
        if st[j] == STARTED:
            start_col[i] = start[j]
            phase[i] = next_phase
        elif st[j] == DROPPED:
            status[i] = 1
            drop_time[i] = start[j]
            phase[i] = PHASE_DONE


@njit(cache=True)
def _by_id(members, task_id):
    """``members`` reordered by task id (the order of arrival), in linear time when the ids
    are dense."""
    n = members.shape[0]
    lo = task_id[members[0]]
    hi = lo
    for j in range(n):
        t = task_id[members[j]]
        lo = min(lo, t)
        hi = max(hi, t)
    span = hi - lo + 1
    if span > 4 * n:
        ids = np.empty(n, dtype=np.int64)
        for j in range(n):
            ids[j] = task_id[members[j]]
        return members[np.argsort(ids)]
    slot = np.full(span, -1, dtype=np.int64)
    for j in range(n):
        slot[task_id[members[j]] - lo] = members[j]
    out = np.empty(n, dtype=np.int64)
    a = 0
    for s in slot:
        if s >= 0:
            out[a] = s
            a += 1
    return out


@njit(cache=True)
def serve_epoch(
    task_id,
    vehicle,
    server,
    offload,
    arrival,
    deadline,
    key,
    tx_time,
    compute_time,
    tx_start,
    compute_start,
    phase,
    status,
    drop_time,
    l_free,
    l_cores,
    l_last,
    l_busy,
    l_fifo,
    u_free,
    u_cores,
    u_last,
    u_busy,
    u_fifo,
    e_free,
    e_cores,
    e_last,
    e_busy,
    e_fifo,
    t_known,
    drop,
    horizon,
):
    """Push the tasks in flight through local CPUs, uplinks and edge CPUs (in place):
    :func:`serve_front` then :func:`serve_edge`, with no QPU job and every task ready at
    its arrival. Returns the number of tasks in PHASE_DONE."""
    no_site = np.full(phase.shape[0], -1, dtype=np.int64)
    serve_front(
        vehicle,
        offload,
        arrival,
        deadline,
        key,
        tx_time,
        compute_time,
        tx_start,
        compute_start,
        phase,
        status,
        drop_time,
        no_site,
        l_free,
        l_cores,
        l_last,
        l_busy,
        l_fifo,
        u_free,
        u_cores,
        u_last,
        u_busy,
        u_fifo,
        t_known,
        drop,
        horizon,
    )
    return serve_edge(
        task_id,
        server,
        deadline,
        key,
        tx_time,
        compute_time,
        tx_start,
        compute_start,
        phase,
        status,
        drop_time,
        no_site,
        tx_time,
        tx_start,
        e_free,
        e_cores,
        e_last,
        e_busy,
        e_fifo,
        t_known,
        drop,
        horizon,
    )


@njit(cache=True)
def _in_phase(phase, p):
    """Indices of the rows in phase ``p``, in row order."""
    n = phase.shape[0]
    count = 0
    for i in range(n):
        if phase[i] == p:
            count += 1
    out = np.empty(count, dtype=np.int64)
    a = 0
    for i in range(n):
        if phase[i] == p:
            out[a] = i
            a += 1
    return out


@njit(cache=True)
def serve_front(
    vehicle,
    offload,
    ready,
    deadline,
    key,
    tx_time,
    compute_time,
    tx_start,
    compute_start,
    phase,
    status,
    drop_time,
    q_site,
    l_free,
    l_cores,
    l_last,
    l_busy,
    l_fifo,
    u_free,
    u_cores,
    u_last,
    u_busy,
    u_fifo,
    t_known,
    drop,
    horizon,
):
    """The first stage of the tasks in PHASE_FIRST (in place): the local CPU, or the
    uplink when ``offload``, entered at ``ready`` (the arrival, or later when the decision
    waited, e.g. for a policy-inference job).

    A local task goes to PHASE_DONE; a transmitted one to PHASE_QPU when it has a QPU job
    (``q_site >= 0``: the QPU service serves it, see :mod:`sim.qpu_link`), else to
    PHASE_EDGE.
    """
    n = phase.shape[0]
    n_local = 0
    n_up = 0
    for i in range(n):
        if phase[i] == PHASE_FIRST:
            if offload[i]:
                n_up += 1
            else:
                n_local += 1
    loc = np.empty(n_local, dtype=np.int64)
    up = np.empty(n_up, dtype=np.int64)
    a = 0
    b = 0
    for i in range(n):
        if phase[i] == PHASE_FIRST:
            if offload[i]:
                up[b] = i
                b += 1
            else:
                loc[a] = i
                a += 1
    if n_local:
        _run_stage(
            loc,
            vehicle,
            ready,
            compute_time,
            key,
            deadline,
            l_free,
            l_cores,
            l_last,
            l_busy,
            t_known,
            l_fifo,
            drop,
            horizon,
            compute_start,
            PHASE_DONE,
            phase,
            status,
            drop_time,
        )
    if n_up:
        _run_stage(
            up,
            vehicle,
            ready,
            tx_time,
            key,
            deadline,
            u_free,
            u_cores,
            u_last,
            u_busy,
            t_known,
            u_fifo,
            drop,
            horizon,
            tx_start,
            PHASE_EDGE,
            phase,
            status,
            drop_time,
        )
        for j in range(n_up):
            i = up[j]
            if phase[i] == PHASE_EDGE and q_site[i] >= 0:
                phase[i] = PHASE_QPU


@njit(cache=True)
def serve_edge(
    task_id,
    server,
    deadline,
    key,
    tx_time,
    compute_time,
    tx_start,
    compute_start,
    phase,
    status,
    drop_time,
    q_site,
    q_time,
    q_start,
    e_free,
    e_cores,
    e_last,
    e_busy,
    e_fifo,
    t_known,
    drop,
    horizon,
):
    """The edge CPUs for the tasks in PHASE_EDGE (in place): a task arrives at the end of
    its QPU job (``q_start + q_time``) when it has one (``q_site >= 0``), else at the end
    of its transmission. Returns the number of tasks in PHASE_DONE.

    Call it after every task whose QPU job starts before ``t_known`` has been moved to
    PHASE_EDGE: a task still waiting for a QPU then reaches the edge after ``t_known``.
    """
    n = phase.shape[0]
    edge = _in_phase(phase, PHASE_EDGE)
    if edge.shape[0]:
        edge_arrival = np.empty(n)
        for j in range(edge.shape[0]):
            i = edge[j]
            if q_site[i] >= 0:
                edge_arrival[i] = q_start[i] + q_time[i]
            else:
                edge_arrival[i] = tx_start[i] + tx_time[i]
        # in order of arrival, the edge arrivals are nearly sorted: grouping them by server
        # then needs only a few insertions instead of a sort
        edge = _by_id(edge, task_id)
        _run_stage(
            edge,
            server,
            edge_arrival,
            compute_time,
            key,
            deadline,
            e_free,
            e_cores,
            e_last,
            e_busy,
            t_known,
            e_fifo,
            drop,
            horizon,
            compute_start,
            PHASE_DONE,
            phase,
            status,
            drop_time,
        )
    done = 0
    for i in range(n):
        if phase[i] == PHASE_DONE:
            done += 1
    return done


@njit(cache=True)
def apply_decisions_into(
    vehicle,
    size_bits,
    cycles,
    server,
    share,
    power,
    power_max,
    vehicle_position,
    server_position,
    fading,
    reference_gain,
    reference_distance,
    exponent,
    min_distance,
    interference,
    bandwidth,
    noise,
    noise_is_density,
    sigma_ij,
    local_factor,
    edge_factor,
    local_accuracy,
    edge_accuracy,
    vehicle_cpu,
    server_cpu,
    server_cores,
    epoch,
    out_share,
    out_power,
    rate,
    tx_time,
    compute_time,
):
    """Turn one epoch's decisions into rates, service times and violation counts, written
    into ``out_share``, ``out_power``, ``rate``, ``tx_time`` and ``compute_time`` (one entry
    per task; the first four NaN for a task computed locally).

    Gains come from the positions (eq. [3]) times the fading block (empty: no fading).
    Per task: the power is clipped to P_max (19g counted), bandwidth shares held at a server
    are scaled to sum to at most one (19k counted per server), and the rate of eq. [10],
    transmission time D sigma_ij / R and computation time s_c sigma / C follow. Also counts
    vehicles (19d) and servers (19e) offered more cycles in the epoch than they can run.
    Tasks must be sorted by vehicle. Returns (n_power, n_bandwidth, n_local_capacity,
    n_edge_capacity, error, index): ``error`` is 0, or 1 (server out of range), 2 (share
    outside (0, 1]) or 3 (power not positive and finite) for the action of task ``index``,
    and then nothing is written.
    """
    k = vehicle.shape[0]
    n_v = vehicle_cpu.shape[0]
    n_s = server_cpu.shape[0]
    for i in range(k):
        s = server[i]
        if s < -1 or s >= n_s:
            return 0, 0, 0, 0, 1, i
        if s >= 0:
            if not (share[i] > 0.0 and share[i] <= 1.0):
                return 0, 0, 0, 0, 2, i
            if not (power[i] > 0.0 and np.isfinite(power[i])):
                return 0, 0, 0, 0, 3, i
    n_power = 0
    loc_cycles = np.zeros(n_v)
    edge_cycles = np.zeros(n_s)
    # servers are -1 (local, not counted) to n_s - 1 here, and a local task's share is not read
    load = bandwidth_load(vehicle, server, share, n_s)
    n_bw = 0
    scale = np.ones(n_s)
    for s in range(n_s):
        if load[s] > 1.0 + 1e-9:
            n_bw += 1
            scale[s] = 1.0 / load[s]
    for i in range(k):
        v = vehicle[i]
        s = server[i]
        if s < 0:
            compute_time[i] = cycles[i] * local_factor[v]
            loc_cycles[v] += cycles[i]
            out_share[i] = np.nan
            out_power[i] = np.nan
            rate[i] = np.nan
            tx_time[i] = np.nan
            continue
        compute_time[i] = cycles[i] * edge_factor[s]
        edge_cycles[s] += cycles[i]
        p = power[i]
        if p > power_max[v]:
            n_power += 1
            p = power_max[v]
        x = share[i] * scale[s]
        out_share[i] = x
        out_power[i] = p
        bw = x * bandwidth[s]
        n0 = noise * bw if noise_is_density else noise
        g = pair_gain(
            vehicle_position[v, 0],
            vehicle_position[v, 1],
            server_position[s, 0],
            server_position[s, 1],
            reference_gain,
            reference_distance,
            exponent,
            min_distance,
        )
        if fading.shape[0]:
            g *= fading[v, s]
        r = bw * np.log2(1.0 + p * g / (interference[s] + n0))
        rate[i] = r
        bits = size_bits[i] * sigma_ij
        tx_time[i] = bits / r if bits > 0 else 0.0
    n_loc_cap = 0
    for v in range(n_v):
        if loc_cycles[v] * local_accuracy > vehicle_cpu[v] * epoch:
            n_loc_cap += 1
    n_edge_cap = 0
    for s in range(n_s):
        if edge_cycles[s] * edge_accuracy > server_cpu[s] * server_cores[s] * epoch:
            n_edge_cap += 1
    return n_power, n_bw, n_loc_cap, n_edge_cap, 0, -1


@njit(cache=True)
def admit_rows(
    task_id,
    vehicle,
    arrival,
    size_bits,
    cycles,
    deadline,
    priority,
    server,
    o_task_id,
    o_vehicle,
    o_arrival,
    o_size_bits,
    o_cycles,
    o_deadline,
    o_priority,
    o_offload,
    o_server,
    o_tx_start,
    o_compute_start,
    o_status,
    o_phase,
    o_drop_time,
    o_key,
):
    """Write the columns of new rows in flight that do not depend on the channel: the
    task's own (copied), ``offload`` (server >= 0), ``server``, no service started yet
    (NaN starts and drop time, status 0, PHASE_FIRST) and the queue key -priority.

    One simple loop per column: these compile to block copies and fills, about twice as
    fast as one loop writing every column."""
    n = task_id.shape[0]
    o_task_id[:] = task_id
    o_vehicle[:] = vehicle
    o_arrival[:] = arrival
    o_size_bits[:] = size_bits
    o_cycles[:] = cycles
    o_deadline[:] = deadline
    o_priority[:] = priority
    for i in range(n):
        o_offload[i] = server[i] >= 0
    for i in range(n):
        o_server[i] = server[i]
    o_tx_start[:] = np.nan
    o_compute_start[:] = np.nan
    o_status[:] = 0
    o_phase[:] = PHASE_FIRST
    o_drop_time[:] = np.nan
    for i in range(n):
        o_key[i] = -priority[i]


@njit(cache=True)
def split_done(phase, n):
    """Indices of the first ``n`` rows that are in PHASE_DONE and of those that are not,
    each in row order."""
    n_done = 0
    for i in range(n):
        if phase[i] == PHASE_DONE:
            n_done += 1
    done = np.empty(n_done, dtype=np.int64)
    keep = np.empty(n - n_done, dtype=np.int64)
    a = 0
    b = 0
    for i in range(n):
        if phase[i] == PHASE_DONE:
            done[a] = i
            a += 1
        else:
            keep[b] = i
            b += 1
    return done, keep


@njit(cache=True)
def keep_rows(block, keep):
    """Move columns ``keep`` (ascending) of ``block`` (rows, capacity) to the front, in
    place and in order."""
    for r in range(block.shape[0]):
        for j in range(keep.shape[0]):
            block[r, j] = block[r, keep[j]]

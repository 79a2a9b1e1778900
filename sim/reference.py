"""A slow, plainly written per-task SimPy simulation of the same world, used as reference.

Given the draws of a run (the world's positions and fading, replayed from the same seed
streams, and each task's arrival, size, complexity and decision, taken from the fast
engine's task table), every task is its own SimPy process that queues for SimPy resources:
its vehicle's CPU, or its vehicle's transmitter and then its server's CPU cores. Channel
gains, rates, service times and energies are recomputed here with scalar formulas. The fast
engine must reproduce the times computed here (see tests/test_engine_reference.py).

With the digital twin on, its queue jobs are simulated too: at every sync each vehicle's
sync message (``twin.sync_bits`` at P_max with its equal cell share) requests its transmitter,
and each received report's update (``twin.compute_cycles`` per vehicle of the cell) requests
its server's CPU at the time the fast engine queued it (the ``processed`` column of the
twin's ``twin_sync`` series, which says which reports were lost). Twin jobs queue in arrival
order in FIFO queues and ahead of every task in priority queues.
"""

from __future__ import annotations

import math

import simpy

from sim.errors import SimError
from sim.seeds import SeedTree
from sim.world import World


def _gain(vx, vy, sx, sy, ch) -> float:
    d = math.hypot(vx - sx, vy - sy)
    d = max(d, ch.min_distance)
    return ch.reference_gain * (d / ch.reference_distance) ** (-ch.path_loss_exponent)


def _channel_snapshot(world: World, sc):
    """Per (vehicle, server) gain, per server interference and each vehicle's nearest
    server, in plain Python."""
    ch = sc.channel
    pos = world.positions
    srv = world.server_position
    n, m = pos.shape[0], srv.shape[0]
    gain = [[0.0] * m for _ in range(n)]
    nearest = [0] * n
    for i in range(n):
        best = None
        for j in range(m):
            g = _gain(pos[i, 0], pos[i, 1], srv[j, 0], srv[j, 1], ch)
            if world.fading is not None:
                g *= float(world.fading[i, j])
            gain[i][j] = g
            d2 = (pos[i, 0] - srv[j, 0]) ** 2 + (pos[i, 1] - srv[j, 1]) ** 2
            if best is None or d2 < best:
                best = d2
                nearest[i] = j
    interference = [0.0] * m
    if ch.interference.enabled:
        for j in range(m):
            total = 0.0
            for i in range(n):
                if nearest[i] != j:
                    total += sc.vehicles.power_max * gain[i][j]
            interference[j] = ch.interference.activity * total
    return gain, interference, nearest


def simulate_reference(
    scenario, table, seeds: SeedTree | None = None, twin_sync: dict | None = None
) -> dict[int, dict]:
    """Recompute each task of ``table`` (a DataFrame of the fast engine's task table).

    ``twin_sync`` is the fast engine's ``series["twin_sync"]``, needed when the twin is on.
    Returns ``{task_id: {rate, tx_start, tx_time, compute_start, completion, status,
    drop_time, energy}}`` where status is "completed" or "dropped"; a dropped task has no
    start at the queue that dropped it, and ``drop_time`` says when it was dropped.
    """
    sc = scenario
    seeds = seeds or SeedTree(sc.seed)
    world = World(sc, seeds)
    ch, veh, srv_cfg = sc.channel, sc.vehicles, sc.servers
    epoch, horizon = sc.engine.epoch, sc.engine.horizon
    per_step = sc.epochs_per_mobility_step
    env = simpy.Environment()
    local_cpu = [simpy.PriorityResource(env, capacity=1) for _ in range(world.n_vehicles)]
    uplink = [simpy.PriorityResource(env, capacity=1) for _ in range(world.n_vehicles)]
    edge_cpu = [simpy.PriorityResource(env, capacity=int(c)) for c in world.server_cores]
    out: dict[int, dict] = {}
    rows = table.sort_values("arrival", kind="stable").to_dict("records")
    twin = sc.twin
    if twin.enabled and twin_sync is None:
        raise SimError("the twin is on: pass the fast engine's series['twin_sync']")
    per_sync = sc.epochs_per_sync
    cells_of_sync: list[list[int]] = []

    def twin_job(resource, at, duration, discipline):
        yield env.timeout(at - env.now)
        prio = 0.0 if discipline == "fifo" else -math.inf
        with resource.request(priority=prio) as req:
            yield req
            yield env.timeout(duration)

    def priority(row, discipline) -> float:
        return 0.0 if discipline == "fifo" else -row["priority"]

    def late(row) -> bool:
        return sc.tasks.drop_expired and env.now > row["deadline"]

    def task(row, rate, tx_time, result):
        yield env.timeout(row["arrival"] - env.now)
        v = int(row["vehicle"])
        s = int(row["server"])
        if s < 0:
            with local_cpu[v].request(priority=priority(row, veh.queue)) as req:
                yield req
                if late(row):
                    result["status"], result["drop_time"] = "dropped", env.now
                    return
                result["compute_start"] = env.now
                cpu = veh.cpu
                yield env.timeout(row["cycles"] * veh.semantic_accuracy / cpu)
                result["energy"] = (
                    veh.energy_coefficient * cpu * cpu * row["cycles"] * veh.semantic_accuracy
                )
        else:
            with uplink[v].request(priority=priority(row, veh.uplink_queue)) as req:
                yield req
                if late(row):
                    result["status"], result["drop_time"] = "dropped", env.now
                    return
                result["tx_start"] = env.now
                yield env.timeout(tx_time)
                result["energy"] = row["power"] * tx_time
            with edge_cpu[s].request(priority=priority(row, srv_cfg.queue)) as req:
                yield req
                if late(row):
                    result["status"], result["drop_time"] = "dropped", env.now
                    return
                result["compute_start"] = env.now
                yield env.timeout(
                    row["cycles"] * srv_cfg.semantic_accuracy / float(world.server_cpu[s])
                )
        result["completion"] = env.now
        result["status"] = "completed"

    n_epochs = math.ceil(horizon / epoch - 1e-9)
    pos = 0
    for k in range(n_epochs):
        t0 = k * epoch
        t1 = min((k + 1) * epoch, horizon)
        if k and k % per_step == 0:
            world.advance(per_step * epoch)
        if k % per_step == 0:
            gain, interf, nearest = _channel_snapshot(world, sc)
        if twin.enabled and k and k % per_sync == 0:
            n_sync = len(cells_of_sync)
            if float(twin_sync["generated"][n_sync]) != t0:
                raise SimError(f"sync {n_sync} was not taken at the epoch start {t0}")
            cells = [0] * world.n_servers
            for j in nearest:
                cells[j] += 1
            cells_of_sync.append(cells)
            for v in range(world.n_vehicles) if twin.sync_bits > 0 else ():
                j = nearest[v]
                bw = float(world.server_bandwidth[j]) / cells[j]
                noise = ch.noise * bw if ch.noise_kind == "density" else ch.noise
                snr = float(world.vehicle_power_max[v]) * gain[v][j] / (interf[j] + noise)
                duration = twin.sync_bits / (bw * math.log2(1.0 + snr))
                env.process(twin_job(uplink[v], t0, duration, veh.uplink_queue))
        while pos < len(rows) and rows[pos]["arrival"] < t1:
            row = rows[pos]
            pos += 1
            assert row["arrival"] >= t0
            result = {
                "rate": math.nan,
                "tx_start": math.nan,
                "tx_time": math.nan,
                "compute_start": math.nan,
                "completion": math.nan,
                "energy": 0.0,
                "drop_time": math.nan,
            }
            rate = tx_time = math.nan
            s = int(row["server"])
            if s >= 0:
                bw = row["share"] * float(world.server_bandwidth[s])
                noise = ch.noise * bw if ch.noise_kind == "density" else ch.noise
                snr = row["power"] * gain[int(row["vehicle"])][s] / (interf[s] + noise)
                rate = bw * math.log2(1.0 + snr)
                bits = row["size_bits"] * ch.semantic_efficiency
                tx_time = bits / rate if bits > 0 else 0.0
                result["rate"], result["tx_time"] = rate, tx_time
            out[int(row["task_id"])] = result
            env.process(task(row, rate, tx_time, result))
    if twin.enabled:
        for n_sync, cells in enumerate(cells_of_sync):
            at = float(twin_sync["processed"][n_sync])
            if math.isnan(at) or twin.compute_cycles <= 0:
                continue  # lost, or received after the last epoch
            for j, count in enumerate(cells):
                if count:
                    duration = twin.compute_cycles * count / float(world.server_cpu[j])
                    env.process(twin_job(edge_cpu[j], at, duration, srv_cfg.queue))
    env.run()
    return out

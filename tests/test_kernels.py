"""The compiled queue kernel against plain SimPy queues, epoch splitting, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.kernels import DEFERRED, DROPPED, STARTED, bandwidth_load, serve_stage


def simpy_stage(queue, arrival, service, key, deadline, cores, fifo, drop):
    """One stage as SimPy PriorityResources: the obviously correct version."""
    env = simpy.Environment()
    res = [simpy.PriorityResource(env, capacity=int(c)) for c in cores]
    start = np.full(len(queue), np.nan)
    dropped = np.zeros(len(queue), dtype=bool)

    def task(i):
        yield env.timeout(arrival[i])
        prio = 0.0 if fifo else key[i]
        with res[queue[i]].request(priority=prio) as req:
            yield req
            start[i] = env.now
            if drop and env.now > deadline[i]:
                dropped[i] = True
                return
            yield env.timeout(service[i])

    for i in np.argsort(arrival, kind="stable"):
        env.process(task(int(i)))
    env.run()
    return start, dropped


def kernel_in_epochs(queue, arrival, service, key, deadline, cores, fifo, drop, epoch):
    """Feed the kernel epoch by epoch, carrying deferred tasks, as the engine does."""
    n_q = len(cores)
    free = np.zeros((n_q, int(max(cores))))
    last = np.zeros(n_q)
    busy = np.zeros(n_q)
    start = np.full(len(queue), np.nan)
    status = np.full(len(queue), DEFERRED, dtype=np.int8)
    carry = np.empty(0, dtype=np.int64)
    t = 0.0
    horizon = 1e18
    while True:
        t1 = t + epoch
        new = np.flatnonzero((arrival >= t) & (arrival < t1))
        idx = np.concatenate((carry, new))
        last_round = t1 > arrival.max(initial=0.0)
        t_known = math.inf if last_round else t1
        s, stt = serve_stage(
            queue[idx],
            arrival[idx],
            service[idx],
            key[idx],
            deadline[idx],
            free,
            np.asarray(cores, dtype=np.int64),
            last,
            busy,
            t_known,
            fifo,
            drop,
            horizon,
        )
        start[idx] = s
        status[idx] = stt
        carry = idx[stt == DEFERRED]
        if last_round:
            break
        t = t1
    assert not np.any(status == DEFERRED)
    return start, status == DROPPED, busy


def workload(seed, n, n_queues, load, service_kind="exp"):
    rng = np.random.default_rng(seed)
    queue = rng.integers(0, n_queues, n).astype(np.int64)
    arrival = np.sort(rng.uniform(0, n / (n_queues * 1.0), n))
    mean = load
    service = rng.exponential(mean, n) if service_kind == "exp" else np.full(n, mean)
    key = rng.normal(size=n)
    deadline = arrival + rng.uniform(0.5, 3.0, n)
    return queue, arrival, service, key, deadline


@pytest.mark.parametrize("fifo", [True, False])
@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.parametrize("cores", [[1], [2, 1, 3]])
@pytest.mark.parametrize("epoch", [0.37, 5.0, 1e9])
def test_kernel_matches_simpy(fifo, drop, cores, epoch):
    q, a, s, k, d = workload(3, 600, len(cores), 0.9 * min(cores))
    ref_start, ref_drop = simpy_stage(q, a, s, k, d, cores, fifo, drop)
    start, dropped, _ = kernel_in_epochs(q, a, s, k, d, cores, fifo, drop, epoch)
    np.testing.assert_array_equal(dropped, ref_drop)
    np.testing.assert_allclose(start, ref_start, rtol=1e-12, atol=1e-12)
    if drop:
        assert dropped.any()  # the workload is loaded enough for drops to matter


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 80),
    cores=st.integers(1, 3),
    fifo=st.booleans(),
    drop=st.booleans(),
    epoch=st.floats(0.05, 20.0),
)
def test_epoch_splitting_never_changes_times(seed, n, cores, fifo, drop, epoch):
    q, a, s, k, d = workload(seed, n, 2, 1.2, service_kind="exp")
    whole, whole_drop, whole_busy = kernel_in_epochs(q, a, s, k, d, [cores, 1], fifo, drop, 1e12)
    split, split_drop, split_busy = kernel_in_epochs(q, a, s, k, d, [cores, 1], fifo, drop, epoch)
    np.testing.assert_array_equal(split_drop, whole_drop)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_allclose(split_busy, whole_busy, rtol=1e-12)


def test_fifo_single_server_is_lindley():
    a = np.array([0.0, 0.5, 0.6, 5.0])
    s = np.array([1.0, 1.0, 1.0, 0.1])
    start, _dropped, busy = kernel_in_epochs(
        np.zeros(4, np.int64), a, s, np.zeros(4), np.full(4, np.inf), [1], True, False, 1e9
    )
    np.testing.assert_array_equal(start, [0.0, 1.0, 2.0, 5.0])
    assert busy[0] == pytest.approx(3.1)


def test_priority_serves_best_waiting_task_first():
    # task 0 occupies the server; 1 and 2 wait; 2 has the better (lower) key
    a = np.array([0.0, 0.1, 0.2])
    s = np.array([1.0, 1.0, 1.0])
    key = np.array([0.0, 5.0, -5.0])
    start, _, _ = kernel_in_epochs(
        np.zeros(3, np.int64), a, s, key, np.full(3, np.inf), [1], False, False, 0.15
    )
    np.testing.assert_array_equal(start, [0.0, 2.0, 1.0])


def test_dropped_task_uses_no_service():
    a = np.array([0.0, 0.1, 0.2])
    s = np.array([1.0, 1.0, 1.0])
    d = np.array([10.0, 0.5, 10.0])  # task 1 would start at 1.0 > 0.5
    start, dropped, busy = kernel_in_epochs(
        np.zeros(3, np.int64), a, s, np.zeros(3), d, [1], True, True, 1e9
    )
    np.testing.assert_array_equal(dropped, [False, True, False])
    np.testing.assert_array_equal(start, [0.0, 1.0, 1.0])
    assert busy[0] == pytest.approx(2.0)


def test_empty_stage():
    start, status = serve_stage(
        np.empty(0, np.int64),
        np.empty(0),
        np.empty(0),
        np.empty(0),
        np.empty(0),
        np.zeros((1, 1)),
        np.ones(1, np.int64),
        np.zeros(1),
        np.zeros(1),
        1.0,
        True,
        False,
        1.0,
    )
    assert start.shape == (0,) and status.shape == (0,)


def test_busy_time_is_cut_at_horizon():
    free, last, busy = np.zeros((1, 1)), np.zeros(1), np.zeros(1)
    serve_stage(
        np.zeros(1, np.int64),
        np.array([0.5]),
        np.array([2.0]),
        np.zeros(1),
        np.full(1, np.inf),
        free,
        np.ones(1, np.int64),
        last,
        busy,
        math.inf,
        True,
        False,
        1.0,
    )
    assert busy[0] == pytest.approx(0.5)
    assert free[0, 0] == pytest.approx(2.5)


def naive_bandwidth_load(vehicle, server, share, m):
    held = {}
    for v, s, x in zip(vehicle, server, share, strict=True):
        if s >= 0:
            held[(v, s)] = max(held.get((v, s), 0.0), x)
    load = np.zeros(m)
    for (_, s), x in held.items():
        load[s] += x
    return load


@settings(max_examples=50, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 4), st.integers(-1, 2), st.floats(0.01, 1.0)), max_size=30
    )
)
def test_bandwidth_load_matches_naive(data):
    data.sort(key=lambda r: r[0])
    v = np.array([r[0] for r in data], dtype=np.int64)
    s = np.array([r[1] for r in data], dtype=np.int64)
    x = np.array([r[2] for r in data], dtype=np.float64)
    np.testing.assert_allclose(bandwidth_load(v, s, x, 3), naive_bandwidth_load(v, s, x, 3))


def test_stage_status_codes_are_distinct():
    assert len({int(STARTED), int(DROPPED), int(DEFERRED)}) == 3


# --------------------------------------------------------------------------- the pipeline
_PENDING = 9  # a phase the kernels never select: tasks not yet arrived
_PERIOD = 0.05  # federated rounds: one QPU-only job per site every _PERIOD


def qpu_link(horizon, drop):
    """Three QPU sites (edge servers 0 and 1, a cloud site for server 2), CLOPS timing."""
    from qpu.config import QPUConfig
    from sim.qpu_link import QPULink
    from sim.seeds import SeedTree

    cfg = QPUConfig(
        timing={"clops": 2e4},
        shots=40,
        sites=[
            {"location": "edge", "server": 0, "qpus": 1},
            {"location": "edge", "server": 1, "qpus": 2},
            {"location": "cloud", "qpus": 1},
        ],
        jobs={
            "semantic_coding": {"enabled": True},
            "federated_aggregation": {"enabled": True, "period": _PERIOD, "shots": 20},
        },
    )
    return QPULink(cfg, 3, SeedTree(0), horizon, drop_expired=drop)


def simpy_pipeline(rows, caps, fifo, drop, link, horizon):
    """Local CPU or uplink, then the task's QPU job (FIFO per site), then the edge CPU,
    with the periodic QPU-only jobs, as SimPy PriorityResources."""
    from qpu.templates import KINDS

    env = simpy.Environment()
    caps = {**caps, "qpu": [1, 2, 1]}
    res = {k: [simpy.PriorityResource(env, capacity=int(c)) for c in cs] for k, cs in caps.items()}
    n = len(rows["ready"])
    out = {k: np.full(n, np.nan) for k in ("tx_start", "q_start", "compute_start", "drop_time")}
    sem = KINDS.index("semantic_coding")
    agg = KINDS.index("federated_aggregation")

    def stage(i, name, q, service, col, stage_fifo=fifo):
        prio = 0.0 if stage_fifo else rows["key"][i]
        with res[name][q].request(priority=prio) as req:
            yield req
            if drop and env.now > rows["deadline"][i]:
                out["drop_time"][i] = env.now
                return False
            out[col][i] = env.now
            yield env.timeout(service)
        return True

    def task(i):
        r = {k: v[i] for k, v in rows.items()}
        yield env.timeout(r["ready"])
        if not r["offload"]:
            yield from stage(i, "local", r["vehicle"], r["compute_time"], "compute_start")
            return
        if not (yield from stage(i, "uplink", r["vehicle"], r["tx_time"], "tx_start")):
            return
        site = link.site_of_server[r["server"]]
        q_time = float(link.service.job_time([sem], [site])[0])
        if not (yield from stage(i, "qpu", site, q_time, "q_start", stage_fifo=True)):
            return
        yield from stage(i, "edge", r["server"], r["compute_time"], "compute_start")

    def round_job(t, site):
        yield env.timeout(t)
        with res["qpu"][site].request(priority=0.0) as req:
            yield req
            yield env.timeout(float(link.service.job_time([agg], [site])[0]))

    for t in np.arange(0.0, horizon, _PERIOD):
        for site in range(3):
            env.process(round_job(float(t), site))
    for i in np.argsort(rows["ready"], kind="stable"):
        env.process(task(int(i)))
    env.run()
    return out


def pipeline_rows(seed, n, n_vehicles, n_servers):
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0, n * 0.004, n))
    offload = rng.random(n) < 0.7
    return {
        "task_id": np.arange(n, dtype=np.int64),
        "vehicle": rng.integers(0, n_vehicles, n),
        "server": np.where(offload, rng.integers(0, n_servers, n), -1),
        "offload": offload,
        "arrival": arrival,
        # decisions that waited (e.g. for a policy-inference job) make tasks ready later
        "ready": arrival + np.where(rng.random(n) < 0.3, rng.uniform(0, 0.01, n), 0.0),
        "deadline": arrival + rng.uniform(0.03, 0.3, n),
        "key": rng.normal(size=n),
        "tx_time": rng.exponential(0.01, n),
        "compute_time": rng.exponential(0.006, n),
    }


def pipeline_in_epochs(rows, caps, fifo, drop, epoch, link, horizon):
    """serve_front, the QPU link and serve_edge, epoch by epoch, tasks joining when they
    arrive, as in the engine."""
    from sim.kernels import PHASE_DONE, PHASE_FIRST, serve_edge, serve_front

    n = len(rows["ready"])
    state = {}
    for name, cs in caps.items():
        cs = np.asarray(cs, dtype=np.int64)
        state[name] = (np.zeros((len(cs), int(cs.max()))), cs, np.zeros(len(cs)), np.zeros(len(cs)))
    rows = dict(rows)
    rows.update(
        tx_start=np.full(n, np.nan),
        compute_start=np.full(n, np.nan),
        drop_time=np.full(n, np.nan),
        phase=np.full(n, _PENDING, dtype=np.int8),
        status=np.zeros(n, dtype=np.int8),
        q_site=link.task_sites(rows["server"]),
        q_job=np.full(n, -1, dtype=np.int64),
        q_start=np.full(n, np.nan),
        q_time=np.full(n, np.nan),
        q_fid=np.full(n, np.nan),
    )
    t = 0.0
    while True:
        t1 = t + epoch
        rows["phase"][(rows["arrival"] >= t) & (rows["arrival"] < t1)] = PHASE_FIRST
        link.submit_rounds(t, t1)
        t_known = math.inf if t1 >= horizon else t1
        r = rows
        serve_front(
            r["vehicle"], r["offload"], r["ready"], r["deadline"], r["key"], r["tx_time"],
            r["compute_time"], r["tx_start"], r["compute_start"], r["phase"], r["status"],
            r["drop_time"], r["q_site"], *state["local"], fifo, *state["uplink"], fifo,
            t_known, drop, 1e18,
        )  # fmt: skip
        link.resolve(rows, t_known)
        serve_edge(
            r["task_id"], r["server"], r["deadline"], r["key"], r["tx_time"], r["compute_time"],
            r["tx_start"], r["compute_start"], r["phase"], r["status"], r["drop_time"],
            r["q_site"], r["q_time"], r["q_start"], *state["edge"], fifo, t_known, drop, 1e18,
        )  # fmt: skip
        if t_known == math.inf:
            break
        t = t1
    assert np.all(rows["phase"] == PHASE_DONE)
    assert np.array_equal(rows["status"] == 1, ~np.isnan(rows["drop_time"]))
    return rows


@pytest.mark.parametrize("fifo", [True, False])
@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.parametrize("epoch", [0.013, 0.25, 1e9])
def test_pipeline_with_qpus_matches_simpy(fifo, drop, epoch):
    caps = {"local": [1] * 6, "uplink": [1] * 6, "edge": [2, 1, 1]}
    rows = pipeline_rows(5, 700, 6, 3)
    horizon = 2.8  # all tasks arrive before it; rounds stop at it
    link = qpu_link(horizon, drop)
    ref = simpy_pipeline(rows, caps, fifo, drop, link, horizon)
    got = pipeline_in_epochs(rows, caps, fifo, drop, min(epoch, horizon), link, horizon)
    for col in ("tx_start", "q_start", "compute_start", "drop_time"):
        np.testing.assert_allclose(got[col], ref[col], rtol=1e-12, atol=1e-12, err_msg=col)
    assert (~np.isnan(got["q_start"])).sum() > 200  # tasks used the QPUs
    jobs = link.table()
    rounds = jobs["kind"] == "federated_aggregation"
    assert rounds.sum() == 3 * math.ceil(horizon / _PERIOD - 1e-9)
    if drop:
        assert (~np.isnan(got["drop_time"])).sum() > 5
        assert (jobs["status"][~rounds] == 1).any()  # some drops happened at the QPUs


def test_serve_epoch_is_front_then_edge_without_qpus():
    """The three-stage entry point gives the split kernels' times when no task has a job."""
    from sim.kernels import PHASE_DONE, PHASE_FIRST, serve_edge, serve_epoch, serve_front

    caps = {"local": [1] * 4, "uplink": [1] * 4, "edge": [2, 1]}
    base = pipeline_rows(8, 300, 4, 2)
    base["ready"] = base["arrival"].copy()
    results = []
    for split in (False, True):
        r = {k: v.copy() for k, v in base.items()}
        n = 300
        r.update(
            tx_start=np.full(n, np.nan),
            compute_start=np.full(n, np.nan),
            drop_time=np.full(n, np.nan),
            phase=np.full(n, PHASE_FIRST, dtype=np.int8),
            status=np.zeros(n, dtype=np.int8),
        )
        st = {k: (np.zeros((len(c), max(c))), np.asarray(c), np.zeros(len(c)), np.zeros(len(c)))
              for k, c in caps.items()}  # fmt: skip
        if split:
            none = np.full(n, -1, dtype=np.int64)
            serve_front(
                r["vehicle"], r["offload"], r["arrival"], r["deadline"], r["key"],
                r["tx_time"], r["compute_time"], r["tx_start"], r["compute_start"],
                r["phase"], r["status"], r["drop_time"], none, *st["local"], True,
                *st["uplink"], True, math.inf, True, 1e18,
            )  # fmt: skip
            serve_edge(
                r["task_id"], r["server"], r["deadline"], r["key"], r["tx_time"],
                r["compute_time"], r["tx_start"], r["compute_start"], r["phase"],
                r["status"], r["drop_time"], none, r["tx_time"], r["tx_start"],
                *st["edge"], True, math.inf, True, 1e18,
            )  # fmt: skip
        else:
            serve_epoch(
                r["task_id"], r["vehicle"], r["server"], r["offload"], r["arrival"],
                r["deadline"], r["key"], r["tx_time"], r["compute_time"], r["tx_start"],
                r["compute_start"], r["phase"], r["status"], r["drop_time"],
                *st["local"], True, *st["uplink"], True, *st["edge"], True, math.inf, True,
                1e18,
            )  # fmt: skip
        assert np.all(r["phase"] == PHASE_DONE)
        results.append(r)
    for col in ("tx_start", "compute_start", "drop_time"):
        np.testing.assert_array_equal(results[0][col], results[1][col])


def _finish_args(rng, n=600):
    """Arguments of finish_summary: local, transmitted, dropped before and after
    transmission, completed past the horizon."""
    n_v, n_s = 12, 4
    offload = rng.random(n) < 0.7
    status = (rng.random(n) < 0.2).astype(np.int8)
    arrival = np.sort(rng.random(n) * 2.0)
    tx_time = np.where(offload, rng.uniform(1e-4, 1e-3, n), np.nan)
    tx_start = np.where(offload, arrival + rng.uniform(0, 1e-3, n), np.nan)
    tx_start[offload & (rng.random(n) < 0.1)] = np.nan  # dropped before transmitting
    compute_start = np.where(offload, tx_start + tx_time, arrival) + rng.uniform(0, 1e-3, n)
    compute_start[status == 1] = np.nan
    drop_time = np.where(status == 1, arrival + 0.05, np.nan)
    return (
        rng.permutation(n)[: n // 2],
        np.arange(n),
        offload,
        status,
        rng.integers(0, n_v, n),
        np.where(offload, rng.integers(0, n_s, n), -1).astype(np.int32),
        arrival,
        rng.uniform(1e4, 2e4, n),
        arrival + 0.05,
        rng.normal(size=n),
        rng.uniform(1e6, 2e6, n),
        rng.random(n),
        rng.random(n),
        rng.uniform(1e6, 1e7, n),
        tx_start,
        tx_time,
        compute_start,
        rng.uniform(1e-4, 2e-3, n),
        drop_time,
        rng.uniform(1e-10, 1e-9, n_v),
        rng.uniform(1e-11, 1e-10, n_s),
        0.6,
        True,
        1.9,  # some tasks end after the horizon
    )


def test_finish_summary_is_the_summary_columns_of_finish_tasks():
    """The summary-only finish gives, byte for byte, the summary's columns of the full one
    (local, transmitted, dropped before and after transmission, completed past the horizon)."""
    from sim.engine import _KERNEL_COLUMNS, _SUMMARY_KERNEL_COLUMNS
    from sim.kernels import finish_summary, finish_tasks

    args = _finish_args(np.random.default_rng(11))
    full = dict(zip(_KERNEL_COLUMNS, finish_tasks(*args, True), strict=True))
    got = finish_summary(*args)
    assert len(got) == len(_SUMMARY_KERNEL_COLUMNS)
    for name, col in zip(_SUMMARY_KERNEL_COLUMNS, got, strict=True):
        assert col.dtype == full[name].dtype and col.tobytes() == full[name].tobytes(), name
    assert full["in_flight"].any() and (full["status"] == 1).any()


def test_summary_add_finished_equals_add_of_finish_summary():
    """The fused finish-and-summarise call leaves the summary exactly as ``add`` of
    finish_summary's columns does, batch after batch (warm-up rows included), and refuses
    a batch whose square overflows the same way."""
    from sim.engine import _SUMMARY_KERNEL_COLUMNS
    from sim.kernels import finish_summary
    from sim.summary import SummaryAccumulator

    rng = np.random.default_rng(5)
    plain = SummaryAccumulator(1.9, 0.4, 0.6)
    fused = SummaryAccumulator(1.9, 0.4, 0.6)
    for n in (600, 1, 3000, 17):
        args = _finish_args(rng, n)
        plain.add(dict(zip(_SUMMARY_KERNEL_COLUMNS, finish_summary(*args), strict=True)))
        fused.add_finished(args)
    fused.add_finished(tuple(a[:0] if i == 0 else a for i, a in enumerate(args)))
    assert plain.result() == fused.result()
    assert plain.n_warmup_excluded > 0 and plain.n_in_flight > 0
    np.testing.assert_array_equal(plain.histogram.counts, fused.histogram.counts)
    huge = list(_finish_args(rng))
    huge[19] = np.full(12, 1e194)  # energies of 1e200 J: their squares overflow
    huge = tuple(huge)
    with pytest.raises(ValueError, match="finite"):
        plain.add(dict(zip(_SUMMARY_KERNEL_COLUMNS, finish_summary(*huge), strict=True)))
    with pytest.raises(ValueError, match="finite"):
        fused.add_finished(huge)
    assert plain.result() == fused.result()

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
_PENDING = 9  # a phase serve_pipeline never selects: rows not yet arrived


def simpy_pipeline(rows, caps, fifo, drop):
    """Local CPU or uplink, then QPU, then edge CPU, as SimPy PriorityResources."""
    env = simpy.Environment()
    res = {
        name: [simpy.PriorityResource(env, capacity=int(c)) for c in cs]
        for name, cs in caps.items()
    }
    n = len(rows["ready"])
    out = {k: np.full(n, np.nan) for k in ("tx_start", "q_start", "compute_start", "drop_time")}

    def stage(i, name, q, service, col):
        prio = 0.0 if fifo else rows["key"][i]
        with res[name][q].request(priority=prio) as req:
            yield req
            if drop and env.now > rows["deadline"][i]:
                out["drop_time"][i] = env.now
                return False
            out[col][i] = env.now
            yield env.timeout(service)
        return True

    def row(i):
        r = {k: v[i] for k, v in rows.items()}
        yield env.timeout(r["ready"])
        if r["job"]:
            yield from stage(i, "qpu", r["q_site"], r["q_time"], "q_start")
            return
        if not r["offload"]:
            yield from stage(i, "local", r["vehicle"], r["compute_time"], "compute_start")
            return
        if not (yield from stage(i, "uplink", r["vehicle"], r["tx_time"], "tx_start")):
            return
        if r["q_site"] >= 0 and not (
            yield from stage(i, "qpu", r["q_site"], r["q_time"], "q_start")
        ):
            return
        yield from stage(i, "edge", r["server"], r["compute_time"], "compute_start")

    for i in np.argsort(rows["ready"], kind="stable"):
        env.process(row(int(i)))
    env.run()
    return out


def pipeline_rows(seed, n, n_vehicles, n_servers, n_sites):
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0, n * 0.004, n))
    job = rng.random(n) < 0.2  # QPU-only jobs (e.g. aggregation rounds)
    offload = (rng.random(n) < 0.7) & ~job  # a QPU-only job is not offloaded
    return {
        "task_id": np.arange(n, dtype=np.int64),
        "vehicle": rng.integers(0, n_vehicles, n),
        "server": rng.integers(0, n_servers, n),
        "offload": offload,
        "job": job,
        "arrival": arrival,
        # decisions that waited (e.g. for a policy-inference job) make tasks ready later
        "ready": arrival + np.where(rng.random(n) < 0.3, rng.uniform(0, 0.01, n), 0.0),
        "deadline": arrival + rng.uniform(0.02, 0.2, n),
        "key": rng.normal(size=n),
        "tx_time": rng.exponential(0.01, n),
        "compute_time": np.where(job, 0.0, rng.exponential(0.006, n)),
        "q_site": np.where(
            job | (offload & (rng.random(n) < 0.6)), rng.integers(0, n_sites, n), -1
        ),
        "q_time": rng.exponential(0.004, n),
    }


def pipeline_in_epochs(rows, caps, fifo, drop, epoch):
    """serve_pipeline fed epoch by epoch, rows joining when they arrive, as in the engine."""
    from sim.kernels import PHASE_DONE, PHASE_FIRST, PHASE_QPU, serve_pipeline

    n = len(rows["ready"])
    state = {}
    for name, cs in caps.items():
        cs = np.asarray(cs, dtype=np.int64)
        state[name] = (np.zeros((len(cs), int(cs.max()))), cs, np.zeros(len(cs)), np.zeros(len(cs)))
    out = {k: np.full(n, np.nan) for k in ("tx_start", "q_start", "compute_start", "drop_time")}
    phase = np.full(n, _PENDING, dtype=np.int8)
    status = np.zeros(n, dtype=np.int8)
    t = 0.0
    while True:
        t1 = t + epoch
        new = (rows["arrival"] >= t) & (rows["arrival"] < t1)
        phase[new] = np.where(rows["job"][new], PHASE_QPU, PHASE_FIRST)
        last_round = t1 > rows["arrival"].max()
        serve_pipeline(
            rows["task_id"], rows["vehicle"], rows["server"], rows["offload"],
            rows["arrival"], rows["ready"], rows["deadline"], rows["key"],
            rows["tx_time"], rows["compute_time"], out["tx_start"], out["compute_start"],
            phase, status, out["drop_time"], rows["q_site"], rows["q_time"], out["q_start"],
            *state["local"], fifo, *state["uplink"], fifo, *state["qpu"], fifo,
            *state["edge"], fifo, math.inf if last_round else t1, drop, 1e18,
        )  # fmt: skip
        if last_round:
            break
        t = t1
    assert np.all(phase == PHASE_DONE)
    assert np.array_equal(status == 1, ~np.isnan(out["drop_time"]))
    return out, state


@pytest.mark.parametrize("fifo", [True, False])
@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.parametrize("epoch", [0.013, 0.25, 1e9])
def test_pipeline_with_qpus_matches_simpy(fifo, drop, epoch):
    caps = {"local": [1] * 6, "uplink": [1] * 6, "qpu": [1, 2], "edge": [2, 1, 1]}
    rows = pipeline_rows(5, 700, 6, 3, 2)
    ref = simpy_pipeline(rows, caps, fifo, drop)
    got, state = pipeline_in_epochs(rows, caps, fifo, drop, epoch)
    for col in ("tx_start", "q_start", "compute_start", "drop_time"):
        np.testing.assert_allclose(got[col], ref[col], rtol=1e-12, atol=1e-12, err_msg=col)
    served = ~np.isnan(got["q_start"])
    assert served.sum() > 100 and (served & ~rows["job"]).any()  # both kinds used the QPUs
    busy = state["qpu"][3].sum()
    np.testing.assert_allclose(busy, rows["q_time"][served].sum(), rtol=1e-9)
    if drop:
        assert (~np.isnan(got["drop_time"])).sum() > 5


def test_serve_epoch_is_the_pipeline_without_qpus():
    """The three-stage entry point gives the pipeline's times when no row uses a QPU."""
    from sim.kernels import PHASE_FIRST, serve_epoch

    caps = {"local": [1] * 4, "uplink": [1] * 4, "qpu": [1], "edge": [2, 1]}
    rows = pipeline_rows(8, 300, 4, 2, 1)
    rows["job"][:] = False
    rows["q_site"][:] = -1
    rows["ready"] = rows["arrival"].copy()
    ref, _ = pipeline_in_epochs(rows, caps, True, True, 1e9)
    n = 300
    out = {k: np.full(n, np.nan) for k in ("tx_start", "compute_start", "drop_time")}
    phase = np.full(n, PHASE_FIRST, dtype=np.int8)
    status = np.zeros(n, dtype=np.int8)
    st = {k: (np.zeros((len(c), max(c))), np.asarray(c), np.zeros(len(c)), np.zeros(len(c)))
          for k, c in caps.items()}  # fmt: skip
    serve_epoch(
        rows["task_id"], rows["vehicle"], rows["server"], rows["offload"], rows["arrival"],
        rows["deadline"], rows["key"], rows["tx_time"], rows["compute_time"],
        out["tx_start"], out["compute_start"], phase, status, out["drop_time"],
        *st["local"], True, *st["uplink"], True, *st["edge"], True, math.inf, True, 1e18,
    )  # fmt: skip
    for col in out:
        np.testing.assert_array_equal(out[col], ref[col])

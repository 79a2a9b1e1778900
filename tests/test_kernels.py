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

"""The QPU service: queueing theory (M/D/1, M/G/1, the M/G/1/1 loss system), an
event-by-event reference, independence of the epoch cut, batching, admission limits,
deadlines, metrics and the scenario section."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from qpu.backends import QPUError
from qpu.config import QPUConfig
from qpu.fidelity import template_fidelity
from qpu.service import COMPLETED, DROPPED, PENDING, REJECTED, QPUService, QueueCore, queue_length
from qpu.templates import KINDS, build_template
from qpu.timing import TargetTiming
from sim.errors import ScenarioError
from sim.kernels import serve_stage

COLUMNS = ("status", "start", "end", "qpu", "batch")


def run_epochs(core: QueueCore, jobs: dict, edges) -> QueueCore:
    """Submit ``jobs`` epoch by epoch (cut at ``edges``), then drain."""
    arrival = jobs["arrival"]
    lo = 0.0
    for hi in edges:
        m = (arrival >= lo) & (arrival < hi)
        core.submit(
            jobs["kind"][m],
            jobs["site"][m],
            arrival[m],
            key=jobs["key"][m],
            deadline=jobs["deadline"][m],
            shots=jobs["shots"][m],
        )
        core.advance(hi)
        lo = hi
    m = arrival >= lo
    core.submit(
        jobs["kind"][m],
        jobs["site"][m],
        arrival[m],
        key=jobs["key"][m],
        deadline=jobs["deadline"][m],
        shots=jobs["shots"][m],
    )
    core.drain()
    return core


def workload(n, n_sites, n_kinds, rate, seed, deadline=math.inf, key_levels=3):
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1 / rate, n))
    return {
        "arrival": arrival,
        "kind": rng.integers(0, n_kinds, n),
        "site": rng.integers(0, n_sites, n),
        "key": rng.integers(0, key_levels, n).astype(float),
        "deadline": arrival + deadline,
        "shots": rng.integers(1, 4, n),
    }


def reference(jobs, qpus, overhead, shot_time, *, fifo, cap, max_batch, drop):
    """Event by event, one site at a time, with plain lists."""
    n = jobs["arrival"].size
    out = {
        "status": np.full(n, PENDING),
        "start": np.full(n, np.nan),
        "end": np.full(n, np.nan),
        "qpu": np.full(n, -1),
        "batch": np.zeros(n, int),
    }
    first = np.concatenate([[0], np.cumsum(qpus)[:-1]])

    def order(j):
        a = (jobs["arrival"][j], j)
        return a if fifo else (jobs["key"][j], *a)

    for s in range(len(qpus)):
        free = [0.0] * qpus[s]
        arrivals = sorted(np.flatnonzero(jobs["site"] == s), key=lambda j: (jobs["arrival"][j], j))
        waiting: list[int] = []
        now = 0.0
        while arrivals or waiting:
            c = min(range(len(free)), key=lambda q: (free[q], q))
            t_start = max(free[c], now) if waiting else math.inf
            t_arr = jobs["arrival"][arrivals[0]] if arrivals else math.inf
            if t_arr <= t_start:
                j = arrivals.pop(0)
                now = max(now, t_arr)
                idle = sum(f <= t_arr for f in free)
                if cap is not None and len(waiting) >= cap and idle <= len(waiting):
                    out["status"][j] = REJECTED
                    out["end"][j] = t_arr
                else:
                    waiting.append(j)
                continue
            now = t_start
            k = jobs["kind"][min(waiting, key=order)]
            members = []
            for j in sorted((j for j in waiting if jobs["kind"][j] == k), key=order):
                if len(members) == max_batch:
                    break
                waiting.remove(j)
                if drop and now > jobs["deadline"][j]:
                    out["status"][j] = DROPPED
                    out["end"][j] = now
                else:
                    members.append(j)
            if not members:
                continue
            g = first[s] + c
            finish = now + overhead[g] + sum(jobs["shots"][j] for j in members) * shot_time[k, g]
            for j in members:
                out["status"][j] = COMPLETED
                out["start"][j] = now
                out["end"][j] = finish
                out["qpu"][j] = g
                out["batch"][j] = len(members)
            free[c] = finish
    return out


@pytest.mark.parametrize("fifo", [True, False])
def test_equals_serve_stage_without_batches_or_limits(fifo):
    jobs = workload(6000, 3, 2, rate=2.6, seed=1)
    shot_time = np.array([[0.4] * 4, [0.9] * 4])
    core = run_epochs(
        QueueCore([1, 2, 1], np.zeros(4), shot_time, fifo=fifo), jobs, np.arange(1, 2400, 7.3)
    )
    service = jobs["shots"] * shot_time[jobs["kind"], 0]
    start, status = serve_stage(
        jobs["site"],
        jobs["arrival"],
        service,
        jobs["key"],
        jobs["deadline"],
        np.zeros((3, 2)),
        np.array([1, 2, 1]),
        np.zeros(3),
        np.zeros(3),
        np.inf,
        fifo,
        False,
        np.inf,
    )
    assert (status == 0).all() and (core.column("status") == COMPLETED).all()
    assert np.array_equal(core.column("start"), start)
    assert np.array_equal(core.column("end"), start + service)


@pytest.mark.parametrize("fifo", [True, False])
@pytest.mark.parametrize("cap, max_batch", [(None, 4), (2, 1), (3, 3), (0, 2)])
def test_equals_the_event_by_event_reference(fifo, cap, max_batch):
    jobs = workload(1500, 2, 3, rate=3.0, seed=7 + max_batch, deadline=2.5)
    qpus = [2, 1]
    overhead = np.array([0.05, 0.05, 0.1])
    shot_time = np.array([[0.1, 0.1, 0.2], [0.3, 0.3, 0.25], [0.2, 0.2, 0.15]])
    kw = {"fifo": fifo, "cap": cap, "max_batch": max_batch, "drop": True}
    ref = reference(jobs, qpus, overhead, shot_time, **kw)
    core = QueueCore(
        qpus,
        overhead,
        shot_time,
        fifo=fifo,
        admission_limit=cap,
        max_batch=max_batch,
        drop_expired=True,
    )
    run_epochs(core, jobs, np.arange(0.5, 600, 1.7))
    for name in COLUMNS:
        assert np.array_equal(core.column(name), ref[name], equal_nan=True), name
    assert len(set(ref["status"])) >= 2  # the workload exercises drops or rejections


def test_the_epoch_cut_does_not_matter():
    jobs = workload(5000, 3, 4, rate=4.0, seed=3, deadline=3.0)
    args = ([2, 1, 3], np.full(6, 0.02), np.random.default_rng(0).uniform(0.05, 0.3, (4, 6)))
    kw = {"fifo": False, "admission_limit": 4, "max_batch": 5}
    one = run_epochs(QueueCore(*args, **kw), jobs, [])
    many = run_epochs(
        QueueCore(*args, **kw), jobs, np.cumsum(np.random.default_rng(1).exponential(0.9, 2000))
    )
    for name in COLUMNS:
        assert np.array_equal(one.column(name), many.column(name), equal_nan=True), name
    assert np.array_equal(one.busy_total, many.busy_total)


def batch_means(x: np.ndarray, batches: int = 20) -> tuple[float, float]:
    means = np.array([b.mean() for b in np.array_split(x, batches)])
    return float(means.mean()), float(means.std(ddof=1) / math.sqrt(batches))


def poisson_core(n, rate, kinds, probs, seed):
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1 / rate, n))
    kind = rng.choice(len(kinds), n, p=probs)
    core = QueueCore([1], np.zeros(1), np.array(kinds, dtype=float)[:, None])
    for lo in range(0, n, 20_000):  # epochs of 20,000 jobs
        hi = min(n, lo + 20_000)
        core.submit(kind[lo:hi], 0, arrival[lo:hi])
        core.advance(arrival[hi] if hi < n else math.inf)
    return core, arrival


def test_md1_mean_wait_is_pollaczek_khinchine():
    lam, d = 0.8, 1.0
    core, arrival = poisson_core(200_000, lam, [d], [1.0], seed=11)
    wait = core.column("start") - arrival
    mean, se = batch_means(wait[5000:])
    theory = lam * d**2 / (2 * (1 - lam * d))  # 2.0
    assert abs(mean - theory) < 4 * se + 0.01 * theory, (mean, se, theory)


def test_mg1_two_circuit_kinds():
    lam, d1, d2 = 0.7, 0.5, 1.5
    core, arrival = poisson_core(200_000, lam, [d1, d2], [0.5, 0.5], seed=12)
    wait = core.column("start") - arrival
    mean, se = batch_means(wait[5000:])
    es, es2 = 0.5 * (d1 + d2), 0.5 * (d1**2 + d2**2)
    theory = lam * es2 / (2 * (1 - lam * es))
    assert abs(mean - theory) < 4 * se + 0.01 * theory, (mean, se, theory)
    # Little's law on the queue-length step function
    t, length = queue_length(core, 0)
    horizon = arrival[-1]
    t = np.append(t, horizon)
    keep = t[:-1] < horizon
    area = np.sum(length[keep] * np.diff(np.minimum(t, horizon))[keep])
    done = core.column("start") <= horizon
    assert area == pytest.approx(np.sum((core.column("start") - arrival)[done]), rel=1e-3)


def test_loss_system_blocking_probability():
    # admission limit 0 with one QPU: M/D/1/1, blocking rho / (1 + rho) (Erlang B, c = 1)
    rng = np.random.default_rng(13)
    n, lam, d = 100_000, 1.0, 0.5
    arrival = np.cumsum(rng.exponential(1 / lam, n))
    core = QueueCore([1], np.zeros(1), np.array([[d]]), admission_limit=0)
    core.submit(np.zeros(n, int), 0, arrival)
    core.drain()
    blocked = np.mean(core.column("status") == REJECTED)
    assert blocked == pytest.approx(lam * d / (1 + lam * d), abs=0.01)
    assert np.all(
        core.column("start")[core.column("status") == COMPLETED]
        == arrival[core.column("status") == COMPLETED]
    )


def test_batching_deadlines_and_energy_by_hand():
    # one QPU, overhead 0.5 s, kind A 1 s per shot, kind B 2 s per shot, one shot each
    core = QueueCore([1], np.array([0.5]), np.array([[1.0], [2.0]]), max_batch=4, horizon=10.0)
    ids = core.submit([0, 0, 1, 0], 0, [0.0, 0.1, 0.2, 0.3], deadline=[9, 9, 9, 9])
    core.advance(0.25)  # the job at 0.3 is not known to be first yet
    assert core.column("status")[0] == COMPLETED and core.column("end")[0] == 1.5
    core.drain()
    assert list(core.column("start")[ids]) == [0.0, 1.5, 4.0, 1.5]
    assert list(core.column("end")[ids]) == [1.5, 4.0, 6.5, 4.0]  # A and A batched: 0.5 + 2
    assert list(core.column("batch")[ids]) == [1, 2, 1, 2]
    assert core.busy_total[0] == 6.5 and core.busy[0] == 6.5
    # deadlines: a job that would start after its deadline is dropped at that moment
    core = QueueCore([1], np.zeros(1), np.array([[1.0]]))
    core.submit([0, 0, 0], 0, [0.0, 0.1, 0.2], deadline=[0.5, 0.6, 1.5])
    core.drain()
    assert list(core.column("status")) == [COMPLETED, DROPPED, COMPLETED]
    assert list(core.column("end")) == [1.0, 1.0, 2.0]


def test_queue_core_input_errors():
    core = QueueCore([1], np.zeros(1), np.ones((1, 1)))
    with pytest.raises(QPUError, match="kinds"):
        core.submit([1], 0, [0.0])
    with pytest.raises(QPUError, match="sites"):
        core.submit([0], 1, [0.0])
    core.advance(5.0)
    with pytest.raises(QPUError, match=r"arrivals must be finite and >= 5\.0"):
        core.submit([0], 0, [4.0])
    with pytest.raises(QPUError, match="time runs forward"):
        core.advance(1.0)
    with pytest.raises(QPUError, match="at least one QPU"):
        QueueCore([0], np.zeros(0), np.ones((1, 0)))


def config(**over) -> QPUConfig:
    data = {
        "device": "fake_nairobi",
        "overhead": "20 ms",
        "power": "10 kW",
        "sites": [
            {"location": "edge", "server": 1, "qpus": 2},
            {"location": "cloud", "qpus": 1, "power": "20 kW", "idle_power": "1 kW"},
        ],
        "jobs": {
            "semantic_coding": {"enabled": True},
            "policy_inference": {"enabled": True, "shots": 200, "priority": 2},
        },
    }
    data.update(over)
    return QPUConfig.model_validate(data)


def test_service_from_config_timing_fidelity_table_and_metrics():
    svc = QPUService(config(queue="priority"), n_servers=2, horizon=20.0)
    assert svc.site_of_server.tolist() == [-1, 0] and svc.cloud_sites == [1]
    sem = build_template("semantic_coding")
    timing = TargetTiming("fake_nairobi").timing(sem)
    k_sem = KINDS.index("semantic_coding")
    assert svc.core.shot_time[k_sem, 0] == timing.shot_time
    assert svc.fidelity[k_sem, 2] == template_fidelity(sem, "fake_nairobi").total
    rng = np.random.default_rng(5)
    n = 300
    kind = svc.kind_codes(rng.choice(["semantic_coding", "policy_inference"], n))
    submit = np.sort(rng.uniform(0, 20, n))
    site = rng.integers(0, 2, n)
    for e in range(1, 21):
        m = (submit >= e - 1) & (submit < e)
        _, start, end, status = svc.serve_epoch(kind[m], site[m], submit[m], float(e))
        done = status == COMPLETED
        assert np.all(start[done] >= submit[m][done]) and np.all(end[done] > start[done])
    svc.drain()
    table = svc.table()
    assert set(table) >= {"kind", "site", "qpu", "submit", "start", "end", "wait", "execution"}
    assert set(table) >= {"shots", "fidelity", "status"}
    assert all(len(v) == n for v in table.values())
    served = table["status"] == COMPLETED
    assert np.all(table["fidelity"][served] > 0) and np.all(table["fidelity"][served] < 1)
    pol = table["kind"] == "policy_inference"
    assert np.all(table["shots"][pol] == 200) and np.all(table["shots"][~pol] == 1024)
    assert np.all(table["priority"][pol] == 2)
    sem_exec = table["execution"][served & ~pol & (table["site"] == 0)]
    assert sem_exec == pytest.approx(0.02 + 1024 * timing.shot_time)
    assert svc.job_time([k_sem], [0])[0] == pytest.approx(0.02 + 1024 * timing.shot_time)
    m = svc.metrics()
    assert m["completed"] == served.sum() and m["jobs"] == n
    busy = np.array(m["busy_time"])
    assert m["energy"] == pytest.approx(
        [10e3 * busy[0], 10e3 * busy[1], 20e3 * busy[2] + 1e3 * (20.0 - svc.core.busy[2])]
    )
    assert np.all(np.array(m["utilisation"]) <= 1.0)
    assert m["wait_percentiles"]["p50"] <= m["wait_percentiles"]["p99"]
    with pytest.raises(QPUError, match="not enabled"):
        svc.kind_codes("federated_aggregation")


def test_config_validation():
    with pytest.raises(ValidationError, match="unknown backend"):
        config(backend="gpu")
    with pytest.raises(ValidationError, match="unknown job kind"):
        config(jobs={"qaoa": {"enabled": True}})
    with pytest.raises(ValidationError, match="needs 'server'"):
        config(sites=[{"location": "edge"}])
    with pytest.raises(ValidationError, match="two sites at edge server 0"):
        config(sites=[{"server": 0}, {"server": 0}])
    with pytest.raises(ValidationError, match="Extra inputs"):
        config(queue_length=3)
    cfg = config(rep_delay="100 us", deadline="50 ms", backend="aer-noisy:fake_torino")
    assert cfg.rep_delay == pytest.approx(1e-4) and cfg.deadline == pytest.approx(0.05)
    assert cfg.size("semantic_coding") == 4 and cfg.shots_of("policy_inference") == 200
    with pytest.raises(ScenarioError, match=r"qpu\.sites\[0\]\.server = 1"):
        cfg.check_servers(1)
    clops = config(timing={"clops": 5000})
    svc = QPUService(clops)
    assert np.isnan(svc.fidelity).all()

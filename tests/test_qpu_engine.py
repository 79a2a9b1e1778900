"""The QPU service inside the engine: semantic-coding jobs between the uplink and the edge
CPU, periodic jobs, the per-job table and the summary's QPU figures.

The queue times themselves are checked against SimPy in tests/test_kernels.py; here the
engine's use of them is.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import run_table, scenario

from qpu.templates import KINDS

SITES = [{"location": "edge", "server": 0, "qpus": 1}, {"location": "cloud", "qpus": 2}]


def qpu_scenario(horizon="4 s", **qpu):
    cfg = {
        "timing": {"clops": 3e4},
        "shots": 50,
        "sites": SITES,
        "jobs": {
            "semantic_coding": {"enabled": True},
            "federated_aggregation": {"enabled": True, "period": "0.5 s"},
        },
    }
    cfg.update(qpu)
    return scenario(engine={"horizon": horizon}, policy="nearest", qpu=cfg)


@pytest.fixture(scope="module")
def run():
    sc = qpu_scenario()
    table, result = run_table(sc)
    return sc, table, result


def test_offloaded_tasks_wait_for_their_semantic_coding_job(run):
    sc, t, result = run
    jobs = result.series["qpu_jobs"]
    sem = jobs["kind"] == "semantic_coding"
    off = t[t.offload]
    assert len(off) > 100 and sem.sum() == len(off)  # one job per offloaded task
    done = off[off.status == 0]
    tx_end = done.tx_start + done.tx_time
    q_start = tx_end + done.wait_qpu
    # the job starts after the transmission, the edge CPU after the job
    assert (done.wait_qpu >= 0).all()
    assert np.allclose(done.compute_start, q_start + done.qpu_time + done.wait_compute, atol=1e-12)
    assert (done.wait_compute >= -1e-12).all()
    # unbatched jobs last exactly their single-job time at their site
    from sim.qpu_link import QPULink
    from sim.seeds import SeedTree

    link = QPULink(sc.qpu, 2, SeedTree(0), sc.engine.horizon)
    sites = link.task_sites(done.server.to_numpy().astype(np.int64))
    want = link.service.job_time(np.full(len(done), KINDS.index("semantic_coding")), sites)
    np.testing.assert_allclose(done.qpu_time, want, rtol=1e-12)
    # local tasks have no QPU job
    assert t[~t.offload].wait_qpu.isna().all() and t[~t.offload].qpu_time.isna().all()


def test_latency_includes_the_qpu_and_the_draws_do_not_change(run):
    sc, with_qpu, _ = run
    without, _ = run_table(sc.model_copy(update={"qpu": None}))
    for col in ("task_id", "vehicle", "arrival", "size_bits", "cycles", "server"):
        np.testing.assert_array_equal(with_qpu[col], without[col])
    both = (with_qpu.status == 0) & (without.status == 0) & with_qpu.offload
    extra = with_qpu.latency[both] - without.latency[both]
    assert (extra >= with_qpu.qpu_time[both] - 1e-12).all()


def test_periodic_jobs_and_summary_figures(run):
    sc, t, result = run
    jobs = result.series["qpu_jobs"]
    rounds = jobs["kind"] == "federated_aggregation"
    assert rounds.sum() == len(SITES) * math.ceil(sc.engine.horizon / 0.5)
    np.testing.assert_allclose(np.sort(np.unique(jobs["submit"][rounds])), np.arange(0, 4, 0.5))
    extra = result.extra()
    assert extra["qpu_jobs"] == len(jobs["kind"])
    assert extra["qpu_completed"] + extra["qpu_dropped"] + extra["qpu_rejected"] == len(
        jobs["kind"]
    )
    done = t[(t.status == 0) & t.offload & (t.arrival >= sc.engine.warmup)]
    assert extra["qpu_time_mean"] == pytest.approx(done.qpu_time.mean(), rel=1e-9)
    assert extra["wait_qpu_mean"] == pytest.approx(done.wait_qpu.mean(), rel=1e-9)
    busy = np.nansum(jobs["execution"])
    assert sum(extra[k] for k in extra if k == "qpu_busy_time_mean") * 3 == pytest.approx(busy)


def test_a_rejected_job_drops_its_task():
    sc = qpu_scenario(admission_limit=0, sites=[{"location": "cloud", "qpus": 1}])
    t, result = run_table(sc)
    jobs = result.series["qpu_jobs"]
    rejected = (jobs["kind"] == "semantic_coding") & (jobs["status"] == 2)
    assert rejected.sum() > 10
    lost = t[t.offload & (t.status == 1) & t.tx_start.notna() & t.wait_qpu.isna()]
    assert len(lost) == rejected.sum()
    assert t.latency[t.status == 1].isna().all()


def test_an_exact_backend_runs_the_jobs():
    sc = qpu_scenario(horizon="0.5 s", backend="exact")
    _, result = run_table(sc)
    assert result.extra()["qpu_backend_failures"] == 0
    assert result.extra()["qpu_completed"] > 0


def test_a_bad_qpu_site_is_one_clear_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"qpu.sites\[0\].server is 7.*allowed: 0..1"):
        qpu_scenario(sites=[{"location": "edge", "server": 7}])


def test_qpu_figures_come_from_the_job_table(run, tmp_path):
    from qpu.plots import FIGURES, _utilisation, plot_qpu_jobs

    sc, _, result = run
    jobs = result.series["qpu_jobs"]
    util = _utilisation(jobs, sc.engine.horizon)
    extra = result.extra()
    assert util.mean() == pytest.approx(extra["qpu_utilisation_mean"], rel=1e-9)
    assert util.max() == pytest.approx(extra["qpu_utilisation_max"], rel=1e-9)
    paths = plot_qpu_jobs(jobs, sc.engine.horizon, tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"{name}.{ext}" for name in FIGURES for ext in ("png", "svg")
    )
    assert all(p.stat().st_size > 1000 for p in paths)


def test_a_run_writes_the_job_table_and_the_qpu_figures(tmp_path):
    import pyarrow.parquet as pq

    from sim.runner import run_scenario

    sc = qpu_scenario(horizon="1 s")
    run_scenario(sc, out_dir=tmp_path / "run", quiet=True)
    stored = pq.read_table(tmp_path / "run" / "qpu_jobs.parquet").to_pydict()
    _, result = run_table(sc)
    jobs = result.series["qpu_jobs"]
    assert stored["job_id"] == jobs["job_id"].tolist()
    np.testing.assert_array_equal(stored["end"], jobs["end"])
    for name in ("qpu_utilisation", "qpu_queue_length", "qpu_wait", "latency_breakdown"):
        assert (tmp_path / "run" / "figures" / f"{name}.png").exists()


class _QuantumNearest:
    """``nearest`` whose decisions run on the QPU (a stand-in for a trained Q-DDPG)."""

    def __new__(cls, scenario):
        from models.policies import make

        policy = make("nearest", {}, scenario, np.random.default_rng(0))
        policy.runs_on_qpu = True
        return policy


def test_decisions_of_a_quantum_policy_wait_for_their_inference_jobs():
    """Each task enters its first queue when its policy-inference job at the policy site
    ends; those jobs queue FIFO on the site's QPUs, which run nothing else."""
    sc = qpu_scenario(
        horizon="3 s",
        policy_site={"location": "cloud", "qpus": 2},
        jobs={
            "semantic_coding": {"enabled": True},
            "policy_inference": {"enabled": True, "shots": 400},
        },
    )
    t, result = run_table(sc, policy=_QuantumNearest(sc))
    dec = result.series["qpu_decisions"]
    assert len(dec["job_id"]) == len(t)  # one decision job per task, in task order
    # the jobs: all submitted at their epoch's start, served FIFO by 2 QPUs (Kiefer-Wolfowitz)
    epoch = sc.engine.epoch
    np.testing.assert_allclose(dec["submit"], np.floor(t.arrival / epoch + 1e-9) * epoch)
    service = float(dec["execution"][0])
    assert np.allclose(dec["execution"], service) and service > epoch / 4
    free = np.zeros(2)
    for j, submit in enumerate(dec["submit"]):
        c = int(np.argmin(free))
        start = max(free[c], submit)
        assert dec["start"][j] == pytest.approx(start, abs=1e-12)
        free[c] = start + service
    # tasks wait for their decision: the first service starts no earlier than its end
    ready = np.maximum(dec["end"], t.arrival.to_numpy())
    first = np.where(t.offload, t.tx_start, t.compute_start)
    ok = t.status == 0
    assert (first[ok] >= ready[ok] - 1e-12).all()
    assert (first[ok] - ready[ok] < 1e-12).mean() > 0.3  # often served right away
    extra = result.extra()
    lat = (dec["end"] - dec["submit"])[t.arrival >= sc.engine.warmup]
    assert extra["decision_latency_mean"] == pytest.approx(lat.mean(), rel=1e-9)
    assert extra["decision_latency_p95"] == pytest.approx(np.percentile(lat, 95), rel=1e-9)
    assert extra["decision_latency_max"] == pytest.approx(lat.max(), rel=1e-9)
    # the same run without the policy site: decisions take no time, tasks finish sooner
    t0, _ = run_table(
        sc.model_copy(update={"qpu": sc.qpu.model_copy(update={"policy_site": None})}),
        policy=_QuantumNearest(sc),
    )
    assert t.latency.mean() > t0.latency.mean() + 0.5 * lat.mean()


def test_a_policy_site_needs_policy_inference_enabled():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="policy_inference is not enabled"):
        qpu_scenario(policy_site={"location": "cloud"})


def test_a_noisy_backend_measures_the_fidelity_of_the_jobs_that_ran():
    sc = qpu_scenario(horizon="0.3 s", backend="aer-noisy:fake_nairobi", shots=200)
    _, result = run_table(sc)
    jobs = result.series["qpu_jobs"]
    ran = jobs["status"] == 0
    assert ran.sum() > 5
    measured = jobs["fidelity_measured"][ran]
    assert np.all((measured > 0.3) & (measured <= 1.0))
    assert np.isnan(jobs["fidelity_measured"][~ran]).all()


def test_semantic_accuracy_is_scaled_by_the_fidelity_of_the_tasks_encoding_job():
    """Local tasks keep sigma_i; offloaded ones get sigma_j times the fidelity of their
    semantic-coding job: the device's calibrated estimate, or on a noisy backend the
    fidelity measured against the exact result (the same values as the job table's)."""
    from qpu.fidelity import template_fidelity
    from qpu.templates import build_template

    sig = {"vehicles": {"semantic_accuracy": 0.8}, "servers": {"semantic_accuracy": 0.9}}
    qpu = {"device": "fake_nairobi", "shots": 200, "sites": [{"location": "cloud"}]}
    qpu["jobs"] = {"semantic_coding": {"enabled": True}}
    sc = scenario(engine={"horizon": "0.5 s"}, policy="random", qpu=qpu, **sig)
    t, _ = run_table(sc)
    estimate = template_fidelity(build_template("semantic_coding"), "fake_nairobi").total
    assert 0.3 < estimate < 1.0
    local, ran = ~t.offload, t.offload & t.qpu_time.notna()
    assert local.sum() > 3 and ran.sum() > 3
    assert t.qpu_fidelity[local].isna().all()
    np.testing.assert_allclose(t.semantic_accuracy[local], 0.8)
    np.testing.assert_allclose(t.qpu_fidelity[ran], estimate, rtol=1e-12)
    np.testing.assert_allclose(t.semantic_accuracy[ran], 0.9 * estimate, rtol=1e-12)
    # measured on the noisy backend: each task's value is its job's measured fidelity
    noisy = sc.model_copy(
        update={"qpu": sc.qpu.model_copy(update={"backend": "aer-noisy:fake_nairobi"})}
    )
    t, result = run_table(noisy)
    jobs = result.series["qpu_jobs"]
    ran = t.offload & t.qpu_time.notna()
    done = (jobs["status"] == 0) & (jobs["kind"] == "semantic_coding")
    got = np.sort(t.qpu_fidelity[ran].to_numpy())
    np.testing.assert_array_equal(got, np.sort(jobs["fidelity_measured"][done]))
    assert np.std(got) > 0  # measured per job, not the one estimate
    np.testing.assert_allclose(t.semantic_accuracy[ran], 0.9 * t.qpu_fidelity[ran], rtol=1e-12)

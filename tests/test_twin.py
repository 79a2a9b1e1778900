"""The digital twin: estimation, age of information, predictions, costs and their absence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import CollectSink, run_table, scenario
from pydantic import ValidationError
from scipy import stats

from models.policies import make
from models.policies.heuristics import offload_to
from sim.config import Scenario, Tasks
from sim.engine import Engine
from sim.reference import simulate_reference
from sim.seeds import SeedTree
from sim.traffic import TaskSource


class Recorder:
    """Runs every task locally (or on its serving server) and keeps what it was shown."""

    id = "recorder"

    def __init__(self, offload: bool = False) -> None:
        self.offload = offload
        self.seen: list = []

    def decide(self, obs):
        self.seen.append((obs.t, obs.twin, obs.vehicle_position.copy(), obs.server_backlog))
        v = obs.task_vehicle
        return offload_to(obs, obs.vehicle_nearest[v] if self.offload else np.full(v.shape, -1))


def run_engine(sc, policy=None):
    """Run ``sc`` and return the engine (to read the twin's state) and its result."""
    seeds = SeedTree(sc.seed)
    if policy is None:
        policy = make(sc.policy.id, sc.policy.params, sc, seeds.generator("policy"))
    engine = Engine(sc, policy, seeds, CollectSink())
    return engine, engine.run()


def many_static(n: int, rate: str, horizon: str, twin: dict, **kw) -> Scenario:
    return scenario(
        engine={"horizon": horizon, "epoch": "10 ms"},
        vehicles={"count": n},
        mobility={"model": "static", "step": "10 ms"},
        tasks={"arrival_rate": rate, **kw.pop("tasks", {})},
        twin={"enabled": True, "sync_bits": 0, "compute_cycles": 0, **twin},
        **{"policy": "local", **kw},
    )


# --------------------------------------------------------------------------- estimation
def test_window_estimate_converges_within_its_poisson_confidence():
    lam, window = 20.0, 2.0
    sc = many_static(
        400,
        f"{lam} /s",
        "3 s",
        {
            "sync_period": "100 ms",
            "delay": "0 s",
            "estimator": {"kind": "window", "window": window},
        },
    )
    engine, _ = run_engine(sc)
    est = engine.twin.rates.estimate
    # the last report covers [0.9 s, 2.9 s): count / W with count ~ Poisson(lambda W)
    sd = math.sqrt(lam / window)
    assert abs(est.mean() - lam) < 4 * sd / math.sqrt(est.size)
    assert est.var(ddof=1) == pytest.approx(lam / window, rel=0.25)
    assert np.mean(np.abs(est - lam) <= 3 * sd) > 0.98
    # counted from what the twin received: the estimates are counts / W exactly
    np.testing.assert_allclose(est * window, np.round(est * window), atol=1e-9)


def test_ewma_lags_a_step_by_its_time_constant():
    lam, tau, period, step_at = 20.0, 0.5, 0.05, 1.0
    sc = many_static(
        600,
        f"{lam} /s",
        "3 s",
        {
            "sync_period": f"{period} s",
            "delay": "0 s",
            "estimator": {"kind": "ewma", "time_constant": f"{tau} s"},
        },
        tasks={"rate_profile": {"kind": "steps", "times": [step_at], "factors": [3.0]}},
    )
    _, result = run_engine(sc)
    rate = result.series["twin_rate"]
    mean = rate["vehicle"] == -1
    t, est, true = rate["t"][mean], rate["estimate"][mean], rate["true"][mean]
    after = t >= step_at - 1e-9
    assert np.all(true[after] == 3 * lam) and np.all(true[~after] == lam)
    # E[estimate] = new + (old - new) exp(-(t - step) / tau) at every report after the step
    expected = 3 * lam - 2 * lam * np.exp(-(t[after] - step_at) / tau)
    a = -math.expm1(-period / tau)
    se = math.sqrt(a / (2 - a) * 3 * lam / period / 600)  # stationary sd of a vehicle / sqrt(N)
    assert np.all(np.abs(est[after] - expected) < 5 * se)
    # the lag: the mean deviation falls to 1/e of the step one time constant after it
    crossed = t[after][np.argmax(3 * lam - est[after] < 2 * lam / math.e)]
    assert abs(crossed - step_at - tau) <= 2 * period
    # the twin serves lambda_max = lambda_hat + eps
    np.testing.assert_allclose(rate["upper"], rate["estimate"] + sc.twin.eps)


def test_work_rate_estimate_is_the_edge_work_offered_in_the_window():
    window = 1.0
    sc = many_static(
        12,
        "50 /s",
        "3 s",
        {"sync_period": "50 ms", "delay": "0 s", "estimator": {"kind": "window", "window": window}},
        servers={"count": 2, "cores": 1},
        policy="nearest",
    )
    engine, _ = run_engine(sc)
    table = engine.sink.frame()
    g = engine.twin.report.generated
    assert g == pytest.approx(2.95)
    inside = (table.arrival >= g - window) & (table.arrival < g)
    offered = np.bincount(table.server[inside], weights=table.compute_time[inside], minlength=2)
    np.testing.assert_allclose(engine.twin.work_rates.estimate * window, offered, rtol=1e-9)
    counts = np.bincount(table.vehicle[inside], minlength=12)
    np.testing.assert_allclose(engine.twin.rates.estimate * window, counts, rtol=1e-9)


# --------------------------------------------------------------------------- AoI
def sawtooth_mean(received, generated, horizon, points=2_000_001):
    """Time-average of t - g(t) by brute-force integration on a fine grid."""
    t = np.linspace(0.0, horizon, points)
    idx = np.searchsorted(received, t, side="right") - 1
    g = np.where(idx >= 0, generated[np.maximum(idx, 0)], 0.0)
    age = t - g
    return float(((age[1:] + age[:-1]) * 0.5).mean())


def test_aoi_is_the_sawtooth_between_delay_and_delay_plus_period():
    period, delay, horizon = 0.1, 0.03, 5.0
    sc = many_static(
        20, "200 /s", f"{horizon} s", {"sync_period": f"{period} s", "delay": f"{delay} s"}
    )
    rec = Recorder()
    _, result = run_engine(sc, rec)
    sync = result.series["twin_sync"]
    n = np.arange(1, sync["generated"].size + 1)
    np.testing.assert_allclose(sync["generated"], n * period, rtol=1e-12)
    assert not sync["lost"].any()
    np.testing.assert_allclose(sync["aoi_after"], delay, rtol=1e-9)
    np.testing.assert_allclose(sync["aoi_peak"], period + delay, rtol=1e-9)
    extra = result.extra()
    inside = sync["received"] <= horizon
    brute = sawtooth_mean(sync["received"][inside], sync["generated"][inside], horizon)
    assert extra["twin_aoi_mean"] == pytest.approx(brute, rel=1e-4)
    # and close to the stationary value delay + period / 2
    assert extra["twin_aoi_mean"] == pytest.approx(delay + period / 2, abs=period**2 / horizon)
    assert extra["twin_aoi_max"] == pytest.approx(period + delay)
    # what the policies see at each epoch start: t - (latest n T with n T + d <= t)
    for t, view, _, _ in rec.seen:
        k = math.floor((t - delay) / period + 1e-9)
        want = t if k < 1 else t - k * period
        assert view.age == pytest.approx(want, abs=1e-9)


def test_aoi_with_losses_grows_by_geometric_runs_of_lost_syncs():
    period, delay, p, horizon = 0.05, 0.01, 0.4, 200.0
    sc = scenario(
        engine={"horizon": f"{horizon} s", "epoch": "50 ms"},
        vehicles={"count": 1},
        mobility={"model": "static", "step": "50 ms"},
        tasks={"arrival_rate": "1 /s"},
        policy="local",
        twin={
            "enabled": True,
            "sync_period": f"{period} s",
            "delay": f"{delay} s",
            "loss_probability": p,
            "sync_bits": 0,
            "compute_cycles": 0,
        },
    )
    _, result = run_engine(sc)
    sync = result.series["twin_sync"]
    n = sync["lost"].size
    assert abs(sync["lost"].mean() - p) < 4 * math.sqrt(p * (1 - p) / n)
    peaks = sync["aoi_peak"][~sync["lost"]][1:]  # the first follows the deployment state
    gaps = np.round((peaks - delay) / period).astype(int)  # syncs between receptions
    np.testing.assert_allclose(peaks, delay + gaps * period, atol=1e-9)
    # gaps ~ Geometric(1 - p): P(G = g) = p^(g-1) (1 - p)
    observed = np.bincount(gaps, minlength=6)[1:6]
    expected = gaps.size * (1 - p) * p ** np.arange(5)
    rest = gaps.size - observed.sum()
    chi2 = stats.chisquare(
        np.append(observed, rest), np.append(expected, gaps.size - expected.sum())
    )
    assert chi2.pvalue > 1e-3
    extra = result.extra()
    se = period * math.sqrt(p) / (1 - p) / math.sqrt(gaps.size)
    assert extra["twin_aoi_peak_mean"] == pytest.approx(delay + period / (1 - p), abs=5 * se)
    mean_closed = delay + period * (1 + p) / (2 * (1 - p))
    assert extra["twin_aoi_mean"] == pytest.approx(mean_closed, rel=0.05)
    assert extra["twin_syncs_lost"] == int(sync["lost"].sum())
    # the losses come from the twin's own stream: the same seed loses the same syncs
    _, again = run_engine(sc)
    np.testing.assert_array_equal(again.series["twin_sync"]["lost"], sync["lost"])


# --------------------------------------------------------------------------- predictions
def test_predictions_project_positions_and_report_backlogs():
    sc = scenario(
        engine={"horizon": "2 s", "epoch": "10 ms"},
        vehicles={"count": 30},
        servers={"count": 3, "cpu": "2 GHz"},
        mobility={"model": "highway", "step": "10 ms", "area": {"width": "20 km"}},
        tasks={"arrival_rate": "100 /s"},
        twin={
            "enabled": True,
            "sync_period": "100 ms",
            "delay": "20 ms",
            "lead_time": "0 s",
            "compute_cycles": 0,
            "eps": "3 /s",
        },
    )
    rec = Recorder(offload=True)
    run_engine(sc, rec)
    backlog_at = {round(t, 9): b for t, _, _, b in rec.seen}
    checked = 0
    for _, view, position, _ in rec.seen[20:]:
        # highway vehicles keep their speed: position + velocity x age is the true position
        # (up to wrap-around at the end of the road)
        hit = np.all(np.abs(view.vehicle_position - position) < 1e-6, axis=1)
        assert hit.mean() > 0.9
        np.testing.assert_allclose(view.arrival_rate_max, view.arrival_rate + 3.0)
        np.testing.assert_allclose(view.expected_arrivals, view.arrival_rate * 0.01)
        g = round(view.generated, 9)
        if g in backlog_at:  # the server backlog at the report's time, exactly
            np.testing.assert_allclose(view.server_backlog_reported, backlog_at[g], atol=1e-12)
            checked += 1
        want = np.maximum(
            view.server_backlog_reported
            + (view.server_work_rate / sc.servers.cores - 1.0) * view.age,
            0.0,
        )
        np.testing.assert_allclose(view.server_backlog, want)
    assert checked > 100


# --------------------------------------------------------------------------- costs
def test_sync_traffic_and_compute_occupy_the_uplinks_and_edge_cpus_exactly():
    horizon = 4.0
    sc = scenario(
        engine={"horizon": f"{horizon} s"},
        policy="local",
        twin={"enabled": True, "sync_bits": "50 kbit", "compute_cycles": "1e6 cycles"},
    )
    _, on = run_engine(sc)
    _, off = run_engine(scenario(engine={"horizon": f"{horizon} s"}, policy="local"))
    e_on, e_off = on.extra(), off.extra()
    n, m = sc.vehicles.count, sc.servers.count
    syncs = e_on["twin_syncs"]
    assert syncs == round(horizon / sc.twin.sync_period) - 1
    assert e_on["twin_sync_bits"] == syncs * n * 50e3
    # local tasks never use the uplinks: their busy time is the sync airtime, whose energy
    # at P_max = 1 W is the same number
    airtime = e_on["utilisation_uplink_mean"] * horizon * n
    assert airtime == pytest.approx(e_on["twin_sync_energy"] / sc.vehicles.power_max, rel=1e-9)
    assert airtime > 0
    assert e_on["twin_compute_cycles"] == (syncs - e_on["twin_syncs_lost"]) * n * 1e6
    busy = e_on["utilisation_edge_mean"] * horizon * m
    assert busy == pytest.approx(e_on["twin_compute_cycles"] / sc.servers.cpu, rel=1e-9)
    # without the twin: no traffic, no compute, no twin metrics, no series
    assert e_off["utilisation_uplink_mean"] == 0 and e_off["utilisation_edge_mean"] == 0
    assert not any(k.startswith("twin_") for k in e_off)
    assert off.series == {}


REFERENCE_CASES = {
    "fifo": "fifo",
    "priority": "priority",
}


@pytest.mark.parametrize("queue", sorted(REFERENCE_CASES))
def test_twin_jobs_match_the_per_task_reference(queue):
    sc = scenario(
        engine={"horizon": "3 s", "epoch": "10 ms"},
        mobility={"model": "random_waypoint", "step": "50 ms"},
        vehicles={"count": 6, "queue": queue, "uplink_queue": queue, "cpu": "0.3 GHz"},
        servers={"count": 2, "cores": 2, "queue": queue, "cpu": "1 GHz", "bandwidth": "2 MHz"},
        channel={"fading": {"model": "rayleigh"}, "interference": {"enabled": True}},
        tasks={"arrival_rate": "100 /s", "drop_expired": queue == "priority", "deadline": "40 ms"},
        policy="twin-greedy",
        twin={
            "enabled": True,
            "sync_period": "50 ms",
            "delay": "23 ms",
            "loss_probability": 0.3,
            "sync_bits": "20 kbit",
            "compute_cycles": "2e6 cycles",
        },
    )
    table, result = run_table(sc)
    sync = result.series["twin_sync"]
    assert sync["lost"].any() and not sync["lost"].all()
    got = table.set_index("task_id")

    def differs(ref) -> bool:
        for col in ("rate", "tx_start", "tx_time", "compute_start", "completion", "energy"):
            want = np.array([ref[i][col] for i in got.index])
            if not np.allclose(got[col], want, rtol=1e-11, atol=1e-15, equal_nan=True):
                return True
        return False

    assert not differs(simulate_reference(sc, table, twin_sync=sync))
    # the twin's jobs matter: a reference without them gives other times
    no_jobs = sc.model_copy(
        update={"twin": sc.twin.model_copy(update={"sync_bits": 0.0, "compute_cycles": 0.0})}
    )
    assert differs(simulate_reference(no_jobs, table, twin_sync=sync))


# --------------------------------------------------------------------------- on and off
def test_a_twin_without_costs_does_not_change_the_world_or_a_twin_blind_policy():
    base = dict(engine={"horizon": "3 s"}, channel={"fading": {"model": "rayleigh"}})
    off, _ = run_table(scenario(**base, policy="greedy"))
    on, result = run_table(
        scenario(
            **base,
            policy="greedy",
            twin={"enabled": True, "sync_bits": 0, "compute_cycles": 0, "loss_probability": 0.5},
        )
    )
    assert off.equals(on)
    assert result.extra()["twin_syncs"] > 0


CONGESTED = dict(
    engine={"horizon": "3 s", "epoch": "10 ms"},
    vehicles={"count": 20},
    servers={"count": 2, "cpu": "5 GHz", "bandwidth": "40 MHz"},
    tasks={"arrival_rate": "400 /s"},
    mobility={"step": "100 ms"},
    policy="twin-greedy",
)


def test_switching_the_twin_off_removes_its_view_and_twin_greedy_degrades():
    rec = Recorder()
    run_engine(scenario(**{**CONGESTED, "engine": {"horizon": "0.5 s"}}), rec)
    assert rec.seen and all(view is None for _, view, _, _ in rec.seen)
    on, _ = run_table(scenario(**CONGESTED, twin={"enabled": True}))
    off, _ = run_table(scenario(**CONGESTED))
    # without the twin the servers' queues are unknown: every task is offloaded, the edge
    # saturates and latency grows with time; with it the policy backs off to local CPUs
    assert off.offload.mean() > 0.95
    assert on.offload.mean() < 0.8
    assert off.cost.mean() > 10 * on.cost.mean()


# --------------------------------------------------------------------------- rate profiles
PROFILES = {
    "steps": {"kind": "steps", "times": [0.7, 1.9], "factors": [3.0, 0.25]},
    "sinusoid": {"kind": "sinusoid", "amplitude": 0.9, "period": 0.8, "stagger": True},
    "bursts": {
        "kind": "bursts",
        "period": 0.5,
        "burst_duration": 0.1,
        "burst_factor": 6.0,
        "stagger": True,
    },
}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_rate_profiles_give_poisson_counts_of_the_integrated_rate(name):
    n, lam, epoch, epochs = 3, 40.0, 0.05, 2000
    cfg = Tasks.model_validate({"arrival_rate": lam, "rate_profile": PROFILES[name]})
    src = TaskSource(cfg, n, np.random.default_rng(7), np.random.default_rng(8))
    # the closed-form integral of the profile against a fine numerical one
    grid = np.linspace(0.0, 2.5, 250_001)
    for v in range(n):
        g = src.profile.factor(grid, np.full(grid.shape, v))
        numeric = float(((g[1:] + g[:-1]) * 0.5).sum() * (grid[1] - grid[0]))
        assert src.profile.integral(0.0, 2.5, [v])[0] == pytest.approx(numeric, rel=2e-4)
    # per-interval counts: sum over 0.2 s bins of (count - mean)^2 / mean ~ chi-square
    counts = np.zeros((epochs, n))
    mean = np.zeros((epochs, n))
    first = 0
    for k in range(epochs):
        batch = src.sample(k * epoch, (k + 1) * epoch)
        # the kept arrivals are numbered consecutively in order of arrival
        ids = batch["task_id"]
        np.testing.assert_array_equal(np.sort(ids), np.arange(first, first + ids.size))
        order = np.argsort(ids)
        assert np.all(np.diff(batch["arrival"][order]) >= 0)
        first += ids.size
        counts[k] = np.bincount(batch["vehicle"], minlength=n)
        mean[k] = src.mean_counts(k * epoch, (k + 1) * epoch)
    per = 4  # epochs per bin
    c = counts.reshape(-1, per, n).sum(axis=1)
    m = mean.reshape(-1, per, n).sum(axis=1)
    for v in range(n):
        live = m[:, v] > 0
        assert np.all(c[~live, v] == 0)
        stat = float((((c[live, v] - m[live, v]) ** 2) / m[live, v]).sum())
        assert stats.chi2.sf(stat, live.sum()) > 1e-3
        assert stats.chi2.cdf(stat, live.sum()) > 1e-3
        assert abs(c[:, v].sum() - m[:, v].sum()) < 4 * math.sqrt(m[:, v].sum())
    # the true rate at a time is the profile's
    t = 0.71
    np.testing.assert_allclose(src.true_rates(t), lam * src.profile.factor(t, np.arange(n)))


def test_rate_profile_and_twin_settings_are_checked():
    with pytest.raises(ValidationError, match=r"whole number of engine\.epoch"):
        Scenario.model_validate({"twin": {"enabled": True, "sync_period": "15 ms"}})
    with pytest.raises(ValidationError, match="'amplitude' does not belong to a steps"):
        Tasks.model_validate(
            {"rate_profile": {"kind": "steps", "times": [1], "factors": [2], "amplitude": 0.1}}
        )
    with pytest.raises(ValidationError, match="equal, non-zero length"):
        Tasks.model_validate({"rate_profile": {"kind": "steps", "times": [1, 2], "factors": [2]}})
    with pytest.raises(ValidationError, match="increase strictly"):
        Tasks.model_validate(
            {"rate_profile": {"kind": "steps", "times": [2, 1], "factors": [1, 2]}}
        )
    with pytest.raises(ValidationError, match="longer than period"):
        Tasks.model_validate(
            {
                "rate_profile": {
                    "kind": "bursts",
                    "period": 0.1,
                    "burst_duration": 0.2,
                    "burst_factor": 2,
                }
            }
        )
    with pytest.raises(ValidationError, match="a sinusoid rate profile needs 'period'"):
        Tasks.model_validate({"rate_profile": {"kind": "sinusoid", "amplitude": 0.5}})
    with pytest.raises(ValidationError, match="'stagger' does not belong to a constant"):
        Tasks.model_validate({"rate_profile": {"stagger": True}})
    with pytest.raises(ValidationError, match="less than 1"):
        Scenario.model_validate({"twin": {"loss_probability": 1.0}})


# --------------------------------------------------------------------------- figures
def test_twin_figures_from_a_results_folder(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    from sim.errors import SimError
    from sim.twin_plots import aoi_curve, plot_twin

    sc = scenario(
        engine={"horizon": "2 s"},
        tasks={"rate_profile": {"kind": "sinusoid", "amplitude": 0.5, "period": 1.0}},
        twin={"enabled": True, "loss_probability": 0.3, "sync_period": "50 ms"},
    )
    _, result = run_table(sc)
    t, age = aoi_curve(result.series["twin_sync"], sc.engine.horizon)
    area = float(np.sum((age[1:] + age[:-1]) * 0.5 * np.diff(t)))
    assert area / sc.engine.horizon == pytest.approx(result.extra()["twin_aoi_mean"], rel=1e-12)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(sc.model_dump(mode="json")))
    with pytest.raises(SimError, match=r"twin_sync\.parquet is missing"):
        plot_twin(tmp_path)
    for name, cols in result.series.items():
        pq.write_table(pa.table(cols), tmp_path / f"{name}.parquet")
    paths = plot_twin(tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["twin_aoi.png", "twin_aoi.svg", "twin_rate.png", "twin_rate.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_a_resolved_configuration_with_a_twin_and_a_profile_loads_again(name):
    sc = scenario(tasks={"rate_profile": PROFILES[name]}, twin={"enabled": True})
    again = Scenario.model_validate(sc.model_dump(mode="json"))
    assert again == sc


def test_a_run_writes_the_twin_series_and_figures(tmp_path):
    import pyarrow.parquet as pq

    from sim.runner import run_scenario

    sc = scenario(engine={"horizon": 2.0}, twin={"enabled": True}, policy="twin-greedy")
    result = run_scenario(sc, out_dir=tmp_path / "run", quiet=True)
    sync = pq.read_table(tmp_path / "run" / "twin_sync.parquet")
    assert sync.num_rows == result.summary["twin_syncs"] >= round(2.0 / sc.twin.sync_period) - 1
    assert (tmp_path / "run" / "twin_rate.parquet").exists()
    for name in ("twin_aoi", "twin_rate"):
        assert (tmp_path / "run" / "figures" / f"{name}.png").exists()


# --------------------------------------------------------------------------- QPU forecast
def _qpu(clops: float, shots: int, qpus: int = 1) -> dict:
    return {
        "qpu": {"timing": {"clops": clops}, "shots": shots, "sites": [{"location": "cloud"}]},
        "twin_site": {"location": "cloud", "qpus": qpus},
    }


def _forecast_scenario(period: float, delay: float, horizon: float, clops: float, shots: int):
    q = _qpu(clops, shots)
    twin = {"sync_period": f"{period} s", "delay": f"{delay} s", "qpu_site": q["twin_site"]}
    return many_static(10, "100 /s", f"{horizon} s", twin, qpu=q["qpu"])


def test_a_forecast_on_the_qpu_adds_its_job_time_to_the_age_of_information():
    """A job shorter than the sync period never waits: every report reaches the view the
    job's execution time d after its arrival, so the sawtooth runs between delay + d and
    delay + d + period."""
    period, delay, horizon = 0.1, 0.02, 4.0
    sc = _forecast_scenario(period, delay, horizon, clops=2e5, shots=1000)
    rec = Recorder()
    engine, result = run_engine(sc, rec)
    sync = result.series["twin_sync"]
    jobs = result.series["twin_qpu_jobs"]
    d = float(engine.twin.forecaster.job_time(np.array([4]), np.array([0]))[0])
    assert 0.003 < d < period
    assert (jobs["kind"] == "twin_forecast").all() and len(jobs["kind"]) == sync["generated"].size
    np.testing.assert_allclose(jobs["execution"], d, rtol=1e-12)
    np.testing.assert_allclose(jobs["wait"], 0.0, atol=1e-12)
    np.testing.assert_allclose(sync["arrived"] - sync["generated"], delay, rtol=1e-9)
    np.testing.assert_allclose(sync["received"] - sync["arrived"], d, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sync["aoi_peak"], period + delay + d, rtol=1e-9)
    extra = result.extra()
    assert extra["twin_aoi_mean"] == pytest.approx(delay + d + period / 2, abs=period**2 / horizon)
    assert extra["twin_forecast_jobs"] == sync["generated"].size
    assert extra["twin_forecast_wait_mean"] == pytest.approx(0.0, abs=1e-12)
    assert extra["twin_forecast_time_mean"] == pytest.approx(d, rel=1e-12)
    assert extra["twin_forecast_utilisation"] == pytest.approx(
        d * sync["generated"].size / horizon, rel=0.05
    )
    # what the policies see: t minus the latest report whose forecast ended by t
    for t, view, _, _ in rec.seen:
        k = math.floor((t - delay - d) / period + 1e-9)
        want = t if k < 1 else t - k * period
        assert view.age == pytest.approx(want, abs=1e-9)


def test_forecast_jobs_longer_than_the_period_queue_fifo():
    """With a job time d > period on one QPU the n-th forecast starts when the previous
    ends: end_n = max(arrival_n, end_{n-1}) + d (a D/D/1 queue), and the waits grow."""
    period, delay = 0.05, 0.01
    sc = _forecast_scenario(period, delay, 2.0, clops=1e5, shots=2000)
    engine, result = run_engine(sc)
    jobs = result.series["twin_qpu_jobs"]
    d = float(engine.twin.forecaster.job_time(np.array([4]), np.array([0]))[0])
    assert d > period
    end = -math.inf
    for j, arrival in enumerate(jobs["submit"]):
        end = max(arrival, end) + d
        assert jobs["end"][j] == pytest.approx(end, rel=1e-12)
    assert np.all(np.diff(jobs["wait"]) > 0)
    sync = result.series["twin_sync"]
    done = sync["received"] <= 2.0
    np.testing.assert_allclose(sync["received"][done], jobs["end"][done], rtol=1e-12)


def test_a_qpu_forecast_needs_a_qpu_section_and_an_existing_server():
    with pytest.raises(ValidationError, match=r"twin\.qpu_site is set but the scenario has no qpu"):
        Scenario.model_validate({"twin": {"enabled": True, "qpu_site": {"location": "cloud"}}})
    with pytest.raises(ValidationError, match=r"twin\.qpu_site\.server is 7"):
        Scenario.model_validate(
            {
                "twin": {"enabled": True, "qpu_site": {"location": "edge", "server": 7}},
                "qpu": {"timing": {"clops": 1e5}},
            }
        )

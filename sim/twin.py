"""The digital twin of the edge (seed 002 section III-E) as a process of the event loop.

Every ``sync_period`` the physical side takes a *report*: the vehicles' positions, velocities,
serving cells and channel gains, each vehicle's cumulative count of arrivals, each edge
server's core free-at times and the cumulative edge work offloaded to it. The report travels
over the sync channel: it is lost with probability ``loss_probability`` (one Bernoulli draw per
sync from the ``twin`` seed stream) or received ``delay`` seconds later. The twin's copy is
therefore stale; its age of information (AoI, seed 003 section V-E) at time t is t minus the
time the freshest received report was taken. Before the first reception the twin holds the
deployment state taken at time 0.

From the arrivals it has seen the twin estimates each vehicle's rate lambda_hat (sliding
window or EWMA, :class:`RateEstimator`); eq. [9] bounds the true rate by lambda_hat +- eps and
the twin serves lambda_max = lambda_hat + eps [19i]. The same estimator tracks the work offered
to each server. From these it predicts (:meth:`DigitalTwin.view`) the expected arrivals of the
next epoch, each server's backlog at the decision time plus ``lead_time`` (a fluid model:
reported backlog, drained at one core-second per second, filled at the estimated work rate)
and each vehicle's channel from its position projected by its reported velocity.

Costs, both exact queue jobs in the engine's queues:
- sync traffic: at each sync every vehicle transmits ``sync_bits`` on its uplink at P_max
  with its equal share of its serving cell's band. The transmission joins the uplink queue at
  the sync time: in a FIFO uplink behind the tasks already queued, in a priority uplink ahead
  of every waiting task (non-preemptive). Its energy is reported, not added to task costs.
- compute: a received report costs each server ``compute_cycles`` per vehicle of its cell in
  the report; the job joins the edge CPU queue (FIFO: in arrival order; priority: first) at
  the first decision epoch starting at or after the reception.
Lost reports are transmitted (traffic is paid) but cost no compute. The compute delay is not
added to the AoI.

Forecast on a QPU (``twin.qpu_site``): each received report starts a ``twin_forecast``
circuit job (:func:`qpu.templates.twin_forecast`, timed for the ``qpu:`` section's device or
CLOPS figure with its shots) on QPUs that run nothing else, served FIFO. The twin's view
takes the report only when that job ends, so the QPU's wait and execution add to the AoI (the
``qpu:`` section's deadline and admission limit do not apply there). The job models where
and how long the forecasting runs; the estimates themselves are the
estimator's. Jobs go to ``twin_qpu_jobs`` and their figures to ``twin_forecast_*``.

Event order: reports are taken between decision epochs (``sync_period`` is a whole number of
epochs) and the twin's events are scheduled URGENT, so at an instant where a sync, a reception
and a decision epoch coincide, the report is taken and the reception applied before the
epoch's decisions. A reception time within 1e-9 epochs of an epoch start is taken to be that
epoch start, so that rounding in generation + delay cannot move it past the epoch.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import simpy
from simpy.events import URGENT

from sim.channel import shannon_rate
from sim.observation import TwinView


class _UrgentTimeout(simpy.events.Timeout):
    """A timeout at ``target`` processed before the NORMAL events (the engine's clock) of
    its instant. Its delay is rounded down by the last bits that ``now + (target - now)``
    may add, so the event never falls after ``target``."""

    def __init__(self, env: simpy.Environment, target: float) -> None:
        delay = max(target - env.now, 0.0)
        while delay > 0 and env.now + delay > target:
            delay = math.nextafter(delay, 0.0)
        self.env = env
        self.callbacks = []
        self._value = None
        self._delay = delay
        self._ok = True
        env.schedule(self, URGENT, delay)


class RateEstimator:
    """Rates of a set of counters (arrivals per vehicle, work per server) from interval counts.

    ``update(counts, duration)`` adds what was counted over the ``duration`` seconds since the
    previous update.

    - ``window``: the counts of the latest intervals spanning at most ``window`` seconds (at
      least the latest interval) divided by their span. For a Poisson process of rate lambda
      and a full window W the estimate has mean lambda and variance lambda / W.
    - ``ewma``: lambda_hat <- lambda_hat + (1 - exp(-d / tau)) (count / d - lambda_hat), the
      exponential smoothing of the observed rate with time constant tau: after a step of the
      true rate the mean estimate approaches the new rate as exp(-t / tau).
    """

    def __init__(self, cfg, initial: np.ndarray) -> None:
        self.kind = cfg.kind
        self.window = float(cfg.window)
        self.tau = float(cfg.time_constant)
        self.estimate = np.array(initial, dtype=np.float64)
        self._intervals: deque[tuple[np.ndarray, float]] = deque()

    def update(self, counts: np.ndarray, duration: float) -> None:
        if duration <= 0:
            return
        if self.kind == "ewma":
            a = -math.expm1(-duration / self.tau)
            self.estimate += a * (counts / duration - self.estimate)
            return
        self._intervals.append((np.asarray(counts, dtype=np.float64), duration))
        span = sum(d for _, d in self._intervals)
        while len(self._intervals) > 1 and span > self.window * (1 + 1e-9):
            span -= self._intervals.popleft()[1]
        total = np.zeros_like(self.estimate)
        span = 0.0
        for c, d in self._intervals:
            total += c
            span += d
        self.estimate = total / span


@dataclass(slots=True)
class Report:
    """What the physical side sends at one sync (the state at time ``generated``)."""

    generated: float  # [s]
    position: np.ndarray  # (N, 2) [m]
    velocity: np.ndarray  # (N, 2) [m/s]
    nearest: np.ndarray  # (N,) serving cell
    gain: np.ndarray  # (N,) channel gain to the serving cell, fading included
    interference: np.ndarray  # (M,) [W]
    cell_size: np.ndarray  # (M,) vehicles per cell
    arrivals: np.ndarray  # (N,) cumulative arrivals
    work: np.ndarray  # (M,) cumulative edge work offered [s]
    core_free: np.ndarray  # (M, C) free-at time of each edge core [s]


class DigitalTwin:
    """The twin of one run: a SimPy process plus the state policies see through :meth:`view`.

    ``world`` is the run's :class:`sim.world.World`; ``uplink`` and ``edge`` are the engine's
    queue states (free, cores, last, busy) that sync traffic and twin compute occupy.
    """

    def __init__(self, scenario, world, uplink, edge, rng: np.random.Generator) -> None:
        self.sc = sc = scenario
        self.cfg = cfg = sc.twin
        self.world = world
        self.uplink = uplink
        self.edge = edge
        self.rng = rng
        self.epoch = float(sc.engine.epoch)
        self.horizon = float(sc.engine.horizon)
        self.n_epochs = math.ceil(self.horizon / self.epoch - 1e-9)
        self.delay = float(cfg.delay)
        self.loss = float(cfg.loss_probability)
        self.eps = float(cfg.eps)
        self.lead = float(cfg.lead_time)
        n, m = world.n_vehicles, world.n_servers
        self.arrivals = np.zeros(n)  # cumulative arrivals per vehicle (physical side)
        self.work = np.zeros(m)  # cumulative edge work [s] offered to each server
        rate0 = sc.tasks.arrival_rate
        if cfg.estimator.initial_rate is not None:
            rate0 = cfg.estimator.initial_rate
        self.rates = RateEstimator(cfg.estimator, np.full(n, float(rate0)))
        self.work_rates = RateEstimator(cfg.estimator, np.zeros(m))
        self.report = self._snapshot(0.0)  # the deployment state
        self._shared_for: Report | None = None  # the report the views' shared part is for
        self._pending: list[tuple[float, np.ndarray, int]] = []  # (received, cycles, sync)
        self._received = [(0.0, 0.0)]  # (reception time, generation time), in order
        # per sync: generation time, lost, reception time, time its compute job was queued
        self._sync: dict[str, list] = {"generated": [], "lost": [], "received": [], "processed": []}
        k = min(int(cfg.series_vehicles), n)
        self._series_vehicles = np.arange(k)
        self._rate_rows: dict[str, list] = {"t": [], "vehicle": [], "estimate": [], "true": []}
        self.sync_bits = 0.0
        self.sync_energy = 0.0
        self.compute_cycles = 0.0
        self.compute_energy = 0.0
        self._err_abs = 0.0
        self._err_sq = 0.0
        self._err_n = 0
        self._eps_exceeded = 0
        self._sync["arrived"] = []  # reception over the sync channel
        self._sync["forecast_job"] = []  # id of its twin_forecast job, -1: none
        self.forecaster = None
        if cfg.qpu_site is not None:
            from qpu.service import QPUService
            from qpu.templates import KINDS

            qcfg = sc.qpu.model_copy(
                update={
                    "sites": [cfg.qpu_site],
                    "policy_site": None,
                    "queue": "fifo",
                    "batching": sc.qpu.batching.model_copy(update={"enabled": False}),
                    "admission_limit": None,
                    "deadline": None,
                }
            )
            self.forecaster = QPUService(
                qcfg, n_servers=m, horizon=self.horizon, kinds=["twin_forecast"]
            )
            self._forecast_code = KINDS.index("twin_forecast")
            code, site = np.array([self._forecast_code]), np.zeros(1, np.int64)
            self._forecast_time = float(self.forecaster.job_time(code, site)[0])
            self._qpu_free = np.full(cfg.qpu_site.qpus, -math.inf)  # FIFO, earliest free QPU
            self._drained = False

    # ------------------------------------------------------------------ physical side
    def count_arrivals(self, vehicle: np.ndarray) -> None:
        """Count an epoch's arrivals (called as they are sampled)."""
        if vehicle.shape[0]:
            self.arrivals += np.bincount(vehicle, minlength=self.arrivals.shape[0])

    def count_work(self, server: np.ndarray, compute_time: np.ndarray) -> None:
        """Count the edge work [s] of an epoch's decisions (-1: local, not counted)."""
        off = server >= 0
        if off.any():
            self.work += np.bincount(
                server[off], weights=compute_time[off], minlength=self.work.shape[0]
            )

    def _snapshot(self, t: float) -> Report:
        w = self.world
        ch = w.channel
        nearest = ch.nearest.copy()
        return Report(
            generated=t,
            position=np.array(w.positions, dtype=np.float64),
            velocity=np.array(w.mobility.velocities, dtype=np.float64),
            nearest=nearest,
            gain=ch.gain_of(np.arange(nearest.shape[0]), nearest),
            interference=ch.interference.copy(),
            cell_size=ch.cell_size.copy(),
            arrivals=self.arrivals.copy(),
            work=self.work.copy(),
            core_free=self.edge.free.copy(),
        )

    def sync_service_times(self, report: Report) -> np.ndarray:
        """Uplink time [s] of each vehicle's sync message: ``sync_bits`` at P_max with the
        equal share of its serving cell's band, on the channel of the report."""
        w, ch = self.world, self.sc.channel
        j = report.nearest
        bw = w.server_bandwidth[j] / np.maximum(report.cell_size[j], 1)
        noise = ch.noise * bw if ch.noise_kind == "density" else ch.noise
        rate = shannon_rate(bw, w.vehicle_power_max * report.gain, report.interference[j] + noise)
        return self.cfg.sync_bits / rate

    def _charge_uplinks(self, t: float, report: Report) -> None:
        if self.cfg.sync_bits <= 0:
            return
        service = self.sync_service_times(report)
        up = self.uplink
        tau = np.maximum(np.maximum(up.free[:, 0], t), up.last)
        up.last[:] = tau
        up.free[:, 0] = tau + service
        up.busy += np.minimum(tau + service, self.horizon) - np.minimum(tau, self.horizon)
        self.sync_bits += self.cfg.sync_bits * service.shape[0]
        self.sync_energy += float((self.world.vehicle_power_max * service).sum())

    def _charge_edge(self, t: float, cycles: np.ndarray) -> None:
        ed, w = self.edge, self.world
        kappa = self.sc.servers.energy_coefficient
        for j in np.flatnonzero(cycles > 0):
            work = cycles[j] / w.server_cpu[j]
            c = int(np.argmin(ed.free[j, : ed.cores[j]]))
            tau = max(ed.free[j, c], t, ed.last[j])
            ed.last[j] = tau
            ed.free[j, c] = tau + work
            ed.busy[j] += min(tau + work, self.horizon) - min(tau, self.horizon)
            self.compute_cycles += cycles[j]
            self.compute_energy += kappa * w.server_cpu[j] ** 2 * cycles[j]

    # ------------------------------------------------------------------ the process
    def process(self, env: simpy.Environment):
        """Take a report every sync period while decision epochs remain; send it."""
        per_sync = self.sc.epochs_per_sync
        n = 1
        while n * per_sync < self.n_epochs:
            t = (n * per_sync) * self.epoch  # the clock's own formula for this epoch start
            yield _UrgentTimeout(env, t)
            report = self._snapshot(t)
            self._charge_uplinks(t, report)
            lost = bool(self.rng.random() < self.loss)
            row = len(self._sync["generated"])
            self._sync["generated"].append(t)
            self._sync["lost"].append(lost)
            self._sync["received"].append(math.nan)
            self._sync["processed"].append(math.nan)
            self._sync["arrived"].append(math.nan)
            self._sync["forecast_job"].append(-1)
            if not lost:
                env.process(self._deliver(env, report, row))
            n += 1

    def _on_epoch(self, t: float) -> float:
        """``t``, or the epoch start within 1e-9 epochs of it (the clock's own time)."""
        k = round(t / self.epoch)
        if abs(t - k * self.epoch) <= 1e-9 * self.epoch:
            return k * self.epoch
        return t

    def _deliver(self, env: simpy.Environment, report: Report, row: int):
        t = self._on_epoch(report.generated + self.delay)
        yield _UrgentTimeout(env, t)
        self._sync["arrived"][row] = t
        if self.forecaster is not None:
            svc = self.forecaster
            svc.advance(t)
            job = int(svc.submit(np.array([self._forecast_code]), np.zeros(1, np.int64), [t])[0])
            self._sync["forecast_job"][row] = job
            # FIFO on QPUs of their own, without deadline or admission limit: the job starts
            # on the earliest free QPU (the service computes the same times; tested)
            c = int(np.argmin(self._qpu_free))
            end = max(t, self._qpu_free[c]) + self._forecast_time
            self._qpu_free[c] = end
            end = self._on_epoch(end)
            self._queue_compute(t, report, row)
            yield _UrgentTimeout(env, end)
            self._receive(end, report, row)
            return
        self._queue_compute(t, report, row)
        self._receive(t, report, row)

    def _queue_compute(self, t: float, report: Report, row: int) -> None:
        if self.cfg.compute_cycles > 0:
            cycles = self.cfg.compute_cycles * report.cell_size.astype(np.float64)
            self._pending.append((t, cycles, row))

    def _receive(self, t: float, report: Report, row: int) -> None:
        prev = self.report
        span = report.generated - prev.generated
        self.rates.update(report.arrivals - prev.arrivals, span)
        self.work_rates.update(report.work - prev.work, span)
        self.report = report
        self._received.append((t, report.generated))
        self._sync["received"][row] = t
        if t <= self.horizon:
            self._score(t)

    def _score(self, t: float) -> None:
        """Forecast error of the estimate against the true rate at reception time ``t``."""
        true = self.world.tasks.true_rates(t)
        est = self.rates.estimate
        err = est - true
        self._err_abs += float(np.abs(err).sum())
        self._err_sq += float((err * err).sum())
        self._err_n += err.shape[0]
        self._eps_exceeded += int((np.abs(err) > self.eps).sum())
        rows = self._rate_rows
        for v in self._series_vehicles:
            rows["t"].append(t)
            rows["vehicle"].append(int(v))
            rows["estimate"].append(float(est[v]))
            rows["true"].append(float(true[v]))
        rows["t"].append(t)
        rows["vehicle"].append(-1)
        rows["estimate"].append(float(est.mean()))
        rows["true"].append(float(true.mean()))

    def before_epoch(self, t0: float) -> None:
        """Queue the compute jobs of the reports received by ``t0`` (engine hook)."""
        if not self._pending:
            return
        keep = []
        for received, cycles, row in self._pending:
            if received <= t0:
                self._charge_edge(t0, cycles)
                self._sync["processed"][row] = t0
            else:
                keep.append((received, cycles, row))
        self._pending = keep

    # ------------------------------------------------------------------ the twin's view
    def _prepare(self) -> None:
        """What the views share until the next reception (read-only arrays)."""
        r, w = self.report, self.world
        lam = self.rates.estimate.copy()
        lam_max = lam + self.eps
        cores = w.server_cores
        used = np.arange(r.core_free.shape[1])[None, :] < cores[:, None]
        left = np.where(used, np.maximum(r.core_free - r.generated, 0.0), 0.0)
        omega = self.work_rates.estimate.copy()
        m = cores.shape[0]
        cell_hat = np.bincount(r.nearest, weights=lam, minlength=m)
        cell_max = np.bincount(r.nearest, weights=lam_max, minlength=m)
        scale = np.where(cell_hat > 0, cell_max / np.where(cell_hat > 0, cell_hat, 1.0), 1.0)
        shared = {
            "arrival_rate": lam,
            "arrival_rate_max": lam_max,
            "expected_arrivals": lam * self.epoch,
            "server_backlog_reported": left.sum(axis=1) / cores,
            "server_work_rate": omega,
            "interference": r.interference,
            "reported_position": r.position,
            "reported_velocity": r.velocity,
        }
        for a in shared.values():
            a.flags.writeable = False
        self._shared = shared
        self._fill = omega / cores - 1.0  # backlog growth per second (fluid model)
        self._fill_max = omega * scale / cores - 1.0
        self._shared_for = r

    def view(self, t: float) -> TwinView:
        """What the twin tells the policies at decision time ``t``."""
        r = self.report
        if self._shared_for is not r:
            self._prepare()
        sh = self._shared
        ahead = t + self.lead - r.generated
        backlog0 = sh["server_backlog_reported"]
        area = self.sc.mobility.area
        return TwinView(
            generated=r.generated,
            age=t - r.generated,
            lead=self.lead,
            server_backlog=np.maximum(backlog0 + self._fill * ahead, 0.0),
            server_backlog_max=np.maximum(backlog0 + self._fill_max * ahead, 0.0),
            server_position=self.world.server_position,
            area=(float(area.width), float(area.height)),
            channel=self.sc.channel,
            **sh,
        )

    # ------------------------------------------------------------------ results
    def aoi(self, until: float | None = None) -> tuple[float, float]:
        """Time-average and maximum AoI over [0, ``until``] (default: the horizon)."""
        h = self.horizon if until is None else until
        area = 0.0
        peak = 0.0
        t_prev, g = 0.0, 0.0
        for t, gen in self._received[1:]:
            if t > h:
                break
            area += 0.5 * ((t - g) ** 2 - (t_prev - g) ** 2)
            peak = max(peak, t - g)
            t_prev, g = t, gen
        area += 0.5 * ((h - g) ** 2 - (t_prev - g) ** 2)
        peak = max(peak, h - g)
        return area / h, peak

    def metrics(self) -> dict[str, float]:
        """Scalar twin metrics for the run summary."""
        mean, peak = self.aoi()
        sync = self.series()["twin_sync"]
        got = ~sync["lost"]
        peaks = self.peak_ages()
        n = max(self._err_n, 1)
        return {
            "twin_aoi_mean": mean,
            "twin_aoi_max": peak,
            "twin_aoi_peak_mean": float(peaks.mean()) if peaks.size else math.nan,
            "twin_syncs": int(sync["generated"].shape[0]),
            "twin_syncs_lost": int((~got).sum()),
            "twin_sync_bits": self.sync_bits,
            "twin_sync_energy": self.sync_energy,
            "twin_compute_cycles": self.compute_cycles,
            "twin_compute_energy": self.compute_energy,
            "twin_rate_mae": self._err_abs / n if self._err_n else math.nan,
            "twin_rate_rmse": math.sqrt(self._err_sq / n) if self._err_n else math.nan,
            "twin_eps_exceeded": self._eps_exceeded / n if self._err_n else math.nan,
            **self._forecast_metrics(),
        }

    def _drain_forecasts(self) -> None:
        if not self._drained:
            self.forecaster.drain()
            self._drained = True

    def _forecast_metrics(self) -> dict[str, float]:
        if self.forecaster is None:
            return {}
        from qpu.service import COMPLETED

        self._drain_forecasts()
        core = self.forecaster.core
        status = core.column("status")
        done = status == COMPLETED
        wait = (core.column("start") - core.column("arrival"))[done]
        run = (core.column("end") - core.column("start"))[done]
        m = self.forecaster.metrics(self.horizon)
        return {
            "twin_forecast_jobs": float(status.shape[0]),
            "twin_forecast_lost": float((~done).sum()),
            "twin_forecast_wait_mean": float(wait.mean()) if wait.size else math.nan,
            "twin_forecast_time_mean": float(run.mean()) if run.size else math.nan,
            "twin_forecast_utilisation": float(np.mean(m.get("utilisation", [0.0]))),
            "twin_forecast_energy": float(np.sum(m.get("energy", [0.0]))),
        }

    def peak_ages(self) -> np.ndarray:
        """The AoI just before each reception up to the horizon (the sawtooth's peaks)."""
        rec = self._received
        return np.array(
            [rec[i][0] - rec[i - 1][1] for i in range(1, len(rec)) if rec[i][0] <= self.horizon]
        )

    def series(self) -> dict[str, dict[str, np.ndarray]]:
        """Time series: one row per sync (``twin_sync``) and estimated vs true rates at each
        reception (``twin_rate``; vehicle -1 is the mean over all vehicles)."""
        if self.forecaster is not None:
            self._drain_forecasts()
        s = self._sync
        generated = np.asarray(s["generated"], dtype=np.float64)
        received = np.asarray(s["received"], dtype=np.float64)
        lost = np.asarray(s["lost"], dtype=bool)
        # the age just before and just after each reception
        peak = np.full(generated.shape[0], np.nan)
        prev = 0.0
        for i in range(generated.shape[0]):
            if not lost[i] and not math.isnan(received[i]):
                peak[i] = received[i] - prev
                prev = generated[i]
        r = self._rate_rows
        return {
            "twin_sync": {
                "generated": generated,
                "lost": lost,
                "received": received,
                "processed": np.asarray(s["processed"], dtype=np.float64),
                "aoi_peak": peak,
                "aoi_after": received - generated,
                "arrived": np.asarray(s["arrived"], dtype=np.float64),
                "forecast_job": np.asarray(s["forecast_job"], dtype=np.int64),
            },
            **({"twin_qpu_jobs": self.forecaster.table()} if self.forecaster is not None else {}),
            "twin_rate": {
                "t": np.asarray(r["t"], dtype=np.float64),
                "vehicle": np.asarray(r["vehicle"], dtype=np.int64),
                "estimate": np.asarray(r["estimate"], dtype=np.float64),
                "upper": np.asarray(r["estimate"], dtype=np.float64) + self.eps,
                "true": np.asarray(r["true"], dtype=np.float64),
            },
        }

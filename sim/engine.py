"""The fast engine: SimPy drives the clock, a compiled kernel serves each epoch's tasks.

Per decision epoch [t0, t1): the world samples the arrivals of all vehicles at once, the
policy decides for the whole batch from an :class:`~sim.observation.Observation`, and
:func:`sim.kernels.serve_epoch` pushes the batch through the local CPUs, the uplinks and the
edge CPUs, carrying each queue's state to the next epoch. Tasks arrive in [0, horizon); the
ones still queued at the horizon are drained so that every task has a final time.

Modelling choices the results depend on:
- a transmission's rate is fixed when the task is decided (channel of the epoch start, the
  task's bandwidth share and power);
- the vehicles' positions, fading and interference are those of the last mobility step
  (``mobility.step`` is a whole number of epochs);
- bandwidth shares are accounted per epoch (19k): when the shares held at a server sum above
  one, all of them are scaled down to fit and a violation is counted.

With ``twin.enabled`` the digital twin (:mod:`sim.twin`) runs as a second process of the same
event loop: it takes reports between epochs, puts its sync traffic and compute into the
uplink and edge queues, and gives each observation its view (``Observation.twin``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import simpy

from sim.allocator import keep_freed_memory
from sim.errors import SimError
from sim.inflight import InFlight
from sim.kernels import (
    PHASE_DECIDE,
    admit_rows,
    apply_decisions_into,
    finish_summary,
    finish_tasks,
    serve_edge,
    serve_epoch,
    serve_front,
    split_done,
)
from sim.observation import Actions, Observation
from sim.records import TASK_COLUMNS
from sim.seeds import SeedTree
from sim.summary import SUMMARY_COLUMNS
from sim.world import World

# Columns of the per-task table, in order; finish_tasks returns all but the QPU ones.
RECORD_COLUMNS = TASK_COLUMNS
_QPU_COLUMNS = ("wait_qpu", "qpu_time", "qpu_fidelity", "semantic_accuracy")  # not kernel's
_KERNEL_COLUMNS = tuple(c for c in TASK_COLUMNS if c not in _QPU_COLUMNS)
# the columns finish_summary returns, in its order
_SUMMARY_KERNEL_COLUMNS = tuple(c for c in _KERNEL_COLUMNS if c in SUMMARY_COLUMNS)
# Columns of the rows in flight: the task's own, the decision's, the queues' state; the
# QPU ones only with QPUs, and the decision job's only for a policy deciding on a QPU.
_INFLIGHT_COLUMNS = (
    ("task_id", np.int64),
    ("vehicle", np.int64),
    ("arrival", np.float64),
    ("size_bits", np.float64),
    ("cycles", np.float64),
    ("deadline", np.float64),
    ("priority", np.float64),
    ("offload", np.bool_),
    ("server", np.int32),
    ("share", np.float64),
    ("power", np.float64),
    ("rate", np.float64),
    ("tx_start", np.float64),
    ("tx_time", np.float64),
    ("compute_start", np.float64),
    ("compute_time", np.float64),
    ("status", np.int8),
    ("phase", np.int8),
    ("drop_time", np.float64),
    ("key", np.float64),
)
_QPU_INFLIGHT_COLUMNS = (
    ("q_site", np.int64),
    ("q_job", np.int64),
    ("q_start", np.float64),
    ("q_time", np.float64),
    ("q_fid", np.float64),
)
_DECIDE_INFLIGHT_COLUMNS = (("ready", np.float64), ("d_job", np.int64))


@dataclass
class QueueState:
    """Free-at time of each core, last decision time and busy time of a bank of queues."""

    free: np.ndarray
    cores: np.ndarray
    last: np.ndarray
    busy: np.ndarray

    @classmethod
    def make(cls, cores: np.ndarray) -> QueueState:
        cores = np.asarray(cores, dtype=np.int64)
        return cls(
            np.zeros((cores.shape[0], int(cores.max()))),
            cores,
            np.zeros(cores.shape[0]),
            np.zeros(cores.shape[0]),
        )


@dataclass
class Violations:
    """Constraint violation counts of [19b-19k] that the engine sees (19b is in the table)."""

    energy_budget: int = 0  # 19c, tasks
    local_capacity: int = 0  # 19d, vehicle-epochs
    edge_capacity: int = 0  # 19e, server-epochs
    power: int = 0  # 19g, tasks whose requested power exceeded P_max
    bandwidth: int = 0  # 19k, server-epochs

    def as_dict(self) -> dict[str, int]:
        return {f"violations_{k}": int(v) for k, v in self.__dict__.items()}


@dataclass
class EngineResult:
    n_tasks: int
    n_epochs: int
    violations: Violations
    utilisation: dict[str, float] = field(default_factory=dict)
    twin: dict[str, float] = field(default_factory=dict)  # twin metrics (empty: twin off)
    qpu: dict[str, float] = field(default_factory=dict)  # QPU metrics (empty: no QPUs)
    policy: dict[str, float] = field(default_factory=dict)  # the policy's own figures
    # time series by name (name -> column -> values), written as <name>.parquet
    series: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def extra(self) -> dict:
        return {
            **self.violations.as_dict(),
            **self.utilisation,
            "n_epochs": self.n_epochs,
            **self.twin,
            **self.qpu,
            **self.policy,
        }


class Engine:
    """Runs one scenario with one policy; finished tasks go to ``sink.add(batch)``."""

    def __init__(self, scenario, policy, seeds: SeedTree, sink) -> None:
        self.sc = sc = scenario
        self.policy = policy
        self.sink = sink
        self.world = World(scenario, seeds)
        self.epoch = float(sc.engine.epoch)
        self.horizon = float(sc.engine.horizon)
        self.epochs_per_step = sc.epochs_per_mobility_step
        n = self.world.n_vehicles
        self.local = QueueState.make(np.ones(n, dtype=np.int64))
        self.uplink = QueueState.make(np.ones(n, dtype=np.int64))
        self.edge = QueueState.make(self.world.server_cores)
        self.violations = Violations()
        self.n_tasks = 0
        self.n_epochs = 0
        v, s, c = sc.vehicles, sc.servers, sc.channel
        self._local_factor = v.semantic_accuracy / self.world.vehicle_cpu  # s per cycle
        self._local_energy = (
            v.energy_coefficient * self.world.vehicle_cpu**2 * v.semantic_accuracy
        )  # J per cycle
        self._edge_factor = s.semantic_accuracy / self.world.server_cpu
        self._edge_energy = s.energy_coefficient * self.world.server_cpu**2 * s.semantic_accuracy
        self._sigma_ij = c.semantic_efficiency
        self._w1 = sc.cost.latency_weight
        self._drop = sc.tasks.drop_expired
        self._no_fading = np.empty((0, 0))
        # a sink that keeps no table (``needs_table`` False) gets only the summary's columns
        self._full_rows = bool(getattr(sink, "needs_table", True))
        self.twin = None
        if sc.twin.enabled:
            from sim.twin import DigitalTwin

            self.twin = DigitalTwin(sc, self.world, self.uplink, self.edge, seeds.generator("twin"))
        self.qpu = None
        if sc.qpu is not None:
            from sim.qpu_link import QPULink

            self.qpu = QPULink(
                sc.qpu,
                self.world.n_servers,
                seeds,
                self.horizon,
                float(sc.engine.warmup),
                drop_expired=sc.tasks.drop_expired,
            )
        # a quantum policy's decisions run as policy-inference jobs on the policy site
        self._decide_on_qpu = (
            self.qpu is not None
            and self.qpu.decider is not None
            and bool(getattr(policy, "runs_on_qpu", False))
        )
        columns = _INFLIGHT_COLUMNS
        if self.qpu is not None:
            columns += _QPU_INFLIGHT_COLUMNS
        if self._decide_on_qpu:
            columns += _DECIDE_INFLIGHT_COLUMNS
        self.inflight = InFlight(columns)
        # a sink that can take the finished rows' arguments of finish_summary (the run
        # summary) gets them, when nothing else needs the rows' columns in Python
        self._add_finished = None
        if not self._full_rows and self.qpu is None and sc.vehicles.energy_budget is None:
            self._add_finished = getattr(sink, "add_finished", None)

    # ------------------------------------------------------------------ driving
    def run(self) -> EngineResult:
        env = simpy.Environment()
        env.process(self._clock(env))
        if self.twin is not None:
            env.process(self.twin.process(env))
        try:
            env.run()
        finally:
            self.world.close()  # e.g. a SUMO simulation stepped by the mobility model
        self._serve(math.inf)  # drain what is still queued at the horizon
        if self.inflight.n:
            raise SimError("tasks left unserved after the drain")  # pragma: no cover
        result = EngineResult(self.n_tasks, self.n_epochs, self.violations, self._utilisation())
        if self.qpu is not None:
            self.qpu.drain()
            result.qpu = self.qpu.metrics()
            result.series["qpu_jobs"] = self.qpu.table()
            if self._decide_on_qpu:
                result.series["qpu_decisions"] = self.qpu.decision_table()
        if self.twin is not None:
            result.twin = self.twin.metrics()
            result.series.update(self.twin.series())
        metrics = getattr(self.policy, "metrics", None)
        if metrics is not None:
            result.policy = {k: float(v) for k, v in metrics().items()}
        return result

    def _clock(self, env: simpy.Environment):
        """Decision epochs; the world moves at the end of the epoch before each mobility step
        boundary, so that other processes see the new step's world at the boundary."""
        n_epochs = math.ceil(self.horizon / self.epoch - 1e-9)
        for k in range(n_epochs):
            t0 = k * self.epoch
            t1 = min((k + 1) * self.epoch, self.horizon)
            self.step(t0, t1)
            if k + 1 < n_epochs and (k + 1) % self.epochs_per_step == 0:
                self.world.advance(self.epochs_per_step * self.epoch)
            yield env.timeout(max(t1 - env.now, 0.0))

    def step(self, t0: float, t1: float) -> None:
        """One decision epoch: sample, decide, serve."""
        if self.twin is not None:
            self.twin.before_epoch(t0)
        tasks = self.world.tasks.sample(t0, t1)
        self.n_epochs += 1
        k = tasks["task_id"].shape[0]
        self.n_tasks += k
        if self.twin is not None:
            self.twin.count_arrivals(tasks["vehicle"])
        if self.qpu is not None:
            self.qpu.submit_rounds(t0, t1)
        if k:
            actions = self.policy.decide(self.observe(t0, tasks))
            new = self._apply(tasks, actions)
            if self._decide_on_qpu:
                new["phase"][:] = PHASE_DECIDE
                new["ready"][:] = np.nan
                new["d_job"][:] = self.qpu.submit_decisions(t0, k)
        self._serve(t1)

    # ------------------------------------------------------------------ decisions
    def observe(self, t0: float, tasks: dict[str, np.ndarray]) -> Observation:
        w, sc = self.world, self.sc
        return Observation(
            t=t0,
            epoch=self.epoch,
            task_vehicle=tasks["vehicle"],
            task_arrival=tasks["arrival"],
            task_size=tasks["size_bits"],
            task_cycles=tasks["cycles"],
            task_deadline=tasks["deadline"],
            task_priority=tasks["priority"],
            vehicle_position=w.positions,
            vehicle_cpu=w.vehicle_cpu,
            vehicle_power_max=w.vehicle_power_max,
            vehicle_local_free=self.local.free[:, 0].copy(),
            vehicle_uplink_free=self.uplink.free[:, 0].copy(),
            vehicle_nearest=w.nearest,
            server_position=w.server_position,
            server_cpu=w.server_cpu,
            server_cores=w.server_cores,
            server_bandwidth=w.server_bandwidth,
            server_core_free=self.edge.free.copy(),
            server_cell_size=w.cell_size,
            channel=w.channel,
            noise=sc.channel.noise,
            noise_is_density=sc.channel.noise_kind == "density",
            semantic_efficiency=self._sigma_ij,
            local_accuracy=sc.vehicles.semantic_accuracy,
            edge_accuracy=sc.servers.semantic_accuracy,
            energy_coefficient=sc.vehicles.energy_coefficient,
            latency_weight=self._w1,
            twin=self.twin.view(t0) if self.twin is not None else None,
        )

    def _arrays(self, actions: Actions, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pid = self.policy.id
        try:
            server = np.asarray(actions.server, dtype=np.int64)
            share = np.asarray(actions.share, dtype=np.float64)
            power = np.asarray(actions.power, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise SimError(f"policy '{pid}' returned actions that are not arrays: {exc}") from exc
        for name, arr in (("server", server), ("share", share), ("power", power)):
            if arr.shape != (k,):
                raise SimError(
                    f"policy '{pid}' returned {name} of shape {arr.shape}; "
                    f"expected ({k},), one per task"
                )
        return server, share, power

    def _invalid(self, kind: int, i: int, server, share, power) -> SimError:
        pid = self.policy.id
        if kind == 1:
            return SimError(
                f"policy '{pid}' chose server {int(server[i])}; allowed: -1 "
                f"(local) to {self.world.n_servers - 1}"
            )
        if kind == 2:
            return SimError(
                f"policy '{pid}' returned bandwidth share {share[i]!r}; allowed: 0 < share <= 1"
            )
        return SimError(
            f"policy '{pid}' returned transmit power {power[i]!r} W; allowed: 0 < power <= P_max"
        )

    def _apply(self, tasks: dict[str, np.ndarray], actions: Actions) -> dict[str, np.ndarray]:
        """Turn decisions into per-task service times, rates and energies, written as new
        rows in flight; returns those rows."""
        k = tasks["task_id"].shape[0]
        server, share, power = self._arrays(actions, k)
        w, sc = self.world, self.sc
        n_before = self.inflight.n
        rows = self.inflight.append(k, tasks)  # nothing in flight: the task arrays as they are
        n_power, n_bw, n_loc, n_edge, error, bad = apply_decisions_into(
            tasks["vehicle"],
            tasks["size_bits"],
            tasks["cycles"],
            server,
            share,
            power,
            w.vehicle_power_max,
            w.positions,
            w.server_position,
            self._fading_or_empty(),
            sc.channel.reference_gain,
            sc.channel.reference_distance,
            sc.channel.path_loss_exponent,
            sc.channel.min_distance,
            w.channel.interference,
            w.server_bandwidth,
            sc.channel.noise,
            sc.channel.noise_kind == "density",
            self._sigma_ij,
            self._local_factor,
            self._edge_factor,
            sc.vehicles.semantic_accuracy,
            sc.servers.semantic_accuracy,
            w.vehicle_cpu,
            w.server_cpu,
            w.server_cores,
            self.epoch,
            rows["share"],
            rows["power"],
            rows["rate"],
            rows["tx_time"],
            rows["compute_time"],
        )
        if error:
            self.inflight.truncate(n_before)
            raise self._invalid(error, bad, server, share, power)
        vi = self.violations
        vi.power += n_power
        vi.bandwidth += n_bw
        vi.local_capacity += n_loc
        vi.edge_capacity += n_edge
        admit_rows(
            tasks["task_id"],
            tasks["vehicle"],
            tasks["arrival"],
            tasks["size_bits"],
            tasks["cycles"],
            tasks["deadline"],
            tasks["priority"],
            server,
            rows["task_id"],
            rows["vehicle"],
            rows["arrival"],
            rows["size_bits"],
            rows["cycles"],
            rows["deadline"],
            rows["priority"],
            rows["offload"],
            rows["server"],
            rows["tx_start"],
            rows["compute_start"],
            rows["status"],
            rows["phase"],
            rows["drop_time"],
            rows["key"],
        )
        if self.twin is not None:
            self.twin.count_work(server, rows["compute_time"])
        if self.qpu is not None:
            rows["q_site"][:] = self.qpu.task_sites(server)
            rows["q_job"][:] = -1
            rows["q_start"][:] = np.nan
            rows["q_time"][:] = np.nan
            rows["q_fid"][:] = np.nan
        return rows

    def _fading_or_empty(self) -> np.ndarray:
        f = self.world.fading
        return f if f is not None else self._no_fading

    # ------------------------------------------------------------------ queues
    def _serve(self, t_known: float) -> None:
        n = self.inflight.n
        if n == 0:
            if self.qpu is not None:
                self.qpu.advance(t_known)
            return
        rows = self.inflight.rows()
        if self.qpu is not None:
            n_done = self._serve_with_qpus(rows, t_known)
        else:
            n_done = self._serve_plain(rows, t_known)
        if n_done == 0:
            return
        done, keep = split_done(rows["phase"], n)
        if self._add_finished is not None:
            self._add_finished(self._finish_args(rows, done))
        else:
            self.sink.add(self._finish(rows, done))
        self.inflight.keep(keep)

    def _serve_plain(self, rows: dict[str, np.ndarray], t_known: float) -> int:
        v, srv = self.sc.vehicles, self.sc.servers
        lo, up, ed = self.local, self.uplink, self.edge
        return serve_epoch(
            rows["task_id"],
            rows["vehicle"],
            rows["server"],
            rows["offload"],
            rows["arrival"],
            rows["deadline"],
            rows["key"],
            rows["tx_time"],
            rows["compute_time"],
            rows["tx_start"],
            rows["compute_start"],
            rows["phase"],
            rows["status"],
            rows["drop_time"],
            lo.free,
            lo.cores,
            lo.last,
            lo.busy,
            v.queue == "fifo",
            up.free,
            up.cores,
            up.last,
            up.busy,
            v.uplink_queue == "fifo",
            ed.free,
            ed.cores,
            ed.last,
            ed.busy,
            srv.queue == "fifo",
            t_known,
            self._drop,
            self.horizon,
        )

    def _serve_with_qpus(self, rows: dict[str, np.ndarray], t_known: float) -> int:
        """Local CPUs and uplinks, then the QPU service (semantic-coding jobs of the tasks
        transmitted, and the periodic jobs), then the edge CPUs; see :mod:`sim.qpu_link`."""
        v, srv = self.sc.vehicles, self.sc.servers
        lo, up, ed = self.local, self.uplink, self.edge
        if self._decide_on_qpu:
            self.qpu.resolve_decisions(rows, t_known)
        serve_front(
            rows["vehicle"],
            rows["offload"],
            rows["ready"] if self._decide_on_qpu else rows["arrival"],
            rows["deadline"],
            rows["key"],
            rows["tx_time"],
            rows["compute_time"],
            rows["tx_start"],
            rows["compute_start"],
            rows["phase"],
            rows["status"],
            rows["drop_time"],
            rows["q_site"],
            lo.free,
            lo.cores,
            lo.last,
            lo.busy,
            v.queue == "fifo",
            up.free,
            up.cores,
            up.last,
            up.busy,
            v.uplink_queue == "fifo",
            t_known,
            self._drop,
            self.horizon,
        )
        self.qpu.resolve(rows, t_known)
        return serve_edge(
            rows["task_id"],
            rows["server"],
            rows["deadline"],
            rows["key"],
            rows["tx_time"],
            rows["compute_time"],
            rows["tx_start"],
            rows["compute_start"],
            rows["phase"],
            rows["status"],
            rows["drop_time"],
            rows["q_site"],
            rows["q_time"],
            rows["q_start"],
            ed.free,
            ed.cores,
            ed.last,
            ed.busy,
            srv.queue == "fifo",
            t_known,
            self._drop,
            self.horizon,
        )

    def _finish_args(self, rows: dict[str, np.ndarray], idx: np.ndarray) -> tuple:
        """The arguments of :func:`sim.kernels.finish_summary` for the finished tasks
        ``idx`` of ``rows`` (those of :func:`sim.kernels.finish_tasks` but the last)."""
        return (
            idx,
            rows["task_id"],
            rows["offload"],
            rows["status"],
            rows["vehicle"],
            rows["server"],
            rows["arrival"],
            rows["size_bits"],
            rows["deadline"],
            rows["priority"],
            rows["cycles"],
            rows["share"],
            rows["power"],
            rows["rate"],
            rows["tx_start"],
            rows["tx_time"],
            rows["compute_start"],
            rows["compute_time"],
            rows["drop_time"],
            self._local_energy,
            self._edge_energy,
            self._w1,
            self.sc.cost.include_edge_energy,
            self.horizon,
        )

    def _finish(self, rows: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
        """Task-table rows (RECORD_COLUMNS) of the finished tasks ``idx`` of ``rows``; only
        the summary's columns when the sink keeps no table."""
        args = self._finish_args(rows, idx)
        if self._full_rows:
            out = dict(zip(_KERNEL_COLUMNS, finish_tasks(*args, True), strict=True))
        else:
            out = dict(zip(_SUMMARY_KERNEL_COLUMNS, finish_summary(*args), strict=True))
        if self.qpu is not None:
            q_start = rows["q_start"][idx]
            q_time = rows["q_time"][idx]
            ran = ~np.isnan(q_start)
            # the edge CPU's wait starts when the QPU job ends, not at the transmission's end
            q_end = q_start[ran] + q_time[ran]
            out["wait_compute"][ran] = rows["compute_start"][idx[ran]] - q_end
            if self._full_rows:
                out["wait_qpu"] = q_start - (rows["tx_start"][idx] + rows["tx_time"][idx])
                out["qpu_time"] = q_time
                fid = rows["q_fid"][idx]
                out["qpu_fidelity"] = fid
                out["semantic_accuracy"] = self._semantic_accuracy(out["offload"]) * np.where(
                    np.isnan(fid), 1.0, fid
                )
        elif self._full_rows:
            out["wait_qpu"] = out["qpu_time"] = np.full(idx.shape[0], np.nan)
            out["qpu_fidelity"] = np.full(idx.shape[0], np.nan)
            out["semantic_accuracy"] = self._semantic_accuracy(out["offload"])
        budget = self.sc.vehicles.energy_budget
        if budget is not None:
            self.violations.energy_budget += int((out["energy"] > budget).sum())
        return out

    def _semantic_accuracy(self, offload: np.ndarray) -> np.ndarray:
        """sigma_j of offloaded tasks, sigma_i of local ones."""
        return np.where(
            offload, self.sc.servers.semantic_accuracy, self.sc.vehicles.semantic_accuracy
        )

    def _utilisation(self) -> dict[str, float]:
        h = self.horizon
        out = {}
        for name, st in (("local", self.local), ("uplink", self.uplink), ("edge", self.edge)):
            u = st.busy / (h * st.cores)
            out[f"utilisation_{name}_mean"] = float(u.mean())
            out[f"utilisation_{name}_max"] = float(u.max())
        return out


def simulate(scenario, sink, policy=None, seeds: SeedTree | None = None) -> EngineResult:
    """Run ``scenario`` with its configured policy (or ``policy``) into ``sink``."""
    keep_freed_memory()
    seeds = seeds or SeedTree(scenario.seed)
    if policy is None:
        from models.policies import make

        policy = make(
            scenario.policy.id, scenario.policy.params, scenario, seeds.generator("policy")
        )
    return Engine(scenario, policy, seeds, sink).run()

"""The decision problem of MODEL.md as an MDP: state [20], action [21], reward [22].

One decision is one task. Everything here is plain numpy over an
:class:`~sim.observation.Observation`, so the training environment (:mod:`models.env`) and a
trained policy running inside the engine (:mod:`models.policies.learned`) build the same
states and read actions the same way.

State [20] of task k of vehicle v, all dimensionless (``MdpSpec.names`` lists them):

- ``local_latency``, ``local_energy``: the task run on v's CPU now, eqs. [12], [16], with the
  wait behind the work already committed to that CPU; over the deadline L_D and the energy
  scale E_ref (the local energy of a mean task);
- ``size``, ``cycles``: D and s_c over their scenario means; ``slack``: time to the deadline
  over L_D (task features S_k);
- for each of the ``servers_observed`` nearest servers (nearest first): ``offload_latency``
  and ``offload_energy`` at P_max with the cell's equal band share, eqs. [13], [15], with the
  uplink and edge backlogs, and ``log_rate``, log10 of the achievable rate [10] over
  R_ref = mean size / L_D;
- with the digital twin: ``twin_rate_max``, the twin's lambda_max of v [19i] over the
  configured rate, and ``twin_backlog``, its predicted backlog of the serving server over L_D.

Every feature is clipped to [-OBS_BOUND, OBS_BOUND]. States are taken at the epoch start:
tasks of the same epoch do not see each other's decisions in their state (they do in their
reward, below).

Action [21], four numbers in [-1, 1]: bandwidth share ``B`` (``min_share`` .. 1 of the
target's B_max), transmit power ``p`` (``min_power`` .. 1 times P_max), offload decision
``alpha`` (offload when positive) and target server (the observed servers split [-1, 1]
into equal intervals, nearest first).

Reward [22]: ``-(w1 L + (1 - w1) E) / cost_ref - U`` with cost_ref = w1 L_D + (1 - w1) E_ref
(a task that takes its whole deadline at the mean local energy costs about 1). L and E are
those the decision commits to (:class:`EpochLedger`): eqs. [12]-[16] plus the waits behind
the work committed to the CPU, uplink and edge queues, including the decisions taken earlier
in the same epoch (exact for FIFO queues and one core per server). The penalties U:
``deadline_penalty`` when L exceeds the deadline (19b), ``bandwidth_penalty`` times the
excess of the shares held at a server in the epoch over 1 (19k), ``energy_penalty`` when E
exceeds the vehicles' energy budget (19c). Power (19g) and sigma (19f) hold by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.policies.heuristics import equal_share, local_time_and_energy
from sim.errors import SimError
from sim.observation import Actions, Observation

OBS_BOUND = 20.0
"""Every state feature is clipped to [-OBS_BOUND, OBS_BOUND]."""

ACTION_NAMES = ("share", "power", "offload", "server")
"""The action vector [21], each component in [-1, 1]."""


class MdpParams(BaseModel):
    """How decisions are presented to an agent and scored."""

    model_config = ConfigDict(extra="forbid")

    servers_observed: int = Field(
        2, ge=1, le=8, description="nearest servers in the state and the target choice"
    )
    min_share: float = Field(0.01, gt=0, le=1, description="share of B_max at action -1")
    min_power: float = Field(0.01, gt=0, le=1, description="fraction of P_max at action -1")
    deadline_penalty: float = Field(1.0, ge=0, description="U per missed deadline (19b)")
    bandwidth_penalty: float = Field(
        1.0, ge=0, description="U per unit of share above 1 at a server in an epoch (19k)"
    )
    energy_penalty: float = Field(1.0, ge=0, description="U per task above the budget (19c)")
    use_twin: bool = Field(True, description="add the twin's forecast when the twin runs")


@dataclass(frozen=True)
class MdpSpec:
    """The state layout and scales of one scenario under :class:`MdpParams`."""

    params: MdpParams
    n_servers: int  # servers observed (<= the scenario's servers)
    twin: bool
    latency: float  # L_D [s]
    energy: float  # E_ref [J]
    size: float  # mean D [bits]
    cycles: float  # mean s_c [cycles]
    rate: float  # R_ref [bit/s]
    arrival_rate: float  # configured lambda [1/s]
    cost: float  # cost_ref
    latency_weight: float  # w1
    energy_budget: float | None  # E_max of (19c) [J]

    @classmethod
    def of(cls, scenario, params: MdpParams | None = None) -> MdpSpec:
        p = params or MdpParams()
        sc = scenario
        latency = float(sc.tasks.deadline)
        size = float(sc.tasks.size.expected)
        cycles = float(sc.tasks.complexity.expected)
        v = sc.vehicles
        energy = v.energy_coefficient * v.cpu**2 * cycles * v.semantic_accuracy
        if energy <= 0:  # no CPU energy model: transmitting at P_max for a deadline
            energy = v.power_max * latency
        w1 = float(sc.cost.latency_weight)
        return cls(
            params=p,
            n_servers=min(p.servers_observed, sc.servers.count),
            twin=bool(p.use_twin and sc.twin.enabled),
            latency=latency,
            energy=float(energy),
            size=size,
            cycles=cycles,
            rate=size * sc.channel.semantic_efficiency / latency,
            arrival_rate=max(float(sc.tasks.arrival_rate), 1e-12),
            cost=w1 * latency + (1 - w1) * float(energy),
            latency_weight=w1,
            energy_budget=v.energy_budget,
        )

    @property
    def names(self) -> list[str]:
        out = ["local_latency", "local_energy", "size", "cycles", "slack"]
        for j in range(self.n_servers):
            out += [f"offload_latency_{j}", f"offload_energy_{j}", f"log_rate_{j}"]
        if self.twin:
            out += ["twin_rate_max", "twin_backlog"]
        return out

    @property
    def n_features(self) -> int:
        return 5 + 3 * self.n_servers + (2 if self.twin else 0)


def _vehicle_candidates(obs: Observation, spec: MdpSpec) -> np.ndarray:
    """(V, >= m) the candidate servers of each vehicle, nearest first."""
    cand = obs.vehicle_candidates
    if cand.shape[1] < spec.n_servers:
        raise SimError(
            f"the world keeps {cand.shape[1]} candidate servers per vehicle; "
            f"servers_observed = {spec.n_servers} needs as many"
        )
    return cand


def _candidates(obs: Observation, spec: MdpSpec) -> np.ndarray:
    """(K, m) the observed servers of each task's vehicle, nearest first."""
    return _vehicle_candidates(obs, spec)[obs.task_vehicle, : spec.n_servers]


def task_states(obs: Observation, spec: MdpSpec) -> np.ndarray:
    """The state [20] of every task of ``obs``: (K, n_features) float64."""
    k = obs.n_tasks
    v = obs.task_vehicle
    a = obs.task_arrival
    out = np.empty((k, spec.n_features))
    t_loc, e_loc = local_time_and_energy(obs)
    wait_loc = np.maximum(obs.vehicle_local_free[v] - a, 0.0)
    out[:, 0] = (wait_loc + t_loc) / spec.latency
    out[:, 1] = e_loc / spec.energy
    out[:, 2] = obs.task_size / spec.size
    out[:, 3] = obs.task_cycles / spec.cycles
    out[:, 4] = (obs.task_deadline - a) / spec.latency
    if k:
        cand = _candidates(obs, spec)
        power = obs.vehicle_power_max[v]
        wait_up = np.maximum(obs.vehicle_uplink_free[v] - a, 0.0)
        backlog = obs.server_backlog
        bits = obs.task_size * obs.semantic_efficiency
        for j in range(spec.n_servers):
            srv = cand[:, j]
            rate = obs.rate(v, srv, equal_share(obs, srv), power)
            with np.errstate(divide="ignore"):
                tx = bits / rate
                at_edge = a + wait_up + tx
                wait_edge = np.maximum(obs.t + backlog[srv] - at_edge, 0.0)
                compute = obs.task_cycles * obs.edge_accuracy / obs.server_cpu[srv]
                out[:, 5 + 3 * j] = (wait_up + tx + wait_edge + compute) / spec.latency
                out[:, 6 + 3 * j] = power * tx / spec.energy
                out[:, 7 + 3 * j] = np.log10(np.maximum(rate, 1e-300) / spec.rate)
        if spec.twin:
            tw = obs.twin
            if tw is None:
                raise SimError("the state includes the twin's forecast but the twin is off")
            base = 5 + 3 * spec.n_servers
            out[:, base] = tw.arrival_rate_max[v] / spec.arrival_rate
            out[:, base + 1] = tw.server_backlog[cand[:, 0]] / spec.latency
    np.nan_to_num(out, copy=False, nan=OBS_BOUND, posinf=OBS_BOUND, neginf=-OBS_BOUND)
    return np.clip(out, -OBS_BOUND, OBS_BOUND, out=out)


def decode_actions(obs: Observation, action: np.ndarray, spec: MdpSpec) -> Actions:
    """Engine actions for every task of ``obs`` from agent actions (K, 4) in [-1, 1]."""
    a = np.asarray(action, dtype=np.float64)
    k = obs.n_tasks
    if a.shape != (k, len(ACTION_NAMES)):
        raise SimError(f"agent actions of shape {a.shape}; expected ({k}, {len(ACTION_NAMES)})")
    a = np.clip(np.nan_to_num(a, nan=0.0), -1.0, 1.0)
    p = spec.params
    u = 0.5 * (a + 1.0)  # [0, 1]
    share = p.min_share + (1.0 - p.min_share) * u[:, 0]
    power = obs.vehicle_power_max[obs.task_vehicle] * (p.min_power + (1.0 - p.min_power) * u[:, 1])
    server = np.full(k, -1, dtype=np.int64)
    if k:
        cand = _candidates(obs, spec)
        pick = np.minimum((u[:, 3] * spec.n_servers).astype(np.int64), spec.n_servers - 1)
        target = cand[np.arange(k), pick]
        server = np.where(a[:, 2] > 0, target, -1)
    return Actions(server=server, share=share, power=power)


def decode_action(
    obs: Observation, k: int, action: np.ndarray, spec: MdpSpec
) -> tuple[int, float, float]:
    """Task ``k``'s entry of :func:`decode_actions` for one agent action (4,): server (-1
    local), share and power, by the same arithmetic on Python floats (the training
    environment decodes one task per step, where array calls would cost more than the
    arithmetic)."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape != (len(ACTION_NAMES),):
        raise SimError(f"agent action of shape {a.shape}; expected ({len(ACTION_NAMES)},)")
    cand = _vehicle_candidates(obs, spec)
    b, pw, alpha, target = (0.0 if math.isnan(x) else min(max(x, -1.0), 1.0) for x in a.tolist())
    p = spec.params
    v = int(obs.task_vehicle[k])
    share = p.min_share + (1.0 - p.min_share) * (0.5 * (b + 1.0))
    power = float(obs.vehicle_power_max[v]) * (
        p.min_power + (1.0 - p.min_power) * (0.5 * (pw + 1.0))
    )
    server = -1
    if alpha > 0:
        pick = min(int(0.5 * (target + 1.0) * spec.n_servers), spec.n_servers - 1)
        server = int(cand[v, pick])
    return server, share, power


@dataclass
class Outcome:
    """What one decision commits to (see :class:`EpochLedger`)."""

    latency: float  # [s]
    energy: float  # [J]
    cost: float  # w1 L + (1 - w1) E
    deadline_missed: bool
    bandwidth_excess: float  # share above 1 at the target server, added by this decision
    over_budget: bool
    reward: float


class EpochLedger:
    """The work committed to the queues during one epoch, decision by decision.

    Starts from the free-at times of the observation (each server's mean backlog per core)
    and adds each decided task: a local task waits for its CPU, an offloaded one for its
    uplink, then for the server's CPU. Shares held at each server are summed for (19k).
    """

    def __init__(self, obs: Observation, spec: MdpSpec) -> None:
        self.obs = obs
        self.spec = spec
        self.local_free = obs.vehicle_local_free.astype(np.float64, copy=True)
        self.uplink_free = obs.vehicle_uplink_free.astype(np.float64, copy=True)
        self.edge_free = obs.t + obs.server_backlog
        self.shares = np.zeros(obs.n_servers)
        self._t_loc, self._e_loc = local_time_and_energy(obs)

    def commit(self, k: int, actions: Actions) -> Outcome:
        """Commit task ``k`` of the observation with its entry of ``actions``."""
        obs, spec, p = self.obs, self.spec, self.spec.params
        v = int(obs.task_vehicle[k])
        arrival = float(obs.task_arrival[k])
        server = int(actions.server[k])
        excess = 0.0
        if server < 0:
            start = max(self.local_free[v], arrival)
            self.local_free[v] = start + self._t_loc[k]
            latency = self.local_free[v] - arrival
            energy = float(self._e_loc[k])
        else:
            share = float(actions.share[k])
            power = float(actions.power[k])
            rate = float(
                obs.rate(np.array([v]), np.array([server]), np.array([share]), np.array([power]))[0]
            )
            tx = obs.task_size[k] * obs.semantic_efficiency / rate
            start = max(self.uplink_free[v], arrival)
            self.uplink_free[v] = start + tx
            compute = obs.task_cycles[k] * obs.edge_accuracy / obs.server_cpu[server]
            begin = max(self.edge_free[server], self.uplink_free[v])
            self.edge_free[server] = begin + compute / obs.server_cores[server]
            latency = begin + compute - arrival
            energy = power * tx
            before = max(self.shares[server] - 1.0, 0.0)
            self.shares[server] += share
            excess = max(self.shares[server] - 1.0, 0.0) - before
        w1 = spec.latency_weight
        cost = w1 * latency + (1.0 - w1) * energy
        missed = latency > float(obs.task_deadline[k]) - arrival
        over = spec.energy_budget is not None and energy > spec.energy_budget
        penalty = (
            p.deadline_penalty * missed + p.bandwidth_penalty * excess + p.energy_penalty * over
        )
        reward = -cost / spec.cost - penalty
        return Outcome(
            float(latency), float(energy), float(cost), bool(missed), excess, over, float(reward)
        )

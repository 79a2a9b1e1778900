"""The QAOA policy (seed 001): server selection and transmit power as a QUBO solved by QAOA.

Per epoch the tasks (sorted by vehicle and arrival) are cut into groups of at most
``max_tasks`` consecutive tasks of one vehicle; each group is one QUBO.

Encoding. Task ``i`` of a group has ``m = 1 + S L`` one-hot variables: option 0 is local
execution, option ``1 + s L + l`` offloads to the vehicle's ``s``-th nearest server
(``S = servers`` candidates, the serving cell first) at power ``P_max / 2^l``
(``L = power_levels``), with the equal band share of :func:`~models.policies.heuristics.
equal_share`. Variable ``i m + o`` is qubit ``i m + o``, so a group uses
``max_tasks (1 + S L)`` qubits (at most :data:`MAX_QUBITS`).

* Linear terms: the estimated cost ``w1 L + (1 - w1) E`` of each option, as greedy
  estimates it: :func:`~models.policies.heuristics.estimated_costs` for local execution and
  :func:`offload_costs` (the same estimate at any candidate server and power) for the
  others, minus the task's cheapest option (a constant under the one-hot constraint).
* Quadratic terms: the queueing between two tasks ``i < j`` (in arrival order) of the same
  vehicle, which per-task estimates miss: both local, ``j`` waits
  ``max(0, a_i + t_i - a_j)`` for the CPU (``t_i`` the computation time of ``i``); both
  offloaded, ``j`` waits ``max(0, a_i + tx_i - a_j)`` for the transmitter (``tx_i`` the
  transmission time of ``i``'s option); weighted by ``w1``. Waits at the edge CPUs are not
  modelled.
* One-hot penalty ``P sum_i (sum_o x_io - 1)^2`` with ``P = penalty * (largest option cost
  + largest sum of a variable's quadratic terms)``; for ``penalty > 1`` every minimum of the
  QUBO is feasible.

The circuit is built from the QUBO with option costs (and quadratic terms) clipped at twice
the largest gap between a task's local and best offloaded option, so that one hopeless
option (a transmission over a thin band) does not flatten the landscape the angles see.
The choice is not clipped: among the sampled feasible bitstrings the one of least energy
under the unclipped QUBO is taken; with no feasible sample the group falls back to greedy's
choice. :attr:`QAOAPolicy.stats` counts QUBOs, fallbacks and how often the choice equalled
the exact optimum of the same QUBO (brute force).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.policies.base import Policy, register
from models.policies.heuristics import equal_share, estimated_costs, local_time_and_energy
from qpu import qaoa
from sim.observation import Actions, Observation
from sim.seeds import SeedTree

MAX_QUBITS = 16
"""Largest QUBO a group may give (the exact evaluator holds 2^n amplitudes per angle set)."""


class QAOAParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: int = Field(2, ge=1, le=12, description="QAOA layers p")
    shots: int = Field(256, ge=1, le=1_000_000, description="measurements per QUBO")
    backend: str = Field(
        "exact", description="exact, aer, aer-noisy:<device> or ibm:<backend> (qpu.backends)"
    )
    max_tasks: int = Field(2, ge=1, le=8, description="tasks of one vehicle per QUBO")
    servers: int = Field(2, ge=1, description="candidate servers per task, nearest first")
    power_levels: int = Field(2, ge=1, description="transmit powers P_max, P_max/2, ...")
    penalty: float = Field(1.5, gt=0, description="one-hot penalty, in units of the cost span")
    restarts: int = Field(2, ge=1, le=50, description="angle optimisation starts per depth")


def offload_costs(
    obs: Observation, servers: np.ndarray, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Greedy's estimate of offloading each task to each of its ``servers`` (K, S) at powers
    ``P_max * levels`` (L,): ``(cost, tx_time, share, power)`` of shapes (K, S, L), (K, S, L),
    (K, S), (K, L). At the serving server and ``level = 1`` the cost equals the offload cost
    of :func:`~models.policies.heuristics.estimated_costs`."""
    v = obs.task_vehicle
    w1 = obs.latency_weight
    share = np.stack([equal_share(obs, servers[:, s]) for s in range(servers.shape[1])], axis=1)
    power = obs.vehicle_power_max[v][:, None] * levels[None, :]
    shape = (v.shape[0], servers.shape[1], levels.shape[0])
    rate = obs.rate(
        np.broadcast_to(v[:, None, None], shape),
        np.broadcast_to(servers[:, :, None], shape),
        np.broadcast_to(share[:, :, None], shape),
        np.broadcast_to(power[:, None, :], shape),
    )
    tx = (obs.task_size * obs.semantic_efficiency)[:, None, None] / rate
    edge = obs.task_cycles[:, None] * obs.edge_accuracy / obs.server_cpu[servers]
    wait = obs.vehicle_uplink_backlog[v][:, None] + obs.server_backlog[servers]
    latency = tx + (edge + wait)[:, :, None]
    cost = w1 * latency + (1 - w1) * power[:, None, :] * tx
    return cost, tx, share, power


def group_qubo(
    cost: np.ndarray,
    arrival: np.ndarray,
    local_time: np.ndarray,
    tx: np.ndarray,
    w1: float,
    penalty: float,
    cap: float | None = None,
) -> qaoa.QUBO:
    """The QUBO of one group (see the module docstring).

    ``cost`` (T, m) option costs (option 0 local), ``arrival`` (T,) sorted, ``local_time``
    (T,), ``tx`` (T, m - 1) transmission times of the offload options. ``cap`` clips the
    option costs and the quadratic terms."""
    t, m = cost.shape
    n = t * m
    rel = cost - cost.min(axis=1, keepdims=True)
    Q = np.zeros((n, n))
    for i in range(t):
        for j in range(i + 1, t):
            both_local = w1 * max(0.0, arrival[i] + local_time[i] - arrival[j])
            Q[i * m, j * m] = both_local
            uplink = w1 * np.maximum(0.0, arrival[i] + tx[i] - arrival[j])  # (m - 1,)
            Q[i * m + 1 : (i + 1) * m, j * m + 1 : (j + 1) * m] = uplink[:, None]
    linear = rel.reshape(n)
    if cap is not None:
        linear = np.minimum(linear, cap)
        Q = np.minimum(Q, cap)
    Q = Q + Q.T  # x^T Q x counts each pair twice: halve below
    Q /= 2.0
    row = np.abs(Q).sum(axis=1) * 2.0
    scale = float(linear.max(initial=0.0) + row.max(initial=0.0))
    p = penalty * (scale if scale > 0 else 1.0)
    # P (sum_o x_o - 1)^2 = P (2 sum_{o<o'} x_o x_o' - sum_o x_o + 1)
    for i in range(t):
        block = slice(i * m, (i + 1) * m)
        Q[block, block] += p * (np.ones((m, m)) - np.eye(m))
    c = linear - p
    return qaoa.QUBO(Q, c, offset=p * t + float(cost.min(axis=1).sum()))


def feasible(z: np.ndarray, tasks: int, m: int) -> np.ndarray:
    """Which basis indices ``z`` set exactly one option per task."""
    b = qaoa.bits(z, tasks * m).reshape(-1, tasks, m)
    return (b.sum(axis=2) == 1).all(axis=1)


def decode(z: int, tasks: int, m: int) -> np.ndarray:
    """Option of each task in a feasible basis index ``z``."""
    b = qaoa.bits(np.array([z]), tasks * m).reshape(tasks, m)
    return b.argmax(axis=1)


@register
class QAOAPolicy(Policy):
    """Per vehicle and epoch, server and power of each task by QAOA on a QUBO."""

    id = "qaoa"
    Params = QAOAParams

    @classmethod
    def check(cls, params, scenario) -> list[tuple[str, str]]:
        from qpu.backends import QPUError, make_backend

        problems = []
        try:
            backend = make_backend(params.backend)
            if not backend.computes:
                problems.append(("params.backend", "timing-only computes no samples"))
        except QPUError as exc:
            problems.append(("params.backend", str(exc)))
        m = 1 + min(params.servers, scenario.servers.count) * params.power_levels
        if params.max_tasks * m > MAX_QUBITS:
            problems.append(
                (
                    "params.max_tasks",
                    f"{params.max_tasks} tasks x (1 + servers x power_levels = {m}) options "
                    f"need {params.max_tasks * m} qubits; allowed: at most {MAX_QUBITS}",
                )
            )
        return problems

    def __init__(self, params, scenario, rng: np.random.Generator) -> None:
        super().__init__(params, scenario, rng)
        from qpu.backends import make_backend

        problems = self.check(params, scenario)
        if problems:
            key, message = problems[0]
            raise qaoa.QAOAError(f"policy.{key}: {message}")
        self.backend = make_backend(params.backend, SeedTree(int(rng.integers(2**31 - 1))))
        self.levels = 0.5 ** np.arange(params.power_levels)
        self.stats = {"qubos": 0, "fallbacks": 0, "optimal": 0, "max_qubits": 0}

    def decide(self, obs: Observation) -> Actions:
        k = obs.n_tasks
        v = obs.task_vehicle
        power_max = obs.vehicle_power_max[v]
        server = np.full(k, -1, dtype=np.int64)
        share = np.zeros(k)
        power = power_max.copy()
        if k == 0:
            return Actions(server, share, power)
        n_cand = min(self.params.servers, obs.vehicle_candidates.shape[1])
        cand = obs.vehicle_candidates[v][:, :n_cand]
        local, greedy_off = estimated_costs(obs, True)
        off, tx, shares, powers = offload_costs(obs, cand, self.levels)
        cost = np.concatenate([local[:, None], off.reshape(k, -1)], axis=1)
        tx = tx.reshape(k, -1)
        local_time, _ = local_time_and_energy(obs)
        n_levels = self.levels.shape[0]
        for group in self._groups(v):
            option = self._solve(
                cost[group], obs.task_arrival[group], local_time[group], tx[group], obs
            )
            if option is None:  # no feasible sample: greedy's choice
                self.stats["fallbacks"] += 1
                option = np.where(greedy_off[group] < local[group], 1, 0)
            for i, o in zip(group, option, strict=True):
                if o == 0:
                    continue
                s, level = divmod(int(o) - 1, n_levels)
                server[i] = cand[i, s]
                share[i] = shares[i, s]
                power[i] = powers[i, level]
        return Actions(server, share, power)

    def _groups(self, vehicle: np.ndarray) -> list[np.ndarray]:
        cut = np.flatnonzero(np.diff(vehicle)) + 1
        out = []
        for run in np.split(np.arange(vehicle.shape[0]), cut):
            out += [
                run[i : i + self.params.max_tasks]
                for i in range(0, run.shape[0], self.params.max_tasks)
            ]
        return out

    def _solve(self, cost, arrival, local_time, tx, obs) -> np.ndarray | None:
        t, m = cost.shape
        w1, penalty = obs.latency_weight, self.params.penalty
        true = group_qubo(cost, arrival, local_time, tx, w1, penalty)
        rel = cost - cost.min(axis=1, keepdims=True)
        gap = np.abs(rel[:, 0] - rel[:, 1:].min(axis=1, initial=np.inf)).max()
        cap = 2.0 * gap if np.isfinite(gap) and gap > 0 else None
        shaped = group_qubo(cost, arrival, local_time, tx, w1, penalty, cap)
        result = qaoa.optimise_angles(shaped, self.params.depth, self.rng, self.params.restarts)
        counts = qaoa.sample(result, self.params.shots, self.rng, self.backend)
        seen = np.flatnonzero(counts)
        ok = seen[feasible(seen, t, m)]
        self.stats["qubos"] += 1
        self.stats["max_qubits"] = max(self.stats["max_qubits"], t * m)
        if ok.size == 0:
            return None
        energies = true.energy(qaoa.bits(ok, t * m))
        best = int(ok[np.argmin(energies)])
        if energies.min() <= qaoa.brute_force(true).energy + 1e-12 * max(1.0, abs(energies.min())):
            self.stats["optimal"] += 1
        return decode(best, t, m)

"""The QPU service inside the engine: which circuit jobs the world makes and how tasks wait.

With a ``qpu:`` section, the engine runs one :class:`qpu.service.QPUService` next to its
queues. The world generates its jobs:

- ``semantic_coding``: one job per offloaded task. The task's data, once transmitted, is
  encoded on a QPU of its server's site (or of the first cloud site when the server has
  none) before the edge CPU computes: the task waits for the job, and its latency includes
  the QPU wait and execution. A job dropped (it would start past the task's deadline, when
  ``tasks.drop_expired``) or rejected (the site's admission limit) drops its task.
- ``multimodal_attention`` and ``federated_aggregation``: jobs of their own, one per site
  every ``period`` (a fused frame, a federated round), from time 0.
- ``policy_inference``: with ``qpu.policy_site`` and a quantum policy (``runs_on_qpu``),
  one job per task decided, submitted at the start of its epoch to the QPUs of the policy
  site, which run nothing else. The task enters its first queue when its decision job ends
  (the policy's own latency is part of the task's); a dropped or rejected decision job
  drops the task. The actions are computed by the policy itself (exactly, or from its
  circuit sampled on the run's backend: :mod:`models.policies.learned`).

Exactness across epochs (see :mod:`sim.kernels`): every epoch first serves the policy
site's QPUs up to ``t_known`` and releases the tasks whose decision job has ended, then
serves the local CPUs and uplinks, then submits the semantic-coding jobs of the tasks
transmitted and serves the sites' QPUs up to ``t_known``, then serves the edge CPUs. A task
whose decision or semantic job is still undecided reaches its next queue after
``t_known``, so no decision taken before it is premature. (Decision jobs have QPUs of their
own because their end must be known before the uplinks are served, and the semantic jobs
that share the sites' QPUs arrive from those uplinks.)

With a computing backend (``exact``, ``aer``, ``aer-noisy:...``, ``ibm:...``) the jobs
that ran are executed on it, one submission per kind and epoch, with inputs drawn from the
run's ``qpu_inputs`` stream and, per kind, one set of weights drawn from it at the start;
``timing-only`` computes nothing.
"""

from __future__ import annotations

import math

import numpy as np

from sim.kernels import PHASE_DECIDE, PHASE_DONE, PHASE_EDGE, PHASE_FIRST, PHASE_QPU

_PERIODIC = ("multimodal_attention", "federated_aggregation")


class QPULink:
    """The run's QPU service, its job generation and the task side of semantic coding."""

    def __init__(
        self,
        cfg,
        n_servers: int,
        seeds,
        horizon: float,
        warmup: float = 0.0,
        drop_expired: bool = True,
    ) -> None:
        from qpu.backends import make_backend
        from qpu.service import QPUService
        from qpu.templates import KINDS

        self.horizon = float(horizon)
        self.warmup = float(warmup)
        self.drop_expired = bool(drop_expired)  # tasks.drop_expired: a task's job may drop it
        self.service = svc = QPUService(cfg, n_servers=n_servers, seeds=seeds, horizon=self.horizon)
        self.semantic = "semantic_coding" in svc.kinds
        self._semantic_code = KINDS.index("semantic_coding")
        site = svc.site_of_server.copy()
        if svc.cloud_sites:
            site[site < 0] = svc.cloud_sites[0]
        self.site_of_server = site
        self._periodic = [
            (KINDS.index(kind), float(cfg.jobs[kind].period))
            for kind in _PERIODIC
            if kind in svc.kinds and cfg.jobs[kind].period is not None
        ]
        self._next_round = [0] * len(self._periodic)
        self._n_sites = len(cfg.sites)
        self.backend = None if cfg.backend == "timing-only" else make_backend(cfg.backend, seeds)
        self._inputs = seeds.generator("qpu_inputs") if self.backend is not None else None
        # each kind runs with one set of trained weights, drawn once per run
        self._weights = (
            {
                k: self._inputs.uniform(0.0, 2.0 * math.pi, svc.templates[k].n_weights)
                for k in svc.kinds
            }
            if self.backend is not None
            else {}
        )
        self._executed = 0  # jobs [0, _executed) were sent to the backend or skipped
        self.decider = None  # the policy site's QPUs (policy_inference jobs only)
        if cfg.policy_site is not None:
            self.decider = QPUService(
                cfg.model_copy(update={"sites": [cfg.policy_site], "policy_site": None}),
                n_servers=n_servers,
                seeds=seeds,
                horizon=self.horizon,
                kinds=["policy_inference"],
            )
            self._decision_code = KINDS.index("policy_inference")

    # ------------------------------------------------------------------ tasks
    def task_sites(self, server: np.ndarray) -> np.ndarray:
        """The QPU site of each task's semantic-coding job (-1: none, e.g. local tasks)."""
        if not self.semantic:
            return np.full(server.shape[0], -1, dtype=np.int64)
        out = np.full(server.shape[0], -1, dtype=np.int64)
        off = server >= 0
        out[off] = self.site_of_server[server[off]]
        return out

    def submit_decisions(self, t0: float, k: int) -> np.ndarray:
        """Submit the decision jobs of ``k`` tasks decided at ``t0``; their job ids."""
        return self.decider.submit(np.full(k, self._decision_code), np.zeros(k, np.int64), t0)

    def resolve_decisions(self, rows: dict[str, np.ndarray], t_known: float) -> None:
        """Serve the policy site to ``t_known``; tasks whose decision job has ended become
        ready at its end (PHASE_FIRST), those whose job was lost are dropped."""
        from qpu.service import COMPLETED, PENDING

        svc = self.decider
        svc.advance(t_known)
        phase = rows["phase"]
        waiting = np.flatnonzero(phase == PHASE_DECIDE)
        if not waiting.size:
            return
        core = svc.core
        ids = rows["d_job"][waiting]
        status = core.column("status")[ids]
        decided = status != PENDING
        rows_done, ids, status = waiting[decided], ids[decided], status[decided]
        end = core.column("end")[ids]
        ok = status == COMPLETED
        rows["ready"][rows_done[ok]] = np.maximum(end[ok], rows["arrival"][rows_done[ok]])
        phase[rows_done[ok]] = PHASE_FIRST
        lost = rows_done[~ok]
        if lost.size:
            rows["status"][lost] = 1
            rows["drop_time"][lost] = end[~ok]
            phase[lost] = PHASE_DONE

    def submit_rounds(self, t0: float, t1: float) -> None:
        """Submit the periodic jobs (attention frames, federated rounds) due in [t0, t1)."""
        for j, (code, period) in enumerate(self._periodic):
            k = self._next_round[j]
            times = []
            while k * period < t1 and k * period < self.horizon:
                if k * period >= t0:
                    times.append(k * period)
                k += 1
            self._next_round[j] = k
            if not times:
                continue
            t = np.repeat(np.asarray(times), self._n_sites)
            sites = np.tile(np.arange(self._n_sites), len(times))
            self.service.submit(np.full(t.shape[0], code), sites, t)

    def resolve(self, rows: dict[str, np.ndarray], t_known: float) -> None:
        """Submit the jobs of the tasks newly transmitted, serve the QPUs to ``t_known`` and
        move the tasks whose job is decided on: to PHASE_EDGE, or dropped."""
        from qpu.service import COMPLETED, PENDING

        svc = self.service
        phase = rows["phase"]
        waiting = np.flatnonzero(phase == PHASE_QPU)
        if waiting.size:
            job = rows["q_job"]
            new = waiting[job[waiting] < 0]
            if new.size:
                arrive = rows["tx_start"][new] + rows["tx_time"][new]
                job[new] = svc.submit(
                    np.full(new.size, self._semantic_code),
                    rows["q_site"][new],
                    arrive,
                    deadline=rows["deadline"][new] if self.drop_expired else math.inf,
                )
        self.advance(t_known)
        if not waiting.size:
            return
        core = svc.core
        ids = rows["q_job"][waiting]
        status = core.column("status")[ids]
        decided = status != PENDING
        if not decided.any():
            return
        rows_done = waiting[decided]
        ids = ids[decided]
        status = status[decided]
        start = core.column("start")[ids]
        end = core.column("end")[ids]
        ok = status == COMPLETED
        served = rows_done[ok]
        rows["q_start"][served] = start[ok]
        rows["q_time"][served] = end[ok] - start[ok]
        rows["q_fid"][served] = svc.job_fidelity(ids[ok])
        phase[served] = PHASE_EDGE
        lost = rows_done[~ok]
        if lost.size:
            arrive = core.column("arrival")[ids[~ok]]
            when = np.where(np.isfinite(end[~ok]), end[~ok], arrive)
            rows["status"][lost] = 1
            rows["drop_time"][lost] = when
            phase[lost] = PHASE_DONE

    def advance(self, t_known: float) -> None:
        """Serve the QPUs up to ``t_known`` (and run what completed on the backend)."""
        self.service.advance(t_known)
        self._execute()

    def _execute(self) -> None:
        """Run the jobs completed since the last call on the computing backend."""
        if self.backend is None:
            return
        from qpu.service import COMPLETED, PENDING
        from qpu.templates import KINDS

        core = self.service.core
        status = core.column("status")
        n = len(core)
        lo = self._executed
        hi = lo
        while hi < n and status[hi] != PENDING:
            hi += 1
        if hi == lo:
            return
        self._executed = hi
        ids = np.arange(lo, hi)
        ids = ids[status[lo:hi] == COMPLETED]
        kinds = core.column("kind")[ids]
        for code in np.unique(kinds):
            batch = ids[kinds == code]
            kind = KINDS[int(code)]
            template = self.service.templates[kind]
            inputs = self._inputs.uniform(0.0, math.pi, (batch.size, template.n_inputs))
            self.service.execute(self.backend, batch, inputs, self._weights[kind])

    def drain(self) -> None:
        self.service.drain()
        self._execute()
        if self.decider is not None:
            self.decider.drain()

    # ------------------------------------------------------------------ results
    def table(self) -> dict[str, np.ndarray]:
        return self.service.table()

    def metrics(self) -> dict[str, float]:
        """Flat ``qpu_*`` figures for the run summary."""
        from qpu.templates import KINDS

        svc = self.service
        m = svc.metrics(self.horizon)
        out: dict[str, float] = {}
        for key, value in m.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    out[f"qpu_{key}_{k}"] = float(v)
            elif isinstance(value, list):
                arr = np.asarray(value, dtype=np.float64)
                if arr.size:
                    out[f"qpu_{key}_mean"] = float(arr.mean())
                    out[f"qpu_{key}_max"] = float(arr.max())
            else:
                out[f"qpu_{key}"] = float(value)
        core = svc.core
        kind = core.column("kind")
        status = core.column("status")
        start = core.column("start")
        end = core.column("end")
        arrival = core.column("arrival")
        sem = (kind == KINDS.index("semantic_coding")) & (status == 0) & (arrival >= self.warmup)
        out["wait_qpu_mean"] = float(np.mean(start[sem] - arrival[sem])) if sem.any() else math.nan
        out["qpu_time_mean"] = float(np.mean(end[sem] - start[sem])) if sem.any() else math.nan
        out["qpu_backend_failures"] = float(svc.failures)
        if self.decider is not None:
            c = self.decider.core
            done = (c.column("status") == 0) & (c.column("arrival") >= self.warmup)
            wait = c.column("end")[done] - c.column("arrival")[done]
            out["decision_latency_mean"] = float(wait.mean()) if wait.size else math.nan
            out["decision_latency_p95"] = float(np.percentile(wait, 95)) if wait.size else math.nan
            out["decision_latency_max"] = float(wait.max()) if wait.size else math.nan
            m = self.decider.metrics(self.horizon)
            out["decision_qpu_utilisation_mean"] = float(np.mean(m.get("utilisation", [0.0])))
            out["decision_jobs_lost"] = float(m.get("dropped", 0) + m.get("rejected", 0))
        return out

    def decision_table(self) -> dict[str, np.ndarray]:
        return self.decider.table()

"""The QPU service: circuit jobs queueing for the QPUs of their site.

Each site (an edge server or the cloud tier) has one or more QPUs sharing one queue; a
free QPU takes the next job (FIFO: earliest arrival; priority: lowest key, then earliest
arrival, then lowest job id). With batching, the QPU takes, together with that job, the
other waiting jobs of the same kind (same template: one submission with several bound
parameter sets) up to ``max_jobs``, and the batch lasts ``overhead + sum_j shots_j *
shot_time`` (:mod:`qpu.timing`). A job arriving while ``admission_limit`` jobs are waiting
at its site, and no QPU is free to take it at once, is rejected (with a limit of 0 a site
is a loss system); a job that would start after its deadline is dropped (both
counted). At equal times an arrival is handled before a start, so a job arriving exactly
when a QPU frees up can be taken at once (as in :func:`sim.kernels.serve_stage`).

Time advances in epochs, as in the engine: :meth:`QueueCore.advance` serves everything that
is decided before ``t_known`` (no job submitted later may arrive before it) and carries
the queue and the QPUs' free-at times to the next call, so the result does not depend on
how time was cut into epochs (the tests check this against one call and against an
event-by-event reference). The kernel reuses the priority heap and the grouping of
:mod:`sim.kernels`; the one-queue-per-stage :func:`~sim.kernels.serve_stage` itself does not
fit, as it knows no batches, admission limits or per-QPU service times.

:class:`QPUService` builds the core from a :class:`~qpu.config.QPUConfig` (devices, timing,
fidelity estimates, power) and adds the per-job table, the metrics and execution through a
backend (:mod:`qpu.backends`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from qpu.backends import JobResult, QPUBackend, QPUBackendError, QPUError
from qpu.config import QPUConfig
from qpu.templates import KINDS, Template, build_template
from sim.kernels import _gather, _group_by_queue, _pop, _push
from sim.seeds import SeedTree

COMPLETED = 0
DROPPED = 1
REJECTED = 2
PENDING = 3
FAILED = 4
STATUS_NAMES = ("completed", "dropped", "rejected", "pending", "failed")


@njit(cache=True, inline="always")
def _earliest(free, s, n):
    best = 0
    f = free[s, 0]
    for c in range(1, n):
        if free[s, c] < f:
            f = free[s, c]
            best = c
    return best, f


@njit(cache=True, inline="always")
def _idle(free, s, n, t):
    """QPUs of site ``s`` free at time ``t``."""
    count = 0
    for c in range(n):
        if free[s, c] <= t:
            count += 1
    return count


@njit(cache=True, inline="always")
def _first_before(key, arrival, a, b, fifo):
    """Whether waiting job ``a`` goes before ``b``."""
    if not fifo and key[a] != key[b]:
        return key[a] < key[b]
    if arrival[a] != arrival[b]:
        return arrival[a] < arrival[b]
    return a < b


@njit(cache=True)
def serve_qpus(
    idx,
    kind,
    site,
    arrival,
    key,
    deadline,
    shots,
    queued,
    status,
    start,
    end,
    qpu,
    batch,
    free,
    n_qpus,
    qpu_offset,
    now,
    busy,
    busy_total,
    overhead,
    shot_time,
    n_kinds,
    fifo,
    drop,
    cap,
    max_batch,
    t_known,
    horizon,
):
    """Serve the pending jobs ``idx`` (global indices) at their sites, in place.

    Per job (global arrays): ``kind``, ``site``, ``arrival``, ``key`` (lower first with
    priority), ``deadline``, ``shots``; state ``queued`` (admitted, waiting), ``status``
    (PENDING until decided), ``start``, ``end`` (QPU finish; the decision time for a drop
    or a rejection), ``qpu`` (global QPU index), ``batch`` (jobs in its batch). Per site:
    ``free`` (S, max QPUs) free-at times, ``n_qpus``, ``qpu_offset`` (first global QPU
    index), ``now`` (time of the last event). Per QPU: ``busy`` (inside [0, horizon]),
    ``busy_total``, ``overhead``; ``shot_time`` (kinds, QPUs). ``cap`` < 0: no admission
    limit. Returns the number of jobs decided.
    """
    n = idx.shape[0]
    if n == 0:
        return 0
    n_sites = free.shape[0]
    sites = _gather(idx, site)
    arr = _gather(idx, arrival)
    grouped, offsets = _group_by_queue(sites, arr, n_sites)
    decided = 0
    buf = np.empty(n, dtype=np.int64)
    koff = np.zeros(n_kinds + 1, dtype=np.int64)
    head = np.zeros(n_kinds, dtype=np.int64)
    size = np.zeros(n_kinds, dtype=np.int64)
    new = np.empty(n, dtype=np.int64)
    members = np.empty(n, dtype=np.int64)
    for s in range(n_sites):
        lo = offsets[s]
        hi = offsets[s + 1]
        if lo == hi:
            continue
        for k in range(n_kinds + 1):
            koff[k] = 0
        for j in range(lo, hi):
            koff[kind[idx[grouped[j]]] + 1] += 1
        for k in range(n_kinds):
            koff[k + 1] += koff[k]
            head[k] = 0
            size[k] = 0
        n_new = 0
        qlen = 0
        for j in range(lo, hi):
            i = idx[grouped[j]]
            if queued[i]:
                k = kind[i]
                region = buf[koff[k] : koff[k + 1]]
                if fifo:
                    region[size[k]] = i
                    size[k] += 1
                else:
                    size[k] = _push(region, size[k], i, key, arrival)
                qlen += 1
            else:
                new[n_new] = i
                n_new += 1
        ptr = 0
        nq = n_qpus[s]
        while True:
            c, f = _earliest(free, s, nq)
            t_start = max(f, now[s]) if qlen > 0 else np.inf
            t_arr = arrival[new[ptr]] if ptr < n_new else np.inf
            if t_arr <= t_start:
                if t_arr >= t_known:
                    break
                i = new[ptr]
                ptr += 1
                if t_arr > now[s]:
                    now[s] = t_arr
                if cap >= 0 and qlen >= cap and _idle(free, s, nq, t_arr) <= qlen:
                    status[i] = 2  # REJECTED
                    end[i] = t_arr
                    decided += 1
                    continue
                k = kind[i]
                region = buf[koff[k] : koff[k + 1]]
                if fifo:
                    region[head[k] + size[k]] = i
                    size[k] += 1
                else:
                    size[k] = _push(region, size[k], i, key, arrival)
                queued[i] = True
                qlen += 1
                continue
            if t_start >= t_known:
                break
            tau = t_start
            now[s] = tau
            # the kind whose first waiting job goes first
            best_k = -1
            best_i = -1
            for k in range(n_kinds):
                if size[k] == 0:
                    continue
                cand = buf[koff[k] + head[k]] if fifo else buf[koff[k]]
                if best_k < 0 or _first_before(key, arrival, cand, best_i, fifo):
                    best_k = k
                    best_i = cand
            k = best_k
            region = buf[koff[k] : koff[k + 1]]
            g = qpu_offset[s] + c
            taken = 0
            total_shots = 0
            while size[k] > 0 and taken < max_batch:
                if fifo:
                    i = region[head[k]]
                    head[k] += 1
                    size[k] -= 1
                else:
                    i, size[k] = _pop(region, size[k], key, arrival)
                qlen -= 1
                queued[i] = False
                decided += 1
                if drop and tau > deadline[i]:
                    status[i] = 1  # DROPPED
                    end[i] = tau
                    continue
                members[taken] = i
                total_shots += shots[i]
                taken += 1
            if taken == 0:
                continue
            finish = tau + overhead[g] + total_shots * shot_time[k, g]
            for j in range(taken):
                i = members[j]
                status[i] = 0  # COMPLETED
                start[i] = tau
                end[i] = finish
                qpu[i] = g
                batch[i] = taken
            free[s, c] = finish
            a = min(tau, horizon)
            b = min(finish, horizon)
            busy[g] += b - a
            busy_total[g] += finish - tau
    return decided


@njit(cache=True)
def _check_jobs(kind, site, arrival, key, deadline, shots, lo, hi, n_kinds, n_sites, t_min):
    """0 if jobs ``lo:hi`` are valid, else the code of the first problem found."""
    for i in range(lo, hi):
        if kind[i] < 0 or kind[i] >= n_kinds:
            return 1
        if site[i] < 0 or site[i] >= n_sites:
            return 2
        if not np.isfinite(arrival[i]) or arrival[i] < t_min:
            return 3
        if np.isnan(deadline[i]) or np.isnan(key[i]):
            return 4
        if shots[i] < 0:
            return 5
    return 0


@njit(cache=True)
def _advance(
    first_open,
    n_jobs,
    kind,
    site,
    arrival,
    key,
    deadline,
    shots,
    queued,
    status,
    start,
    end,
    qpu,
    batch,
    free,
    n_qpus,
    qpu_offset,
    now,
    busy,
    busy_total,
    overhead,
    shot_time,
    n_kinds,
    fifo,
    drop,
    cap,
    max_batch,
    t_known,
    horizon,
):
    """:func:`serve_qpus` on the pending jobs from ``first_open`` on; returns the ids
    decided and the new ``first_open`` (every job before it is decided)."""
    count = 0
    for i in range(first_open, n_jobs):
        if status[i] == 3:
            count += 1
    pending = np.empty(count, dtype=np.int64)
    count = 0
    for i in range(first_open, n_jobs):
        if status[i] == 3:
            pending[count] = i
            count += 1
    serve_qpus(
        pending,
        kind,
        site,
        arrival,
        key,
        deadline,
        shots,
        queued,
        status,
        start,
        end,
        qpu,
        batch,
        free,
        n_qpus,
        qpu_offset,
        now,
        busy,
        busy_total,
        overhead,
        shot_time,
        n_kinds,
        fifo,
        drop,
        cap,
        max_batch,
        t_known,
        horizon,
    )
    n_decided = 0
    new_first = n_jobs
    for j in range(count):
        i = pending[j]
        if status[i] != 3:
            n_decided += 1
        elif new_first == n_jobs:
            new_first = i
    decided = np.empty(n_decided, dtype=np.int64)
    n_decided = 0
    for j in range(count):
        i = pending[j]
        if status[i] != 3:
            decided[n_decided] = i
            n_decided += 1
    return decided, new_first


_JOB_ERRORS = {
    1: "job kinds must be in 0..{kinds}",
    2: "job sites must be in 0..{sites}",
    3: "job arrivals must be finite and >= {t_min} (the time already served)",
    4: "job deadlines and priorities must not be NaN",
    5: "shots must be >= 0",
}


class QueueCore:
    """The queues and QPUs of all sites, with job storage; see :func:`serve_qpus`.

    ``qpus_per_site`` (S,); ``overhead`` (Q,) per QPU [s]; ``shot_time`` (K, Q) per kind
    and QPU [s] (one shot plus the repetition delay). QPUs are numbered site by site.
    """

    def __init__(
        self,
        qpus_per_site: Sequence[int],
        overhead: np.ndarray,
        shot_time: np.ndarray,
        *,
        fifo: bool = True,
        drop_expired: bool = True,
        admission_limit: int | None = None,
        max_batch: int = 1,
        horizon: float = math.inf,
    ) -> None:
        n = np.asarray(qpus_per_site, dtype=np.int64)
        if n.ndim != 1 or n.size == 0 or (n < 1).any():
            raise QPUError(f"every site needs at least one QPU, got {list(n)}")
        self.n_qpus = n
        self.qpu_offset = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
        self.qpu_site = np.repeat(np.arange(n.size), n)
        q = int(n.sum())
        self.overhead = np.ascontiguousarray(overhead, dtype=np.float64)
        self.shot_time = np.ascontiguousarray(shot_time, dtype=np.float64)
        if self.overhead.shape != (q,) or self.shot_time.ndim != 2 or self.shot_time.shape[1] != q:
            raise QPUError(f"overhead must be ({q},) and shot_time (kinds, {q})")
        if (self.overhead < 0).any() or (self.shot_time < 0).any():
            raise QPUError("overheads and shot times must be >= 0")
        if max_batch < 1:
            raise QPUError(f"max_batch must be >= 1, got {max_batch}")
        self.n_kinds = self.shot_time.shape[0]
        self.fifo = bool(fifo)
        self.drop = bool(drop_expired)
        self.cap = -1 if admission_limit is None else int(admission_limit)
        self.max_batch = int(max_batch)
        self.horizon = float(horizon)
        self.free = np.zeros((n.size, int(n.max())))
        self.now = np.zeros(n.size)
        self.busy = np.zeros(q)
        self.busy_total = np.zeros(q)
        self.t_known = -math.inf
        self._n = 0
        self._first_open = 0
        cap = 1024
        self._kind = np.empty(cap, dtype=np.int64)
        self._site = np.empty(cap, dtype=np.int64)
        self._arrival = np.empty(cap)
        self._key = np.empty(cap)
        self._deadline = np.empty(cap)
        self._shots = np.empty(cap, dtype=np.int64)
        self._queued = np.empty(cap, dtype=np.bool_)
        self._status = np.empty(cap, dtype=np.int8)
        self._start = np.empty(cap)
        self._end = np.empty(cap)
        self._qpu = np.empty(cap, dtype=np.int64)
        self._batch = np.empty(cap, dtype=np.int64)

    _COLS = (
        "_kind",
        "_site",
        "_arrival",
        "_key",
        "_deadline",
        "_shots",
        "_queued",
        "_status",
        "_start",
        "_end",
        "_qpu",
        "_batch",
    )

    def __len__(self) -> int:
        return self._n

    def _grow(self, need: int) -> None:
        cap = self._kind.shape[0]
        if need <= cap:
            return
        new_cap = max(need, 2 * cap)
        for name in self._COLS:
            old = getattr(self, name)
            arr = np.empty(new_cap, dtype=old.dtype)
            arr[: self._n] = old[: self._n]
            setattr(self, name, arr)

    def submit(
        self,
        kind: np.ndarray,
        site: np.ndarray,
        arrival: np.ndarray,
        *,
        key: np.ndarray | float = 0.0,
        deadline: np.ndarray | float = math.inf,
        shots: np.ndarray | int = 1,
    ) -> np.ndarray:
        """Add jobs; returns their ids (consecutive). Arrivals must not precede the
        ``t_known`` of the last :meth:`advance` (those jobs would already have been due)."""
        kind = np.asarray(kind, dtype=np.int64).ravel()
        m = kind.size
        lo = self._n
        hi = lo + m
        self._grow(hi)
        try:
            self._kind[lo:hi] = kind
            self._site[lo:hi] = site
            self._arrival[lo:hi] = arrival
            self._key[lo:hi] = key
            self._deadline[lo:hi] = deadline
            self._shots[lo:hi] = shots
        except ValueError as exc:
            raise QPUError(f"job columns do not match {m} jobs: {exc}") from exc
        t_min = max(self.t_known, 0.0)
        error = _check_jobs(
            self._kind,
            self._site,
            self._arrival,
            self._key,
            self._deadline,
            self._shots,
            lo,
            hi,
            self.n_kinds,
            self.n_qpus.size,
            t_min,
        )
        if error:
            raise QPUError(
                _JOB_ERRORS[error].format(
                    kinds=self.n_kinds - 1, sites=self.n_qpus.size - 1, t_min=t_min
                )
            )
        self._queued[lo:hi] = False
        self._status[lo:hi] = PENDING
        self._start[lo:hi] = np.nan
        self._end[lo:hi] = np.nan
        self._qpu[lo:hi] = -1
        self._batch[lo:hi] = 0
        self._n = hi
        return np.arange(lo, hi)

    def advance(self, t_known: float) -> np.ndarray:
        """Serve everything decided before ``t_known``; returns the ids decided now."""
        if t_known < self.t_known:
            raise QPUError(f"time runs forward: t_known {t_known} < {self.t_known}")
        self.t_known = float(t_known)
        decided, self._first_open = _advance(
            self._first_open,
            self._n,
            self._kind,
            self._site,
            self._arrival,
            self._key,
            self._deadline,
            self._shots,
            self._queued,
            self._status,
            self._start,
            self._end,
            self._qpu,
            self._batch,
            self.free,
            self.n_qpus,
            self.qpu_offset,
            self.now,
            self.busy,
            self.busy_total,
            self.overhead,
            self.shot_time,
            self.n_kinds,
            self.fifo,
            self.drop,
            self.cap,
            self.max_batch,
            self.t_known,
            self.horizon,
        )
        return decided

    def drain(self) -> np.ndarray:
        """Serve every job submitted so far to the end."""
        return self.advance(math.inf)

    def column(self, name: str) -> np.ndarray:
        """A view of one job column: kind, site, arrival, key, deadline, shots, status,
        start, end, qpu, batch."""
        return getattr(self, "_" + name)[: self._n]


# --------------------------------------------------------------------------- the service
@dataclass(frozen=True)
class QPUUnit:
    """One QPU of the service."""

    index: int
    site: int
    device: str
    power: float
    idle_power: float


class QPUService:
    """The QPU service of a scenario: sites, QPUs, timing, fidelity, energy, job table.

    ``n_servers`` (when known) checks the edge sites' server indices. Sites are numbered as
    in ``config.sites``; :attr:`site_of_server` maps an edge server to its site (-1: none)
    and :attr:`cloud_sites` lists the cloud sites. ``horizon`` bounds utilisation.
    """

    def __init__(
        self,
        config: QPUConfig,
        *,
        n_servers: int | None = None,
        seeds: SeedTree | None = None,
        horizon: float = math.inf,
        kinds: Sequence[str] | None = None,
    ) -> None:
        from qpu.timing import ClopsTiming, TargetTiming

        if n_servers is not None:
            config.check_servers(n_servers)
        self.config = config
        self.seeds = seeds or SeedTree(0)
        self.kinds = list(kinds) if kinds is not None else config.enabled_kinds
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise QPUError(f"unknown job kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        self.templates: dict[str, Template] = {
            k: build_template(k, config.size(k), **config.jobs[k].options) for k in KINDS
        }
        self.units: list[QPUUnit] = []
        for s, site in enumerate(config.sites):
            dev = site.device or config.device
            for _ in range(site.qpus):
                self.units.append(
                    QPUUnit(
                        len(self.units),
                        s,
                        dev,
                        config.power if site.power is None else site.power,
                        config.idle_power if site.idle_power is None else site.idle_power,
                    )
                )
        n_q = len(self.units)
        shot_time = np.full((len(KINDS), n_q), np.nan)
        self.fidelity = np.full((len(KINDS), n_q), np.nan)
        self.timings: dict[tuple[str, str], object] = {}
        models: dict[str, object] = {}
        for unit in self.units:
            if unit.device not in models:
                if config.timing is not None:
                    models[unit.device] = ClopsTiming(config.timing.clops, overhead=0.0)
                else:
                    models[unit.device] = TargetTiming(unit.device, rep_delay=config.rep_delay)
            model = models[unit.device]
            for k in self.kinds:
                kk = KINDS.index(k)
                t = model.timing(self.templates[k])  # type: ignore[attr-defined]
                self.timings[(k, unit.device)] = t
                shot_time[kk, unit.index] = t.shot_time
                if config.timing is None:
                    from qpu.fidelity import template_fidelity

                    self.fidelity[kk, unit.index] = template_fidelity(
                        self.templates[k], unit.device
                    ).total
        shot_time = np.where(np.isnan(shot_time), 0.0, shot_time)
        self.core = QueueCore(
            [s.qpus for s in config.sites],
            np.full(n_q, config.overhead),
            shot_time,
            fifo=config.queue == "fifo",
            drop_expired=config.drop_expired,
            admission_limit=config.admission_limit,
            max_batch=config.batching.max_jobs if config.batching.enabled else 1,
            horizon=horizon,
        )
        self.horizon = horizon
        self.site_of_server = np.full(n_servers or 0, -1, dtype=np.int64)
        self.cloud_sites = [i for i, s in enumerate(config.sites) if s.location == "cloud"]
        for i, s in enumerate(config.sites):
            if s.server is not None and s.server < self.site_of_server.size:
                self.site_of_server[s.server] = i
        self._backend_job: dict[int, str] = {}
        self._measured: dict[int, float] = {}  # job id -> measured fidelity (noisy runs)
        self.failures = 0
        self._enabled = np.isin(np.arange(len(KINDS)), self.kind_codes(self.kinds))
        self._priority = np.array([config.jobs[k].priority for k in KINDS])
        self._shots = np.array([config.shots_of(k) for k in KINDS], dtype=np.int64)
        self._deadline = config.deadline if config.deadline is not None else math.inf

    # ------------------------------------------------------------------ jobs
    def kind_codes(self, kind: str | Sequence[str] | np.ndarray) -> np.ndarray:
        """Codes (indices in :data:`~qpu.templates.KINDS`) of enabled kinds."""
        names = [kind] if isinstance(kind, str) else list(kind)
        out = np.empty(len(names), dtype=np.int64)
        for j, name in enumerate(names):
            if name not in self.kinds:
                raise QPUError(
                    f"job kind {name!r} is not enabled; enabled: {', '.join(self.kinds) or 'none'}"
                )
            out[j] = KINDS.index(name)
        return out

    def submit(
        self,
        kind: np.ndarray,
        site: np.ndarray,
        submit: np.ndarray,
        *,
        priority: np.ndarray | float | None = None,
        deadline: np.ndarray | float | None = None,
        shots: np.ndarray | int | None = None,
    ) -> np.ndarray:
        """Add jobs (``kind`` as codes from :meth:`kind_codes`); defaults for priority,
        deadline (relative, from ``qpu.deadline``) and shots come from the config. Higher
        priority is served first under ``queue: priority``. Returns the job ids."""
        kind = np.asarray(kind, dtype=np.int64).ravel()
        if kind.size and (kind.min() < 0 or kind.max() >= len(KINDS)):
            raise QPUError(f"job kind codes must be in 0..{len(KINDS) - 1}")
        if not self._enabled[kind].all():
            self.kind_codes([KINDS[k] for k in kind[~self._enabled[kind]]])  # names them
        submit = np.asarray(submit, dtype=np.float64)
        if priority is None:
            priority = self._priority[kind]
        if shots is None:
            shots = self._shots[kind]
        if deadline is None:
            deadline = submit + self._deadline
        return self.core.submit(
            kind,
            site,
            submit,
            key=-np.asarray(priority, dtype=np.float64),
            deadline=deadline,
            shots=shots,
        )

    def job_time(self, kind: np.ndarray, site: np.ndarray) -> np.ndarray:
        """Execution time of single (unbatched) jobs with the configured shots at the first
        QPU of their site [s]: the service time a plain queue of the engine can use."""
        kind = np.asarray(kind, dtype=np.int64)
        g = self.core.qpu_offset[np.asarray(site, dtype=np.int64)]
        return self.core.overhead[g] + self._shots[kind] * self.core.shot_time[kind, g]

    def advance(self, t_known: float) -> np.ndarray:
        """Serve everything decided before ``t_known``; the ids decided now."""
        return self.core.advance(t_known)

    def serve_epoch(
        self,
        kind: np.ndarray,
        site: np.ndarray,
        submit: np.ndarray,
        t_known: float,
        *,
        priority: np.ndarray | float | None = None,
        deadline: np.ndarray | float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One epoch: submit its jobs, serve to ``t_known``; returns ``(ids, start, end,
        status)`` of the epoch's jobs (status PENDING: decided in a later epoch; the ids
        returned by :meth:`advance` then say which)."""
        ids = self.submit(kind, site, submit, priority=priority, deadline=deadline)
        self.advance(t_known)
        c = self.core
        return ids, c.column("start")[ids], c.column("end")[ids], c.column("status")[ids]

    def drain(self) -> np.ndarray:
        return self.core.drain()

    # ------------------------------------------------------------------ execution
    def execute(
        self,
        backend: QPUBackend,
        ids: np.ndarray,
        inputs: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> JobResult | None:
        """Run jobs ``ids`` (one kind) on ``backend`` as one submission; record the
        backend's job id. A backend failure marks the jobs FAILED, is counted in
        :attr:`failures` and returns None: the simulation goes on."""
        ids = np.asarray(ids, dtype=np.int64)
        kinds = np.unique(self.core.column("kind")[ids])
        if kinds.size != 1:
            raise QPUError("execute runs jobs of one kind at a time")
        kind = KINDS[int(kinds[0])]
        shots = int(self.core.column("shots")[ids].max()) if ids.size else 1
        try:
            result = backend.run(self.templates[kind], inputs, weights, shots=max(shots, 1))
        except QPUBackendError:
            self.core.column("status")[ids] = FAILED
            self.failures += 1
            return None
        if result.job_id is not None:
            for i in ids:
                self._backend_job[int(i)] = result.job_id
        if result.fidelity is not None:
            for i, f in zip(ids, np.asarray(result.fidelity, dtype=np.float64), strict=True):
                self._measured[int(i)] = float(f)
        return result

    # ------------------------------------------------------------------ results
    def job_fidelity(self, ids: np.ndarray) -> np.ndarray:
        """Fidelity of completed jobs ``ids``: measured (noisy backends) where it was, else the
        calibrated estimate of their kind on their QPU (NaN with CLOPS timing)."""
        ids = np.asarray(ids, dtype=np.int64)
        c = self.core
        out = self.fidelity[c.column("kind")[ids], c.column("qpu")[ids]].astype(np.float64)
        if self._measured:
            for j, i in enumerate(ids):
                m = self._measured.get(int(i))
                if m is not None:
                    out[j] = m
        return out

    def table(self) -> dict[str, np.ndarray]:
        """The per-job table as columns (ready for Parquet)."""
        c = self.core
        n = len(c)
        kind = c.column("kind")
        qpu = c.column("qpu")
        start = c.column("start")
        end = c.column("end")
        submit = c.column("arrival")
        status = c.column("status")
        served = status == COMPLETED
        fidelity = np.full(n, np.nan)
        fidelity[served] = self.fidelity[kind[served], qpu[served]]
        execution = np.where(served, end - start, np.nan)
        return {
            "job_id": np.arange(n, dtype=np.int64),
            "kind": np.asarray(KINDS)[kind] if n else np.array([], dtype=str),
            "site": c.column("site").astype(np.int32),
            "qpu": qpu.astype(np.int32),
            "submit": submit.copy(),
            "start": start.copy(),
            "end": end.copy(),
            "wait": np.where(served, start - submit, np.nan),
            "execution": execution,
            "shots": c.column("shots").copy(),
            "batch": c.column("batch").astype(np.int32),
            "fidelity": fidelity,
            "fidelity_measured": np.array([self._measured.get(i, np.nan) for i in range(n)])
            if self._measured
            else np.full(n, np.nan),
            "deadline": c.column("deadline").copy(),
            "priority": -c.column("key"),
            "status": status.copy(),
            "backend_job": np.array([self._backend_job.get(i, "") for i in range(n)], dtype=object)
            if self._backend_job
            else np.full(n, "", dtype=object),
        }

    def metrics(self, horizon: float | None = None) -> dict[str, object]:
        """Utilisation, energy, counts and wait percentiles (see :func:`queue_metrics`)."""
        horizon = self.horizon if horizon is None else horizon
        return queue_metrics(self.core, horizon, self.units)


def queue_length(core: QueueCore, site: int) -> tuple[np.ndarray, np.ndarray]:
    """The number of jobs waiting at ``site`` as a step function: ``(times, length)``,
    ``length[j]`` holding from ``times[j]`` on. Admitted jobs wait from their arrival to
    their start (or their drop)."""
    return waiting_steps(
        core.column("site") == site,
        core.column("status"),
        core.column("arrival"),
        core.column("start"),
        core.column("end"),
    )


def waiting_steps(
    mask: np.ndarray, status: np.ndarray, arrival: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`queue_length` of the jobs selected by ``mask``, from job columns (as in the
    per-job table: ``arrival`` is its ``submit``)."""
    status = status[mask]
    admitted = status != REJECTED
    arrive = arrival[mask][admitted]
    st = status[admitted]
    leave = np.where(st == COMPLETED, start[mask][admitted], end[mask][admitted])
    leave = np.where(st == PENDING, np.inf, leave)
    times = np.concatenate([arrive, leave])
    step = np.concatenate([np.ones(arrive.size, np.int64), -np.ones(leave.size, np.int64)])
    order = np.lexsort((-step, times))  # at equal times, count the leave after the arrival
    times = times[order]
    length = np.cumsum(step[order])
    finite = np.isfinite(times)
    return times[finite], length[finite]


def queue_metrics(core: QueueCore, horizon: float, units: Sequence[QPUUnit] | None = None) -> dict:
    """Per QPU: utilisation (busy share of [0, horizon]), busy time, energy (power x busy
    time + idle power x idle time within the horizon, when ``units`` give powers); per
    site: time-average queue length over [0, horizon]; counts per status; wait
    percentiles (50, 90, 95, 99) of completed jobs."""
    status = core.column("status")
    served = status == COMPLETED
    wait = (core.column("start") - core.column("arrival"))[served]
    pct = (
        dict(zip(("p50", "p90", "p95", "p99"), np.percentile(wait, [50, 90, 95, 99]), strict=True))
        if wait.size
        else {}
    )
    out: dict[str, object] = {
        "jobs": int(status.size),
        **{name: int((status == code).sum()) for code, name in enumerate(STATUS_NAMES)},
        "wait_mean": float(wait.mean()) if wait.size else math.nan,
        "wait_percentiles": {k: float(v) for k, v in pct.items()},
    }
    if math.isfinite(horizon) and horizon > 0:
        out["utilisation"] = (core.busy / horizon).tolist()
        mean_len = []
        for s in range(core.n_qpus.size):
            times, length = queue_length(core, s)
            if times.size == 0:
                mean_len.append(0.0)
                continue
            t = np.clip(np.append(times, horizon), 0.0, horizon)
            mean_len.append(float(np.sum(length * np.diff(t)) / horizon))
        out["queue_length_mean"] = mean_len
    out["busy_time"] = core.busy_total.tolist()
    if units is not None:
        power = np.array([u.power for u in units])
        idle = np.array([u.idle_power for u in units])
        span = horizon if math.isfinite(horizon) else float(core.busy_total.max(initial=0.0))
        energy = power * core.busy_total + idle * np.maximum(0.0, span - core.busy)
        out["energy"] = energy.tolist()
        out["energy_total"] = float(energy.sum())
    return out

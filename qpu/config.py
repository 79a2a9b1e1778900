"""The ``qpu:`` section of a scenario: where the QPUs are, what they run and how they serve.

Same conventions as :mod:`sim.config`: strict models (unknown keys rejected), quantities
with units converted to SI at load time (``250 us``, ``10 ms``, ``25 kW``). Example::

    qpu:
      backend: timing-only          # exact | aer | aer-noisy:<device> | ibm:<backend>
      device: fake_torino           # calibrated timing and fidelity; or timing: {clops: ...}
      shots: 1024
      rep_delay: 250 us
      overhead: 10 ms               # per submitted job (a batch pays it once)
      queue: fifo                   # or priority
      batching: {enabled: true, max_jobs: 8}
      admission_limit: 100          # waiting jobs per site; arrivals beyond are rejected
      sites:
        - {location: edge, server: 0, qpus: 1, power: 25 kW}
        - {location: cloud, qpus: 4, device: fake_fez}
      policy_site: {location: edge, server: 0, qpus: 1}   # decisions of quantum policies
      jobs:
        semantic_coding: {enabled: true, size: 4}
        policy_inference: {enabled: true, shots: 256, priority: 1}
        federated_aggregation: {enabled: true, period: 10 s}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from qpu.kinds import DEFAULT_SIZES, KINDS
from sim.errors import ScenarioError
from sim.fields import Seconds, Strict, Watts


class Clops(Strict):
    """Throughput-only timing: the device is known by its CLOPS figure alone."""

    clops: float = Field(gt=0, description="circuit layer operations per second")


class Batching(Strict):
    enabled: bool = Field(False, description="serve queued jobs of one template as one batch")
    max_jobs: int = Field(16, ge=1, le=100_000, description="jobs per batch at most")


class QPUSite(Strict):
    """A place with QPUs: at an edge server or in the cloud tier."""

    location: Literal["edge", "cloud"] = "edge"
    server: int | None = Field(None, ge=0, description="edge server index (location: edge)")
    qpus: int = Field(1, ge=1, le=1024, description="QPUs at the site, sharing one queue")
    device: str | None = Field(None, description="device of these QPUs; default qpu.device")
    power: Watts | None = Field(None, ge=0, description="wall-plug power while busy [W]")
    idle_power: Watts | None = Field(None, ge=0, description="wall-plug power while idle [W]")

    @model_validator(mode="after")
    def _where(self) -> QPUSite:
        if self.location == "edge" and self.server is None:
            raise ValueError("an edge site needs 'server' (the index of its edge server)")
        if self.location == "cloud" and self.server is not None:
            raise ValueError("a cloud site has no 'server'")
        return self


class JobKind(Strict):
    """One kind of circuit job."""

    enabled: bool = False
    size: int | None = Field(
        None, ge=1, le=32, description="qubits (per register for the two-register kinds)"
    )
    shots: int | None = Field(None, ge=1, le=10_000_000, description="default: qpu.shots")
    priority: float = Field(
        0.0, description="queue priority with queue: priority; higher is served first"
    )
    period: Seconds | None = Field(
        None, gt=0, description="federated_aggregation: time between rounds [s]"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="template options, e.g. layers, gamma (policy)"
    )


def _kinds_default() -> dict[str, JobKind]:
    return {k: JobKind() for k in KINDS}


class QPUConfig(Strict):
    """The QPU co-processor of a scenario."""

    backend: str = Field(
        "timing-only",
        description="timing-only | exact | aer | aer-noisy:<device> | ibm:<backend>",
    )
    device: str = Field("fake_torino", description="calibrated fake device for timing/fidelity")
    timing: Clops | None = Field(
        None, description="CLOPS-only timing instead of the device's calibrated durations"
    )
    shots: int = Field(1024, ge=1, le=10_000_000)
    rep_delay: Seconds = Field(250e-6, ge=0, le=1e-2, description="delay between shots [s]")
    overhead: Seconds = Field(0.0, ge=0, description="fixed time per submitted job [s]")
    queue: Literal["fifo", "priority"] = "fifo"
    batching: Batching = Field(default_factory=Batching)
    admission_limit: int | None = Field(
        None,
        ge=0,
        description="waiting jobs per site: an arrival that would wait while this many "
        "wait is rejected (0: a loss system); unset: no limit",
    )
    deadline: Seconds | None = Field(
        None, gt=0, description="relative deadline of QPU-only jobs [s]; unset: none"
    )
    drop_expired: bool = Field(True, description="drop a job that would start after its deadline")
    power: Watts = Field(25e3, ge=0, description="default wall-plug power of a busy QPU [W]")
    idle_power: Watts = Field(0.0, ge=0, description="default wall-plug power of an idle QPU")
    sites: list[QPUSite] = Field(default_factory=lambda: [QPUSite(location="cloud")])
    policy_site: QPUSite | None = Field(
        None,
        description="QPUs that run the decisions of quantum policies (policy_inference "
        "jobs), apart from the sites' QPUs; unset: decisions take no QPU time",
    )
    jobs: dict[str, JobKind] = Field(default_factory=_kinds_default)

    @field_validator("jobs")
    @classmethod
    def _kinds(cls, v: dict[str, JobKind]) -> dict[str, JobKind]:
        unknown = set(v) - set(KINDS)
        if unknown:
            raise ValueError(
                f"unknown job kind(s) {', '.join(sorted(unknown))}; allowed: {', '.join(KINDS)}"
            )
        return {k: v.get(k, JobKind()) for k in KINDS}

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        head, _, arg = v.strip().partition(":")
        ok = (head in ("timing-only", "exact", "aer") and not arg) or (
            head in ("aer-noisy", "ibm") and arg
        )
        if not ok:
            raise ValueError(
                f"unknown backend {v!r}; allowed: timing-only, exact, aer, "
                f"aer-noisy:<device>, ibm:<backend>"
            )
        return v.strip()

    @model_validator(mode="after")
    def _sites(self) -> QPUConfig:
        if not self.sites:
            raise ValueError("'sites' needs at least one site")
        if self.policy_site is not None and not self.jobs["policy_inference"].enabled:
            raise ValueError(
                "'policy_site' is set but jobs.policy_inference is not enabled; enable it "
                "or remove policy_site"
            )
        seen: set[int] = set()
        for s in self.sites:
            if s.server is not None:
                if s.server in seen:
                    raise ValueError(f"two sites at edge server {s.server}: give one 'qpus' count")
                seen.add(s.server)
        return self

    def size(self, kind: str) -> int:
        v = self.jobs[kind].size
        return DEFAULT_SIZES[kind] if v is None else v

    def shots_of(self, kind: str) -> int:
        v = self.jobs[kind].shots
        return self.shots if v is None else v

    @property
    def enabled_kinds(self) -> list[str]:
        return [k for k in KINDS if self.jobs[k].enabled]

    def check_servers(self, n_servers: int) -> None:
        """Raise :class:`~sim.errors.ScenarioError` for an edge site past the last server."""
        for i, s in enumerate(self.sites):
            if s.server is not None and s.server >= n_servers:
                raise ScenarioError(
                    f"there are {n_servers} edge servers",
                    key=f"qpu.sites[{i}].server",
                    value=s.server,
                    allowed=f"0..{n_servers - 1}",
                )

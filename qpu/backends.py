"""Execution backends: what a circuit job computes, behind one interface.

Chosen by a string (the ``qpu.backend`` key of a scenario), see :func:`make_backend`:

``timing-only``
    Nothing is computed: the job only occupies its QPU (see :mod:`qpu.service`).
``exact``
    Exact expectation values, no shots: the compiled fast path of
    :mod:`qpu.statevector` for the policy circuit, Qiskit's ``Statevector`` otherwise.
``aer``
    Shots on the ideal Aer simulator (``qiskit_aer.primitives.SamplerV2``).
``aer-noisy:<device>``
    Shots on Aer with the noise model of a calibrated fake device (e.g.
    ``aer-noisy:fake_sherbrooke``); the circuit is transpiled for that device, and each
    result carries its measured fidelity against the exact distribution.
``ibm:<backend>``
    IBM Quantum hardware through ``qiskit_ibm_runtime.SamplerV2`` with the account saved
    by ``QiskitRuntimeService.save_account``. A fake device name (``ibm:fake_torino``)
    runs qiskit-ibm-runtime's local testing mode on that fake backend instead: the same
    code path, no account, no network.

Every backend samples the measured template (every qubit measured) and turns the counts into
the template's expectation values (all observables are products of Z and I, so they are
read from bitstring parities). Shot noise is reproducible: each submission draws its
simulator seed from the ``qpu_shots`` stream of the run's :class:`~sim.seeds.SeedTree`.

Failures raise :class:`QPUBackendError` (a :class:`~sim.errors.SimError`) with the original
exception as ``__cause__``. Transient ones (network, timeouts, HTTP 408/429/5xx) are retried
with bounded exponential backoff (:class:`RetryPolicy`; the sleep is injectable). Job ids
are returned in every :class:`JobResult`.
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qpu.fidelity import hellinger_fidelity
from qpu.templates import Template
from sim.errors import SimError
from sim.seeds import SeedTree

BACKEND_IDS = ("timing-only", "exact", "aer", "aer-noisy:<device>", "ibm:<backend>")


class QPUError(SimError):
    """A QPU request that cannot be served (bad backend string, bad input)."""


class QPUBackendError(QPUError):
    """An execution backend failed; ``__cause__`` is the backend's own exception."""

    def __init__(self, message: str, *, backend: str, attempts: int, transient: bool) -> None:
        super().__init__(message)
        self.backend = backend
        self.attempts = attempts
        self.transient = transient


class TransientBackendError(Exception):
    """Raised by a backend (or a test) for a failure that a retry may cure."""


_TRANSIENT_STATUS = {-1, 408, 429, 500, 502, 503, 504}


def is_transient(exc: BaseException) -> bool:
    """Whether a retry may cure ``exc``: network errors, timeouts, HTTP 408/429/5xx."""
    if isinstance(exc, TransientBackendError | ConnectionError | TimeoutError):
        return True
    try:
        from qiskit_ibm_runtime.api.exceptions import RequestsApiError
        from qiskit_ibm_runtime.exceptions import JobTimeoutError
    except ImportError:  # pragma: no cover - qiskit-ibm-runtime is a dependency
        return False
    if isinstance(exc, JobTimeoutError):
        return True
    return isinstance(exc, RequestsApiError) and exc.status_code in _TRANSIENT_STATUS


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: attempt ``k`` (from 1) failing transiently waits
    ``min(max_delay, base_delay * factor^(k-1))`` before the next, up to ``max_attempts``."""

    max_attempts: int = 4
    base_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise QPUError(f"retry max_attempts must be >= 1, got {self.max_attempts}")
        if not (self.base_delay >= 0 and self.factor >= 1 and self.max_delay >= 0):
            raise QPUError("retry delays must be >= 0 and the factor >= 1")

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * self.factor ** (attempt - 1))


def call_with_retries(
    fn: Callable[[], Any],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    backend: str,
    what: str,
) -> tuple[Any, int]:
    """``(fn(), attempts)``, retrying transient failures (see :class:`RetryPolicy`)."""
    attempt = 1
    while True:
        try:
            return fn(), attempt
        except Exception as exc:
            transient = is_transient(exc)
            if not transient:
                raise QPUBackendError(
                    f"{backend}: {what} failed: {type(exc).__name__}: {exc}",
                    backend=backend,
                    attempts=attempt,
                    transient=False,
                ) from exc
            if attempt >= policy.max_attempts:
                raise QPUBackendError(
                    f"{backend}: {what} failed {attempt} times (transient); last: "
                    f"{type(exc).__name__}: {exc}",
                    backend=backend,
                    attempts=attempt,
                    transient=True,
                ) from exc
            sleep(policy.delay(attempt))
            attempt += 1


# --------------------------------------------------------------------------- results
@dataclass
class JobResult:
    """What one submission (one template, ``B`` parameter sets) returned."""

    kind: str
    backend: str
    values: np.ndarray | None
    """expectation values (B, n_observables); None in timing-only mode"""
    counts: list[dict[str, int]] | None = None
    """per parameter set; None without shots"""
    shots: int = 0
    job_id: str | None = None
    attempts: int = 1
    fidelity: np.ndarray | None = None
    """measured Hellinger fidelity per parameter set (noisy backends only)"""
    wall_time: float = 0.0
    """seconds the backend call took (measured)"""
    extra: dict[str, Any] = field(default_factory=dict)


def z_signs(template: Template) -> np.ndarray:
    """(2^n, n_observables): each observable's value on each basis state (Qiskit's order).

    Raises :class:`QPUError` unless every observable is a sum of products of Z and I."""
    n = template.width
    z = np.arange(1 << n)
    out = np.zeros((1 << n, len(template.observables)))
    for j, obs in enumerate(template.observables):
        for label, coeff in zip(obs.paulis.to_labels(), obs.coeffs, strict=True):
            if set(label) - {"I", "Z"}:
                raise QPUError(f"{template.kind}: observable term {label} is not diagonal")
            if abs(coeff.imag) > 1e-12:
                raise QPUError(f"{template.kind}: observable has a complex coefficient")
            mask = sum(1 << q for q, ch in enumerate(reversed(label)) if ch == "Z")
            parity = (np.bitwise_count(z & mask) & 1).astype(np.int64)
            out[:, j] += coeff.real * (1 - 2 * parity)
    return out


def counts_to_probabilities(counts: Sequence[dict[str, int]], n_bits: int) -> np.ndarray:
    """(B, 2^n) relative frequencies from counts keyed by bitstrings (qubit 0 rightmost)."""
    out = np.zeros((len(counts), 1 << n_bits))
    for b, c in enumerate(counts):
        for key, value in c.items():
            out[b, int(key, 2)] += value
        total = out[b].sum()
        if total > 0:
            out[b] /= total
    return out


def exact_probabilities(template: Template, values: np.ndarray) -> np.ndarray:
    """(B, 2^n) exact output distribution for parameter rows in ``circuit.parameters`` order."""
    from qiskit.quantum_info import Statevector

    out = np.empty((values.shape[0], 1 << template.width))
    for b in range(values.shape[0]):
        out[b] = Statevector(template.circuit.assign_parameters(values[b])).probabilities()
    return out


def exact_values(template: Template, inputs: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Exact expectation values (B, n_observables)."""
    if template.kind == "policy_inference":
        from qpu.statevector import PolicyCircuit

        return PolicyCircuit.from_template(template).expectations(inputs, weights)
    values = template.parameter_values(inputs, weights)
    return exact_probabilities(template, values) @ z_signs(template)


# --------------------------------------------------------------------------- backends
class QPUBackend(ABC):
    """One execution backend."""

    name: str = ""
    computes: bool = True
    """False for timing-only: :meth:`run` returns no values"""

    def __init__(self, seeds: SeedTree | None = None) -> None:
        self._rng = (seeds or SeedTree(0)).generator("qpu_shots")
        self._serial = 0

    def _next_seed(self) -> int:
        return int(self._rng.integers(0, 2**31 - 1))

    def _local_id(self) -> str:
        self._serial += 1
        return f"{self.name}-{self._serial:08d}"

    @abstractmethod
    def run(
        self,
        template: Template,
        inputs: np.ndarray,
        weights: np.ndarray | None = None,
        shots: int = 1024,
    ) -> JobResult:
        """Run the template for every row of ``inputs`` (B, n_inputs) as one submission."""


class TimingOnlyBackend(QPUBackend):
    name = "timing-only"
    computes = False

    def run(
        self,
        template: Template,
        inputs: np.ndarray,
        weights: np.ndarray | None = None,
        shots: int = 1024,
    ) -> JobResult:
        return JobResult(template.kind, self.name, None, shots=shots, job_id=self._local_id())


class ExactBackend(QPUBackend):
    name = "exact"

    def run(
        self,
        template: Template,
        inputs: np.ndarray,
        weights: np.ndarray | None = None,
        shots: int = 0,
    ) -> JobResult:
        t0 = time.perf_counter()
        values = exact_values(template, np.atleast_2d(inputs), weights)
        return JobResult(
            template.kind,
            self.name,
            values,
            shots=0,
            job_id=self._local_id(),
            wall_time=time.perf_counter() - t0,
        )


def _check_shots(shots: int) -> int:
    if not (isinstance(shots, int | np.integer) and 1 <= shots <= 10_000_000):
        raise QPUError(f"shots must be an integer in 1..10000000, got {shots!r}")
    return int(shots)


def _counts_of(result: Any, batch: int) -> list[dict[str, int]]:
    """Counts per parameter set of the first PUB of a SamplerV2 result."""
    data = result[0].data
    bits = getattr(data, "meas", None)
    if bits is None:
        bits = next(iter(data.values()))
    return [bits.get_counts(b) for b in range(batch)] if batch > 1 else [bits.get_counts()]


def _bind_order(template: Template, circuit: Any, values: np.ndarray) -> np.ndarray:
    """``values`` (rows in ``template.circuit.parameters`` order) reordered for ``circuit``,
    a transpiled copy of the template. Parameters are matched by name: a cached transpiled
    circuit may come from another, equal template whose parameter objects differ."""
    column = {p.name: i for i, p in enumerate(template.circuit.parameters)}
    order = [values[:, column[p.name]] for p in circuit.parameters]
    return np.stack(order, axis=1) if order else np.empty((len(values), 0))


_IDEAL_BASIS = ["rx", "ry", "rz", "h", "x", "sx", "cx", "cz", "rzz"]


class AerBackend(QPUBackend):
    """Shots on Aer: ideal (``device=None``) or with a fake device's noise model."""

    def __init__(self, seeds: SeedTree | None = None, device: str | None = None) -> None:
        super().__init__(seeds)
        self.device = device
        if device is None:
            self.name = "aer"
        else:
            from qpu.timing import device_name

            self.device = device_name(device)
            self.name = f"aer-noisy:{self.device}"
        self._sampler_backend: Any = None
        self._ideal: dict[tuple, Any] = {}

    def _circuit(self, template: Template) -> Any:
        if self.device is not None:
            from qpu.timing import transpiled

            return transpiled(template, self.device)
        hit = self._ideal.get(template.key)
        if hit is None:
            from qiskit import transpile

            # Controlled rotations are decomposed first: Aer's sampler binds parameter
            # arrays into its native CRY/CRZ wrongly (checked against Statevector in the
            # tests), while the decomposed circuit binds correctly.
            hit = self._ideal[template.key] = transpile(
                template.measured(), basis_gates=_IDEAL_BASIS, optimization_level=0
            )
        return hit

    def _sampler(self, seed: int) -> Any:
        from qiskit_aer.primitives import SamplerV2

        options = {"run_options": {"seed_simulator": seed}}
        if self.device is None:
            return SamplerV2(options=options)
        if self._sampler_backend is None:
            from qpu.timing import device

            self._sampler_backend = device(self.device)
        return SamplerV2.from_backend(self._sampler_backend, options=options)

    def run(
        self,
        template: Template,
        inputs: np.ndarray,
        weights: np.ndarray | None = None,
        shots: int = 1024,
    ) -> JobResult:
        shots = _check_shots(shots)
        inputs = np.atleast_2d(inputs)
        values = template.parameter_values(inputs, weights)
        circuit = self._circuit(template)
        bound = _bind_order(template, circuit, values)
        seed = self._next_seed()
        t0 = time.perf_counter()
        try:
            job = self._sampler(seed).run([(circuit, bound)], shots=shots)
            result = job.result()
        except Exception as exc:
            raise QPUBackendError(
                f"{self.name}: {template.kind} failed: {type(exc).__name__}: {exc}",
                backend=self.name,
                attempts=1,
                transient=False,
            ) from exc
        wall = time.perf_counter() - t0
        counts = _counts_of(result, len(values))
        probs = counts_to_probabilities(counts, template.width)
        fidelity = None
        if self.device is not None:
            exact = exact_probabilities(template, values)
            fidelity = np.array(
                [
                    hellinger_fidelity(e, p, template.width)
                    for e, p in zip(exact, probs, strict=True)
                ]
            )
        return JobResult(
            template.kind,
            self.name,
            probs @ z_signs(template),
            counts=counts,
            shots=shots,
            job_id=self._local_id(),
            fidelity=fidelity,
            wall_time=wall,
            extra={"seed_simulator": seed},
        )


class IBMBackend(QPUBackend):
    """IBM Quantum through qiskit-ibm-runtime's ``SamplerV2``.

    ``backend`` is a device name: a real one is resolved with ``QiskitRuntimeService()``
    (the saved account) on first use; a fake one (``fake_*``) selects the local testing
    mode on that fake backend. ``sampler_factory(mode, options)`` builds the sampler
    (default: ``qiskit_ibm_runtime.SamplerV2``) and ``service_factory()`` the service;
    both exist so that failures can be injected in tests.
    """

    def __init__(
        self,
        backend: str,
        seeds: SeedTree | None = None,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        sampler_factory: Callable[[Any, dict], Any] | None = None,
        service_factory: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(seeds)
        if not backend:
            raise QPUError("ibm: needs a backend name, e.g. ibm:ibm_torino or ibm:fake_torino")
        self.backend_name = backend
        self.local = backend.strip().lower().startswith("fake")
        self.name = f"ibm:{backend}"
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self._sampler_factory = sampler_factory or _runtime_sampler
        self._service_factory = service_factory or _runtime_service
        self._backend: Any = None
        self._isa: dict[tuple, Any] = {}
        self.job_ids: list[str] = []

    def _resolve(self) -> Any:
        if self._backend is None:
            if self.local:
                from qpu.timing import device

                self._backend = device(self.backend_name)
            else:

                def lookup() -> Any:
                    return self._service_factory().backend(self.backend_name)

                self._backend, _ = call_with_retries(
                    lookup,
                    policy=self.retry,
                    sleep=self.sleep,
                    backend=self.name,
                    what="looking up the backend",
                )
        return self._backend

    def _circuit(self, template: Template) -> Any:
        if self.local:
            from qpu.timing import transpiled

            return transpiled(template, self.backend_name)
        hit = self._isa.get(template.key)
        if hit is None:
            from qiskit.transpiler import generate_preset_pass_manager

            pm = generate_preset_pass_manager(optimization_level=1, backend=self._resolve())
            hit = self._isa[template.key] = pm.run(template.measured())
        return hit

    def run(
        self,
        template: Template,
        inputs: np.ndarray,
        weights: np.ndarray | None = None,
        shots: int = 1024,
    ) -> JobResult:
        shots = _check_shots(shots)
        inputs = np.atleast_2d(inputs)
        values = template.parameter_values(inputs, weights)
        backend = self._resolve()
        circuit = self._circuit(template)
        bound = _bind_order(template, circuit, values)
        options: dict[str, Any] = {"default_shots": shots}
        seed = self._next_seed()
        if self.local:
            options["simulator"] = {"seed_simulator": seed}
        t0 = time.perf_counter()
        job, attempts = call_with_retries(
            lambda: self._sampler_factory(backend, options).run([(circuit, bound)]),
            policy=self.retry,
            sleep=self.sleep,
            backend=self.name,
            what=f"submitting {template.kind}",
        )
        job_id = str(job.job_id())
        self.job_ids.append(job_id)
        result, more = call_with_retries(
            job.result,
            policy=self.retry,
            sleep=self.sleep,
            backend=self.name,
            what=f"job {job_id} ({template.kind})",
        )
        wall = time.perf_counter() - t0
        counts = _counts_of(result, len(values))
        probs = counts_to_probabilities(counts, template.width)
        return JobResult(
            template.kind,
            self.name,
            probs @ z_signs(template),
            counts=counts,
            shots=shots,
            job_id=job_id,
            attempts=attempts + more - 1,
            wall_time=wall,
            extra={"seed_simulator": seed} if self.local else {},
        )


def _runtime_sampler(mode: Any, options: dict) -> Any:
    with warnings.catch_warnings():
        # SamplerV2 is deprecated in favour of a client-side sampler from 0.50 on; it is
        # still the interface that runs both on hardware and in local testing mode
        warnings.simplefilter("ignore", DeprecationWarning)
        from qiskit_ibm_runtime import SamplerV2

        return SamplerV2(mode=mode, options=options)


def _runtime_service() -> Any:
    from qiskit_ibm_runtime import QiskitRuntimeService

    return QiskitRuntimeService()


def make_backend(spec: str, seeds: SeedTree | None = None, **kwargs: Any) -> QPUBackend:
    """The backend named by ``spec`` (see the module docstring); ``kwargs`` go to the
    ``ibm:`` backend (retry, sleep, factories)."""
    text = spec.strip()
    head, _, arg = text.partition(":")
    head = head.lower()
    if head in ("timing-only", "timing_only") and not arg:
        return TimingOnlyBackend(seeds)
    if head == "exact" and not arg:
        return ExactBackend(seeds)
    if head == "aer" and not arg:
        return AerBackend(seeds)
    if head == "aer-noisy":
        if not arg:
            raise QPUError("aer-noisy needs a device: aer-noisy:<device>, e.g. fake_sherbrooke")
        return AerBackend(seeds, device=arg)
    if head == "ibm":
        return IBMBackend(arg, seeds, **kwargs)
    raise QPUError(f"unknown QPU backend {spec!r}; allowed: {', '.join(BACKEND_IDS)}")

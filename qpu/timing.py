"""How long a circuit job occupies a QPU.

Two models:

:class:`TargetTiming` (calibrated)
    The template is transpiled once per device (cache keyed by template, size, options and
    device) with every qubit measured, and one shot lasts the critical path of the
    transpiled circuit under the device Target's calibrated instruction durations
    (:meth:`qiskit.QuantumCircuit.estimate_duration`, measurement included), plus the
    repetition delay ``rep_delay`` (the wait that lets the qubits relax between shots;
    250 us is the IBM default). A job of ``s`` shots takes
    ``overhead + s * (duration + rep_delay)``; a batch of ``m`` jobs of one template (one
    submission with ``m`` bound parameter sets) pays the overhead once:
    ``overhead + sum_j s_j * (duration + rep_delay)``.
:class:`ClopsTiming` (throughput only)
    Where only a CLOPS figure is known (circuit layer operations per second, IBM's
    throughput benchmark: layers x parameter sets x shots per second, all overheads
    included), one shot of a circuit with ``D`` layers takes ``D / clops`` and a job
    ``overhead + s * D / clops``. ``D`` is the template's two-qubit depth (at least 1),
    the analogue of the benchmark's layers.

Devices are the calibrated fake backends of ``qiskit_ibm_runtime.fake_provider``, looked up
by name (``fake_sherbrooke``, ``FakeSherbrooke`` and ``sherbrooke`` all work);
:data:`SHIPPED_DEVICES` lists the ones the project documents: Eagle (127 qubits) and
Heron (133 and 156 qubits) processors, and 7-qubit Falcons for quick runs.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from sim.errors import SimError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.providers import BackendV2
    from qiskit.transpiler import Target

    from qpu.templates import Template

DEFAULT_REP_DELAY = 250e-6
"""Repetition delay between shots [s]: the default of IBM Quantum devices."""

SHIPPED_DEVICES: dict[str, str] = {
    "fake_sherbrooke": "Eagle r3, 127 qubits, ECR",
    "fake_brisbane": "Eagle r3, 127 qubits, ECR",
    "fake_torino": "Heron r1, 133 qubits, CZ",
    "fake_fez": "Heron r2, 156 qubits, CZ",
    "fake_nairobi": "Falcon r5.11H, 7 qubits, CX (small: quick tests)",
    "fake_perth": "Falcon r5.11H, 7 qubits, CX",
}


class DeviceError(SimError):
    """A device name that names no calibrated fake backend, or a circuit that does not fit."""


def _class_name(name: str) -> list[str]:
    stem = name.strip()
    for prefix in ("fake_", "Fake", "fake"):
        if stem.startswith(prefix):
            stem = stem[len(prefix) :]
            break
    stem = stem.replace("_", "")
    if stem.lower().endswith("v2"):
        stem = stem[:-2]
    base = "Fake" + stem[:1].upper() + stem[1:].lower()
    return [base, base + "V2"]


@lru_cache(maxsize=32)
def _instance(cls_name: str) -> BackendV2:
    from qiskit_ibm_runtime import fake_provider

    return getattr(fake_provider, cls_name)()


def device(name: str) -> BackendV2:
    """The calibrated fake backend called ``name`` (built once, then shared)."""
    from qiskit_ibm_runtime import fake_provider

    for cls_name in _class_name(name.strip().replace("-", "_")):
        if getattr(fake_provider, cls_name, None) is not None:
            return _instance(cls_name)
    known = sorted(
        n[4:].lower().removesuffix("v2")
        for n in dir(fake_provider)
        if n.startswith("Fake")
        and not n.startswith("FakeProvider")
        and n != "FakeFractionalBackend"
    )
    raise DeviceError(
        f"device {name!r}: no such fake backend in qiskit_ibm_runtime.fake_provider; "
        f"shipped: {', '.join(SHIPPED_DEVICES)}; all: {', '.join('fake_' + k for k in known)}"
    )


def device_name(name: str) -> str:
    """The canonical name of a device (``fake_sherbrooke``)."""
    return device(name).name


# --------------------------------------------------------------------------- transpiling
_lock = threading.Lock()
_transpiled: dict[tuple, QuantumCircuit] = {}


def transpiled(
    template: Template, device_name_: str, *, optimization_level: int = 1, seed: int = 0
) -> QuantumCircuit:
    """``template.measured()`` transpiled for the device, once per (template, device,
    level, seed): the circuit keeps its parameters, so every job of the template shares it."""
    from qiskit import transpile

    backend = device(device_name_)
    key = (template.key, backend.name, optimization_level, seed)
    with _lock:
        hit = _transpiled.get(key)
    if hit is not None:
        return hit
    if template.width > backend.num_qubits:
        raise DeviceError(
            f"{template.kind} needs {template.width} qubits; {backend.name} has "
            f"{backend.num_qubits}"
        )
    circuit = transpile(
        template.measured(),
        backend=backend,
        optimization_level=optimization_level,
        seed_transpiler=seed,
    )
    with _lock:
        _transpiled[key] = circuit
    return circuit


def clear_cache() -> None:
    """Forget the transpiled circuits (tests)."""
    with _lock:
        _transpiled.clear()


def _measure_duration(circuit: QuantumCircuit, target: Target) -> float:
    longest = 0.0
    for inst in circuit.data:
        if inst.operation.name == "measure":
            q = circuit.find_bit(inst.qubits[0]).index
            props = target["measure"].get((q,))
            if props is not None and props.duration:
                longest = max(longest, props.duration)
    return longest


def _rep_delay_range(backend: BackendV2) -> tuple[float, float] | None:
    """The device's allowed repetition delays [s], if it says."""
    try:
        low, high = backend.configuration().rep_delay_range
    except (AttributeError, TypeError, ValueError):
        return None
    return float(low), float(high)


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class CircuitTiming:
    """The timing of one template on one device."""

    kind: str
    device: str
    width: int
    depth: int
    """depth of the transpiled circuit"""
    two_qubit_gates: int
    duration: float
    """one shot, measurement included: critical path [s]"""
    measure_duration: float
    """the longest measurement of the circuit [s]"""
    rep_delay: float
    overhead: float

    @property
    def shot_time(self) -> float:
        """One shot plus the repetition delay [s]."""
        return self.duration + self.rep_delay

    def job_time(self, shots: int, jobs: int = 1) -> float:
        """A submission of ``jobs`` parameter sets of ``shots`` shots each [s]."""
        return self.overhead + jobs * shots * self.shot_time


def _check(shots_or_rate: float, what: str) -> None:
    if not (shots_or_rate >= 0 and math.isfinite(shots_or_rate)):
        raise DeviceError(f"{what} must be finite and >= 0, got {shots_or_rate}")


class TargetTiming:
    """Calibrated timing from a device Target (see the module docstring)."""

    def __init__(
        self,
        device_name_: str,
        *,
        rep_delay: float = DEFAULT_REP_DELAY,
        overhead: float = 0.0,
        optimization_level: int = 1,
        seed: int = 0,
    ) -> None:
        _check(rep_delay, "rep_delay")
        _check(overhead, "overhead")
        self.device = device_name(device_name_)
        allowed = _rep_delay_range(device(self.device))
        if allowed is not None and not allowed[0] <= rep_delay <= allowed[1]:
            raise DeviceError(
                f"rep_delay {rep_delay * 1e6:g} us is outside what {self.device} allows: "
                f"{allowed[0] * 1e6:g} to {allowed[1] * 1e6:g} us"
            )
        self.rep_delay = float(rep_delay)
        self.overhead = float(overhead)
        self.optimization_level = optimization_level
        self.seed = seed
        self._cache: dict[tuple, CircuitTiming] = {}

    def timing(self, template: Template) -> CircuitTiming:
        hit = self._cache.get(template.key)
        if hit is not None:
            return hit
        backend = device(self.device)
        circuit = transpiled(
            template, self.device, optimization_level=self.optimization_level, seed=self.seed
        )
        target = backend.target
        duration = float(circuit.estimate_duration(target, unit="s"))
        two_q = sum(1 for inst in circuit.data if inst.operation.num_qubits == 2)
        out = CircuitTiming(
            kind=template.kind,
            device=self.device,
            width=template.width,
            depth=circuit.depth(),
            two_qubit_gates=two_q,
            duration=duration,
            measure_duration=_measure_duration(circuit, target),
            rep_delay=self.rep_delay,
            overhead=self.overhead,
        )
        self._cache[template.key] = out
        return out


class ClopsTiming:
    """Throughput-only timing: ``clops`` layers per second (see the module docstring)."""

    def __init__(self, clops: float, *, overhead: float = 0.0) -> None:
        if not (clops > 0 and math.isfinite(clops)):
            raise DeviceError(f"clops must be a positive number, got {clops}")
        _check(overhead, "overhead")
        self.clops = float(clops)
        self.overhead = float(overhead)
        self.device = f"clops:{clops:g}"

    @staticmethod
    def layers(template: Template) -> int:
        """Two-qubit depth of the template as written, at least 1."""
        return max(1, template.circuit.depth(lambda inst: inst.operation.num_qubits >= 2))

    def timing(self, template: Template) -> CircuitTiming:
        layers = self.layers(template)
        circuit = template.circuit
        return CircuitTiming(
            kind=template.kind,
            device=self.device,
            width=template.width,
            depth=circuit.depth(),
            two_qubit_gates=sum(1 for i in circuit.data if i.operation.num_qubits == 2),
            duration=layers / self.clops,
            measure_duration=0.0,
            rep_delay=0.0,
            overhead=self.overhead,
        )


TimingModel = TargetTiming | ClopsTiming

"""How faithful a job's result is.

* :func:`estimated_fidelity`: from the device's calibration alone, the product of
  ``(1 - error)`` over every instruction of the transpiled circuit (gate errors of the
  Target, per instruction and qubits) times the product of ``(1 - readout error)`` over the
  measured qubits. It is the usual first-order estimate (errors independent, any error
  spoils the shot) and needs no execution.
* :func:`hellinger_fidelity`: in noisy execution, the measured output distribution against
  the exact one, ``(sum_x sqrt(p_x q_x))^2`` (Qiskit's definition).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.transpiler import Target

    from qpu.templates import Template


@dataclass(frozen=True)
class FidelityEstimate:
    """Calibration-based fidelity of one circuit on one device."""

    gates: float
    """product of (1 - gate error) over the gates"""
    readout: float
    """product of (1 - readout error) over the measured qubits"""

    @property
    def total(self) -> float:
        return self.gates * self.readout


def estimated_fidelity(circuit: QuantumCircuit, target: Target) -> FidelityEstimate:
    """The estimate for a circuit already transpiled for ``target`` (see the module
    docstring). Instructions the Target gives no error for (barriers, virtual RZ with
    error None) count as perfect."""
    gates = 1.0
    readout = 1.0
    for inst in circuit.data:
        name = inst.operation.name
        if name == "barrier" or name not in target.operation_names:
            continue
        qargs = tuple(circuit.find_bit(q).index for q in inst.qubits)
        props = target[name].get(qargs)
        if props is None or props.error is None:
            continue
        if name == "measure":
            readout *= 1.0 - props.error
        else:
            gates *= 1.0 - props.error
    return FidelityEstimate(gates=gates, readout=readout)


def _as_probabilities(dist: Mapping[str, float] | np.ndarray, n_bits: int) -> np.ndarray:
    if isinstance(dist, Mapping):
        p = np.zeros(1 << n_bits)
        for key, value in dist.items():
            p[int(str(key).replace(" ", ""), 2)] += value
    else:
        p = np.asarray(dist, dtype=float).ravel()
        if p.size != 1 << n_bits:
            raise ValueError(f"a distribution over {n_bits} bits has {1 << n_bits} entries")
    total = p.sum()
    if not total > 0:
        raise ValueError("an empty distribution has no fidelity")
    return p / total


def hellinger_fidelity(
    exact: Mapping[str, float] | np.ndarray, measured: Mapping[str, float] | np.ndarray, n_bits: int
) -> float:
    """``(sum_x sqrt(p_x q_x))^2`` between two distributions over ``n_bits`` bits, each
    given as probabilities (array indexed by the integer of the bitstring) or counts
    (mapping from bitstring to count, Qiskit's order: qubit 0 rightmost)."""
    p = _as_probabilities(exact, n_bits)
    q = _as_probabilities(measured, n_bits)
    return float(np.sum(np.sqrt(p * q)) ** 2)


def template_fidelity(template: Template, device_name: str) -> FidelityEstimate:
    """:func:`estimated_fidelity` of a template transpiled for a device (cached)."""
    from qpu.timing import device, transpiled

    return estimated_fidelity(transpiled(template, device_name), device(device_name).target)

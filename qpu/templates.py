"""Circuit templates: one parameterised Qiskit circuit per kind of QPU job.

Each template is a real :class:`~qiskit.QuantumCircuit` without measurements, with two
:class:`~qiskit.circuit.ParameterVector` s: ``inputs`` (the data a job carries) and
``weights`` (trained parameters, possibly none), and the observables whose expectation
values are the job's result. The kinds are those of seed 000 plus the actor of seed 002:

``semantic_coding``
    A small quantum convolutional encoder (QCNN): angle encoding, parameterised two-qubit
    convolutions with CNOTs, pooling, Pauli-Z readout of the qubits left after pooling.
``multimodal_attention``
    Cross-modal attention over two modality registers (e.g. camera and radar): each register
    is angle encoded and mixed within itself (self-attention), then every qubit of the
    second register modulates the phase of every qubit of the first through a controlled RZ
    (the "attention weight as quantum phase" of seed 000, section IV-C), and an RX layer
    turns the phases into populations (interference); Pauli-Z of the first register is the
    fused feature vector.
``policy_inference``
    The PQC actor of the Q-DDPG paper (MODEL.md): higher-order (ZZ) encoding
    ``U_x = exp(i sum_{j<k} gamma x_j x_k Z_j Z_k)`` on the uniform superposition, then per
    layer an RY rotation on every qubit and a CZ entangler (ring by default), then a final RY
    layer; Pauli-Z of every qubit is the action vector. The final rotation layer is needed
    because CZ commutes with Z: without it the entangler could never change the outputs.
``federated_aggregation``
    The overlap of a client's parameter encoding with the global model's, by the
    *destructive* swap test (Garcia-Escartin and Chamorro-Posada, 2013): both parameter
    vectors are angle encoded on two registers of ``size`` qubits, each qubit pair goes
    through CNOT + H (a Bell-basis measurement), and the observable
    ``prod_j (I + Z_aj + Z_bj - Z_aj Z_bj) / 2`` has expectation ``|<c|g>|^2``. An aggregator
    uses the overlap as the weight (trust) of the client's update. It needs no ancilla and
    no three-qubit gates, so its depth stays constant in the register size, which is what
    a device would run.

Templates are built once per (kind, size, options) and cached: :func:`build_template`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp

from qpu.kinds import DEFAULT_SIZES, KINDS
from sim.errors import SimError


class TemplateError(SimError):
    """A template asked for with an unknown kind or an impossible size or option."""


@dataclass(frozen=True)
class Template:
    """A parameterised circuit of one job kind, its parameters and observables."""

    kind: str
    size: int
    circuit: QuantumCircuit
    inputs: ParameterVector
    weights: ParameterVector
    observables: tuple[SparsePauliOp, ...]
    options: tuple[tuple[str, object], ...] = field(default=())

    @property
    def width(self) -> int:
        """Number of qubits."""
        return self.circuit.num_qubits

    @property
    def depth(self) -> int:
        """Depth of the circuit as written (before transpiling for a device)."""
        return self.circuit.depth()

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    @property
    def n_weights(self) -> int:
        return len(self.weights)

    @property
    def key(self) -> tuple:
        """Identifies the template (kind, size, options) for caches."""
        return (self.kind, self.size, self.options)

    def parameter_values(self, inputs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Values in the order of ``circuit.parameters`` for a batch, shape ``(B, P)``.

        ``inputs`` is ``(B, n_inputs)`` or ``(n_inputs,)``; ``weights`` is ``(n_weights,)``
        (shared by the batch) or ``(B, n_weights)``.
        """
        x = np.atleast_2d(np.asarray(inputs, dtype=float))
        if x.shape[1] != self.n_inputs:
            raise TemplateError(
                f"{self.kind}: inputs have {x.shape[1]} columns, the template takes {self.n_inputs}"
            )
        b = x.shape[0]
        if self.n_weights:
            if weights is None:
                raise TemplateError(f"{self.kind}: needs {self.n_weights} weights")
            w = np.asarray(weights, dtype=float)
            w = np.broadcast_to(w, (b, self.n_weights)) if w.ndim == 1 else w
            if w.shape != (b, self.n_weights):
                raise TemplateError(
                    f"{self.kind}: weights of shape {w.shape}, expected "
                    f"({self.n_weights},) or ({b}, {self.n_weights})"
                )
        else:
            w = np.empty((b, 0))
        position = {p: i for i, p in enumerate(self.circuit.parameters)}
        out = np.empty((b, len(position)))
        for j, p in enumerate(self.inputs):
            out[:, position[p]] = x[:, j]
        for j, p in enumerate(self.weights):
            out[:, position[p]] = w[:, j]
        return out

    def bind(self, inputs: np.ndarray, weights: np.ndarray | None = None) -> QuantumCircuit:
        """The circuit with one parameter set bound."""
        values = self.parameter_values(np.asarray(inputs)[None, :], weights)[0]
        return self.circuit.assign_parameters(values)

    def measured(self) -> QuantumCircuit:
        """The circuit with every qubit measured (for samplers and the timing model)."""
        qc = self.circuit.copy()
        qc.measure_all()
        return qc

    def random_parameters(
        self, rng: np.random.Generator, batch: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inputs ``(batch, n_inputs)`` and weights ``(n_weights,)`` uniform in [-pi, pi]."""
        x = rng.uniform(-math.pi, math.pi, (batch, self.n_inputs))
        w = rng.uniform(-math.pi, math.pi, self.n_weights)
        return x, w


def _z(qubit: int, n: int) -> SparsePauliOp:
    return SparsePauliOp.from_sparse_list([("Z", [qubit], 1.0)], num_qubits=n)


# --------------------------------------------------------------------------- semantic coding
def _conv(qc: QuantumCircuit, w: ParameterVector, k: int, a: int, b: int) -> int:
    """Convolution block on (a, b): RY on both, CNOT a -> b. Uses w[k], w[k+1]."""
    qc.ry(w[k], a)
    qc.ry(w[k + 1], b)
    qc.cx(a, b)
    return k + 2


def semantic_coding(n_qubits: int = 4, levels: int = 1) -> Template:
    """The QCNN encoder of seed 000: angle encoding ``RY(x_j)``; per level a convolution
    on neighbouring pairs of the active qubits (even pairs, then odd pairs) and a pooling
    step ``CRY(w)`` from qubit ``2i`` into qubit ``2i + 1`` of the active list, after which
    only the sinks stay active; readout ``<Z>`` of the qubits active at the end.

    With all weights zero the convolutions reduce to their CNOTs and the pooling to the
    identity, so e.g. for 4 qubits ``<Z_1> = cos x_0 cos x_1`` and
    ``<Z_3> = cos x_2 cos x_3`` (the odd-pair CNOT 1 -> 2 does not reach the readout).
    """
    if n_qubits < 2:
        raise TemplateError(f"semantic_coding needs at least 2 qubits, got {n_qubits}")
    if levels < 1 or n_qubits >> levels < 1:
        raise TemplateError(
            f"semantic_coding: {levels} pooling levels do not fit {n_qubits} qubits "
            f"(each level halves the active qubits; at most {int(math.log2(n_qubits))})"
        )
    x = ParameterVector("x", n_qubits)
    active = list(range(n_qubits))
    n_w = 0
    plan = []
    for _ in range(levels):
        pairs = [(active[i], active[i + 1]) for i in range(0, len(active) - 1, 2)]
        pairs += [(active[i], active[i + 1]) for i in range(1, len(active) - 1, 2)]
        pools = [(active[i], active[i + 1]) for i in range(0, len(active) - 1, 2)]
        plan.append((pairs, pools))
        n_w += 2 * len(pairs) + len(pools)
        active = [b for _, b in pools] + ([active[-1]] if len(active) % 2 else [])
    w = ParameterVector("w", n_w)
    qc = QuantumCircuit(n_qubits, name="semantic_coding")
    for j in range(n_qubits):
        qc.ry(x[j], j)
    k = 0
    for pairs, pools in plan:
        for a, b in pairs:
            k = _conv(qc, w, k, a, b)
        for source, sink in pools:
            qc.cry(w[k], source, sink)
            k += 1
    observables = tuple(_z(q, n_qubits) for q in active)
    return Template("semantic_coding", n_qubits, qc, x, w, observables, (("levels", levels),))


# --------------------------------------------------------------------------- attention
def multimodal_attention(n_per_modality: int = 2) -> Template:
    """Cross-modal attention over registers A (qubits ``0..m-1``) and B (``m..2m-1``).

    Inputs ``a`` (m) and ``b`` (m) are angle encoded with RY. Self-attention within each
    register: RY(w) on every qubit and a CNOT chain. Cross-attention: ``CRZ(v_jk)`` from
    B_k onto A_j for every pair, then ``RX(u_j)`` on A_j. Observables: ``<Z>`` of A.

    For one qubit per register, ``a = pi/2``, ``b = pi`` (B in ``|1>``) and zero
    self-attention weights: ``<Z_A> = sin(v) sin(u)``.
    """
    m = n_per_modality
    if m < 1:
        raise TemplateError(f"multimodal_attention needs at least 1 qubit per modality, got {m}")
    a = ParameterVector("a", 2 * m)  # a[0:m] modality A, a[m:2m] modality B
    w = ParameterVector("w", 2 * m + m * m + m)
    qc = QuantumCircuit(2 * m, name="multimodal_attention")
    for j in range(2 * m):
        qc.ry(a[j], j)
    for j in range(2 * m):
        qc.ry(w[j], j)
    for reg in (range(m), range(m, 2 * m)):
        reg = list(reg)
        for j in range(len(reg) - 1):
            qc.cx(reg[j], reg[j + 1])
    k = 2 * m
    for j in range(m):
        for kk in range(m):
            qc.crz(w[k], m + kk, j)
            k += 1
    for j in range(m):
        qc.rx(w[k], j)
        k += 1
    observables = tuple(_z(j, 2 * m) for j in range(m))
    return Template("multimodal_attention", m, qc, a, w, observables)


# --------------------------------------------------------------------------- policy
def entangler_pairs(n: int, entanglement: str) -> list[tuple[int, int]]:
    """CZ pairs of the actor's entangling layer: ``chain`` (i, i+1) or ``ring`` (and (n-1, 0))."""
    pairs = [(i, i + 1) for i in range(n - 1)]
    if entanglement == "ring" and n > 2:
        pairs.append((n - 1, 0))
    elif entanglement not in ("ring", "chain"):
        raise TemplateError(f"entanglement {entanglement!r} unknown; allowed: ring, chain")
    return pairs


def policy_inference(
    n_qubits: int = 6,
    layers: int = 1,
    gamma: float = 1.0,
    entanglement: Literal["ring", "chain"] = "ring",
    linear: float = 0.0,
) -> Template:
    """The PQC actor: ``H^n``, then ``exp(i gamma x_j x_k Z_j Z_k)`` for every ``j < k``
    (as ``RZZ(-2 gamma x_j x_k)``), then ``layers`` times [RY(theta) on every qubit, CZ on
    the entangler pairs], then a final RY layer. Weights: ``n (layers + 1)`` angles, layer
    by layer, qubit by qubit. Observables: ``<Z_j>`` for every qubit.

    ``linear`` adds a first-order (angle) encoding ``RY(2 linear x_j)`` on every qubit after
    the ZZ terms. The paper's encoding has none (``linear`` 0); then every ``<Z_j>`` is an
    even function of ``x`` (the ZZ phases depend only on the products ``x_j x_k``), so the
    actor cannot tell an input from its negative. (A first-order phase ``exp(i b x_j Z_j)``
    would not help: it moves the odd part of the state into Y components, which the real
    RY + CZ ansatz never turns into Z.)

    Hand-derived values: for ``x = 0`` the encoded state is ``|+>^n`` and, with one layer of
    angles ``t`` and final angles ``f``, ``<Z_j> = -cos f_j sin t_j - sin f_j cos t_j
    prod_{k ~ j} (-sin t_k)`` (``k ~ j``: the CZ neighbours of ``j``).
    """
    if n_qubits < 2:
        raise TemplateError(f"policy_inference needs at least 2 qubits, got {n_qubits}")
    if layers < 1:
        raise TemplateError(f"policy_inference needs at least 1 layer, got {layers}")
    if not math.isfinite(gamma):
        raise TemplateError(f"policy_inference: gamma must be finite, got {gamma}")
    if not math.isfinite(linear):
        raise TemplateError(f"policy_inference: linear must be finite, got {linear}")
    n = n_qubits
    pairs = entangler_pairs(n, entanglement)
    x = ParameterVector("x", n)
    theta = ParameterVector("theta", n * (layers + 1))
    qc = QuantumCircuit(n, name="policy_inference")
    qc.h(range(n))
    for j in range(n):
        for k in range(j + 1, n):
            qc.rzz(-2.0 * gamma * x[j] * x[k], j, k)
    if linear != 0.0:
        for j in range(n):
            qc.ry(2.0 * linear * x[j], j)
    for layer in range(layers):
        for q in range(n):
            qc.ry(theta[layer * n + q], q)
        for a, b in pairs:
            qc.cz(a, b)
    for q in range(n):
        qc.ry(theta[layers * n + q], q)
    observables = tuple(_z(q, n) for q in range(n))
    options = (
        ("layers", layers),
        ("gamma", float(gamma)),
        ("entanglement", entanglement),
        ("linear", float(linear)),
    )
    return Template("policy_inference", n, qc, x, theta, observables, options)


# --------------------------------------------------------------------------- aggregation
def federated_aggregation(n_per_client: int = 3) -> Template:
    """Destructive swap test between client parameters ``c`` (register A, qubits
    ``0..m-1``, ``RY(c_j)``) and global parameters ``g`` (register B, ``RY(g_j)``).

    One observable, the overlap ``|<c|g>|^2 = prod_j cos^2((c_j - g_j) / 2)``. Inputs are
    ``c`` then ``g`` (``2m`` values); no weights.
    """
    m = n_per_client
    if m < 1:
        raise TemplateError(f"federated_aggregation needs at least 1 qubit per client, got {m}")
    p = ParameterVector("p", 2 * m)
    qc = QuantumCircuit(2 * m, name="federated_aggregation")
    for j in range(2 * m):
        qc.ry(p[j], j)
    for j in range(m):
        qc.cx(j, m + j)
        qc.h(j)
    # (-1)^(a_j b_j) = (I + Z_a + Z_b - Z_a Z_b) / 2 for each pair, multiplied out
    overlap = SparsePauliOp.from_sparse_list([("", [], 1.0)], num_qubits=2 * m)
    for j in range(m):
        factor = SparsePauliOp.from_sparse_list(
            [("", [], 0.5), ("Z", [j], 0.5), ("Z", [m + j], 0.5), ("ZZ", [j, m + j], -0.5)],
            num_qubits=2 * m,
        )
        overlap = overlap.compose(factor).simplify()
    empty = ParameterVector("none", 0)
    return Template("federated_aggregation", m, qc, p, empty, (overlap,))


# --------------------------------------------------------------------------- twin forecast
def twin_forecast(n_qubits: int = 4, layers: int = 1) -> Template:
    """The digital twin's forecaster, a small variational regressor: the last ``n`` arrival
    features as ``RY(x_j)``, then ``layers`` times [RY(w) on every qubit, a CNOT chain
    ``0 -> 1 -> ... -> n-1``], then a final RY layer; observables ``<Z_j>`` of every qubit.
    Weights: ``n (layers + 1)`` angles, layer by layer.

    With all weights zero, ``<Z_j> = prod_{i <= j} cos x_i`` (the chain carries each
    qubit's parity into the next).
    """
    if n_qubits < 2:
        raise TemplateError(f"twin_forecast needs at least 2 qubits, got {n_qubits}")
    if layers < 1:
        raise TemplateError(f"twin_forecast needs at least 1 layer, got {layers}")
    n = n_qubits
    x = ParameterVector("x", n)
    w = ParameterVector("w", n * (layers + 1))
    qc = QuantumCircuit(n, name="twin_forecast")
    for j in range(n):
        qc.ry(x[j], j)
    for layer in range(layers):
        for q in range(n):
            qc.ry(w[layer * n + q], q)
        for q in range(n - 1):
            qc.cx(q, q + 1)
    for q in range(n):
        qc.ry(w[layers * n + q], q)
    observables = tuple(_z(q, n) for q in range(n))
    return Template("twin_forecast", n, qc, x, w, observables, (("layers", layers),))


_BUILDERS = {
    "semantic_coding": semantic_coding,
    "multimodal_attention": multimodal_attention,
    "policy_inference": policy_inference,
    "federated_aggregation": federated_aggregation,
    "twin_forecast": twin_forecast,
}


@lru_cache(maxsize=128)
def _cached(kind: str, size: int, options: tuple[tuple[str, object], ...]) -> Template:
    return _BUILDERS[kind](size, **dict(options))


def build_template(kind: str, size: int | None = None, **options: object) -> Template:
    """The template of ``kind`` (one of :data:`KINDS`) with ``size`` qubits (per register
    for the two-register kinds; default :data:`DEFAULT_SIZES`), built once and cached."""
    if kind not in _BUILDERS:
        raise TemplateError(f"unknown job kind {kind!r}; known: {', '.join(KINDS)}")
    size = DEFAULT_SIZES[kind] if size is None else int(size)
    try:
        return _cached(kind, size, tuple(sorted(options.items())))
    except TypeError as exc:
        raise TemplateError(f"{kind}: bad option: {exc}") from exc

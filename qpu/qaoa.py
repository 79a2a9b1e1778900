"""QAOA for small QUBOs: the Ising mapping, the circuit, an exact evaluator and sampling.

Conventions. A QUBO over ``x in {0, 1}^n`` has energy ``f(x) = x^T Q x + c^T x + offset``
with ``Q`` symmetric (its diagonal acts linearly since ``x_i^2 = x_i``). Variable ``x_i`` is
qubit ``i``, and a basis state's index ``z`` holds ``x_i`` in bit ``i`` (Qiskit's
little-endian order). With ``x_i = (1 - s_i) / 2`` and ``s_i = +1 / -1`` the Z eigenvalue,
``f`` becomes the Ising energy ``E(s) = const + sum_i h_i s_i + sum_{i<j} J_ij s_i s_j``
(:func:`to_ising`): ``J_ij = Q_ij / 2``, ``h_i = -(Q_ii + c_i) / 2 - sum_{j != i} Q_ij / 2``.

Circuit (:func:`qaoa_circuit`). ``H`` on every qubit, then per layer ``l`` the cost unitary
``exp(-i gamma_l (E - const))`` as ``RZZ(2 gamma_l J_ij)`` on every coupled pair and
``RZ(2 gamma_l h_i)`` on every qubit, and the mixer ``exp(-i beta_l sum_i X_i)`` as
``RX(2 beta_l)``. These gates carry no global phase, so the circuit's state is exactly the
one :func:`qaoa_states` computes: the diagonal ``E - const`` over all ``2^n`` basis states
is computed once and each layer is a phase multiplication followed by ``n`` two-amplitude
rotations, for a batch of angle sets at once.

Angles (:func:`optimise_angles`) minimise the expected energy ``<E>`` of the Hamiltonian
scaled to unit largest coefficient, with L-BFGS-B (central-difference gradients, all
``4p + 1`` angle sets evaluated as one batch) from a linear-ramp start (the discretised
annealing path) and ``restarts - 1`` random starts drawn from the given generator; depth
``p`` starts from the interpolation (INTERP) of the best depth ``p - 1`` angles, so depths
are optimised in turn from 1.

Sampling (:func:`sample`): ``shots`` draws from the exact distribution with a numpy
generator, or the counts of a :mod:`qpu.backends` backend (``aer``, ``aer-noisy:<device>``,
``ibm:<backend>``) running the same circuit as a :class:`~qpu.templates.Template`.
:func:`brute_force` gives the exact optimum for ``n <= 20``. Everything is deterministic
given the generator (and the backend's seed tree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.optimize import minimize

from sim.errors import SimError

MAX_QUBITS_EXACT = 20
"""Largest problem the brute force and the exact evaluator accept."""


class QAOAError(SimError):
    """A QUBO, depth or angle set that QAOA cannot use."""


# --------------------------------------------------------------------------- problems
@dataclass(frozen=True)
class QUBO:
    """``f(x) = x^T Q x + c^T x + offset`` over ``x in {0, 1}^n``; ``Q`` is symmetrised."""

    Q: np.ndarray
    c: np.ndarray
    offset: float = 0.0

    def __post_init__(self) -> None:
        q = np.asarray(self.Q, dtype=float)
        c = np.asarray(self.c, dtype=float)
        if q.ndim != 2 or q.shape[0] != q.shape[1] or c.shape != (q.shape[0],):
            raise QAOAError(
                f"QUBO needs Q of shape (n, n) and c of shape (n,), got {q.shape} and {c.shape}"
            )
        if q.shape[0] < 1:
            raise QAOAError("QUBO needs at least one variable")
        if not (np.isfinite(q).all() and np.isfinite(c).all() and np.isfinite(self.offset)):
            raise QAOAError("QUBO coefficients must be finite")
        object.__setattr__(self, "Q", (q + q.T) / 2)
        object.__setattr__(self, "c", c)
        object.__setattr__(self, "offset", float(self.offset))

    @property
    def n(self) -> int:
        return int(self.c.shape[0])

    def energy(self, x: np.ndarray) -> np.ndarray:
        """Energy of bit vectors ``x`` of shape ``(..., n)``."""
        x = np.asarray(x, dtype=float)
        return np.einsum("...i,ij,...j->...", x, self.Q, x) + x @ self.c + self.offset

    def energies(self) -> np.ndarray:
        """``(2^n,)`` energy of every basis state index (bit ``i`` of the index is ``x_i``)."""
        _check_exact_size(self.n)
        out = np.empty(1 << self.n)
        chunk = 1 << 15
        for start in range(0, out.shape[0], chunk):
            z = np.arange(start, min(start + chunk, out.shape[0]))
            out[start : start + z.shape[0]] = self.energy(bits(z, self.n))
        return out


@dataclass(frozen=True)
class Ising:
    """``E(s) = const + h . s + sum_{i<j} J_ij s_i s_j`` over ``s in {+1, -1}^n``.

    ``J`` is strictly upper triangular; ``s_i = +1`` is bit 0 (Z eigenvalue of ``|0>``)."""

    h: np.ndarray
    J: np.ndarray
    const: float = 0.0

    @property
    def n(self) -> int:
        return int(self.h.shape[0])

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """Coupled pairs ``(i, j)``, ``i < j``, in row-major order."""
        i, j = np.nonzero(self.J)
        return [(int(a), int(b)) for a, b in zip(i, j, strict=True)]

    def energy(self, s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=float)
        return np.einsum("...i,ij,...j->...", s, self.J, s) + s @ self.h + self.const

    def diagonal(self) -> np.ndarray:
        """``(2^n,)`` values of ``E - const`` on the basis states (the cost Hamiltonian)."""
        _check_exact_size(self.n)
        s = 1.0 - 2.0 * bits(np.arange(1 << self.n), self.n)
        return np.einsum("zi,ij,zj->z", s, self.J, s) + s @ self.h

    def scale(self) -> float:
        """Largest absolute coefficient (1 for a Hamiltonian without any)."""
        top = max(float(np.abs(self.h).max(initial=0.0)), float(np.abs(self.J).max(initial=0.0)))
        return top if top > 0 else 1.0

    def scaled(self, factor: float) -> Ising:
        return Ising(self.h * factor, self.J * factor, self.const * factor)


def bits(z: np.ndarray, n: int) -> np.ndarray:
    """``(len(z), n)`` 0/1 matrix: bit ``i`` of each index in column ``i``."""
    return ((np.asarray(z)[:, None] >> np.arange(n)[None, :]) & 1).astype(float)


def to_ising(qubo: QUBO) -> Ising:
    """The Ising form of ``qubo`` with ``x_i = (1 - s_i) / 2`` (same energy everywhere)."""
    q = qubo.Q
    diag = np.diag(q)
    off = q - np.diag(diag)
    J = np.triu(off, 1) / 2.0  # Q_ij x_i x_j + Q_ji x_j x_i = 2 Q_ij x_i x_j, x_i x_j -> s s / 4
    h = -(diag + qubo.c) / 2.0 - off.sum(axis=1) / 2.0
    const = qubo.offset + (diag.sum() + qubo.c.sum()) / 2.0 + off.sum() / 4.0
    return Ising(h, J, float(const))


def _check_exact_size(n: int) -> None:
    if n > MAX_QUBITS_EXACT:
        raise QAOAError(f"{n} variables: the exact methods take at most {MAX_QUBITS_EXACT}")


@dataclass(frozen=True)
class Optimum:
    """Exact minimum of a QUBO: the energy and every basis index that attains it."""

    energy: float
    states: np.ndarray


def brute_force(qubo: QUBO, tol: float = 1e-9) -> Optimum:
    """The exact minimum of ``qubo`` over all ``2^n`` assignments (``n <= 20``)."""
    e = qubo.energies()
    best = float(e.min())
    return Optimum(best, np.flatnonzero(e <= best + tol * max(1.0, abs(best))))


# --------------------------------------------------------------------------- circuit
def _check_angles(gammas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = np.atleast_2d(np.asarray(gammas, dtype=float))
    b = np.atleast_2d(np.asarray(betas, dtype=float))
    if g.shape != b.shape or g.shape[1] < 1:
        raise QAOAError(
            f"gammas and betas need the same shape (B, p) with p >= 1, got {g.shape}, {b.shape}"
        )
    return g, b


def qaoa_circuit(ising: Ising, gammas: np.ndarray, betas: np.ndarray):
    """The depth-``p`` QAOA circuit of ``ising`` with the given angles (no measurements)."""
    from qiskit import QuantumCircuit

    g, b = _check_angles(gammas, betas)
    if g.shape[0] != 1:
        raise QAOAError("qaoa_circuit takes one angle set")
    n = ising.n
    qc = QuantumCircuit(n, name="qaoa")
    qc.h(range(n))
    for gamma, beta in zip(g[0], b[0], strict=True):
        for i, j in ising.pairs:
            qc.rzz(2.0 * gamma * ising.J[i, j], i, j)
        for i in range(n):
            if ising.h[i] != 0:
                qc.rz(2.0 * gamma * ising.h[i], i)
        qc.rx(2.0 * beta, range(n))
    return qc


@lru_cache(maxsize=64)
def _template(n: int, depth: int, pairs: tuple[tuple[int, int], ...]):
    """A parameterised QAOA template: inputs are the per-gate angles, layer by layer
    (``RZZ`` of each pair, ``RZ`` of each qubit, then the mixer angle)."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit.quantum_info import SparsePauliOp

    from qpu.templates import Template

    per_layer = len(pairs) + n + 1
    a = ParameterVector("a", depth * per_layer)
    qc = QuantumCircuit(n, name="qaoa")
    qc.h(range(n))
    k = 0
    for _ in range(depth):
        for i, j in pairs:
            qc.rzz(a[k], i, j)
            k += 1
        for i in range(n):
            qc.rz(a[k], i)
            k += 1
        qc.rx(a[k], range(n))
        k += 1
    observables = tuple(
        SparsePauliOp.from_sparse_list([("Z", [q], 1.0)], num_qubits=n) for q in range(n)
    )
    return Template(
        "qaoa", n, qc, a, ParameterVector("w", 0), observables, (("depth", depth), ("pairs", pairs))
    )


def qaoa_template(ising: Ising, depth: int):
    """The :class:`~qpu.templates.Template` that :func:`template_inputs` binds (backends)."""
    return _template(ising.n, int(depth), tuple(ising.pairs))


def template_inputs(ising: Ising, gammas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """``(B, n_inputs)`` rows of per-gate angles for :func:`qaoa_template`."""
    g, b = _check_angles(gammas, betas)
    pairs = ising.pairs
    jv = np.array([ising.J[i, j] for i, j in pairs])
    rows = []
    for layer in range(g.shape[1]):
        gl = g[:, layer : layer + 1]
        rows += [2.0 * gl * jv[None, :], 2.0 * gl * ising.h[None, :], 2.0 * b[:, layer : layer + 1]]
    return np.concatenate(rows, axis=1)


# --------------------------------------------------------------------------- evaluator
def qaoa_states(diagonal: np.ndarray, gammas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """``(B, 2^n)`` QAOA states for ``B`` angle sets, given the cost diagonal ``E - const``."""
    g, b = _check_angles(gammas, betas)
    dim = diagonal.shape[0]
    n = dim.bit_length() - 1
    if 1 << n != dim:
        raise QAOAError(f"the diagonal has {dim} entries, not a power of two")
    batch = g.shape[0]
    psi = np.full((batch, dim), dim**-0.5, dtype=complex)
    for layer in range(g.shape[1]):
        psi *= np.exp(-1j * g[:, layer, None] * diagonal[None, :])
        c = np.cos(b[:, layer])[:, None, None]
        s = -1j * np.sin(b[:, layer])[:, None, None]
        for q in range(n):
            view = psi.reshape(batch, dim >> (q + 1), 2, 1 << q)
            a0 = view[:, :, 0, :].copy()
            a1 = view[:, :, 1, :]
            view[:, :, 0, :] = c * a0 + s * a1
            view[:, :, 1, :] = s * a0 + c * a1
    return psi


def expectations(diagonal: np.ndarray, gammas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """``(B,)`` expected cost ``<E - const>`` of each angle set."""
    psi = qaoa_states(diagonal, gammas, betas)
    return (np.abs(psi) ** 2) @ diagonal


# --------------------------------------------------------------------------- angles
@dataclass
class QAOAResult:
    """Optimised angles of one QUBO and the exact distribution they give."""

    qubo: QUBO
    ising: Ising  # the Hamiltonian the circuit implements (scaled to unit largest coefficient)
    gammas: np.ndarray  # (p,)
    betas: np.ndarray  # (p,)
    expectation: float  # <E> of the circuit's Hamiltonian at the angles (scaled units)
    probabilities: np.ndarray  # (2^n,) exact output distribution
    evaluations: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return int(self.gammas.shape[0])


def _interp(angles: np.ndarray) -> np.ndarray:
    """INTERP (Zhou et al. 2020): depth-``p`` angles to a depth-``p + 1`` start."""
    p = angles.shape[0]
    padded = np.concatenate([[0.0], angles, [0.0]])
    i = np.arange(1, p + 2)
    return (i - 1) / p * padded[i - 1] + (p - i + 1) / p * padded[i]


def _minimise(diagonal: np.ndarray, start: np.ndarray, step: float = 1e-6):
    p = start.shape[0] // 2
    count = [0]

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        sets = np.vstack([theta, theta + step * np.eye(2 * p), theta - step * np.eye(2 * p)])
        values = expectations(diagonal, sets[:, :p], sets[:, p:])
        count[0] += sets.shape[0]
        grad = (values[1 : 2 * p + 1] - values[2 * p + 1 :]) / (2 * step)
        return float(values[0]), grad

    res = minimize(fun, start, jac=True, method="L-BFGS-B", options={"maxiter": 200})
    return res.x, float(res.fun), count[0]


def optimise_angles(
    qubo: QUBO, depth: int, rng: np.random.Generator, restarts: int = 3
) -> QAOAResult:
    """Angles minimising ``<E>`` at depth ``depth`` (see the module docstring)."""
    if not (isinstance(depth, int | np.integer) and depth >= 1):
        raise QAOAError(f"depth must be an integer >= 1, got {depth!r}")
    if not (isinstance(restarts, int | np.integer) and restarts >= 1):
        raise QAOAError(f"restarts must be an integer >= 1, got {restarts!r}")
    full = to_ising(qubo)
    ising = full.scaled(1.0 / full.scale())
    diagonal = ising.diagonal()
    evaluations = 0
    best_g = best_b = None
    value = np.inf
    for p in range(1, depth + 1):
        starts = []
        if best_g is not None:
            starts.append(np.concatenate([_interp(best_g), _interp(best_b)]))
        ramp = (np.arange(p) + 0.5) / p
        starts.append(np.concatenate([0.8 * ramp, 0.8 * (1.0 - ramp)]))
        for _ in range(restarts - 1):
            starts.append(
                np.concatenate([rng.uniform(0.0, np.pi, p), rng.uniform(0.0, np.pi / 2, p)])
            )
        value = np.inf
        for start in starts:
            theta, f, used = _minimise(diagonal, start)
            evaluations += used
            if f < value - 1e-12:
                value, best_g, best_b = f, theta[:p], theta[p:]
    assert best_g is not None and best_b is not None
    psi = qaoa_states(diagonal, best_g, best_b)[0]
    return QAOAResult(
        qubo,
        ising,
        best_g.copy(),
        best_b.copy(),
        value,
        np.abs(psi) ** 2,
        evaluations,
    )


# --------------------------------------------------------------------------- sampling
def sample(
    result: QAOAResult,
    shots: int,
    rng: np.random.Generator,
    backend=None,
) -> np.ndarray:
    """``(2^n,)`` counts of ``shots`` measurements of the optimised circuit.

    Without a backend, or with the ``exact`` one, the shots are drawn from the exact
    distribution with ``rng``; otherwise the backend runs the circuit and its counts are
    returned."""
    if not (isinstance(shots, int | np.integer) and shots >= 1):
        raise QAOAError(f"shots must be an integer >= 1, got {shots!r}")
    if backend is None or backend.name == "exact":
        p = result.probabilities / result.probabilities.sum()
        return rng.multinomial(int(shots), p)
    if not backend.computes:
        raise QAOAError(f"backend {backend.name} computes nothing; QAOA needs counts")
    template = qaoa_template(result.ising, result.depth)
    inputs = template_inputs(result.ising, result.gammas, result.betas)
    job = backend.run(template, inputs, shots=int(shots))
    out = np.zeros(1 << result.qubo.n, dtype=np.int64)
    for key, value in job.counts[0].items():
        out[int(key, 2)] += value
    return out

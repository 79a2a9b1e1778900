"""Exact, batched evaluation of the policy circuit (the PQC actor) and its gradients.

The circuit of :func:`qpu.templates.policy_inference` has a closed-form encoded state and a
real ansatz, which this module exploits:

* Encoding. ``H^n`` followed by ``exp(i gamma sum_{j<k} x_j x_k Z_j Z_k)`` gives amplitudes
  ``2^{-n/2} exp(i phi(z))`` with ``phi(z) = gamma/2 (S(z)^2 - |x|^2)``,
  ``S(z) = sum_j x_j s_j(z)`` and ``s_j = +1/-1`` the Z eigenvalue of qubit ``j`` in basis
  state ``z`` (Qiskit's little-endian order: qubit ``j`` is bit ``j``). ``S`` of all basis
  states follows from ``S(0) = sum_j x_j`` by flipping one bit at a time (``S`` changes by
  ``-2 x_j``), and ``phi(z) = phi(~z)``, so only half the phases need a sine and a cosine.
  The optional first-order encoding (``linear`` = beta) then rotates every qubit by
  ``RY(2 beta x_j)``, per sample, before the trainable layers (so the adjoint sweeps, which
  stop at the first trainable gate, never undo it).
* Ansatz. RY rotations are real 2x2 rotations of amplitude pairs and a CZ layer is a fixed
  sign vector; both act on the real and imaginary parts separately.
* Layout. Samples are processed in blocks of :data:`BLOCK`, stored amplitude-major and
  sample-minor, so every inner loop runs over contiguous samples and compiles to SIMD
  instructions, and sine and cosine come from an inlined polynomial (Cody-Waite reduction
  by pi/2 and the Cephes minimax polynomials on [-pi/4, pi/4], accurate to a few ulp) that
  vectorises as well, where a libm call per value would cost most of the time.

Gradients of every ``<Z_j>`` with respect to every trainable angle come from the adjoint
method (one backward sweep, carrying one co-state per observable); they equal the
parameter-shift rule, which the tests check. A backward pass of training needs only their
contraction with the upstream gradients, which one co-state carries (:func:`policy_vjp`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numba import njit

from qpu.templates import Template, TemplateError, entangler_pairs

BLOCK = 16
"""Samples per block of the compiled kernels."""

# Cody-Waite split of pi/2 (fdlibm) and the Cephes polynomials for |r| <= pi/4
_PIO2_1 = 1.57079632673412561417e00
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624871116645580e-21
_TWO_OVER_PI = 6.36619772367581382433e-01
_S1 = -1.66666666666666307295e-1
_S2 = 8.33333333332211858878e-3
_S3 = -1.98412698295895385996e-4
_S4 = 2.75573136213857245213e-6
_S5 = -2.50507477628578072866e-8
_S6 = 1.58962301576546568060e-10
_C1 = 4.16666666666665929218e-2
_C2 = -1.38888888888730564116e-3
_C3 = 2.48015872888517045348e-5
_C4 = -2.75573141792967388112e-7
_C5 = 2.08757008419747316778e-9
_C6 = -1.13585365213876817300e-11


@njit(cache=True, inline="always")
def _sincos(x):
    """``(sin x, cos x)`` without a library call; exact reduction for ``|x| < 2^30``."""
    j = np.floor(x * _TWO_OVER_PI + 0.5)
    r = ((x - j * _PIO2_1) - j * _PIO2_2) - j * _PIO2_3
    z = r * r
    s = r + r * z * (_S1 + z * (_S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))))
    c = 1.0 - 0.5 * z + z * z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6)))))
    q = j - 4.0 * np.floor(j * 0.25)  # quadrant 0..3
    odd = q == 1.0 or q == 3.0
    sin_x = c if odd else s
    cos_x = s if odd else c
    if q >= 2.0:
        sin_x = -sin_x
    if q == 1.0 or q == 2.0:
        cos_x = -cos_x
    return sin_x, cos_x


@njit(cache=True)
def sincos(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise :func:`_sincos` of a 1-d array (for tests)."""
    s = np.empty_like(x)
    c = np.empty_like(x)
    for i in range(x.shape[0]):
        s[i], c[i] = _sincos(x[i])
    return s, c


_FAST = {"contract", "arcp", "nsz", "nnan", "ninf"}
"""Compiler licences for the amplitude loops: fused multiply-add and no special values
(the inputs are checked to be finite). No reassociation: sums keep their order."""

LANES = 2 * BLOCK
"""Real lanes per amplitude row: the real parts of a block's samples, then the imaginary."""


@njit(cache=True, inline="always", fastmath=_FAST)
def _encode(xt, b0, gamma, beta, n, S, x2, sn, cs, a):
    """The encoded state of block ``b0`` into ``a`` (dim, LANES); ``S`` (dim/2, BLOCK),
    ``x2`` (BLOCK,), ``sn`` and ``cs`` (LANES,) are scratch. The sines and cosines go to their own
    rows first: a loop writing only contiguous scratch compiles to SIMD code, one writing
    two rows of ``a`` at once does not."""
    dim = 1 << n
    half = dim >> 1
    norm = 1.0 / np.sqrt(dim)
    for bb in range(BLOCK):
        S[0, bb] = 0.0
        x2[bb] = 0.0
    for q in range(n):
        for bb in range(BLOCK):
            v = xt[q, b0 + bb]
            S[0, bb] += v
            x2[bb] += v * v
    for q in range(n - 1):
        step = 1 << q
        for z in range(step):
            for bb in range(BLOCK):
                S[z + step, bb] = S[z, bb] - 2.0 * xt[q, b0 + bb]
    g = 0.5 * gamma
    for z in range(half):
        row = S[z]
        for bb in range(BLOCK):
            t = row[bb]
            s, c = _sincos(g * (t * t - x2[bb]))
            sn[bb] = s * norm
            cs[bb] = c * norm
        low = a[z]
        high = a[dim - 1 - z]
        for bb in range(BLOCK):
            low[bb] = cs[bb]
            low[BLOCK + bb] = sn[bb]
            high[bb] = cs[bb]
            high[BLOCK + bb] = sn[bb]
    if beta != 0.0:  # the first-order encoding RY(2 beta x_q) on every qubit
        for q in range(n):
            for bb in range(BLOCK):
                sv, cv = _sincos(beta * xt[q, b0 + bb])
                sn[bb] = sv
                sn[BLOCK + bb] = sv
                cs[bb] = cv
                cs[BLOCK + bb] = cv
            _ry(a, q, cs, sn, dim)


@njit(cache=True, inline="always", fastmath=_FAST)
def _ry(a, q, c, s, dim):
    """RY on qubit ``q``; ``c``, ``s`` (LANES,) the cosine and sine of half the angle."""
    step = 1 << q
    for hi in range(0, dim, 2 * step):
        for lo in range(step):
            r0 = a[hi + lo]
            r1 = a[hi + lo + step]
            for k in range(LANES):
                a0 = r0[k]
                a1 = r1[k]
                r0[k] = c[k] * a0 - s[k] * a1
                r1[k] = s[k] * a0 + c[k] * a1


@njit(cache=True, inline="always")
def _flip(a, negative):
    """A CZ layer: negate the amplitudes of the basis states listed in ``negative``."""
    for j in range(negative.shape[0]):
        row = a[negative[j]]
        for k in range(LANES):
            row[k] = -row[k]


@njit(cache=True, inline="always")
def _half_angles(tht, b0, shared, p, c, s, sign):
    """cos and sin of ``sign * theta_p / 2`` for the block (theta shared or per sample),
    repeated for the real and the imaginary lanes."""
    if shared:
        sv, cv = _sincos(0.5 * sign * tht[p, 0])
        for k in range(LANES):
            s[k] = sv
            c[k] = cv
    else:
        for bb in range(BLOCK):
            sv, cv = _sincos(0.5 * sign * tht[p, b0 + bb])
            s[bb] = sv
            c[bb] = cv
            s[BLOCK + bb] = sv
            c[BLOCK + bb] = cv


@njit(cache=True, inline="always", fastmath=_FAST)
def _state(xt, b0, tht, shared, gamma, beta, n, layers, negative, S, x2, c, s, a, final):
    """The state of block ``b0`` into ``a``: the encoding, then the ``layers`` trainable
    layers (RY, CZ), then the final RY layer when ``final``. ``S``, ``x2``, ``c`` and ``s``
    are scratch."""
    dim = 1 << n
    _encode(xt, b0, gamma, beta, n, S, x2, c, s, a)
    for layer in range(layers + 1 if final else layers):
        for q in range(n):
            _half_angles(tht, b0, shared, layer * n + q, c, s, 1.0)
            _ry(a, q, c, s, dim)
        if layer < layers:
            _flip(a, negative)


@njit(cache=True, fastmath=_FAST)
def policy_forward(xt, tht, gamma, beta, n, layers, negative, out):
    """``<Z_q>`` of the policy circuit for every sample.

    ``xt`` (n, B) inputs, B a multiple of BLOCK; ``tht`` (n (layers + 1), 1) shared angles
    or (n (layers + 1), B) per sample; ``negative`` the basis states a CZ layer negates;
    ``out`` (n, B) is filled. The final RY layer is not applied to the state: with
    ``U = RY(f)``, ``U^+ Z U = cos f Z - sin f X``, so ``<Z_q> = cos f_q <Z_q>' -
    sin f_q <X_q>'`` in the state ``'`` before it, both read in one pass per qubit.
    """
    dim = 1 << n
    nb = xt.shape[1]
    shared = tht.shape[1] == 1
    a = np.empty((dim, LANES))
    S = np.empty((dim >> 1, BLOCK))
    x2 = np.empty(BLOCK)
    c = np.empty(LANES)
    s = np.empty(LANES)
    zacc = np.empty(LANES)
    xacc = np.empty(LANES)
    for b0 in range(0, nb, BLOCK):
        _state(xt, b0, tht, shared, gamma, beta, n, layers, negative, S, x2, c, s, a, False)
        for q in range(n):
            step = 1 << q
            for k in range(LANES):
                zacc[k] = 0.0
                xacc[k] = 0.0
            for hi in range(0, dim, 2 * step):
                for lo in range(step):
                    r0 = a[hi + lo]
                    r1 = a[hi + lo + step]
                    for k in range(LANES):
                        a0 = r0[k]
                        a1 = r1[k]
                        zacc[k] += a0 * a0 - a1 * a1
                        xacc[k] += a0 * a1
            # cos f and sin f of the full final angle: the double-angle forms of c, s
            _half_angles(tht, b0, shared, layers * n + q, c, s, 1.0)
            for bb in range(BLOCK):
                cf = c[bb] * c[bb] - s[bb] * s[bb]
                sf = 2.0 * s[bb] * c[bb]
                z_exp = zacc[bb] + zacc[BLOCK + bb]
                x_exp = 2.0 * (xacc[bb] + xacc[BLOCK + bb])
                out[q, b0 + bb] = cf * z_exp - sf * x_exp


@njit(cache=True, fastmath=_FAST)
def policy_adjoint(xt, tht, gamma, beta, n, layers, negative, out, grad):
    """Values as :func:`policy_forward` and ``grad`` (n, P, B): d<Z_q>/d theta_p, by the
    adjoint method: forward to the final state, one co-state ``Z_j psi`` per observable,
    then backwards gate by gate, ``2 Re <lambda| dU/dtheta |psi_before>`` with
    ``dRY/dtheta psi_before = -i/2 Y psi_after`` (a real operation)."""
    dim = 1 << n
    nb = xt.shape[1]
    shared = tht.shape[1] == 1
    a = np.empty((dim, LANES))
    lam = np.empty((n, dim, LANES))
    S = np.empty((dim >> 1, BLOCK))
    x2 = np.empty(BLOCK)
    c = np.empty(LANES)
    s = np.empty(LANES)
    acc = np.empty(LANES)
    for b0 in range(0, nb, BLOCK):
        _state(xt, b0, tht, shared, gamma, beta, n, layers, negative, S, x2, c, s, a, True)
        for j in range(n):
            for k in range(LANES):
                acc[k] = 0.0
            for z in range(dim):
                sign = -1.0 if (z >> j) & 1 else 1.0
                row = a[z]
                target = lam[j, z]
                for k in range(LANES):
                    target[k] = sign * row[k]
                    acc[k] += sign * row[k] * row[k]
            for bb in range(BLOCK):
                out[j, b0 + bb] = acc[bb] + acc[BLOCK + bb]
        for layer in range(layers, -1, -1):
            if layer < layers:
                _flip(a, negative)
                for j in range(n):
                    _flip(lam[j], negative)
            for q in range(n - 1, -1, -1):
                p = layer * n + q
                step = 1 << q
                for j in range(n):
                    for k in range(LANES):
                        acc[k] = 0.0
                    lj = lam[j]
                    for hi in range(0, dim, 2 * step):
                        for lo in range(step):
                            r0 = a[hi + lo]
                            r1 = a[hi + lo + step]
                            l0 = lj[hi + lo]
                            l1 = lj[hi + lo + step]
                            for k in range(LANES):
                                acc[k] += l1[k] * r0[k] - l0[k] * r1[k]
                    for bb in range(BLOCK):
                        grad[j, p, b0 + bb] = acc[bb] + acc[BLOCK + bb]
                if layer > 0 or q > 0:  # uncompute the gate, except after the last one
                    _half_angles(tht, b0, shared, p, c, s, -1.0)
                    _ry(a, q, c, s, dim)
                    for j in range(n):
                        _ry(lam[j], q, c, s, dim)


@njit(cache=True, fastmath=_FAST)
def policy_vjp(xt, tht, gamma, beta, n, layers, negative, gout, grad):
    """``grad`` (P, B): ``sum_q gout[q, b] d<Z_q>/d theta_p`` for every sample ``b``, the
    gradient a loss with upstream gradients ``gout`` (n, B) gets from the circuit.

    The sweep of :func:`policy_adjoint` with one co-state instead of ``n``: the
    observable ``O_b = sum_q gout[q, b] Z_q`` is diagonal, ``O_b psi`` is the final state
    times ``w(z) = sum_q gout[q, b] s_q(z)``, and the adjoint gradient is linear in the
    co-state. About ``n / 2`` times less work than the full Jacobian."""
    dim = 1 << n
    nb = xt.shape[1]
    shared = tht.shape[1] == 1
    a = np.empty((dim, LANES))
    lam = np.empty((dim, LANES))
    S = np.empty((dim >> 1, BLOCK))
    x2 = np.empty(BLOCK)
    w = np.empty(BLOCK)
    c = np.empty(LANES)
    s = np.empty(LANES)
    acc = np.empty(LANES)
    for b0 in range(0, nb, BLOCK):
        _state(xt, b0, tht, shared, gamma, beta, n, layers, negative, S, x2, c, s, a, True)
        for z in range(dim):
            for bb in range(BLOCK):
                w[bb] = 0.0
            for q in range(n):
                sign = -1.0 if (z >> q) & 1 else 1.0
                for bb in range(BLOCK):
                    w[bb] += sign * gout[q, b0 + bb]
            row = a[z]
            target = lam[z]
            for bb in range(BLOCK):
                target[bb] = w[bb] * row[bb]
                target[BLOCK + bb] = w[bb] * row[BLOCK + bb]
        for layer in range(layers, -1, -1):
            if layer < layers:
                _flip(a, negative)
                _flip(lam, negative)
            for q in range(n - 1, -1, -1):
                p = layer * n + q
                step = 1 << q
                for k in range(LANES):
                    acc[k] = 0.0
                for hi in range(0, dim, 2 * step):
                    for lo in range(step):
                        r0 = a[hi + lo]
                        r1 = a[hi + lo + step]
                        l0 = lam[hi + lo]
                        l1 = lam[hi + lo + step]
                        for k in range(LANES):
                            acc[k] += l1[k] * r0[k] - l0[k] * r1[k]
                for bb in range(BLOCK):
                    grad[p, b0 + bb] = acc[bb] + acc[BLOCK + bb]
                if layer > 0 or q > 0:  # uncompute the gate, except after the last one
                    _half_angles(tht, b0, shared, p, c, s, -1.0)
                    _ry(a, q, c, s, dim)
                    _ry(lam, q, c, s, dim)


@dataclass(frozen=True)
class PolicyCircuit:
    """The exact evaluator of one shape of :func:`qpu.templates.policy_inference`."""

    n_qubits: int = 6
    layers: int = 1
    gamma: float = 1.0
    entanglement: str = "ring"
    linear: float = 0.0

    def __post_init__(self) -> None:
        if not 2 <= self.n_qubits <= 20:
            raise TemplateError(f"policy circuit: n_qubits must be in 2..20, got {self.n_qubits}")
        if self.layers < 1:
            raise TemplateError(f"policy circuit: layers must be >= 1, got {self.layers}")
        entangler_pairs(self.n_qubits, self.entanglement)  # validates the name
        if not (np.isfinite(self.gamma) and np.isfinite(self.linear)):
            raise TemplateError("policy circuit: gamma and linear must be finite")

    @classmethod
    def from_template(cls, template: Template) -> PolicyCircuit:
        if template.kind != "policy_inference":
            raise TemplateError(f"not a policy-inference template: {template.kind}")
        return cls(template.size, **dict(template.options))  # type: ignore[arg-type]

    @property
    def n_weights(self) -> int:
        return self.n_qubits * (self.layers + 1)

    @cached_property
    def negative(self) -> np.ndarray:
        """Basis states with an odd number of CZ pairs in state |11> (negated by a layer);
        computed once per circuit."""
        z = np.arange(1 << self.n_qubits)
        parity = np.zeros(z.shape, dtype=np.int64)
        for a, b in entangler_pairs(self.n_qubits, self.entanglement):
            parity ^= ((z >> a) & 1) & ((z >> b) & 1)
        return np.flatnonzero(parity).astype(np.int64)

    def _prepare(self, x: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        n = self.n_qubits
        if x.ndim != 2 or x.shape[1] != n:
            raise TemplateError(f"policy circuit: inputs must be (B, {n}), got {x.shape}")
        b = x.shape[0]
        padded = -(-b // BLOCK) * BLOCK
        xt = np.zeros((n, padded))
        xt[:, :b] = x.T
        th = np.asarray(theta, dtype=np.float64)
        if th.shape == (self.n_weights,):
            tht = th[:, None].copy()
        elif th.shape == (b, self.n_weights):
            tht = np.zeros((self.n_weights, padded))
            tht[:, :b] = th.T
        else:
            raise TemplateError(
                f"policy circuit: theta must be ({self.n_weights},) or ({b}, {self.n_weights}), "
                f"got {th.shape}"
            )
        if not (np.isfinite(xt).all() and np.isfinite(tht).all()):
            raise TemplateError("policy circuit: inputs and angles must be finite")
        return xt, tht, b

    def expectations(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """``<Z_q>`` for each row of ``x`` (B, n): shape (B, n). ``theta`` is shared (P,)
        or per row (B, P)."""
        xt, tht, b = self._prepare(x, theta)
        out = np.empty((self.n_qubits, xt.shape[1]))
        policy_forward(
            xt, tht, self.gamma, self.linear, self.n_qubits, self.layers, self.negative, out
        )
        return out[:, :b].T.copy()

    def gradients(self, x: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values (B, n) and the Jacobian d<Z_q>/d theta_p, shape (B, n, P)."""
        xt, tht, b = self._prepare(x, theta)
        n = self.n_qubits
        out = np.empty((n, xt.shape[1]))
        grad = np.empty((n, self.n_weights, xt.shape[1]))
        policy_adjoint(xt, tht, self.gamma, self.linear, n, self.layers, self.negative, out, grad)
        return out[:, :b].T.copy(), np.ascontiguousarray(grad[:, :, :b].transpose(2, 0, 1))

    def vjp(self, x: np.ndarray, theta: np.ndarray, gout: np.ndarray) -> np.ndarray:
        """The gradient of ``sum_{b,q} gout[b, q] <Z_q>(x_b)`` with respect to ``theta``, in
        theta's shape: (P,) for a shared theta, (B, P) for one per row. ``gout`` (B, n) are
        the upstream gradients of a loss (what a backward pass carries)."""
        xt, tht, b = self._prepare(x, theta)
        n = self.n_qubits
        g = np.asarray(gout, dtype=np.float64)
        if g.shape != (b, n):
            raise TemplateError(f"policy circuit: gout must be ({b}, {n}), got {g.shape}")
        gt = np.zeros((n, xt.shape[1]))
        gt[:, :b] = g.T
        if not np.isfinite(gt).all():
            raise TemplateError("policy circuit: upstream gradients must be finite")
        grad = np.empty((self.n_weights, xt.shape[1]))
        policy_vjp(xt, tht, self.gamma, self.linear, n, self.layers, self.negative, gt, grad)
        if tht.shape[1] == 1:
            return grad[:, :b].sum(axis=1)
        return grad[:, :b].T.copy()

    def state(self, x: np.ndarray) -> np.ndarray:
        """The encoded state (before the ansatz) of one input, as Qiskit orders it."""
        x = np.asarray(x, dtype=np.float64)
        n = self.n_qubits
        z = np.arange(1 << n)
        signs = 1 - 2 * ((z[:, None] >> np.arange(n)) & 1)
        total = signs @ x
        phi = 0.5 * self.gamma * (total**2 - x @ x)
        state = np.exp(1j * phi) / np.sqrt(1 << n)
        if self.linear != 0.0:  # RY(2 linear x_q) on every qubit q (bit q of the index)
            psi = state.reshape((2,) * n)  # axis n - 1 - q is qubit q
            for q in range(n):
                c, s = np.cos(self.linear * x[q]), np.sin(self.linear * x[q])
                ry = np.array([[c, -s], [s, c]])
                psi = np.moveaxis(np.tensordot(ry, psi, axes=([1], [n - 1 - q])), 0, n - 1 - q)
            state = psi.reshape(-1)
        return state

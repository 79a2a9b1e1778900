"""The PQC actor of Q-DDPG as torch modules: PCA input map, the circuit, the output map.

The circuit is :func:`qpu.templates.policy_inference` (MODEL.md: ZZ higher-order encoding,
RY + CZ layers, a final RY layer, Pauli-Z of every qubit). Its values and exact gradients come
from the batched evaluator :class:`qpu.statevector.PolicyCircuit` (adjoint method), wrapped in
:class:`PqcExpectation`, a :class:`torch.autograd.Function`: the forward pass evaluates the
batch, the backward pass gets the upstream gradient's contraction with the Jacobian
d<Z_q>/d theta_p directly (:meth:`~qpu.statevector.PolicyCircuit.vjp`, one adjoint sweep).

The circuit's inputs are not differentiated: they are a fixed function of the state
(:class:`PcaAngles`, fitted once before training), so no gradient needs to flow through them.

The actor maps a state s to an action a in [-1, 1]^A:
``x = arctan(W^T (s - mu) / sd)`` (PCA to ``n_qubits`` whitened components, squashed into
(-pi/2, pi/2) as rotation angles), ``z = <Z>(x; theta)`` and ``a_i = tanh(w_i z_i + b_i)``
for the first A qubits, with trainable ``w`` (initially 2) and ``b`` (initially 0); with
``output_scaling`` off, ``a_i = z_i``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from qpu.statevector import PolicyCircuit


class PqcExpectation(torch.autograd.Function):
    """``<Z_q>`` of the policy circuit for a batch of inputs, differentiable in theta."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, theta: torch.Tensor, circuit: PolicyCircuit):  # type: ignore[override]
        # copies: the backward pass must see the inputs and angles of this forward pass
        ctx.xs = x.detach().cpu().double().numpy().copy()
        ctx.th = theta.detach().cpu().double().numpy().copy()
        ctx.circuit = circuit
        ctx.out_dtype = theta.dtype
        values = circuit.expectations(ctx.xs, ctx.th)
        return torch.from_numpy(values).to(dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        g = grad_out.detach().cpu().double().numpy()
        grad_theta = torch.from_numpy(ctx.circuit.vjp(ctx.xs, ctx.th, g))
        return None, grad_theta.to(dtype=ctx.out_dtype, device=grad_out.device), None


class PqcLayer(nn.Module):
    """The policy circuit with trainable angles ``theta`` (n_qubits (layers + 1),)."""

    def __init__(
        self,
        n_qubits: int = 6,
        layers: int = 1,
        gamma: float = 1.0,
        entanglement: str = "ring",
        linear: float = 0.0,
    ) -> None:
        super().__init__()
        self.circuit = PolicyCircuit(n_qubits, layers, gamma, entanglement, linear)
        init = torch.empty(self.circuit.n_weights, dtype=torch.float64).uniform_(-math.pi, math.pi)
        self.theta = nn.Parameter(init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and self.theta.requires_grad:
            return PqcExpectation.apply(x, self.theta, self.circuit)
        values = self.circuit.expectations(
            x.detach().cpu().double().numpy(), self.theta.detach().cpu().double().numpy()
        )
        return torch.from_numpy(values).to(dtype=x.dtype, device=x.device)


class PcaAngles(nn.Module):
    """Fixed map from states (B, F) to rotation angles (B, n): whitened PCA, then arctan.

    Fewer than ``n`` components (a state with fewer features) are padded with zero angles.
    """

    def __init__(self, mean: np.ndarray, scale: np.ndarray, components: np.ndarray) -> None:
        super().__init__()
        mean = np.asarray(mean, dtype=np.float64)
        scale = np.asarray(scale, dtype=np.float64)
        components = np.asarray(components, dtype=np.float64)  # (F, n), columns whitened
        if mean.shape != scale.shape or components.shape[0] != mean.shape[0]:
            raise ValueError(
                f"PCA arrays disagree: mean {mean.shape}, scale {scale.shape}, "
                f"components {components.shape}"
            )
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("scale", torch.from_numpy(scale))
        self.register_buffer("components", torch.from_numpy(components))

    @classmethod
    def fit(cls, states: np.ndarray, n_components: int) -> PcaAngles:
        """Fit on sample states (S, F): standardise, keep the ``n_components`` leading
        principal directions, each divided by its standard deviation (whitening); directions
        without variance map to zero."""
        s = np.asarray(states, dtype=np.float64)
        if s.ndim != 2 or s.shape[0] < 2:
            raise ValueError(f"PCA needs at least two sample states (S, F), got {s.shape}")
        mean = s.mean(axis=0)
        scale = s.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        z = (s - mean) / scale
        _, sing, vt = np.linalg.svd(z, full_matrices=False)
        sd = sing / math.sqrt(s.shape[0] - 1)
        k = min(n_components, vt.shape[0])
        comp = np.zeros((s.shape[1], n_components))
        for j in range(k):
            if sd[j] > 1e-9:
                v = vt[j] * (1.0 if vt[j][np.argmax(np.abs(vt[j]))] >= 0 else -1.0)
                comp[:, j] = v / sd[j]
        return cls(mean, scale, comp)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        z = ((obs.double() - self.mean) / self.scale) @ self.components
        return torch.atan(z)


class OutputMap(nn.Module):
    """``a_i = tanh(w_i z_i + b_i)`` on the first ``n_actions`` expectations (or ``z_i``)."""

    def __init__(self, n_actions: int, scaling: bool = True, init_weight: float = 2.0) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.scaling = scaling
        if scaling:
            self.weight = nn.Parameter(torch.full((n_actions,), init_weight, dtype=torch.float64))
            self.bias = nn.Parameter(torch.zeros(n_actions, dtype=torch.float64))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z[:, : self.n_actions]
        if not self.scaling:
            return z
        return torch.tanh(self.weight * z + self.bias)


class QuantumActorNet(nn.Module):
    """State (B, F) -> action (B, A) through PCA angles, the PQC and the output map."""

    def __init__(
        self,
        pca: PcaAngles,
        n_actions: int,
        n_qubits: int = 6,
        layers: int = 1,
        gamma: float = 1.0,
        entanglement: str = "ring",
        output_scaling: bool = True,
        linear: float = 0.0,
    ) -> None:
        super().__init__()
        if n_actions > n_qubits:
            raise ValueError(f"{n_actions} actions need at least as many qubits, got {n_qubits}")
        self.pca = pca
        self.pqc = PqcLayer(n_qubits, layers, gamma, entanglement, linear)
        self.out = OutputMap(n_actions, output_scaling)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.out(self.pqc(self.pca(obs))).to(obs.dtype)

"""The fast paths of RL training equal the code they replace: the policy circuit's
vector-Jacobian product against its Jacobian and the parameter-shift rule on Qiskit's
Statevector."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from qiskit.quantum_info import Statevector

from models.quantum_actor import PqcLayer
from qpu.statevector import BLOCK, PolicyCircuit
from qpu.templates import TemplateError, policy_inference

torch.set_num_threads(1)


def _qiskit_z(template, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    state = Statevector(template.bind(x, theta))
    return np.array([state.expectation_value(op).real for op in template.observables])


@pytest.mark.parametrize(
    "n, layers, gamma, entanglement",
    [(6, 1, 1.0, "ring"), (6, 2, 0.5, "chain"), (3, 1, 2.0, "ring"), (5, 3, 1.0, "ring")],
)
def test_vjp_is_the_jacobian_contracted_with_the_upstream_gradient(n, layers, gamma, entanglement):
    pc = PolicyCircuit(n, layers, gamma, entanglement)
    rng = np.random.default_rng(10 * n + layers)
    b = 2 * BLOCK + 3  # full blocks and a partial one
    x = rng.uniform(-2, 2, (b, n))
    g = rng.normal(size=(b, n))
    shared = rng.uniform(-math.pi, math.pi, pc.n_weights)
    per_row = rng.uniform(-math.pi, math.pi, (b, pc.n_weights))
    _, jac = pc.gradients(x, shared)
    got = pc.vjp(x, shared, g)
    assert got.shape == (pc.n_weights,)
    np.testing.assert_allclose(got, np.einsum("bq,bqp->p", g, jac), rtol=0, atol=1e-11)
    _, jac_rows = pc.gradients(x, per_row)
    got_rows = pc.vjp(x, per_row, g)
    assert got_rows.shape == (b, pc.n_weights)
    np.testing.assert_allclose(got_rows, np.einsum("bq,bqp->bp", g, jac_rows), rtol=0, atol=1e-12)


def test_vjp_equals_parameter_shift_on_qiskit():
    t = policy_inference(6, 2, 0.7, "ring")
    pc = PolicyCircuit.from_template(t)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.5, 1.5, (4, 6))
    g = rng.normal(size=(4, 6))
    theta = rng.uniform(-math.pi, math.pi, pc.n_weights)
    shift = np.zeros(pc.n_weights)
    for p in range(pc.n_weights):
        e = np.zeros(pc.n_weights)
        e[p] = math.pi / 2
        for i in range(4):
            plus, minus = _qiskit_z(t, x[i], theta + e), _qiskit_z(t, x[i], theta - e)
            shift[p] += g[i] @ (plus - minus) / 2
    np.testing.assert_allclose(pc.vjp(x, theta, g), shift, rtol=0, atol=1e-10)
    # a zero upstream gradient gives zero, one on a single observable its Jacobian row
    assert not pc.vjp(x, theta, np.zeros((4, 6))).any()
    one = np.zeros((4, 6))
    one[2, 4] = 1.0
    np.testing.assert_allclose(
        pc.vjp(x, theta, one), pc.gradients(x[2:3], theta)[1][0, 4], atol=1e-13
    )


def test_vjp_input_errors():
    pc = PolicyCircuit()
    with pytest.raises(TemplateError, match="gout must be"):
        pc.vjp(np.zeros((3, 6)), np.zeros(12), np.zeros((3, 5)))
    with pytest.raises(TemplateError, match="upstream gradients must be finite"):
        pc.vjp(np.zeros((3, 6)), np.zeros(12), np.full((3, 6), np.inf))


def test_pqc_layer_backward_sees_the_angles_of_its_forward_pass():
    """The optimiser changes theta in place after a forward pass; a backward pass run after
    that still differentiates at the angles the forward pass used."""
    layer = PqcLayer(6, 1)
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (4, 6)))
    theta0 = layer.theta.detach().numpy().copy()
    out = layer(x)
    with torch.no_grad():
        layer.theta.add_(0.3)
    out.sum().backward()
    want = layer.circuit.vjp(x.numpy(), theta0, np.ones((4, 6)))
    np.testing.assert_allclose(layer.theta.grad.numpy(), want, rtol=0, atol=0)

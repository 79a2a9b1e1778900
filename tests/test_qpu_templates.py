"""Circuit templates against hand-derived expectation values, and the exact fast path of
the policy circuit (values and gradients) against Qiskit's Statevector."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import qiskit_values
from qiskit.quantum_info import Statevector

from qpu.statevector import BLOCK, PolicyCircuit, sincos
from qpu.templates import KINDS, TemplateError, build_template, policy_inference


def test_every_kind_builds_with_its_width_and_parameters():
    expected = {
        "semantic_coding": (4, 4, 8, 2),
        "multimodal_attention": (4, 4, 10, 2),
        "policy_inference": (6, 6, 12, 6),
        "federated_aggregation": (6, 6, 0, 1),
        "twin_forecast": (4, 4, 8, 4),
    }
    for kind in KINDS:
        t = build_template(kind)
        assert (t.width, t.n_inputs, t.n_weights, len(t.observables)) == expected[kind]
        assert t.depth == t.circuit.depth() > 0
        assert build_template(kind) is t  # cached
    assert build_template("semantic_coding", 8).width == 8
    assert build_template("multimodal_attention", 3).width == 6


def test_bad_kinds_and_sizes_are_refused():
    with pytest.raises(TemplateError, match="unknown job kind 'qaoa'"):
        build_template("qaoa")
    with pytest.raises(TemplateError, match="at least 2 qubits"):
        build_template("policy_inference", 1)
    with pytest.raises(TemplateError, match="pooling levels"):
        build_template("semantic_coding", 4, levels=3)
    with pytest.raises(TemplateError, match="entanglement 'all'"):
        policy_inference(4, entanglement="all")
    t = build_template("policy_inference")
    with pytest.raises(TemplateError, match="inputs have 5 columns"):
        t.parameter_values(np.zeros((2, 5)), np.zeros(12))
    with pytest.raises(TemplateError, match="weights of shape"):
        t.parameter_values(np.zeros((2, 6)), np.zeros((3, 12)))


def test_semantic_coding_hand_values():
    t = build_template("semantic_coding")
    x = np.array([0.3, -1.1, 2.0, 0.7])
    # zero weights: the convolutions are their CNOTs, the pooling the identity
    got = qiskit_values(t, x, np.zeros(8))
    assert got == pytest.approx([math.cos(x[0]) * math.cos(x[1]), math.cos(x[2]) * math.cos(x[3])])
    # pooling 0 -> 1 by CRY(pi) with qubit 0 in |1>: the CNOT's flip of qubit 1 is undone
    w = np.zeros(8)
    x = np.array([math.pi, 0.4, 0.0, 0.0])
    assert qiskit_values(t, x, w)[0] == pytest.approx(-math.cos(0.4))
    w[6] = math.pi
    assert qiskit_values(t, x, w)[0] == pytest.approx(math.cos(0.4))


def test_twin_forecast_hand_values():
    t = build_template("twin_forecast")
    x = np.array([0.3, -1.1, 2.0, 0.7])
    # zero weights: RY(x_j) then the CNOT chain, <Z_j> = prod_{i <= j} cos x_i
    assert qiskit_values(t, x, np.zeros(8)) == pytest.approx(np.cumprod(np.cos(x)), abs=1e-12)
    # a final RY(pi) on qubit 0 flips its Z; the first layer's RY(pi) on qubit 3 flips Z_3
    w = np.zeros(8)
    w[4] = math.pi
    w[3] = math.pi
    expected = np.cumprod(np.cos(x))
    expected[0] *= -1
    expected[3] *= -1
    assert qiskit_values(t, x, w) == pytest.approx(expected, abs=1e-12)


def test_attention_hand_values():
    t = build_template("multimodal_attention", 1)
    v, u = 0.7, 1.1
    w = np.array([0.0, 0.0, v, u])  # self-attention A, B; cross CRZ; interference RX
    assert qiskit_values(t, [math.pi / 2, math.pi], w)[0] == pytest.approx(
        math.sin(v) * math.sin(u)
    )
    # without cross-attention the fused feature is the rotated camera qubit alone
    assert qiskit_values(t, [0.4, 1.3], [0.5, 0.2, 0.0, 0.0])[0] == pytest.approx(math.cos(0.9))


def test_aggregation_is_the_overlap():
    t = build_template("federated_aggregation")
    rng = np.random.default_rng(3)
    for _ in range(3):
        c, g = rng.uniform(-3, 3, 3), rng.uniform(-3, 3, 3)
        overlap = np.prod(np.cos((c - g) / 2) ** 2)
        assert qiskit_values(t, np.r_[c, g])[0] == pytest.approx(overlap, abs=1e-12)
    assert qiskit_values(t, [0.3, 1.0, -2.0, 0.3, 1.0, -2.0])[0] == pytest.approx(1.0)


def test_policy_hand_values():
    # x = 0: |+>^n, one layer of angles t, final angles f, CZ ring
    t = build_template("policy_inference")
    rng = np.random.default_rng(4)
    ang, fin = rng.uniform(-3, 3, 6), rng.uniform(-3, 3, 6)
    neighbours = [((j - 1) % 6, (j + 1) % 6) for j in range(6)]
    hand = [
        -math.cos(fin[j]) * math.sin(ang[j])
        - math.sin(fin[j]) * math.cos(ang[j]) * np.prod([-math.sin(ang[k]) for k in neighbours[j]])
        for j in range(6)
    ]
    assert qiskit_values(t, np.zeros(6), np.r_[ang, fin]) == pytest.approx(hand, abs=1e-12)
    # two qubits, one CZ: the ZZ encoding enters through cos(2 gamma x0 x1)
    gamma = 0.8
    t2 = policy_inference(2, gamma=gamma, entanglement="chain")
    x = np.array([0.9, -1.4])
    t0, t1, f0, f1 = 0.3, -1.2, 0.8, 2.1
    hand0 = -math.cos(f0) * math.sin(t0) * math.cos(2 * gamma * x[0] * x[1]) + math.sin(
        f0
    ) * math.cos(t0) * math.sin(t1)
    got = qiskit_values(t2, x, [t0, t1, f0, f1])
    assert got[0] == pytest.approx(hand0, abs=1e-12)
    fast = PolicyCircuit(2, 1, gamma, "chain").expectations(x[None], np.array([t0, t1, f0, f1]))
    assert fast[0, 0] == pytest.approx(hand0, abs=1e-12)


def test_sincos_matches_numpy():
    x = np.concatenate(
        [np.linspace(-1e4, 1e4, 100_001), np.array([0.0, math.pi / 4, math.pi / 2, -math.pi])]
    )
    s, c = sincos(x)
    assert np.abs(s - np.sin(x)).max() < 1e-12
    assert np.abs(c - np.cos(x)).max() < 1e-12


@pytest.mark.parametrize(
    "n, layers, gamma, entanglement, linear",
    [
        (6, 1, 1.0, "ring", 0.0),
        (6, 2, 0.5, "chain", 0.0),
        (3, 1, 2.0, "ring", 0.0),
        (5, 3, 1.0, "ring", 0.0),
        (6, 1, 1.0, "ring", 0.7),
        (3, 2, 0.5, "chain", -1.1),
    ],
)
def test_fast_path_equals_statevector(n, layers, gamma, entanglement, linear):
    t = policy_inference(n, layers, gamma, entanglement, linear)
    pc = PolicyCircuit.from_template(t)
    rng = np.random.default_rng(n + layers)
    b = BLOCK + 3  # a full block and a partial one
    x = rng.uniform(-2, 2, (b, n))
    theta = rng.uniform(-math.pi, math.pi, pc.n_weights)
    per_row = rng.uniform(-math.pi, math.pi, (b, pc.n_weights))
    shared = pc.expectations(x, theta)
    rows = pc.expectations(x, per_row)
    for i in range(b):
        assert np.abs(shared[i] - qiskit_values(t, x[i], theta)).max() < 1e-10
        assert np.abs(rows[i] - qiskit_values(t, x[i], per_row[i])).max() < 1e-10
    # the encoded state itself, global phase included
    enc = t.circuit.copy_empty_like()
    enc.h(range(n))
    for j in range(n):
        for k in range(j + 1, n):
            enc.rzz(-2 * gamma * x[0, j] * x[0, k], j, k)
    for j in range(n):
        enc.ry(2 * linear * x[0, j], j)
    assert np.abs(pc.state(x[0]) - Statevector(enc).data).max() < 1e-12


def test_linear_encoding_hand_values_and_parity():
    """Two qubits, one CZ, no ZZ term (gamma 0), first-layer angles 0: the encoded qubits
    are ``RY(2 b x_j)|+>``, so ``<Z_0> = -cos f_0 sin(2 b x_0) + sin f_0 cos(2 b x_0)
    sin(2 b x_1)``, odd in x. Without the first-order term (b = 0) every output is an even
    function of the inputs, exactly."""
    b = 0.6
    x = np.array([0.9, -1.4])
    f0, f1 = 0.8, 2.1
    t = policy_inference(2, gamma=0.0, entanglement="chain", linear=b)
    hand = -math.cos(f0) * math.sin(2 * b * x[0]) + math.sin(f0) * math.cos(
        2 * b * x[0]
    ) * math.sin(2 * b * x[1])
    assert qiskit_values(t, x, [0.0, 0.0, f0, f1])[0] == pytest.approx(hand, abs=1e-12)
    fast = PolicyCircuit.from_template(t).expectations(x[None], np.array([0.0, 0.0, f0, f1]))
    assert fast[0, 0] == pytest.approx(hand, abs=1e-12)
    rng = np.random.default_rng(2)
    xs = rng.uniform(-1.5, 1.5, (40, 6))
    theta = rng.uniform(-math.pi, math.pi, 12)
    even = PolicyCircuit(6, 1, 1.0, "ring", 0.0)
    assert np.array_equal(even.expectations(xs, theta), even.expectations(-xs, theta))
    odd = PolicyCircuit(6, 1, 1.0, "ring", 0.5)
    assert np.abs(odd.expectations(xs, theta) - odd.expectations(-xs, theta)).max() > 0.1


def test_gradients_equal_parameter_shift():
    pc = PolicyCircuit()
    rng = np.random.default_rng(7)
    x = rng.uniform(-2, 2, (BLOCK + 5, 6))
    theta = rng.uniform(-math.pi, math.pi, (BLOCK + 5, 12))
    values, jac = pc.gradients(x, theta)
    assert np.abs(values - pc.expectations(x, theta)).max() < 1e-12
    shift = np.empty_like(jac)
    for p in range(12):
        e = np.zeros(12)
        e[p] = math.pi / 2
        shift[:, :, p] = (pc.expectations(x, theta + e) - pc.expectations(x, theta - e)) / 2
    assert np.abs(jac - shift).max() < 1e-10
    # and the shift rule on Qiskit's own circuit, for one row and a shared theta
    t = build_template("policy_inference")
    _, jac1 = pc.gradients(x[:1], theta[0])
    for p in (0, 5, 6, 11):
        e = np.zeros(12)
        e[p] = math.pi / 2
        ref = (qiskit_values(t, x[0], theta[0] + e) - qiskit_values(t, x[0], theta[0] - e)) / 2
        assert np.abs(jac1[0, :, p] - ref).max() < 1e-10


def test_fast_path_input_errors():
    pc = PolicyCircuit()
    with pytest.raises(TemplateError, match="inputs must be"):
        pc.expectations(np.zeros((3, 5)), np.zeros(12))
    with pytest.raises(TemplateError, match="theta must be"):
        pc.expectations(np.zeros((3, 6)), np.zeros(11))
    with pytest.raises(TemplateError, match="finite"):
        pc.expectations(np.full((1, 6), np.nan), np.zeros(12))
    with pytest.raises(TemplateError, match="not a policy"):
        PolicyCircuit.from_template(build_template("semantic_coding"))

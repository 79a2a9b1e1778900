"""QAOA: the QUBO-Ising mapping, the evaluator against Qiskit, optimality on small QUBOs,
the policy's encoding and the policy in the engine."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import run_table, scenario
from qiskit.quantum_info import Statevector

from models.policies import make
from models.policies.heuristics import estimated_costs
from models.policies.qaoa import decode, feasible, group_qubo, offload_costs
from qpu import qaoa
from qpu.backends import make_backend
from sim.errors import ScenarioError
from sim.scenario import validate_data
from sim.seeds import SeedTree


def random_qubo(rng: np.random.Generator, n: int) -> qaoa.QUBO:
    # Q need not be symmetric: the QUBO symmetrises it without changing x^T Q x
    return qaoa.QUBO(rng.normal(size=(n, n)), rng.normal(size=n), float(rng.normal()))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_ising_energy_equals_the_qubo_energy_on_every_bitstring(n):
    rng = np.random.default_rng(n)
    q = random_qubo(rng, n)
    ising = qaoa.to_ising(q)
    x = np.array(list(itertools.product([0, 1], repeat=n)), dtype=float)
    direct = np.einsum("bi,ij,bj->b", x, q.Q, x) + x @ q.c + q.offset
    np.testing.assert_allclose(q.energy(x), direct, atol=1e-12)
    np.testing.assert_allclose(ising.energy(1.0 - 2.0 * x), direct, atol=1e-12)
    # the diagonal is indexed by basis state: bit i of the index is x_i
    z = (x * (1 << np.arange(n))).sum(axis=1).astype(int)
    np.testing.assert_allclose(ising.diagonal()[z] + ising.const, direct, atol=1e-12)
    np.testing.assert_allclose(q.energies()[z], direct, atol=1e-12)
    assert np.allclose(np.tril(ising.J), 0.0)


def test_brute_force_finds_a_planted_optimum():
    # separable QUBO: x_i = 1 exactly where c_i < 0; two ties make two optima
    c = np.array([-1.0, 2.0, -0.5, 0.0, 3.0])
    opt = qaoa.brute_force(qaoa.QUBO(np.zeros((5, 5)), c, 4.0))
    assert opt.energy == pytest.approx(2.5)
    assert sorted(opt.states.tolist()) == [0b00101, 0b01101]


@pytest.mark.parametrize("n,depth", [(1, 1), (3, 2), (5, 3), (6, 1)])
def test_fast_evaluator_equals_qiskit_statevector(n, depth):
    rng = np.random.default_rng(10 * n + depth)
    ising = qaoa.to_ising(random_qubo(rng, n))
    gammas = rng.uniform(-np.pi, np.pi, (4, depth))
    betas = rng.uniform(-np.pi, np.pi, (4, depth))
    fast = qaoa.qaoa_states(ising.diagonal(), gammas, betas)
    template = qaoa.qaoa_template(ising, depth)
    inputs = qaoa.template_inputs(ising, gammas, betas)
    for b in range(4):
        reference = Statevector(qaoa.qaoa_circuit(ising, gammas[b], betas[b])).data
        np.testing.assert_allclose(fast[b], reference, atol=1e-10, rtol=0)
        bound = Statevector(template.circuit.assign_parameters(inputs[b])).data
        np.testing.assert_allclose(bound, reference, atol=1e-10, rtol=0)
    np.testing.assert_allclose(
        qaoa.expectations(ising.diagonal(), gammas, betas),
        (np.abs(fast) ** 2) @ ising.diagonal(),
        atol=1e-12,
    )


def test_qaoa_finds_the_exact_optimum_of_small_qubos():
    """Depth 3, 2 starts, 20 seeded Gaussian QUBOs of 4 to 8 variables: the optimum gets at
    least twice its uniform probability on every instance and ten times on the median one,
    and the best of 64 exact shots is optimal on at least 18 of the 20."""
    amplification, hits = [], 0
    for n in range(4, 9):
        for s in range(4):
            rng = np.random.default_rng(100 * n + s)
            q = random_qubo(rng, n)
            result = qaoa.optimise_angles(q, 3, rng, restarts=2)
            opt = qaoa.brute_force(q)
            amplification.append(result.probabilities[opt.states].sum() * 2**n)
            counts = qaoa.sample(result, 64, rng)
            assert counts.sum() == 64
            hits += q.energies()[np.flatnonzero(counts)].min() <= opt.energy + 1e-9
    assert min(amplification) >= 2.0, amplification
    assert np.median(amplification) >= 10.0, amplification
    assert hits >= 18


def test_angles_and_samples_are_deterministic_given_the_generator():
    q = random_qubo(np.random.default_rng(3), 5)
    a = qaoa.optimise_angles(q, 2, np.random.default_rng(7), restarts=3)
    b = qaoa.optimise_angles(q, 2, np.random.default_rng(7), restarts=3)
    assert np.array_equal(a.gammas, b.gammas) and np.array_equal(a.betas, b.betas)
    sa = qaoa.sample(a, 100, np.random.default_rng(1))
    assert np.array_equal(sa, qaoa.sample(b, 100, np.random.default_rng(1)))


def test_aer_shots_follow_the_exact_distribution():
    q = random_qubo(np.random.default_rng(4), 4)
    result = qaoa.optimise_angles(q, 2, np.random.default_rng(0))
    shots = 20_000
    counts = qaoa.sample(result, shots, np.random.default_rng(0), make_backend("aer", SeedTree(2)))
    assert counts.sum() == shots
    # total variation distance: its sampling error here is about 0.02
    tv = 0.5 * np.abs(counts / shots - result.probabilities).sum()
    assert tv < 0.03, tv
    with pytest.raises(qaoa.QAOAError, match="computes nothing"):
        qaoa.sample(result, 10, np.random.default_rng(0), make_backend("timing-only"))


def test_bad_inputs_raise_one_clear_error():
    with pytest.raises(qaoa.QAOAError, match=r"shape \(n, n\)"):
        qaoa.QUBO(np.zeros((2, 3)), np.zeros(2))
    q = random_qubo(np.random.default_rng(0), 3)
    with pytest.raises(qaoa.QAOAError, match="depth must be an integer >= 1"):
        qaoa.optimise_angles(q, 0, np.random.default_rng(0))
    with pytest.raises(qaoa.QAOAError, match="at most 20"):
        qaoa.QUBO(np.zeros((21, 21)), np.zeros(21)).energies()


# --------------------------------------------------------------------------- the policy
def observation_of(sc):
    """The first observation with tasks of a run of ``sc``, captured from the engine."""
    seen = []

    class Capture:
        id = "capture"

        def decide(self, obs):
            if obs.n_tasks >= 3 and not seen:
                seen.append(obs)
            return make("local", {}, sc, np.random.default_rng(0)).decide(obs)

    run_table(sc, policy=Capture())
    return seen[0]


def test_policy_qubo_minimum_is_the_exhaustive_minimum_over_options():
    sc = scenario(engine={"horizon": "2 s"}, tasks={"arrival_rate": "100 /s"})
    obs = observation_of(sc)
    v = obs.task_vehicle
    cand = obs.vehicle_candidates[v][:, :2]
    levels = 0.5 ** np.arange(2)
    off, tx, _, _ = offload_costs(obs, cand, levels)
    local, greedy_off = estimated_costs(obs)
    # greedy's offload estimate is the serving server (candidate 0) at P_max
    np.testing.assert_allclose(off[:, 0, 0], greedy_off, rtol=1e-12)
    cost = np.concatenate([local[:, None], off.reshape(obs.n_tasks, -1)], axis=1)
    tx = tx.reshape(obs.n_tasks, -1)
    lt = obs.task_cycles * obs.local_accuracy / obs.vehicle_cpu[v]
    rows = np.arange(3)
    arr = obs.task_arrival[rows]
    w1 = obs.latency_weight
    q = group_qubo(cost[rows], arr, lt[rows], tx[rows], w1, penalty=1.5)
    m = cost.shape[1]
    best = np.inf
    for opts in itertools.product(range(m), repeat=3):
        total = sum(cost[i, o] for i, o in enumerate(opts))
        for i, j in itertools.combinations(range(3), 2):
            if opts[i] == 0 and opts[j] == 0:
                total += w1 * max(0.0, arr[i] + lt[i] - arr[j])
            elif opts[i] > 0 and opts[j] > 0:
                total += w1 * max(0.0, arr[i] + tx[i, opts[i] - 1] - arr[j])
        z = sum(1 << (i * m + o) for i, o in enumerate(opts))
        assert q.energy(qaoa.bits(np.array([z]), 3 * m))[0] == pytest.approx(total, rel=1e-9)
        best = min(best, total)
    opt = qaoa.brute_force(q)
    assert opt.energy == pytest.approx(best, rel=1e-9)
    assert feasible(opt.states, 3, m).all()  # the penalty keeps every minimum feasible
    assert decode(int(opt.states[0]), 3, m).shape == (3,)


def qaoa_scenario(**params):
    return scenario(engine={"horizon": "0.5 s"}, policy={"id": "qaoa", "params": params})


def test_policy_runs_in_the_engine_and_is_no_worse_than_greedy():
    sc = qaoa_scenario(depth=2, shots=128)
    seeds = SeedTree(sc.seed)
    policy = make("qaoa", sc.policy.params, sc, seeds.generator("policy"))
    table, _ = run_table(sc, seeds=seeds, policy=policy)
    greedy, _ = run_table(scenario(engine={"horizon": "0.5 s"}, policy="greedy"))
    assert len(table) == len(greedy) > 5
    # same tasks; QAOA's choices include lower powers and the second server, so its mean
    # cost is at most greedy's plus 2 % (measured: 12.5 % below greedy on this seed)
    assert table.cost.mean() <= 1.02 * greedy.cost.mean()
    stats = policy.stats
    assert stats["qubos"] > 0 and stats["fallbacks"] == 0
    assert stats["optimal"] >= 0.9 * stats["qubos"]
    assert stats["max_qubits"] == 10
    again, _ = run_table(sc)
    cols = ["task_id", "server", "power", "cost"]
    assert again[cols].equals(table[cols])


@pytest.mark.parametrize(
    "params,key",
    [
        ({"depth": 0}, "policy.params.depth"),
        ({"backend": "warp-drive"}, "policy.params.backend"),
        ({"backend": "timing-only"}, "policy.params.backend"),
        ({"max_tasks": 4, "servers": 2, "power_levels": 3}, "policy.params.max_tasks"),
        ({"shots": 10, "bogus": 1}, "policy.params.bogus"),
    ],
)
def test_bad_policy_params_give_one_clear_error(params, key):
    with pytest.raises(ScenarioError) as info:
        validate_data({"policy": {"id": "qaoa", "params": params}})
    assert info.value.key == key

"""Execution backends: exact values, shots on Aer (ideal and noisy), qiskit-ibm-runtime's
local testing mode with a fake backend, retries and failures."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.quantum_info import Statevector

from qpu.backends import (
    AerBackend,
    IBMBackend,
    QPUBackendError,
    QPUError,
    RetryPolicy,
    TransientBackendError,
    _runtime_sampler,
    is_transient,
    make_backend,
)
from qpu.config import QPUConfig
from qpu.service import FAILED, QPUService
from qpu.templates import KINDS, build_template
from sim.errors import SimError
from sim.seeds import SeedTree

DEVICE = "fake_nairobi"  # 7 qubits: quick to transpile and simulate


def statevector_values(template, x, w) -> np.ndarray:
    out = []
    for row in np.atleast_2d(x):
        sv = Statevector(template.bind(row, w))
        out.append([sv.expectation_value(o).real for o in template.observables])
    return np.array(out)


def params(kind, batch=3, seed=0):
    t = build_template(kind)
    x, w = t.random_parameters(np.random.default_rng(seed), batch)
    return t, x, w


def test_backend_strings():
    assert make_backend("exact").name == "exact"
    assert make_backend("timing-only").computes is False
    assert make_backend("aer").name == "aer"
    assert make_backend("aer-noisy:FakeNairobiV2").name == "aer-noisy:fake_nairobi"
    assert make_backend("ibm:fake_nairobi").local
    assert not make_backend("ibm:ibm_torino").local  # resolved only when used
    for bad in ("gpu", "aer:x", "aer-noisy", "ibm:"):
        with pytest.raises(QPUError, match=r"backend|needs"):
            make_backend(bad)
    assert issubclass(QPUBackendError, SimError)


@pytest.mark.parametrize("kind", KINDS)
def test_exact_equals_statevector(kind):
    t, x, w = params(kind)
    r = make_backend("exact").run(t, x, w)
    assert r.values.shape == (3, len(t.observables))
    assert np.abs(r.values - statevector_values(t, x, w)).max() < 1e-10
    assert r.job_id == "exact-00000001"


@pytest.mark.parametrize("kind", KINDS)
def test_aer_shots_agree_with_exact(kind):
    t, x, w = params(kind, seed=1)
    shots = 4000
    r = make_backend("aer", SeedTree(5)).run(t, x, w, shots=shots)
    exact = statevector_values(t, x, w)
    # every observable is a +-1 valued product (or the overlap, in [-1, 1] per shot)
    assert np.abs(r.values - exact).max() < 5 / np.sqrt(shots)
    assert all(sum(c.values()) == shots for c in r.counts)


def test_shots_are_reproducible_from_the_seed_tree():
    t, x, w = params("semantic_coding")
    a = make_backend("aer", SeedTree(11)).run(t, x, w, shots=200)
    b = make_backend("aer", SeedTree(11)).run(t, x, w, shots=200)
    c = make_backend("aer", SeedTree(12)).run(t, x, w, shots=200)
    assert a.counts == b.counts
    assert a.counts != c.counts
    with pytest.raises(QPUError, match="shots"):
        make_backend("aer").run(t, x, w, shots=0)


def test_noisy_aer_measures_fidelity():
    t, x, w = params("federated_aggregation", batch=2)
    r = make_backend(f"aer-noisy:{DEVICE}", SeedTree(2)).run(t, x, w, shots=2000)
    assert r.backend == "aer-noisy:fake_nairobi"
    assert r.fidelity.shape == (2,)
    assert np.all((r.fidelity > 0.5) & (r.fidelity < 1.0))
    # noise pulls values away from the exact ones, but not beyond reason
    exact = statevector_values(t, x, w)
    assert np.abs(r.values - exact).max() < 0.5


def test_timing_only_computes_nothing():
    t, x, w = params("policy_inference")
    r = make_backend("timing-only").run(t, x, w)
    assert r.values is None and r.job_id


def test_ibm_local_testing_mode_returns_counts_and_a_job_id():
    t, x, w = params("policy_inference", batch=2)
    backend = make_backend(f"ibm:{DEVICE}", SeedTree(3))
    r = backend.run(t, x, w, shots=300)
    assert len(r.counts) == 2 and all(sum(c.values()) == 300 for c in r.counts)
    assert r.job_id and backend.job_ids == [r.job_id]
    assert r.values.shape == (2, 6) and np.all(np.abs(r.values) <= 1)
    assert r.attempts == 1


class FlakySampler:
    """Fails ``failures`` times with ``error``, then builds the real local sampler."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, mode, options):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return _runtime_sampler(mode, options)


def test_equal_templates_built_apart_share_the_transpiled_circuit_and_bind_right():
    """Templates of equal key built separately (their parameter objects differ) use one
    cached transpiled circuit; their values are bound by parameter name."""
    from qpu.templates import policy_inference

    a = build_template("policy_inference", 6, layers=1, gamma=1.0, entanglement="ring")
    b = policy_inference(6)
    assert a.key == b.key and a is not b
    assert set(a.circuit.parameters).isdisjoint(b.circuit.parameters)
    x = np.random.default_rng(4).uniform(-1.0, 1.0, (2, 6))
    w = np.random.default_rng(5).uniform(-np.pi, np.pi, 12)
    exact = statevector_values(a, x, w)
    for spec in ("aer", f"ibm:{DEVICE}"):
        backend = make_backend(spec, SeedTree(6))
        ra, rb = (backend.run(t, x, w, shots=20_000).values for t in (a, b))
        # shot noise only between the two: 5 standard errors of 1/sqrt(20000) each
        np.testing.assert_allclose(ra, rb, atol=0.05)
        if spec == "aer":
            np.testing.assert_allclose(ra, exact, atol=0.035)
        else:  # device noise shrinks every value toward 0, but keeps its sign where large
            big = np.abs(exact) > 0.5
            assert (np.sign(ra[big]) == np.sign(exact[big])).all()
            assert (np.abs(ra[big]) < np.abs(exact[big])).all()


def test_transient_failure_is_retried_with_backoff():
    sleeps: list[float] = []
    flaky = FlakySampler(2, ConnectionError("connection reset"))
    backend = IBMBackend(
        DEVICE,
        SeedTree(3),
        retry=RetryPolicy(max_attempts=4, base_delay=0.5, factor=2.0, max_delay=10.0),
        sleep=sleeps.append,
        sampler_factory=flaky,
    )
    t, x, w = params("federated_aggregation", batch=1)
    r = backend.run(t, x, w, shots=100)
    assert sleeps == [0.5, 1.0]
    assert r.attempts == 3 and r.job_id == backend.job_ids[0]
    assert sum(r.counts[0].values()) == 100


def test_backoff_is_bounded_and_gives_up():
    sleeps: list[float] = []
    backend = IBMBackend(
        DEVICE,
        retry=RetryPolicy(max_attempts=5, base_delay=1.0, factor=3.0, max_delay=5.0),
        sleep=sleeps.append,
        sampler_factory=FlakySampler(99, TimeoutError("queue timeout")),
    )
    t, x, w = params("federated_aggregation", batch=1)
    with pytest.raises(QPUBackendError, match="failed 5 times") as info:
        backend.run(t, x, w, shots=10)
    assert sleeps == [1.0, 3.0, 5.0, 5.0]
    assert info.value.transient and info.value.attempts == 5
    assert isinstance(info.value.__cause__, TimeoutError)


def test_permanent_failure_is_reported_and_the_service_goes_on():
    sleeps: list[float] = []
    backend = IBMBackend(
        DEVICE,
        sleep=sleeps.append,
        sampler_factory=FlakySampler(99, ValueError("circuit is not ISA")),
    )
    t, x, w = params("federated_aggregation", batch=1)
    with pytest.raises(QPUBackendError, match="circuit is not ISA") as info:
        backend.run(t, x, w, shots=10)
    assert not info.value.transient and info.value.attempts == 1 and sleeps == []
    assert isinstance(info.value.__cause__, ValueError)

    cfg = QPUConfig.model_validate(
        {"device": DEVICE, "jobs": {"federated_aggregation": {"enabled": True, "shots": 10}}}
    )
    svc = QPUService(cfg)
    kind = svc.kind_codes(["federated_aggregation"] * 2)
    ids = svc.submit(kind, [0, 0], [0.0, 0.5])
    svc.drain()
    assert svc.execute(backend, ids[:1], x) is None
    assert svc.failures == 1
    assert svc.table()["status"][0] == FAILED
    good = svc.execute(make_backend(f"ibm:{DEVICE}"), ids[1:], x)
    assert good is not None and svc.table()["backend_job"][1] == good.job_id
    assert svc.table()["status"][1] == 0


def test_job_result_failure_is_retried():
    class Job:
        def __init__(self, job):
            self.job = job
            self.tries = 0

        def job_id(self):
            return self.job.job_id()

        def result(self):
            self.tries += 1
            if self.tries == 1:
                raise TransientBackendError("result not ready")
            return self.job.result()

    class Sampler:
        def __init__(self, mode, options):
            self.inner = _runtime_sampler(mode, options)

        def run(self, pubs):
            return Job(self.inner.run(pubs))

    sleeps: list[float] = []
    backend = IBMBackend(DEVICE, sleep=sleeps.append, sampler_factory=Sampler)
    t, x, w = params("federated_aggregation", batch=1)
    r = backend.run(t, x, w, shots=50)
    assert r.attempts == 2 and sleeps == [1.0]


def test_which_errors_are_transient():
    from qiskit_ibm_runtime.api.exceptions import RequestsApiError

    assert is_transient(RequestsApiError("busy", status_code=503))
    assert is_transient(RequestsApiError("too many", status_code=429))
    assert not is_transient(RequestsApiError("denied", status_code=401))
    assert not is_transient(ValueError("bad"))
    assert is_transient(ConnectionError())


def test_aer_failure_keeps_its_cause(monkeypatch):
    backend = AerBackend(SeedTree(0))

    def broken(seed):
        raise RuntimeError("simulator crashed")

    monkeypatch.setattr(backend, "_sampler", broken)
    t, x, w = params("federated_aggregation", batch=1)
    with pytest.raises(QPUBackendError, match="simulator crashed") as info:
        backend.run(t, x, w, shots=10)
    assert isinstance(info.value.__cause__, RuntimeError)

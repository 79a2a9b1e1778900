"""Timing from calibrated device targets (critical path, shots, rep_delay), the CLOPS model,
and the calibration-based fidelity estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

from qpu import timing
from qpu.fidelity import estimated_fidelity, hellinger_fidelity, template_fidelity
from qpu.templates import Template, build_template
from qpu.timing import (
    DEFAULT_REP_DELAY,
    ClopsTiming,
    DeviceError,
    TargetTiming,
    device,
    device_name,
    transpiled,
)


def small_template(qc: QuantumCircuit, name: str) -> Template:
    empty = ParameterVector("none", 0)
    return Template(name, qc.num_qubits, qc, empty, empty, ())


def bell() -> Template:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    return small_template(qc, "bell")


def critical_path(circuit: QuantumCircuit, target) -> float:
    """ASAP schedule, qubit by qubit: an instruction starts when all its qubits are free;
    a barrier aligns its qubits."""
    clock: dict[int, float] = {}
    for inst in circuit.data:
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        begin = max((clock.get(q, 0.0) for q in qubits), default=0.0)
        name = inst.operation.name
        length = 0.0
        if name != "barrier":
            length = target[name][tuple(qubits)].duration or 0.0
        for q in qubits:
            clock[q] = begin + length
    return max(clock.values())


def test_device_lookup_by_any_spelling():
    assert device_name("fake_sherbrooke") == "fake_sherbrooke"
    assert device_name("FakeSherbrooke") == "fake_sherbrooke"
    assert device_name("sherbrooke") == "fake_sherbrooke"
    assert device_name("fake_nairobi") == "fake_nairobi"  # FakeNairobiV2
    assert device("torino") is device("fake_torino")
    with pytest.raises(DeviceError, match=r"no such fake backend.*shipped: fake_sherbrooke"):
        device("fake_atlantis")


@pytest.mark.slow
def test_every_shipped_device_loads():
    for name in timing.SHIPPED_DEVICES:
        assert device_name(name) == name
        assert device(name).target.dt is not None


@pytest.mark.parametrize("name", ["fake_sherbrooke", "fake_torino"])
def test_duration_is_the_critical_path_of_target_durations(name):
    model = TargetTiming(name, overhead=0.01)
    t = model.timing(bell())
    circuit = transpiled(bell(), name)
    target = device(name).target
    assert t.duration == pytest.approx(critical_path(circuit, target), rel=1e-12)
    measured = [circuit.find_bit(i.qubits[0]).index for i in circuit.data if i.name == "measure"]
    assert len(measured) == 2
    assert t.measure_duration == max(target["measure"][(q,)].duration for q in measured)
    assert t.duration > t.measure_duration > 0


def test_a_serial_circuit_lasts_the_sum_of_its_gates():
    # one qubit: the transpiled gates and the measurement run one after the other
    qc = QuantumCircuit(1)
    qc.x(0)
    qc.sx(0)
    tmpl = small_template(qc, "serial")
    t = TargetTiming("fake_nairobi").timing(tmpl)
    target = device("fake_nairobi").target
    circuit = transpiled(tmpl, "fake_nairobi")
    names = [i.operation.name for i in circuit.data]
    assert "sx" in names and "measure" in names
    hand = sum(
        target[i.operation.name][(circuit.find_bit(i.qubits[0]).index,)].duration
        for i in circuit.data
        if i.operation.name != "barrier"
    )
    assert t.duration == pytest.approx(hand, rel=1e-12)


def test_job_time_shots_and_rep_delay():
    model = TargetTiming("fake_sherbrooke", rep_delay=DEFAULT_REP_DELAY, overhead=0.002)
    t = model.timing(bell())
    assert t.shot_time == t.duration + 250e-6
    assert t.job_time(4000) == pytest.approx(0.002 + 4000 * (t.duration + 250e-6), rel=1e-15)
    # a Bell pair lasts a few microseconds: the repetition delay is nearly all of a shot
    assert 0.95 < 4000 * 250e-6 / (t.job_time(4000) - 0.002) < 1.0
    # a batch of m jobs pays the overhead once
    assert t.job_time(100, jobs=3) == pytest.approx(0.002 + 300 * t.shot_time)
    assert model.timing(bell()) is t  # cached per template
    with pytest.raises(DeviceError, match="rep_delay 1000 us is outside"):
        TargetTiming("fake_sherbrooke", rep_delay=1e-3)


def test_transpiled_once_per_template_and_device():
    t = build_template("federated_aggregation")
    a = transpiled(t, "fake_nairobi")
    assert transpiled(t, "nairobi") is a
    assert set(a.parameters) == set(t.circuit.parameters)
    with pytest.raises(DeviceError, match="needs 16 qubits; fake_nairobi has 7"):
        transpiled(build_template("semantic_coding", 16), "fake_nairobi")


def test_clops_model():
    t = build_template("federated_aggregation")
    assert ClopsTiming.layers(t) == 1  # three CNOTs in parallel
    model = ClopsTiming(2000.0, overhead=0.5)
    ct = model.timing(t)
    assert ct.job_time(1000) == pytest.approx(0.5 + 1000 / 2000.0)
    p = build_template("policy_inference")
    assert model.timing(p).duration == ClopsTiming.layers(p) / 2000.0
    with pytest.raises(DeviceError):
        ClopsTiming(0.0)


def test_fidelity_estimate_of_a_known_circuit():
    qc = QuantumCircuit(1)
    qc.x(0)
    tmpl = small_template(qc, "flip")
    circuit = transpiled(tmpl, "fake_nairobi")
    target = device("fake_nairobi").target
    q = circuit.find_bit(next(i for i in circuit.data if i.operation.name == "x").qubits[0]).index
    est = estimated_fidelity(circuit, target)
    assert est.gates == pytest.approx(1 - target["x"][(q,)].error)
    assert est.readout == pytest.approx(1 - target["measure"][(q,)].error)
    assert est.total == pytest.approx(est.gates * est.readout)
    deep = template_fidelity(build_template("policy_inference"), "fake_nairobi")
    assert 0 < deep.total < est.total < 1


def test_hellinger_fidelity():
    p = np.array([0.5, 0.0, 0.0, 0.5])
    assert hellinger_fidelity(p, {"00": 50, "11": 50}, 2) == pytest.approx(1.0)
    assert hellinger_fidelity(p, {"01": 7}, 2) == 0.0
    assert hellinger_fidelity(p, {"00": 1, "01": 1}, 2) == pytest.approx((math.sqrt(0.25)) ** 2)
    with pytest.raises(ValueError, match="empty"):
        hellinger_fidelity(p, {}, 2)

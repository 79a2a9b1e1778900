"""The fast engine reproduces the per-task SimPy reference on the same draws."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_table, scenario

from sim.reference import simulate_reference

CASES = {
    "fifo-static": dict(
        mobility={"model": "static"}, policy="nearest", tasks={"arrival_rate": "40 /s"}
    ),
    "priority-multicore-drop": dict(
        mobility={"model": "random_waypoint", "step": "50 ms"},
        vehicles={"count": 6, "queue": "priority", "uplink_queue": "priority", "cpu": "0.1 GHz"},
        servers={
            "count": 2,
            "cores": 3,
            "queue": "priority",
            "cpu": "0.5 GHz",
            "bandwidth": "2 MHz",
        },
        tasks={"arrival_rate": "150 /s", "drop_expired": True, "deadline": "40 ms"},
        policy={"id": "random", "params": {"offload_probability": 0.7}},
    ),
    "fading-interference-highway": dict(
        mobility={"model": "highway", "step": "20 ms"},
        vehicles={"count": 8},
        servers={"count": 3, "cores": 2, "bandwidth": "3 MHz"},
        channel={
            "fading": {"model": "rayleigh"},
            "interference": {"enabled": True, "activity": 0.3},
        },
        tasks={"arrival_rate": "60 /s"},
        policy="greedy",
    ),
    "rician-manhattan-oracle": dict(
        mobility={"model": "manhattan", "step": "100 ms"},
        vehicles={"count": 5, "cpu": "0.5 GHz"},
        servers={"count": 4, "placement": "grid", "cores": 2, "queue": "priority"},
        channel={"fading": {"model": "rician", "rician_k": "6 dB"}},
        tasks={"arrival_rate": "300 /s", "drop_expired": True, "deadline": "1 ms"},
        policy="oracle",
    ),
    "density-noise-local-priority": dict(
        vehicles={"count": 4, "queue": "priority", "cpu": "0.3 GHz"},
        channel={"noise": "-174 dBm/Hz", "noise_kind": "density"},
        tasks={"arrival_rate": "150 /s", "drop_expired": True, "deadline": "15 ms"},
        policy={"id": "random", "params": {"offload_probability": 0.3}},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_engine_equals_reference(case):
    sc = scenario(engine={"horizon": "4 s", "epoch": "10 ms"}, **CASES[case])
    table, _ = run_table(sc)
    assert len(table) > 200
    ref = simulate_reference(sc, table)
    assert set(ref) == set(table.task_id)
    got = table.set_index("task_id")
    for col in ("rate", "tx_start", "tx_time", "compute_start", "completion", "energy"):
        want = np.array([ref[i][col] for i in got.index])
        np.testing.assert_allclose(
            got[col].to_numpy(),
            want,
            rtol=1e-11,
            atol=1e-15,
            equal_nan=True,
            err_msg=f"{case}: column {col}",
        )
    status = np.array([0 if ref[i]["status"] == "completed" else 1 for i in got.index])
    np.testing.assert_array_equal(got["status"].to_numpy(), status)
    if sc.tasks.drop_expired:
        assert (status == 1).any(), "the case is meant to exercise drops"
    if sc.policy.id != "local":
        assert got["offload"].any()

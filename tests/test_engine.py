"""Engine behaviour: determinism, common random numbers, conservation, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from conftest import CollectSink, run_table, scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.engine import simulate
from sim.errors import SimError
from sim.observation import Actions
from sim.runner import run_scenario
from sim.seeds import SeedTree


def test_same_seed_gives_identical_parquet_bytes(tmp_path):
    sc = scenario(
        engine={"horizon": "5 s"},
        policy="random",
        channel={"fading": {"model": "rayleigh"}},
        output={"plots": False},
    )
    a = run_scenario(sc, out_dir=tmp_path / "a", quiet=True)
    b = run_scenario(sc, out_dir=tmp_path / "b", quiet=True)
    bytes_a = (a.out_dir / "tasks.parquet").read_bytes()
    assert bytes_a == (b.out_dir / "tasks.parquet").read_bytes()
    assert a.summary == b.summary
    c = run_scenario(
        sc.model_copy(update={"seed": sc.seed + 1}), out_dir=tmp_path / "c", quiet=True
    )
    assert (c.out_dir / "tasks.parquet").read_bytes() != bytes_a
    assert c.summary["latency_mean"] != a.summary["latency_mean"]


def test_policies_see_the_same_world():
    """Common random numbers: arrivals, sizes and complexities do not depend on the policy."""
    cols = ["task_id", "vehicle", "arrival", "size_bits", "cycles", "deadline"]
    tables = [
        run_table(scenario(engine={"horizon": "3 s"}, policy=p))[0][cols]
        for p in ("local", "nearest", "random", "greedy", "oracle")
    ]
    for t in tables[1:]:
        assert t.equals(tables[0])


def test_seed_streams_are_named_and_independent():
    tree = SeedTree(5, (1, 2))
    a = tree.generator("arrivals").random(4)
    np.testing.assert_array_equal(a, SeedTree(5, (1, 2)).generator("arrivals").random(4))
    assert not np.array_equal(a, tree.generator("fading").random(4))
    assert not np.array_equal(a, SeedTree(5, (1, 3)).generator("arrivals").random(4))
    assert not np.array_equal(a, SeedTree(6, (1, 2)).generator("arrivals").random(4))
    with pytest.raises(KeyError, match="known"):
        tree.generator("weather")


small_worlds = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31),
        "vehicles": st.fixed_dictionaries(
            {
                "count": st.integers(1, 6),
                "cpu": st.sampled_from(["0.2 GHz", "1 GHz"]),
                "queue": st.sampled_from(["fifo", "priority"]),
                "uplink_queue": st.sampled_from(["fifo", "priority"]),
            }
        ),
        "servers": st.fixed_dictionaries(
            {
                "count": st.integers(1, 4),
                "cores": st.integers(1, 3),
                "queue": st.sampled_from(["fifo", "priority"]),
                "bandwidth": st.sampled_from(["1 MHz", "10 MHz"]),
            }
        ),
        "mobility": st.fixed_dictionaries(
            {"model": st.sampled_from(["static", "random_waypoint", "highway", "manhattan"])}
        ),
        "tasks": st.fixed_dictionaries(
            {
                "arrival_rate": st.sampled_from(["5 /s", "50 /s", "400 /s"]),
                "drop_expired": st.booleans(),
                "deadline": st.sampled_from(["5 ms", "50 ms"]),
            }
        ),
        "engine": st.fixed_dictionaries(
            {
                "horizon": st.sampled_from(["0.3 s", "1 s"]),
                "epoch": st.sampled_from(["10 ms", "50 ms"]),
            }
        ),
        "policy": st.sampled_from(["local", "nearest", "random", "greedy", "oracle"]),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=small_worlds)
def test_every_task_is_completed_dropped_or_in_flight(world):
    world["mobility"]["step"] = world["engine"]["epoch"]
    sc = scenario(**world)
    table, result = run_table(sc)
    assert len(table) == result.n_tasks
    assert table.task_id.is_unique
    assert (np.sort(table.task_id) == np.arange(result.n_tasks)).all()
    horizon = sc.engine.horizon
    assert (table.arrival < horizon).all() and (table.arrival >= 0).all()
    completed = table.status == 0
    dropped = table.status == 1
    assert (completed | dropped).all()
    # a task is in flight at the horizon exactly when it ends (or is dropped) after it
    end = np.where(dropped, table.completion.fillna(np.inf), table.completion)
    assert not table.completion[completed].isna().any()
    assert (table.in_flight[completed] == (table.completion[completed] > horizon)).all()
    assert table.completion[dropped].isna().all()
    assert (end[completed] >= table.arrival[completed]).all()
    # times along each task's path are ordered
    off = table.offload & completed
    assert (table.tx_start[off] >= table.arrival[off]).all()
    assert (table.compute_start[off] >= table.tx_start[off] + table.tx_time[off]).all()
    loc = ~table.offload & completed
    assert (table.compute_start[loc] >= table.arrival[loc]).all()
    assert np.allclose(table.latency[completed], (table.completion - table.arrival)[completed])
    if not sc.tasks.drop_expired:
        assert not dropped.any()


def test_summary_only_run_keeps_memory_bounded(tmp_path):
    """Without the table, memory does not grow with the number of tasks."""

    def peak(horizon: float) -> tuple[int, int]:
        sc = scenario(
            engine={"horizon": horizon, "epoch": "100 ms"},
            vehicles={"count": 200},
            mobility={"step": "100 ms"},
            servers={"cores": 4},
            tasks={"arrival_rate": "25 /s"},
            policy="nearest",
            output={"task_table": False, "plots": False},
        )
        tracemalloc.start()
        res = run_scenario(sc, out_dir=tmp_path / str(horizon), quiet=True)
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert not (res.out_dir / "tasks.parquet").exists()
        return peak_bytes, res.summary["n_tasks"]

    short_peak, short_n = peak(10.0)
    long_peak, long_n = peak(100.0)
    assert long_n > 9 * short_n
    # ten times the tasks (half a million) must not need much more memory: the per-task
    # data alone would be about 100 MB
    assert long_peak < 1.5 * short_peak + 8e6


class Bad:
    """A policy returning malformed actions."""

    id = "bad"

    def __init__(self, actions) -> None:
        self.actions = actions

    def decide(self, obs):
        return self.actions(obs)


@pytest.mark.parametrize(
    "make,message",
    [
        (
            lambda o: Actions(np.full(o.n_tasks, 9), np.ones(o.n_tasks), np.ones(o.n_tasks)),
            "chose server",
        ),
        (
            lambda o: Actions(np.zeros(o.n_tasks), np.full(o.n_tasks, 1.5), np.ones(o.n_tasks)),
            "bandwidth share",
        ),
        (
            lambda o: Actions(np.zeros(o.n_tasks), np.ones(o.n_tasks), np.zeros(o.n_tasks)),
            "transmit power",
        ),
        (
            lambda o: Actions(np.zeros(o.n_tasks + 1), np.ones(o.n_tasks), np.ones(o.n_tasks)),
            "shape",
        ),
    ],
)
def test_malformed_actions_are_reported(make, message):
    with pytest.raises(SimError, match=message):
        simulate(scenario(engine={"horizon": "1 s"}), CollectSink(), policy=Bad(make))


def test_power_above_max_is_clipped_and_counted():
    def loud(o):
        return Actions(np.zeros(o.n_tasks), np.full(o.n_tasks, 0.5), np.full(o.n_tasks, 5.0))

    table, result = run_table(scenario(engine={"horizon": "2 s"}), policy=Bad(loud))
    assert (table.power == 1.0).all()
    assert result.violations.power == len(table)


def test_oversubscribed_band_is_scaled_and_counted():
    def greedy_band(o):
        return Actions(np.zeros(o.n_tasks), np.ones(o.n_tasks), np.ones(o.n_tasks))

    sc = scenario(
        engine={"horizon": "2 s", "epoch": "100 ms"},
        mobility={"step": "100 ms"},
        tasks={"arrival_rate": "50 /s"},
    )
    table, result = run_table(sc, policy=Bad(greedy_band))
    assert result.violations.bandwidth > 0
    assert table.share.max() <= 1.0
    assert (table.share < 1.0).any()


def test_summary_only_rows_give_the_same_summary(tmp_path):
    sc = scenario(
        engine={"horizon": "5 s"},
        policy="random",
        output={"plots": False},
        tasks={"drop_expired": True, "arrival_rate": "200 /s", "deadline": "20 ms"},
        vehicles={"cpu": "0.2 GHz"},
    )
    full = run_scenario(sc, out_dir=tmp_path / "full", quiet=True)
    lean = run_scenario(
        sc.model_copy(update={"output": sc.output.model_copy(update={"task_table": False})}),
        out_dir=tmp_path / "lean",
        quiet=True,
    )
    assert full.summary == lean.summary
    assert full.summary["n_dropped"] > 0

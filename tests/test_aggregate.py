"""Statistics across replications: confidence intervals, Welch comparisons, table files."""

from __future__ import annotations

import io
import math
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim.aggregate import (
    aggregate,
    compare,
    csv_bytes,
    describe,
    direction,
    parquet_bytes,
    significant,
    welch,
    write_table,
)
from sim.errors import SimError

T_975_4 = 2.7764451051977987  # t quantile 0.975 with 4 degrees of freedom (tables: 2.776)


def test_describe_matches_hand_computed_values():
    d = describe([1.0, 2.0, 3.0, 4.0, 5.0])
    assert d["n"] == 5
    assert d["mean"] == 3.0
    assert d["std"] == pytest.approx(math.sqrt(2.5), rel=1e-15)
    assert d["sem"] == pytest.approx(math.sqrt(2.5 / 5), rel=1e-15)
    half = T_975_4 * math.sqrt(0.5)  # 1.96324...
    assert d["ci_low"] == pytest.approx(3.0 - half, rel=1e-12)
    assert d["ci_high"] == pytest.approx(3.0 + half, rel=1e-12)
    assert d["ci_low"] == pytest.approx(1.0367568, abs=1e-7)


@pytest.mark.parametrize("n", [2, 3, 7, 30])
def test_describe_matches_scipy(n):
    x = np.random.default_rng(n).lognormal(-3.0, 0.7, n)
    d = describe(x)
    lo, hi = stats.t.interval(0.95, n - 1, loc=np.mean(x), scale=stats.sem(x))
    assert d["mean"] == pytest.approx(np.mean(x), rel=1e-14)
    assert d["std"] == pytest.approx(np.std(x, ddof=1), rel=1e-12)
    assert d["sem"] == pytest.approx(stats.sem(x), rel=1e-12)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((lo, hi), rel=1e-12)


def test_describe_edge_cases():
    one = describe([0.25])
    assert one["n"] == 1 and one["mean"] == 0.25
    assert all(math.isnan(one[k]) for k in ("std", "sem", "ci_low", "ci_high"))
    none = describe([])
    assert none["n"] == 0 and math.isnan(none["mean"])
    flat = describe([0.1, 0.1, 0.1])  # zero variance: the interval is the mean itself
    assert flat["std"] == 0.0 and flat["ci_low"] == flat["ci_high"] == flat["mean"] == 0.1
    holes = describe([1.0, np.nan, 3.0, np.nan])  # NaN values are left out of n
    assert holes["n"] == 2 and holes["mean"] == 2.0
    assert holes == describe([1.0, 3.0])


def test_welch_matches_hand_computed_values():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 5.0, 2.5]
    w = welch(a, b)
    # s_a²/n_a = 5/12, s_b²/n_b = 31/36, dof = (23/18)² / ((5/12)²/3 + (31/36)²/2)
    qa, qb = Fraction(5, 12), Fraction(31, 36)
    dof = (qa + qb) ** 2 / (qa**2 / 3 + qb**2 / 2)
    assert dof == Fraction(4232, 1111)
    assert w["dof"] == pytest.approx(float(dof), rel=1e-13)
    assert w["diff"] == pytest.approx(2.5 - 19 / 6, rel=1e-15)
    half = stats.t.ppf(0.975, float(dof)) * math.sqrt(float(qa + qb))
    assert w["ci_low"] == pytest.approx(w["diff"] - half, rel=1e-12)
    assert w["t"] == pytest.approx((2.5 - 19 / 6) / math.sqrt(23 / 18), rel=1e-12)
    assert w["p_value"] == pytest.approx(0.5885446389991352, rel=1e-9)
    assert not significant(w["ci_low"], w["ci_high"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.02, 0.004, 5 + seed)
    b = rng.normal(0.025, 0.001, 4)
    w = welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert w["dof"] == pytest.approx(ref.df, rel=1e-12)
    assert w["t"] == pytest.approx(ref.statistic, rel=1e-12)
    assert w["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert (w["ci_low"], w["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert significant(w["ci_low"], w["ci_high"]) == (ref.pvalue < 0.05)


def test_welch_edge_cases():
    few = welch([1.0], [2.0, 3.0])
    assert few["n_a"] == 1 and few["diff"] == -1.5
    assert all(math.isnan(few[k]) for k in ("ci_low", "ci_high", "dof", "t", "p_value"))
    constant = welch([1.0, 1.0, 1.0], [2.0, 2.0])  # no noise at all: the difference is exact
    assert constant["ci_low"] == constant["ci_high"] == -1.0
    assert constant["p_value"] == 0.0 and significant(constant["ci_low"], constant["ci_high"])
    same = welch([1.0, 1.0], [1.0, 1.0])
    assert same["ci_low"] == same["ci_high"] == 0.0 and not significant(0.0, 0.0)
    one_flat = welch([1.0, 1.0, 1.0], [1.0, 2.0, 3.5])  # dof falls back to n_b - 1
    with warnings.catch_warnings():  # scipy warns of cancellation on constant samples
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = stats.ttest_ind([1.0, 1.0, 1.0], [1.0, 2.0, 3.5], equal_var=False)
    assert one_flat["dof"] == pytest.approx(2.0)
    assert (one_flat["t"], one_flat["p_value"]) == pytest.approx((ref.statistic, ref.pvalue))
    with warnings.catch_warnings():  # scipy warns of cancellation on constant samples
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = stats.ttest_ind([1.0, 1.0, 1.0], [2.0, 2.0], equal_var=False)
    assert (constant["t"], constant["p_value"]) == (ref.statistic, ref.pvalue) == (-math.inf, 0)
    nan = welch([1.0, np.nan, 2.0], [3.0, 4.0, np.nan])
    assert (nan["n_a"], nan["n_b"]) == (2, 2)
    assert nan == welch([1.0, 2.0], [3.0, 4.0])


def test_metric_directions():
    for m in ("latency_mean", "latency_p95", "energy_mean", "cost_mean", "deadline_miss_rate"):
        assert direction(m) == "lower"
    for m in ("tx_time_mean", "wait_uplink_mean", "qpu_time_mean", "violations_power"):
        assert direction(m) == "lower"
    assert direction("throughput") == direction("completion_rate") == "higher"
    for m in ("offload_fraction", "utilisation_edge_mean", "n_tasks", "latency_std"):
        assert direction(m) is None


# ---------------------------------------------------------------------------- tables
def runs_frame() -> pd.DataFrame:
    """Two bandwidths x two policies x three replications with known values; greedy is
    10 ms faster at 5 MHz, the same at 10 MHz; one replication lacks its energy."""
    rows = []
    offsets = [-0.001, 0.0, 0.001]
    for point, bw in enumerate([5e6, 10e6]):
        for policy, base in (("local", 0.030), ("greedy", 0.020 if bw == 5e6 else 0.030)):
            for rep in range(3):
                rows.append(
                    {
                        "run_id": f"r{point}{policy}{rep}",
                        "point": point,
                        "replication": rep,
                        "policy": policy,
                        "channel.bandwidth": bw,
                        "latency_mean": base + offsets[rep] * (1 + (policy == "greedy")),
                        "energy_mean": np.nan if rep == 2 else 0.5,
                        "n_tasks": 100.0,
                    }
                )
    return pd.DataFrame(rows)


AXES = ["channel.bandwidth", "policy"]


def test_aggregate_rows_and_values():
    runs = runs_frame()
    agg = aggregate(runs, AXES)
    assert list(agg.columns) == [
        "point", "policy", "channel.bandwidth", "metric",
        "n", "mean", "std", "sem", "ci_low", "ci_high",
    ]  # fmt: skip
    assert len(agg) == 2 * 2 * 3
    keys = list(zip(agg["point"], agg["policy"], agg["metric"], strict=True))
    assert keys == sorted(keys)
    row = agg[(agg.point == 0) & (agg.policy == "greedy") & (agg.metric == "latency_mean")].iloc[0]
    assert row["channel.bandwidth"] == 5e6 and row["n"] == 3
    assert row["mean"] == pytest.approx(0.020, rel=1e-14)
    assert row["std"] == pytest.approx(0.002, rel=1e-12)  # offsets ±2 ms
    half = stats.t.ppf(0.975, 2) * 0.002 / math.sqrt(3)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.020 - half, 0.020 + half))
    energy = agg[agg.metric == "energy_mean"]
    assert (energy["n"] == 2).all() and (energy["std"] == 0).all()
    assert (energy["ci_low"] == 0.5).all()


def test_compare_calls_only_intervals_that_exclude_zero():
    comp = compare(runs_frame(), AXES, ["local", "greedy"])
    lat = comp[comp.metric == "latency_mean"].set_index("point")
    assert (lat["policy_a"] == "local").all() and (lat["policy_b"] == "greedy").all()
    at5, at10 = lat.loc[0], lat.loc[1]
    assert at5["diff"] == pytest.approx(0.010)
    assert at5["significant"] and at5["better"] == "greedy" and at5["ci_low"] > 0
    ref = stats.ttest_ind([0.029, 0.030, 0.031], [0.018, 0.020, 0.022], equal_var=False)
    assert at5["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert at10["diff"] == pytest.approx(0.0, abs=1e-15)
    assert not at10["significant"] and at10["better"] == ""
    # n_tasks has no direction: a difference there would never name a better policy
    counts = comp[comp.metric == "n_tasks"]
    assert not counts["significant"].any() and (counts["better"] == "").all()


def test_compare_higher_is_better_and_single_replication():
    runs = runs_frame()
    runs["throughput"] = (
        np.where(runs["policy"] == "greedy", 12.0, 10.0) + 0.1 * runs["replication"]
    )
    comp = compare(runs, AXES, ["local", "greedy"])
    thr = comp[(comp.metric == "throughput") & (comp.point == 0)].iloc[0]
    assert thr["diff"] == pytest.approx(-2.0) and thr["better"] == "greedy"
    single = runs[runs.replication == 0]
    comp1 = compare(single, AXES, ["local", "greedy"])
    assert not comp1["significant"].any()
    assert comp1["ci_low"].isna().all() and comp1["p_value"].isna().all()
    agg1 = aggregate(single, AXES)
    assert (agg1["n"] <= 1).all() and agg1["ci_low"].isna().all() and agg1["std"].isna().all()


def test_missing_axis_column_is_a_clear_error():
    with pytest.raises(SimError, match=r"channel\.bandwidth"):
        aggregate(runs_frame().drop(columns=["channel.bandwidth"]), AXES)


def test_table_files_are_deterministic_and_round_trip(tmp_path):
    agg = aggregate(runs_frame(), AXES)
    assert csv_bytes(agg) == csv_bytes(aggregate(runs_frame(), AXES))
    assert parquet_bytes(agg) == parquet_bytes(aggregate(runs_frame(), AXES))
    paths = write_table(agg, tmp_path / "aggregate")
    first = [p.read_bytes() for p in paths]
    write_table(agg, tmp_path / "aggregate")
    assert [p.read_bytes() for p in paths] == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aggregate.csv", "aggregate.parquet"]
    back = pd.read_csv(io.BytesIO(first[1]))
    pd.testing.assert_frame_equal(back, agg, check_dtype=False)  # repr floats round-trip
    pd.testing.assert_frame_equal(pd.read_parquet(paths[0]), agg, check_dtype=False)
    text = first[1].decode()
    assert "\n0,greedy,5000000.0,energy_mean,2,0.5,0.0,0.0,0.5,0.5\n" in text
    one = aggregate(runs_frame().query("replication == 0"), AXES)
    assert ",1,0.5,,,,\n" in csv_bytes(one).decode()  # NaN is an empty field

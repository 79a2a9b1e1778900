"""The streaming summary against NumPy on the full data; exactness and split invariance."""

from __future__ import annotations

import json
import math
import os
import time
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from sim.provenance import provenance, to_jsonable, write_json_atomic
from sim.summary import SUMMARY_COLUMNS, ExactSum, LogHistogram, SummaryAccumulator

HORIZON, WARMUP, W1 = 20.0, 0.0, 0.3


def rows(n: int, seed: int = 0, horizon: float = HORIZON) -> dict[str, np.ndarray]:
    """Summary columns with drops, in-flight tasks, NaNs and latencies over six decades."""
    rng = np.random.default_rng(seed)
    arrival = rng.uniform(0.0, horizon, n)
    offload = rng.random(n) < 0.55
    status = (rng.random(n) < 0.05).astype(np.int8)
    dropped = status == 1
    wait_uplink = np.where(offload, rng.exponential(1e-3, n), np.nan)
    tx_time = np.where(offload, rng.uniform(1e-4, 5e-3, n), np.nan)
    wait_compute = np.where(dropped, np.nan, rng.exponential(2e-3, n) * (rng.random(n) < 0.7))
    compute_time = np.where(dropped, np.nan, 10.0 ** rng.uniform(-6, 0, n))
    latency = np.where(
        dropped,
        np.nan,
        np.nan_to_num(wait_uplink)
        + np.nan_to_num(tx_time)
        + np.nan_to_num(wait_compute)
        + compute_time,
    )
    energy = np.where(offload, 0.5 * np.nan_to_num(tx_time), 1e-3 * rng.random(n))
    return {
        "arrival": arrival,
        "offload": offload,
        "status": status,
        "in_flight": ~dropped & (arrival + np.nan_to_num(latency) > horizon),
        "deadline_met": ~dropped & (latency <= 0.01),
        "latency": latency,
        "wait_uplink": wait_uplink,
        "tx_time": tx_time,
        "wait_compute": wait_compute,
        "compute_time": compute_time,
        "energy": energy,
        "edge_energy": np.where(offload & ~dropped, 2e-3 * rng.random(n), 0.0),
        "cost": W1 * np.where(dropped, 0.05, latency) + (1 - W1) * energy,
    }


def split(batch: dict[str, np.ndarray], cuts: list[int]) -> list[dict[str, np.ndarray]]:
    bounds = [0, *cuts, len(batch["arrival"])]
    return [{k: v[a:b] for k, v in batch.items()} for a, b in pairwise(bounds)]


def summarise(batches: list[dict], warmup: float = WARMUP) -> SummaryAccumulator:
    acc = SummaryAccumulator(HORIZON, warmup, W1)
    for b in batches:
        acc.add(b)
    return acc


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_matches_numpy_on_the_full_data() -> None:
    data = rows(120_000, seed=1)
    r = summarise(split(data, [1, 5000, 70_001, 70_002])).result()
    done = data["status"] == 0
    off = data["offload"]
    lat = data["latency"][done]
    assert r["n_tasks"] == 120_000
    assert r["n_completed"] == done.sum()
    assert r["n_dropped"] == (~done).sum()
    assert r["n_offloaded"] == off.sum()
    assert r["n_in_flight"] == data["in_flight"].sum()
    assert r["offload_fraction"] == off.mean()
    assert r["drop_rate"] == pytest.approx((~done).mean(), rel=1e-15)
    assert r["deadline_miss_rate"] == pytest.approx(1 - data["deadline_met"].mean(), rel=1e-12)
    assert r["throughput"] == pytest.approx(done.sum() / HORIZON, rel=1e-15)

    exact = {
        "latency_mean": lat,
        "latency_mean_local": data["latency"][done & ~off],
        "latency_mean_offloaded": data["latency"][done & off],
        "wait_uplink_mean": data["wait_uplink"][off],
        "tx_time_mean": data["tx_time"][off],
        "wait_compute_mean": data["wait_compute"][done],
        "compute_time_mean": data["compute_time"][done],
        "energy_mean": data["energy"],
        "energy_mean_local": data["energy"][~off],
        "energy_mean_offloaded": data["energy"][off],
        "edge_energy_mean": data["edge_energy"],
        "cost_mean": data["cost"],
    }
    for key, values in exact.items():
        assert rel(r[key], np.mean(values)) < 1e-12, key
        assert (
            r[key] == math.fsum(values) / len(values)
            or rel(r[key], math.fsum(values) / len(values)) < 2.3e-16
        ), key
    for key, values in (
        ("energy_total", data["energy"]),
        ("cost_total", data["cost"]),
        ("edge_energy_total", data["edge_energy"]),
    ):
        assert r[key] == math.fsum(values), key
    for key, values in (
        ("latency_std", lat),
        ("energy_std", data["energy"]),
        ("cost_std", data["cost"]),
    ):
        assert rel(r[key], np.std(values, ddof=1)) < 1e-12, key
    assert r["latency_max"] == lat.max() and r["latency_min"] == lat.min()
    for q in (0.5, 0.9, 0.95, 0.99):
        assert rel(r[f"latency_p{round(q * 100)}"], np.quantile(lat, q)) <= 1e-3, q
    assert r["cost_of_means"] == pytest.approx(
        W1 * np.mean(lat) + (1 - W1) * np.mean(data["energy"])
    )


def test_result_does_not_depend_on_how_rows_are_batched() -> None:
    data = rows(150_000, seed=2)
    whole = summarise([data])
    rng = np.random.default_rng(3)
    cuts = sorted(set(rng.integers(1, 150_000, 40).tolist()) | {1, 2, 3, 65_536, 65_537})
    pieces = split(data, cuts)
    chopped = summarise(pieces)
    shuffled = summarise([pieces[i] for i in rng.permutation(len(pieces))])
    one_by_one = summarise(split({k: v[:3000] for k, v in data.items()}, list(range(1, 3000))))
    first = summarise([{k: v[:3000] for k, v in data.items()}])
    ref = whole.result(include_histogram=True)
    assert chopped.result(include_histogram=True) == ref
    assert shuffled.result(include_histogram=True) == ref
    assert one_by_one.result(include_histogram=True) == first.result(include_histogram=True)
    for e, c in zip(whole.latency_histogram(), shuffled.latency_histogram(), strict=True):
        np.testing.assert_array_equal(e, c)


def test_merge_equals_one_pass() -> None:
    data = rows(20_000, seed=4)
    a, b = split(data, [12_345])
    left, right = summarise([a]), summarise([b])
    left.merge(right)
    assert left.result() == summarise([data]).result()


def test_rows_before_the_warmup_are_ignored() -> None:
    data = rows(50_000, seed=5)
    warmup = 5.0
    got = summarise(split(data, [100, 20_000]), warmup=warmup).result()
    late = data["arrival"] >= warmup
    want = summarise([{k: v[late] for k, v in data.items()}], warmup=warmup).result()
    assert got["n_warmup_excluded"] == (~late).sum()
    assert want["n_warmup_excluded"] == 0
    got.pop("n_warmup_excluded"), want.pop("n_warmup_excluded")
    assert got == want
    assert got["n_tasks"] == late.sum()
    assert got["throughput"] == pytest.approx(got["n_completed"] / (HORIZON - warmup))
    assert rel(got["latency_mean"], np.mean(data["latency"][late & (data["status"] == 0)])) < 1e-12


def test_empty_input_gives_valid_json() -> None:
    acc = SummaryAccumulator(HORIZON, 1.0, W1)
    acc.add({k: v[:0] for k, v in rows(10).items()})
    acc.add({k: v[:3] for k, v in rows(10).items()} | {"arrival": np.zeros(3)})  # warm-up
    r = acc.result(
        {"utilisation": {"edge_mean": np.float64(0.5)}, "n_epochs": np.int64(7)},
        include_histogram=True,
    )
    json.dumps(r, allow_nan=False)
    assert r["n_tasks"] == 0 and r["n_warmup_excluded"] == 3
    assert r["latency_mean"] is None and r["latency_p95"] is None and r["energy_mean"] is None
    assert r["throughput"] == 0.0 and r["energy_total"] == 0.0
    assert r["latency_hist_counts"] == [] and r["latency_hist_edges"] == []
    assert r["utilisation.edge_mean"] == 0.5 and r["n_epochs"] == 7
    assert type(r["n_epochs"]) is int
    edges, counts = acc.latency_histogram()
    assert edges.size == 0 and counts.size == 0


def test_extra_keys_merge_and_must_not_collide() -> None:
    acc = summarise([rows(100, seed=6)])
    r = acc.result({"violations_power": 2, "utilisation_edge_max": float("nan")})
    assert r["violations_power"] == 2 and r["utilisation_edge_max"] is None
    with pytest.raises(ValueError, match="latency_mean"):
        acc.result({"latency_mean": 1.0})


def test_missing_columns_are_named() -> None:
    batch = rows(5)
    del batch["cost"]
    with pytest.raises(KeyError, match="cost"):
        SummaryAccumulator(HORIZON, 0.0, W1).add(batch)
    assert "cost" in SUMMARY_COLUMNS


def test_latency_histogram_covers_the_non_empty_range() -> None:
    data = rows(30_000, seed=7)
    acc = summarise([data])
    edges, counts = acc.latency_histogram()
    lat = data["latency"][data["status"] == 0]
    assert len(edges) == len(counts) + 1
    assert counts[0] > 0 and counts[-1] > 0 and counts.sum() == lat.size
    assert np.all(np.diff(edges) > 0)
    assert edges[0] <= lat.min() and lat.max() < edges[-1]
    inside = np.histogram(lat, bins=edges)[0]
    np.testing.assert_array_equal(inside, counts)


def test_exact_sum_is_exact_and_order_free() -> None:
    rng = np.random.default_rng(8)
    values = np.concatenate(
        [
            rng.exponential(1.0, 10_000),
            -rng.exponential(1e-3, 5000),
            [1e16, 1.0, -1e16],
            10.0 ** rng.uniform(-300, -200, 50),
            [5e-324, 1e300, -1e300, 3.5e200],
            rng.normal(0, 1e-20, 100),
        ]
    )
    want = math.fsum(values)
    for order in (values, values[::-1], rng.permutation(values)):
        s = ExactSum()
        for part in np.array_split(order, 7):
            s.add(part)
        assert float(s) == want
    tiny = ExactSum()
    tiny.add(np.array([5e-324, 5e-324, 1e-310]))
    assert float(tiny) == math.fsum([5e-324, 5e-324, 1e-310])
    with pytest.raises(ValueError, match="finite"):
        ExactSum().add(np.array([1.0, np.inf]))


def test_log_histogram_quantiles_within_half_a_bin() -> None:
    rng = np.random.default_rng(9)
    x = np.exp(rng.normal(np.log(1e-3), 3.0, 200_000))  # about eight decades
    h = LogHistogram()
    h.add(x)
    qs = np.array([0.0, 0.001, 0.1, 0.5, 0.9, 0.999, 1.0])
    got, want = h.quantile(qs), np.quantile(x, qs)
    assert np.all(np.abs(got / want - 1) <= 1 / 2048)
    assert h.quantile(0.0) == x.min() and h.quantile(1.0) == x.max()
    below = int((x < 2.0**-30).sum())
    h.add(np.array([0.0, 1e-12, 1e7, np.nan]))  # underflow, overflow, ignored
    assert h.counts[0] == below + 2 and h.counts[-1] == 1 and h.n == x.size + 3
    edges, counts = h.histogram()
    assert edges[0] == 0.0 and edges[-1] == 1e7 and counts.sum() == h.n


def hard_rows(n: int, seed: int) -> dict[str, np.ndarray]:
    """Rows whose sums need every path of the exact summation: values of 2**52 and more,
    subnormals, negatives, signed zeros and ranges far wider than 2**51 in one block."""
    data = rows(n, seed)
    rng = np.random.default_rng(seed)
    special = np.array(
        [
            0.0,
            -0.0,
            5e-324,
            1e-310,
            -2.5e-308,
            1e-300,
            3e15,
            2.0**53 + 2,
            -3.0,
            1e100,
            -1e-150,
            7.0,
            np.inf,
            -np.inf,
            np.nan,
        ]
    )
    for key in (
        "latency",
        "wait_uplink",
        "tx_time",
        "wait_compute",
        "compute_time",
        "energy",
        "edge_energy",
        "cost",
    ):
        x = data[key].copy()
        pick = rng.random(n) < 0.01
        x[pick] = rng.choice(special, int(pick.sum()))
        x[: n // 3] *= 10.0 ** rng.uniform(-40, 40, n // 3)
        data[key] = x
    data["status"] = rng.choice(np.array([0, 0, 0, 1, 2], dtype=np.int8), n)
    data["arrival"][rng.random(n) < 0.01] = np.nan
    return data


def test_means_are_exact_whatever_the_values() -> None:
    data = hard_rows(20_000, seed=11)
    keep = data["arrival"] >= 2.0
    done = keep & (data["status"] == 0)
    alive = keep & (data["status"] != 1)
    off = data["offload"]
    acc = summarise(split(data, [1, 1023, 1024, 3000, 13_001]), warmup=2.0)
    r = acc.result()

    def exact_mean(values: np.ndarray, mask: np.ndarray) -> float:
        kept = values[mask & np.isfinite(values)]
        return float(sum(Fraction(v) for v in kept.tolist()) / kept.size)

    lat = data["latency"]
    assert r["latency_mean"] == exact_mean(lat, done)
    assert r["latency_mean_local"] == exact_mean(lat, done & ~off)
    assert r["latency_mean_offloaded"] == exact_mean(lat, done & off)
    assert r["wait_uplink_mean"] == exact_mean(data["wait_uplink"], keep & off)
    assert r["tx_time_mean"] == exact_mean(data["tx_time"], keep & off)
    assert r["wait_compute_mean"] == exact_mean(data["wait_compute"], alive)
    assert r["compute_time_mean"] == exact_mean(data["compute_time"], alive)
    assert r["energy_mean_local"] == exact_mean(data["energy"], keep & ~off)
    assert r["edge_energy_mean"] == exact_mean(data["edge_energy"], keep)
    for key in ("energy", "cost"):
        values = data[key][keep & np.isfinite(data[key])]
        assert r[f"{key}_total"] == math.fsum(values), key
        s1 = sum(Fraction(v) for v in values.tolist())
        s2 = sum(Fraction(v) for v in (values * values).tolist())  # rounded squares
        var = (s2 - s1 * s1 / values.size) / (values.size - 1)
        assert r[f"{key}_std"] == math.sqrt(float(var)), key
    assert r["n_dropped"] == int((keep & (data["status"] == 1)).sum())
    assert r["n_warmup_excluded"] == int((~keep).sum())
    alone = LogHistogram()
    alone.add(lat, done & np.isfinite(lat))
    np.testing.assert_array_equal(acc.histogram.counts, alone.counts)
    assert (r["latency_min"], r["latency_max"]) == (alone.min, alone.max)
    wide = SummaryAccumulator(HORIZON, 2.0, W1)  # bins down to the subnormals
    wide.histogram = LogHistogram(-1074, 10, 4)
    wide.add(data)
    alone = LogHistogram(-1074, 10, 4)
    alone.add(lat, done & np.isfinite(lat))
    np.testing.assert_array_equal(wide.histogram.counts, alone.counts)


def test_hard_values_do_not_depend_on_batching() -> None:
    data = hard_rows(9000, seed=12)
    ref = summarise([data]).result(include_histogram=True)
    rng = np.random.default_rng(13)
    for _ in range(3):
        cuts = sorted(set(rng.integers(1, 9000, 12).tolist()))
        pieces = split(data, cuts)
        got = summarise([pieces[i] for i in rng.permutation(len(pieces))])
        assert got.result(include_histogram=True) == ref


def test_a_batch_whose_square_overflows_is_refused_whole() -> None:
    data = rows(5000, seed=14)
    bad = {k: v.copy() for k, v in data.items()}
    bad["cost"][4321] = 1e200  # finite, but its square is not
    acc = summarise([data])
    with pytest.raises(ValueError, match="finite"):
        acc.add(bad)
    acc.add(data)
    assert acc.result(include_histogram=True) == summarise([data, data]).result(
        include_histogram=True
    )


def test_columns_of_other_types_are_converted() -> None:
    data = rows(3000, seed=15)
    ref = summarise([data], warmup=1.0).result(include_histogram=True)
    as_lists = {k: v.tolist() for k, v in data.items()}
    as_ints = data | {
        "offload": data["offload"].astype(np.int64),
        "status": data["status"].astype(np.int32),
        "in_flight": data["in_flight"].astype(np.uint8),
    }
    strided_float32 = {k: np.repeat(v, 2)[::2] for k, v in data.items()} | {
        "compute_time": np.repeat(data["compute_time"].astype(np.float32), 2)[::2]
    }
    ref32 = summarise(
        [data | {"compute_time": data["compute_time"].astype(np.float32)}], warmup=1.0
    ).result(include_histogram=True)
    for batch in (as_lists, as_ints):
        assert summarise([batch], warmup=1.0).result(include_histogram=True) == ref
    assert summarise([strided_float32], warmup=1.0).result(include_histogram=True) == ref32
    with pytest.raises(ValueError, match="'latency' has shape"):
        summarise([data | {"latency": data["latency"][:-1]}])


def test_histogram_bins_follow_frexp() -> None:
    rng = np.random.default_rng(16)
    x = np.concatenate(
        [
            10.0 ** rng.uniform(-320, 10, 20_000),
            [0.0, -1.0, 5e-324, 2.0**-30, 2.0**-31, 2.0**20, np.inf, -np.inf, np.nan],
        ]
    )
    mask = rng.random(x.size) < 0.9
    for lo, hi, sub in ((-30, 20, 1024), (-1074, 10, 4), (-1030, -1000, 2), (-5, 5, 1)):
        h = LogHistogram(lo, hi, sub)
        h.add(x, mask)
        valid = x[mask & ~np.isnan(x)]
        mant, exp = np.frexp(valid)
        with np.errstate(invalid="ignore"):
            want = (
                (exp.astype(np.int64) - lo - 2) * sub
                + np.floor(mant * (2 * sub)).astype(np.int64)
                + 1
            )
        want[valid < 2.0**lo] = 0
        want[valid >= 2.0**hi] = h.n_regular + 1
        np.testing.assert_array_equal(h.counts, np.bincount(want, minlength=h.n_regular + 2))
        assert (h.min, h.max) == (valid.min(), valid.max())


def test_write_json_atomic_writes_strict_sorted_json(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old")
    obj = {
        "b": float("nan"),
        "a": [np.float64(1.5), np.inf, np.arange(2)],
        "c": (1, None),
        "d": {"x": -np.inf},
        "p": tmp_path,
    }
    write_json_atomic(target, obj)
    text = target.read_text()
    assert json.loads(text) == {
        "a": [1.5, None, [0, 1]],
        "b": None,
        "c": [1, None],
        "d": {"x": None},
        "p": str(tmp_path),
    }
    assert text.index('"a"') < text.index('"b"') and "NaN" not in text
    assert sorted(os.listdir(tmp_path)) == ["summary.json"]


def test_provenance_records_seeds_versions_and_revision(tmp_path: Path) -> None:
    config = {"seed": 3, "engine": {"horizon": 1.0, "warmup": float("nan")}}
    p = provenance(3, (1, 2), config)
    assert p["seed_root"] == 3 and p["seed_path"] == [1, 2]
    assert p["config"]["engine"]["warmup"] is None and len(p["config_sha256"]) == 64
    assert p["config_sha256"] == provenance(3, (), config)["config_sha256"]
    for name in (
        "numpy",
        "scipy",
        "simpy",
        "numba",
        "pandas",
        "pyarrow",
        "pydantic",
        "qiskit",
        "qiskit-aer",
        "matplotlib",
    ):
        assert name in p["packages"]
    assert p["packages"]["numpy"] == np.__version__
    assert p["start_time"].endswith("+00:00")
    assert set(p["git"]) >= {"revision", "dirty", "repository"}
    if p["git"]["revision"] is not None:
        assert len(p["git"]["revision"]) == 40 and isinstance(p["git"]["dirty"], bool)
    json.dumps(to_jsonable(p), allow_nan=False)
    write_json_atomic(tmp_path / "provenance.json", p)


@pytest.mark.slow
def test_summary_throughput() -> None:
    """Rows per second for large and for one-epoch-sized batches; ``pytest -m slow -s``."""
    data = rows(2_000_000, seed=10)
    summarise([{k: v[:10] for k, v in data.items()}]).result()  # load the compiled code
    start = time.perf_counter()
    summarise([data]).result()
    big = 2e6 / (time.perf_counter() - start)
    small = split({k: v[:200_000] for k, v in data.items()}, list(range(100, 200_000, 100)))
    start = time.perf_counter()
    summarise(small).result()
    little = 2e5 / (time.perf_counter() - start)
    print(
        f"\nSummaryAccumulator: {big:,.0f} rows/s (one batch), "
        f"{little:,.0f} rows/s (100-row batches)"
    )

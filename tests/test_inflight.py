"""Rows in flight: the column buffer and its kernels against plain array operations."""

from __future__ import annotations

import numpy as np
import pytest

from sim.inflight import InFlight
from sim.kernels import (
    PHASE_DONE,
    PHASE_FIRST,
    admit_rows,
    apply_decisions_into,
    keep_rows,
    split_done,
)

COLUMNS = (("a", np.float64), ("b", np.int64), ("c", np.int8), ("d", np.float64), ("e", np.bool_))


def random_rows(rng, k):
    return {
        "a": rng.normal(size=k),
        "b": rng.integers(-5, 5, k),
        "c": rng.integers(0, 5, k).astype(np.int8),
        "d": rng.exponential(size=k),
        "e": rng.random(k) < 0.5,
    }


@pytest.mark.parametrize("seed", range(4))
def test_inflight_equals_concatenate_then_select(seed):
    """Appending batches and keeping rows gives the rows that concatenating the batches
    and selecting the kept ones gives, in the same order, through capacity growth."""
    rng = np.random.default_rng(seed)
    buf = InFlight(COLUMNS, capacity=3)
    want = {name: np.empty(0, dtype=dt) for name, dt in COLUMNS}
    for _ in range(40):
        k = int(rng.integers(0, 30))
        batch = random_rows(rng, k)
        adopt = {n: c for n, c in batch.items() if n != "d"} if rng.random() < 0.5 else None
        empty = buf.n == 0
        new = buf.append(k, adopt)
        if adopt is not None and empty:
            assert new["a"] is batch["a"]  # taken as it is, no copy
        for name, col in batch.items():
            new[name][:] = col
        want = {name: np.concatenate((want[name], batch[name])) for name in want}
        rows = buf.rows()
        for name, dt in COLUMNS:
            assert rows[name].dtype == dt and rows[name].flags.c_contiguous
            np.testing.assert_array_equal(rows[name], want[name])
        keep = np.flatnonzero(rng.random(buf.n) < rng.choice([0.0, 0.6, 1.0]))
        if rng.random() < 0.8:  # else nothing finished: the rows stay as they are
            buf.keep(keep)
        else:
            keep = np.arange(buf.n)
        want = {name: col[keep] for name, col in want.items()}
        assert len(buf) == keep.shape[0]
    rows = buf.rows()
    for name in want:
        np.testing.assert_array_equal(rows[name], want[name])


def test_inflight_truncate_takes_back_an_append():
    buf = InFlight(COLUMNS)
    buf.append(5)["a"][:] = np.arange(5.0)
    buf.append(7)
    buf.truncate(5)
    np.testing.assert_array_equal(buf.rows()["a"], np.arange(5.0))
    adopted = InFlight(COLUMNS)
    adopted.append(4, {"a": np.arange(4.0)})
    adopted.truncate(0)
    assert adopted.n == 0 and adopted.rows()["a"].shape == (0,)


def test_split_done_and_keep_rows_match_numpy():
    rng = np.random.default_rng(3)
    phase = rng.integers(0, 5, 500).astype(np.int8)
    for n in (0, 1, 17, 500):
        done, keep = split_done(phase, n)
        np.testing.assert_array_equal(done, np.flatnonzero(phase[:n] == PHASE_DONE))
        np.testing.assert_array_equal(keep, np.flatnonzero(phase[:n] != PHASE_DONE))
    block = rng.normal(size=(3, 40))
    keep = np.flatnonzero(rng.random(40) < 0.5)
    want = block[:, keep].copy()
    keep_rows(block, keep)
    np.testing.assert_array_equal(block[:, : keep.shape[0]], want)


def test_admit_rows_match_the_array_construction():
    rng = np.random.default_rng(5)
    k = 300
    task = {
        "task_id": np.arange(10, 10 + k),
        "vehicle": rng.integers(0, 20, k),
        "arrival": rng.random(k),
        "size_bits": rng.uniform(1e4, 2e4, k),
        "cycles": rng.uniform(1e6, 2e6, k),
        "deadline": rng.random(k) + 1.0,
        "priority": rng.normal(size=k),
    }
    task["priority"][:3] = 0.0  # -0.0 as with numpy's negation
    server = rng.integers(-1, 8, k)
    want = dict(task)
    want.update(
        offload=server >= 0,
        server=server.astype(np.int32),
        tx_start=np.full(k, np.nan),
        compute_start=np.full(k, np.nan),
        status=np.zeros(k, dtype=np.int8),
        phase=np.full(k, PHASE_FIRST, dtype=np.int8),
        drop_time=np.full(k, np.nan),
        key=-task["priority"],
    )
    # garbage in the output columns first: every entry must be written
    out = {
        name: rng.normal(size=k) * 1e9
        if col.dtype == np.float64
        else rng.integers(0, 2, k).astype(col.dtype)
        for name, col in want.items()
    }
    admit_rows(*task.values(), server, *(out[name] for name in want))
    for name, col in want.items():
        assert out[name].dtype == col.dtype
        assert out[name].tobytes() == col.tobytes(), name


def test_apply_decisions_into_writes_every_output():
    """Written into outputs full of garbage, the results are those of fresh arrays
    (NaN rate, share, power and transmission time for local tasks)."""
    rng = np.random.default_rng(8)
    k, n_v, n_s = 400, 30, 6
    vehicle = np.sort(rng.integers(0, n_v, k))
    server = rng.integers(-1, n_s, k)
    args = (
        vehicle,
        rng.uniform(1e4, 2e4, k),
        rng.uniform(1e6, 2e6, k),
        server,
        rng.uniform(0.05, 1.0, k),
        rng.uniform(0.1, 2.0, k),
        np.full(n_v, 1.0),
        rng.uniform(0, 500, (n_v, 2)),
        rng.uniform(0, 500, (n_s, 2)),
        np.empty((0, 0)),
        1e-4,
        1.0,
        2.0,
        1.0,
        np.zeros(n_s),
        np.full(n_s, 1e7),
        1e-10,
        False,
        1.0,
        np.full(n_v, 1e-9),
        np.full(n_s, 1e-10),
        1.0,
        1.0,
        np.full(n_v, 1e9),
        np.full(n_s, 1e10),
        np.ones(n_s, dtype=np.int64),
        0.1,
    )
    # every output entry is written: buffers holding zeros and buffers holding noise
    # come out byte-identical, with the same counts
    fresh = [np.zeros(k) for _ in range(5)]
    fresh_counts = apply_decisions_into(*args, *fresh)
    outs = [rng.normal(size=k) for _ in range(5)]
    counts = apply_decisions_into(*args, *outs)
    assert counts == fresh_counts and counts[4:] == (0, -1)
    for got, want in zip(outs, fresh, strict=True):
        assert got.tobytes() == want.tobytes()
    local = server < 0
    assert np.isnan(fresh[2][local]).all() and np.isfinite(fresh[2][~local]).all()
    # an invalid action writes nothing and names the task
    bad = server.copy()
    bad[7] = n_s
    args_bad = (*args[:3], bad, *args[4:])
    outs = [np.full(k, 7.0) for _ in range(5)]
    assert apply_decisions_into(*args_bad, *outs)[4:] == (1, 7)
    assert all((o == 7.0).all() for o in outs)

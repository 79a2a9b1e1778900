"""The per-task Parquet table: schema, chunking, determinism, atomic completion."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sim.records import (
    TASK_COLUMNS,
    TASK_SCHEMA,
    TaskTableWriter,
    iter_task_batches,
    read_task_table,
)


def synthetic_batch(
    n: int,
    seed: int = 0,
    first_id: int = 0,
    t0: float = 0.0,
    n_vehicles: int = 500,
    n_servers: int = 16,
) -> dict[str, np.ndarray]:
    """Rows shaped like the engine's: queues, NaN for local/dropped tasks, mixed decisions."""
    rng = np.random.default_rng(seed)
    arrival = t0 + np.sort(rng.uniform(0.0, max(n, 1) / 1e5, n))
    size = rng.uniform(1e4, 2e4, n)
    cycles = rng.uniform(1e6, 2e6, n)
    offload = rng.random(n) < 0.6
    server = np.where(offload, rng.integers(0, n_servers, n), -1).astype(np.int32)
    share = np.where(offload, rng.choice([0.125, 0.25, 0.5, 1.0], n), 0.0)
    power = np.where(offload, rng.choice([0.25, 0.5, 1.0], n), 0.0)
    rate = np.where(offload, rng.uniform(5e6, 5e7, n), np.nan)
    wait_up = np.where(offload, rng.exponential(1e-3, n), np.nan)
    tx_start = arrival + wait_up
    tx_time = np.where(offload, size / np.where(offload, rate, 1.0), 0.0)
    ready = np.where(offload, tx_start + tx_time, arrival)
    wait_c = rng.exponential(2e-3, n)
    dropped = rng.random(n) < 0.03
    compute_start = np.where(dropped, np.nan, ready + wait_c)
    compute_time = np.where(offload, cycles / 1e10, cycles / 1e9)
    completion = compute_start + compute_time
    latency = completion - arrival
    energy = np.where(offload, power * tx_time, 1e-9 * cycles)
    deadline = arrival + 0.01
    return {
        "task_id": np.arange(first_id, first_id + n, dtype=np.int64),
        "vehicle": rng.integers(0, n_vehicles, n).astype(np.int32),
        "arrival": arrival,
        "size_bits": size,
        "cycles": cycles,
        "deadline": deadline,
        "priority": 1e-6 * cycles - 100.0 * (deadline - arrival),
        "offload": offload,
        "server": server,
        "share": share,
        "power": power,
        "rate": rate,
        "tx_start": tx_start,
        "tx_time": tx_time,
        "wait_uplink": wait_up,
        "wait_qpu": np.where(offload, rng.exponential(1e-3, n), np.nan),
        "qpu_time": np.where(offload, 2e-3, np.nan),
        "qpu_fidelity": np.where(offload, 0.9, np.nan),
        "semantic_accuracy": np.where(offload, 0.9, 1.0),
        "compute_start": compute_start,
        "wait_compute": np.where(dropped, np.nan, wait_c),
        "compute_time": compute_time,
        "completion": completion,
        "latency": latency,
        "energy": energy,
        "edge_energy": np.where(offload & ~dropped, 1e-10 * cycles, 0.0),
        "cost": 0.5 * np.where(dropped, wait_c, latency) + 0.5 * energy,
        "status": dropped.astype(np.int8),
        "deadline_met": ~dropped & (completion <= deadline),
        "in_flight": completion > arrival[-1] if n else np.zeros(0, bool),
    }


def split(batch: dict[str, np.ndarray], sizes: list[int]) -> list[dict[str, np.ndarray]]:
    out, start = [], 0
    for size in sizes:
        out.append({k: v[start : start + size] for k, v in batch.items()})
        start += size
    assert start == len(batch["task_id"])
    return out


def write(path: Path, batches: list[dict], chunk_rows: int, background: bool = True) -> Path:
    with TaskTableWriter(path, chunk_rows, background=background) as writer:
        for b in batches:
            writer.append(b)
    return path


def assert_same_rows(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    for name in TASK_COLUMNS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        assert got[name].dtype == want[name].dtype, name


def test_schema_lists_the_columns_in_order_with_units() -> None:
    assert TASK_COLUMNS[0] == "task_id" and TASK_COLUMNS[-1] == "in_flight"
    assert len(TASK_COLUMNS) == 30
    assert TASK_SCHEMA.field("wait_qpu").metadata[b"unit"] == b"s"
    assert TASK_SCHEMA.field("status").type == pa.int8()
    assert TASK_SCHEMA.field("latency").metadata[b"unit"] == b"s"
    assert TASK_SCHEMA.field("energy").metadata[b"unit"] == b"J"
    for f in TASK_SCHEMA:
        assert f.metadata[b"description"], f.name


def test_round_trip_across_chunk_boundaries(tmp_path: Path) -> None:
    data = synthetic_batch(5000, seed=1)
    path = write(tmp_path / "t.parquet", split(data, [1, 999, 1500, 3, 2497]), 1000)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == 5000
    assert meta.num_row_groups == 5
    assert [meta.row_group(i).num_rows for i in range(5)] == [1000] * 5
    table = pq.read_table(path)
    assert table.schema.equals(TASK_SCHEMA, check_metadata=True)
    assert_same_rows({k: table[k].to_numpy() for k in TASK_COLUMNS}, data)


def test_last_row_group_holds_the_remainder(tmp_path: Path) -> None:
    data = synthetic_batch(2345, seed=2)
    path = write(tmp_path / "t.parquet", [data], 1000)  # one batch spanning three chunks
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1000, 1000, 345]
    df = read_task_table(path)
    assert list(df.columns) == list(TASK_COLUMNS)
    assert_same_rows({k: df[k].to_numpy() for k in TASK_COLUMNS}, data)


def test_same_rows_give_identical_bytes_however_batched(tmp_path: Path) -> None:
    data = synthetic_batch(4000, seed=3)
    a = write(tmp_path / "a.parquet", [data], 1500)
    b = write(tmp_path / "b.parquet", split(data, [7, 1493, 1, 2499]), 1500)
    c = write(tmp_path / "c.parquet", split(data, [4000]), 1500, background=False)
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()


def test_file_appears_only_on_close(tmp_path: Path) -> None:
    path = tmp_path / "tasks.parquet"
    writer = TaskTableWriter(path, 1000)
    writer.append(synthetic_batch(2500, seed=4))
    time.sleep(0.05)
    assert not path.exists()
    assert writer.partial_path.exists()
    assert writer.partial_path.name == "tasks.parquet.partial"
    assert writer.close() == path
    assert path.exists() and not writer.partial_path.exists()
    assert writer.rows == 2500 and writer.row_groups == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.parquet"]
    writer.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="closed"):
        writer.append(synthetic_batch(1))


def test_failure_leaves_a_readable_partial_and_no_table(tmp_path: Path) -> None:
    path = tmp_path / "tasks.parquet"
    with pytest.raises(RuntimeError, match="engine failed"):
        with TaskTableWriter(path, 1000) as writer:
            writer.append(synthetic_batch(2200, seed=5))
            raise RuntimeError("engine failed")
    assert not path.exists()
    assert pq.ParquetFile(writer.partial_path).metadata.num_rows == 2000  # whole groups
    with pytest.raises(ValueError, match="aborted"):
        writer.close()


def test_empty_table_is_valid(tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", [], 1000)
    df = read_task_table(path)
    assert len(df) == 0 and list(df.columns) == list(TASK_COLUMNS)
    path2 = write(tmp_path / "t2.parquet", [synthetic_batch(0)], 1000)
    assert pq.ParquetFile(path2).metadata.num_rows == 0


def test_caller_may_reuse_its_arrays(tmp_path: Path) -> None:
    data = synthetic_batch(300, seed=6)
    keep = {k: v.copy() for k, v in data.items()}
    with TaskTableWriter(tmp_path / "t.parquet", 1000) as writer:
        writer.append(data)
        for v in data.values():
            v[:] = v[::-1]
    assert_same_rows(next(iter_task_batches(tmp_path / "t.parquet")), keep)


def test_columns_are_cast_within_their_kind(tmp_path: Path) -> None:
    data = synthetic_batch(50, seed=7)
    data["status"] = data["status"].astype(np.int64)
    data["server"] = data["server"].astype(np.int64)
    data["vehicle"] = data["vehicle"].astype(np.int16)
    path = write(tmp_path / "t.parquet", [data], 1000)
    got = next(iter_task_batches(path, columns=["status", "server", "vehicle"]))
    assert got["status"].dtype == np.int8 and got["server"].dtype == np.int32
    np.testing.assert_array_equal(got["vehicle"], data["vehicle"])


@pytest.mark.parametrize(
    "change, error",
    [
        (lambda b: b.pop("latency"), "missing columns: latency"),
        (lambda b: b.update(extra=b["latency"]), "unknown columns: extra"),
        (lambda b: b.update(latency=b["latency"][:-1]), "length"),
        (lambda b: b.update(offload=b["arrival"]), "does not cast"),
        (lambda b: b.update(task_id=b["arrival"]), "does not cast"),
    ],
)
def test_bad_batches_are_rejected_before_any_row_is_kept(tmp_path: Path, change, error) -> None:
    writer = TaskTableWriter(tmp_path / "t.parquet", 1000)
    bad = synthetic_batch(10, seed=8)
    change(bad)
    with pytest.raises((ValueError, TypeError), match=error):
        writer.append(bad)
    writer.append(synthetic_batch(5, seed=9))
    writer.close()
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.num_rows == 5


def test_iter_task_batches_streams_in_bounded_batches(tmp_path: Path) -> None:
    data = synthetic_batch(2500, seed=10)
    path = write(tmp_path / "t.parquet", [data], 1000)
    batches = list(iter_task_batches(path, columns=["task_id", "latency"], batch_rows=600))
    assert all(len(b["task_id"]) <= 600 for b in batches)
    np.testing.assert_array_equal(np.concatenate([b["latency"] for b in batches]), data["latency"])


@pytest.mark.slow
def test_writer_throughput(tmp_path: Path) -> None:
    """10 million rows in 10,000-row batches; run with ``pytest -m slow -s``."""
    parts = [
        synthetic_batch(1_000_000, seed=i, first_id=i * 1_000_000, t0=10.0 * i) for i in range(10)
    ]
    batches = [b for p in parts for b in split(p, [10_000] * 100)]
    start = time.perf_counter()
    with TaskTableWriter(tmp_path / "t.parquet", 1_000_000) as writer:
        for b in batches:
            writer.append(b)
    elapsed = time.perf_counter() - start
    size = (tmp_path / "t.parquet").stat().st_size
    print(
        f"\nTaskTableWriter: 10,000,000 rows in {elapsed:.2f} s = "
        f"{1e7 / elapsed:,.0f} rows/s, {size / 1e7:.1f} bytes/row"
    )
    assert writer.row_groups == 10

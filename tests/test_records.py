"""The per-task Parquet table: schema, chunking, determinism, atomic completion."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import scenario

from sim import records
from sim.errors import ScenarioError
from sim.records import (
    COMPRESSIONS,
    DEFAULT_CHUNK_ROWS,
    TASK_COLUMNS,
    TASK_SCHEMA,
    TaskTableWriter,
    iter_task_batches,
    read_task_table,
)
from sim.runner import run_scenario
from sim.scenario import validate_data


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


def write(path: Path, batches: list[dict], chunk_rows: int, **options) -> Path:
    with TaskTableWriter(path, chunk_rows, **options) as writer:
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


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_same_rows_give_identical_bytes_however_batched(tmp_path: Path, compression) -> None:
    data = synthetic_batch(4000, seed=3)
    a = write(tmp_path / "a.parquet", [data], 1500, compression=compression)
    b = write(
        tmp_path / "b.parquet", split(data, [7, 1493, 1, 2499]), 1500, compression=compression
    )
    c = write(tmp_path / "c.parquet", [data], 1500, background=False, compression=compression)
    d = write(
        tmp_path / "d.parquet",
        split(data, [1500, 2500]),
        1500,
        durable=False,
        compression=compression,
    )
    assert a.read_bytes() == b.read_bytes() == c.read_bytes() == d.read_bytes()


@pytest.mark.parametrize("compression, codec", [("lz4", "LZ4"), ("zstd", "ZSTD")])
def test_compression_is_chosen_and_rows_round_trip(tmp_path: Path, compression, codec) -> None:
    data = synthetic_batch(2500, seed=11)
    path = write(tmp_path / "t.parquet", split(data, [900, 1600]), 1000, compression=compression)
    meta = pq.ParquetFile(path).metadata
    codecs = {
        meta.row_group(g).column(i).compression
        for g in range(meta.num_row_groups)
        for i in range(meta.num_columns)
    }
    assert codecs == {codec}
    assert_same_rows(next(iter_task_batches(path)), data)


def test_the_codecs_give_different_files_of_the_same_rows(tmp_path: Path) -> None:
    data = synthetic_batch(3000, seed=12)
    lz4 = write(tmp_path / "a.parquet", [data], 1000, compression="lz4")
    zstd = write(tmp_path / "b.parquet", [data], 1000, compression="zstd")
    assert lz4.read_bytes() != zstd.read_bytes()
    assert_same_rows(next(iter_task_batches(zstd)), next(iter_task_batches(lz4)))


def test_unknown_compression_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="compression must be one of lz4, zstd, got 'gzip'"):
        TaskTableWriter(tmp_path / "t.parquet", 1000, compression="gzip")
    assert not list(tmp_path.iterdir())


def test_row_groups_carry_arrival_statistics(tmp_path: Path) -> None:
    """The figures read the time span of a table from the arrival column's statistics."""
    data = synthetic_batch(2500, seed=13)
    path = write(tmp_path / "t.parquet", [data], 1000)
    meta = pq.ParquetFile(path).metadata
    col = TASK_COLUMNS.index("arrival")
    for g, start in enumerate(range(0, 2500, 1000)):
        stats = meta.row_group(g).column(col).statistics
        assert stats is not None and stats.has_min_max
        part = data["arrival"][start : start + 1000]
        assert (stats.min, stats.max) == (part.min(), part.max())


def fsync_log(monkeypatch) -> list[str]:
    """Record the writer's fsyncs (of the file or of its folder) and renames, in order."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def datasync(fd: int) -> None:
        events.append("datasync file")

    def replace(src, dst) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(records.os, "fsync", fsync)
    monkeypatch.setattr(records.os, "replace", replace)
    monkeypatch.setattr(records, "_datasync", datasync)
    return events


def test_durable_close_flushes_the_file_before_renaming_it(tmp_path: Path, monkeypatch) -> None:
    events = fsync_log(monkeypatch)
    write(tmp_path / "t.parquet", [synthetic_batch(2500, seed=14)], 1000)
    # full row groups are flushed while writing goes on (one flush at a time), the rest at
    # close, before the name is changed and the folder flushed
    syncs = events.count("datasync file")
    assert 1 <= syncs <= 2
    assert events == ["datasync file"] * syncs + ["fsync file", "rename", "fsync dir"]


def test_not_durable_writes_the_same_file_without_fsync(tmp_path: Path, monkeypatch) -> None:
    data = synthetic_batch(2500, seed=15)
    durable = write(tmp_path / "a.parquet", [data], 1000)
    events = fsync_log(monkeypatch)
    quick = write(tmp_path / "b.parquet", [data], 1000, durable=False)
    assert events == ["rename"]
    assert quick.read_bytes() == durable.read_bytes()


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
    with TaskTableWriter(tmp_path / "t.parquet") as writer:
        for b in batches:
            writer.append(b)
    elapsed = time.perf_counter() - start
    size = (tmp_path / "t.parquet").stat().st_size
    print(
        f"\nTaskTableWriter: 10,000,000 rows in {elapsed:.2f} s = "
        f"{1e7 / elapsed:,.0f} rows/s, {size / 1e7:.1f} bytes/row"
    )
    assert writer.row_groups == -(-10_000_000 // DEFAULT_CHUNK_ROWS)


# --------------------------------------------------------------------------- output: section
def test_output_defaults_match_the_writer() -> None:
    out = scenario().output
    assert out.chunk_rows == DEFAULT_CHUNK_ROWS
    assert out.table_compression == "lz4" == COMPRESSIONS[0]


@pytest.mark.parametrize(
    "output, key, allowed",
    [
        ({"table_compression": "gzip"}, "output.table_compression", "'lz4', 'zstd'"),
        ({"table_compression": 4}, "output.table_compression", "'lz4', 'zstd'"),
        ({"chunk_rows": 999}, "output.chunk_rows", "1000 <= value <= 50000000"),
    ],
)
def test_bad_output_options_give_one_line_naming_the_key(output, key, allowed) -> None:
    with pytest.raises(ScenarioError) as info:
        validate_data({"output": output})
    assert (info.value.key, info.value.allowed) == (key, allowed)
    assert "\n" not in str(info.value) and f"allowed: {allowed}" in str(info.value)


def small_run(tmp_path: Path, name: str, durable: bool = True, **output) -> Path:
    sc = scenario(
        engine={"horizon": "12 s", "epoch": "100 ms"},
        tasks={"arrival_rate": "80 /s"},  # 3 vehicles: about 2,900 tasks
        output={"plots": False, "chunk_rows": 1000, **output},
    )
    return run_scenario(sc, out_dir=tmp_path / name, durable=durable).out_dir / "tasks.parquet"


def test_runs_write_the_chosen_codec_and_the_same_rows(tmp_path: Path) -> None:
    lz4 = small_run(tmp_path, "lz4")
    staged = small_run(tmp_path, "staged", durable=False)
    zstd = small_run(tmp_path, "zstd", table_compression="zstd")
    assert lz4.read_bytes() == staged.read_bytes()
    meta = pq.ParquetFile(zstd).metadata
    assert meta.num_rows > 2000 and meta.row_group(0).num_rows == 1000
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert pq.ParquetFile(lz4).metadata.row_group(0).column(0).compression == "LZ4"
    assert read_task_table(zstd).equals(read_task_table(lz4))
    config = yaml.safe_load((zstd.parent / "config.yaml").read_text())
    assert config["output"]["table_compression"] == "zstd"

"""The per-task table: one row per task, streamed to Parquet in bounded memory.

The engine hands over finished tasks in batches of any size (one row to millions); the
writer copies them into fixed column buffers and writes a Parquet row group of exactly
``chunk_rows`` rows whenever the buffers fill, so memory is bounded by ``chunk_rows`` and
the file does not depend on how the rows were split into batches. Encoding and
compression of a full row group run on a background thread while the caller goes on
simulating. The file is written as ``<path>.partial`` and renamed once complete, so a
``tasks.parquet`` that exists is always whole. Identical rows give byte-identical files
(for a given pyarrow version and codec): no timestamps or random ids go into the metadata.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pandas as pd

TABLE_FORMAT_VERSION = "1"

# name, Arrow type, unit, description
_COLUMNS: tuple[tuple[str, pa.DataType, str, str], ...] = (
    ("task_id", pa.int64(), "", "task identifier, unique within a run"),
    ("vehicle", pa.int32(), "", "index of the vehicle that generated the task"),
    ("arrival", pa.float64(), "s", "arrival time of the task"),
    ("size_bits", pa.float64(), "bit", "input data size D"),
    ("cycles", pa.float64(), "cycle", "semantic complexity s_c (CPU cycles)"),
    ("deadline", pa.float64(), "s", "absolute deadline (arrival + L_D)"),
    ("priority", pa.float64(), "", "priority score at decision time; higher is served first"),
    ("offload", pa.bool_(), "", "true: offloaded to an edge server; false: computed locally"),
    ("server", pa.int32(), "", "index of the edge server; -1 for local computation"),
    ("share", pa.float64(), "", "fraction of the server's bandwidth allocated (0 if local)"),
    ("power", pa.float64(), "W", "transmit power (0 if local)"),
    ("rate", pa.float64(), "bit/s", "uplink rate; NaN if local"),
    ("tx_start", pa.float64(), "s", "start of the uplink transmission; NaN if none"),
    ("tx_time", pa.float64(), "s", "duration of the uplink transmission"),
    ("wait_uplink", pa.float64(), "s", "wait for the uplink: tx_start - arrival"),
    (
        "wait_qpu",
        pa.float64(),
        "s",
        "wait for the QPU: job start - end of transmission; NaN if none",
    ),
    ("qpu_time", pa.float64(), "s", "execution time of the task's QPU job; NaN if none"),
    (
        "qpu_fidelity",
        pa.float64(),
        "",
        "fidelity of the task's semantic-coding job (measured on a noisy backend, else the "
        "device's calibrated estimate); NaN if none or unknown (CLOPS timing)",
    ),
    (
        "semantic_accuracy",
        pa.float64(),
        "",
        "sigma_i (local) or sigma_j (offloaded), times qpu_fidelity where it is known",
    ),
    ("compute_start", pa.float64(), "s", "start of computation; NaN if never started"),
    ("wait_compute", pa.float64(), "s", "wait for the CPU: compute_start - time ready for it"),
    ("compute_time", pa.float64(), "s", "computation time"),
    ("completion", pa.float64(), "s", "completion time; NaN if dropped"),
    ("latency", pa.float64(), "s", "completion - arrival; NaN if dropped"),
    ("energy", pa.float64(), "J", "vehicle energy: transmission, or local computation"),
    ("edge_energy", pa.float64(), "J", "edge server computation energy"),
    ("cost", pa.float64(), "", "w1 * latency + (1 - w1) * energy, eq. [18]"),
    ("status", pa.int8(), "", "0 = completed, 1 = dropped"),
    ("deadline_met", pa.bool_(), "", "completed no later than the deadline"),
    ("in_flight", pa.bool_(), "", "not finished or dropped by the horizon (drained after)"),
)


def _field(name: str, dtype: pa.DataType, unit: str, description: str) -> pa.Field:
    meta = {"description": description}
    if unit:
        meta["unit"] = unit
    return pa.field(name, dtype, nullable=False, metadata=meta)


TASK_SCHEMA: pa.Schema = pa.schema(
    [_field(*c) for c in _COLUMNS],
    metadata={"qvecsim.table": "tasks", "qvecsim.format_version": TABLE_FORMAT_VERSION},
)
"""Columns of the task table, in order; each field's metadata holds its description and,
where it has one, its unit."""

TASK_COLUMNS: tuple[str, ...] = tuple(TASK_SCHEMA.names)

_NUMPY_DTYPES: dict[str, np.dtype] = {
    f.name: np.dtype(f.type.to_pandas_dtype()) for f in TASK_SCHEMA
}

# Parquet layout, chosen for write speed at a good compression ratio. A million rows of
# the benchmark world (benchmarks/bench_engine.py), one core, pyarrow 26, 65,536-row
# groups: lz4 writes 4.2 M rows/s into 94 MB, zstd level 1 2.7 M rows/s into 91 MB; on
# uniformly random rows (tests/test_records.py) 2.6 M rows/s into 135 MB against 1.7 M
# rows/s into 115 MB. One-thread reads: 8.6 M rows/s for lz4, 4.8-7.5 for zstd.
# Dictionary encoding only where few distinct values are expected (status, and typically
# vehicle, server, share, power); delta encoding for the task ids, which lie close
# together; byte-stream split for the floating-point columns, which lets either codec find
# the structure of the exponents (20 % smaller with lz4), except wait_uplink, often zero
# or NaN, which is both smaller and faster plain. Min/max statistics only for the columns
# that readers select row groups by (ids, arrival time, vehicle, server, status): on
# every column they would cost 7 % of the write time.
COMPRESSIONS: tuple[str, ...] = ("lz4", "zstd")
"""Codecs of the task table: ``lz4`` (the default, fastest to write and read) or ``zstd``
(level 1: 3-15 % smaller files, about 1.5 times slower to write and to read)."""

DEFAULT_CHUNK_ROWS = 1 << 16
"""Rows per row group: small enough that row groups are encoded on the background thread
while the run goes on (a run of 600,000 rows hands over nine of them before it ends, and
only the last, shorter one is encoded at close), large enough that reading stays within
a few percent of the speed of million-row groups (6.9 against 7.3 M rows/s on one core)."""

_DICTIONARY_COLUMNS = ["vehicle", "server", "share", "power", "status"]
_STATISTICS_COLUMNS = ["task_id", "vehicle", "arrival", "server", "status"]
_PLAIN_FLOAT_COLUMNS = ["wait_uplink"]
_COLUMN_ENCODING = {
    "task_id": "DELTA_BINARY_PACKED",
    **{
        f.name: "BYTE_STREAM_SPLIT"
        for f in TASK_SCHEMA
        if f.type == pa.float64()
        and f.name not in _DICTIONARY_COLUMNS
        and f.name not in _PLAIN_FLOAT_COLUMNS
    },
}
_WRITER_OPTIONS = {
    "use_dictionary": _DICTIONARY_COLUMNS,
    "column_encoding": _COLUMN_ENCODING,
    "write_statistics": _STATISTICS_COLUMNS,
}
_CODEC_OPTIONS: dict[str, dict[str, object]] = {
    "lz4": {"compression": "lz4"},
    "zstd": {"compression": "zstd", "compression_level": 1},
}

_FIRST_CAPACITY = DEFAULT_CHUNK_ROWS
_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # some platforms cannot open a directory; the rename still stands
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


class TaskTableWriter:
    """Streams task batches to a Parquet file, one row group every ``chunk_rows`` rows.

    ``append`` validates a batch (every column of :data:`TASK_SCHEMA`, no others, 1-D and
    of equal length, of a dtype that casts to the column's type within its kind) and copies
    it into the column buffers, so the caller may reuse its arrays at once. When the
    buffers hold ``chunk_rows`` rows they are handed to a background thread that converts,
    encodes and writes the row group (pyarrow does this without holding the GIL, so it runs
    beside the simulation); if ``durable``, a third thread flushes the written groups to
    disk meanwhile, so that ``close`` has only the last ones to flush. At most one row
    group is in flight, so memory is bounded by two sets of buffers plus the encoder's
    pages: about 400 bytes per row of ``chunk_rows`` (26 MB for the default 65,536),
    whatever the number of rows. ``compression`` is one of :data:`COMPRESSIONS`.

    ``close`` writes the rest, fsyncs the file, renames ``<path>.partial`` to ``path`` and
    fsyncs the folder; ``durable=False`` skips the fsyncs, for a folder that its owner
    fsyncs as a whole before it counts.

    Used as a context manager, the file is closed on success; if the block raises, the row
    groups written so far are finalised into a readable ``<path>.partial`` and ``path`` is
    not created.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        background: bool = True,
        compression: str = "lz4",
        durable: bool = True,
    ) -> None:
        if int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        if compression not in _CODEC_OPTIONS:
            raise ValueError(
                f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}"
            )
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        self.chunk_rows = int(chunk_rows)
        self.compression = compression
        self.durable = bool(durable)
        self.rows = 0
        self.row_groups = 0
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            str(self.partial_path), TASK_SCHEMA, **_WRITER_OPTIONS, **_CODEC_OPTIONS[compression]
        )
        # a second descriptor of the file, to flush what the writer has written to disk
        self._sync_fd = os.open(self.partial_path, os.O_RDONLY) if self.durable else -1
        self._buffers = self._allocate(min(self.chunk_rows, _FIRST_CAPACITY))
        self._spare: dict[str, np.ndarray] | None = None
        self._fill = 0
        self._pool = ThreadPoolExecutor(1, "task-table") if background else None
        self._pending: Future[None] | None = None
        durable_background = background and self.durable
        self._syncer = ThreadPoolExecutor(1, "task-table-sync") if durable_background else None
        self._synced: Future[None] | None = None
        self._closed = self._aborted = False

    # ------------------------------------------------------------------ input
    def append(self, batch: Mapping[str, np.ndarray]) -> None:
        """Add the rows of ``batch`` (a mapping of column name to 1-D array)."""
        if self._closed:
            raise ValueError(f"the task table {self.path} is closed")
        cols = self._validate(batch)
        n = cols[0].shape[0]
        pos = 0
        while pos < n:
            take = min(n - pos, self.chunk_rows - self._fill)
            start, end = self._fill, self._fill + take
            if end > self._buffers["task_id"].shape[0]:
                self._grow(end)
            if take == n:
                for buf, col in zip(self._buffers.values(), cols, strict=True):
                    buf[start:end] = col
            else:
                for buf, col in zip(self._buffers.values(), cols, strict=True):
                    buf[start:end] = col[pos : pos + take]
            self._fill = end
            pos += take
            self.rows += take
            if end == self.chunk_rows:
                self._flush(sync=True)

    @staticmethod
    def _validate(batch: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The batch's columns in :data:`TASK_COLUMNS` order, as arrays, once checked."""
        if len(batch) != len(TASK_COLUMNS) or any(c not in batch for c in TASK_COLUMNS):
            missing = [c for c in TASK_COLUMNS if c not in batch]
            unknown = [c for c in batch if c not in _NUMPY_DTYPES]
            parts = []
            if missing:
                parts.append(f"missing columns: {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown columns: {', '.join(map(str, unknown))}")
            raise ValueError("batch does not match TASK_SCHEMA; " + "; ".join(parts))
        cols = [batch[c] for c in TASK_COLUMNS]
        cols = [c if type(c) is np.ndarray else np.asarray(c) for c in cols]
        first = cols[0]
        n = first.shape[0] if first.ndim == 1 else -1
        for (name, want), col in zip(_NUMPY_DTYPES.items(), cols, strict=True):
            if col.ndim != 1 or col.shape[0] != n:
                raise ValueError(
                    f"column {name!r} has shape {col.shape}; every column must "
                    f"be 1-D with the length of 'task_id' ({n})"
                )
            if col.dtype != want and not np.can_cast(col.dtype, want, "same_kind"):
                raise TypeError(
                    f"column {name!r} has dtype {col.dtype}, which does not cast to {want}"
                )
        return cols

    # ------------------------------------------------------------------ buffers
    @staticmethod
    def _allocate(rows: int) -> dict[str, np.ndarray]:
        return {name: np.empty(rows, dtype=dt) for name, dt in _NUMPY_DTYPES.items()}

    def _grow(self, need: int) -> None:
        rows = min(self.chunk_rows, max(need, 2 * self._buffers["task_id"].shape[0]))
        bigger = self._allocate(rows)
        for name, buf in self._buffers.items():
            bigger[name][: self._fill] = buf[: self._fill]
        self._buffers = bigger

    def _flush(self, sync: bool = False) -> None:
        """Hand the buffered rows to the writer as one row group; ``sync``: flush it to disk
        once written, if that happens on the background thread and the file is durable."""
        rows, self._fill = self._fill, 0
        if rows == 0:
            return
        if self._pool is None:
            self._write(self._buffers, rows, False)
            return
        self._wait()
        sync = sync and self._sync_fd >= 0
        self._pending = self._pool.submit(self._write, self._buffers, rows, sync)
        # the writer reads the buffers just submitted until it is done: fill the others
        filled, self._buffers = self._buffers, (self._spare or self._allocate(self.chunk_rows))
        self._spare = filled

    def _write(self, buffers: dict[str, np.ndarray], rows: int, sync: bool) -> None:
        assert self._writer is not None
        table = pa.Table.from_arrays(
            [pa.array(buffers[name][:rows]) for name in TASK_COLUMNS], schema=TASK_SCHEMA
        )
        self._writer.write_table(table, row_group_size=rows)
        self.row_groups += 1
        if sync:
            self._sync_soon()

    def _sync_soon(self) -> None:
        """Start flushing the row groups written so far to disk, on a thread of its own so
        that neither the encoder nor ``close`` waits for it (``close`` then has only the
        last groups to flush); skipped while a flush is still running, as the next one,
        or the fsync at close, covers these rows too."""
        assert self._syncer is not None
        if self._synced is not None:
            if not self._synced.done():
                return
            self._synced.result()  # a failed flush fails the table
        self._synced = self._syncer.submit(_datasync, self._sync_fd)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    # ------------------------------------------------------------------ output
    def close(self) -> Path:
        """Write the remaining rows, fsync, and rename the file to ``path``; returns it."""
        if self._closed:
            if self._aborted:
                raise ValueError(f"writing {self.path} was aborted; see {self.partial_path}")
            return self.path
        try:
            self._flush()
            self._wait()
            self._finish_partial()
            if self._synced is not None:
                self._synced.result()
            if self._sync_fd >= 0:
                # the file's bytes reach the disk before its name does: a crash after the
                # rename cannot leave a tasks.parquet that is empty or cut short
                os.fsync(self._sync_fd)
        except BaseException:
            self._abort()
            raise
        finally:
            self._close_sync_fd()
        self._closed = True
        os.replace(self.partial_path, self.path)
        if self.durable:
            # the rename itself survives a crash once the folder is flushed
            _fsync_path(self.path.parent, directory=True)
        return self.path

    def _finish_partial(self) -> None:
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.close()
        finally:
            for pool in (self._pool, self._syncer):
                if pool is not None:
                    pool.shutdown(wait=True)
            self._buffers = self._spare = {}

    def _close_sync_fd(self) -> None:
        fd, self._sync_fd = self._sync_fd, -1
        if fd >= 0:
            os.close(fd)

    def _abort(self) -> None:
        """Stop writing; leave the row groups written so far in a readable ``.partial``."""
        self._closed = self._aborted = True
        self._fill = 0
        for step in (self._wait, self._finish_partial, self._close_sync_fd):
            try:
                step()
            except Exception:  # the error that caused the abort is the one to report
                pass

    def __enter__(self) -> TaskTableWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()


def read_task_table(
    path: str | os.PathLike[str], columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Load a task table (all columns, or ``columns``) into a pandas DataFrame."""
    table = pq.read_table(path, columns=list(columns) if columns is not None else None)
    return table.to_pandas()


def iter_task_batches(
    path: str | os.PathLike[str], columns: Sequence[str] | None = None, batch_rows: int = 1 << 20
) -> Iterator[dict[str, np.ndarray]]:
    """Stream a task table as ``dict`` batches of NumPy columns, ``batch_rows`` at a time.

    Memory stays bounded whatever the size of the table; the batches have the layout that
    :meth:`TaskTableWriter.append` and :meth:`sim.summary.SummaryAccumulator.add` take.
    """
    names = list(columns) if columns is not None else list(TASK_COLUMNS)
    with pq.ParquetFile(path) as pf:
        for record_batch in pf.iter_batches(batch_size=batch_rows, columns=names):
            yield {
                name: record_batch.column(i).to_numpy(zero_copy_only=False)
                for i, name in enumerate(names)
            }

"""The per-task table: one row per task, streamed to Parquet in bounded memory.

The engine hands over finished tasks in batches of any size (one row to millions); the
writer copies them into fixed column buffers and writes a Parquet row group of exactly
``chunk_rows`` rows whenever the buffers fill, so memory is bounded by ``chunk_rows`` and
the file does not depend on how the rows were split into batches. Encoding and
compression of a full row group run on a background thread while the caller goes on
simulating. The file is written as ``<path>.partial`` and renamed once complete, so a
``tasks.parquet`` that exists is always whole. Identical rows give byte-identical files
(for a given pyarrow version): no timestamps or random ids go into the metadata.
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

# Parquet layout, chosen for write speed at a good compression ratio: zstd level 1;
# dictionary encoding only where few distinct values are expected (status, and typically
# vehicle, server, share, power); delta encoding for the task ids, which lie close
# together; byte-stream split for floating-point columns, which lets zstd find the
# structure of the exponents.
_DICTIONARY_COLUMNS = ["vehicle", "server", "share", "power", "status"]
_COLUMN_ENCODING = {
    "task_id": "DELTA_BINARY_PACKED",
    **{
        f.name: "BYTE_STREAM_SPLIT"
        for f in TASK_SCHEMA
        if f.type == pa.float64() and f.name not in _DICTIONARY_COLUMNS
    },
}
_WRITER_OPTIONS = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": _DICTIONARY_COLUMNS,
    "column_encoding": _COLUMN_ENCODING,
    "write_statistics": True,
}

_FIRST_CAPACITY = 1 << 16


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
    buffers hold ``chunk_rows`` rows they are handed to a background thread that encodes
    and writes the row group; at most one row group is in flight, so memory is bounded by
    two sets of buffers plus the encoder's pages: about 350 bytes per row of
    ``chunk_rows`` (350 MB for the default million), whatever the number of rows.
    ``close`` writes the rest, fsyncs the file and renames ``<path>.partial`` to ``path``.

    Used as a context manager, the file is closed on success; if the block raises, the row
    groups written so far are finalised into a readable ``<path>.partial`` and ``path`` is
    not created.
    """

    def __init__(
        self, path: str | os.PathLike[str], chunk_rows: int = 1_000_000, background: bool = True
    ) -> None:
        if int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        self.chunk_rows = int(chunk_rows)
        self.rows = 0
        self.row_groups = 0
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            str(self.partial_path), TASK_SCHEMA, **_WRITER_OPTIONS
        )
        self._buffers = self._allocate(min(self.chunk_rows, _FIRST_CAPACITY))
        self._spare: dict[str, np.ndarray] | None = None
        self._fill = 0
        self._pool = ThreadPoolExecutor(1, "task-table") if background else None
        self._pending: Future[None] | None = None
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
            end = self._fill + take
            if end > self._capacity:
                self._grow(end)
            whole = take == n
            buffers = self._buffers
            for name, col in zip(TASK_COLUMNS, cols, strict=True):
                buffers[name][self._fill : end] = col if whole else col[pos : pos + take]
            self._fill = end
            pos += take
            self.rows += take
            if self._fill == self.chunk_rows:
                self._flush()

    @staticmethod
    def _validate(batch: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        missing = [c for c in TASK_COLUMNS if c not in batch]
        unknown = [c for c in batch if c not in _NUMPY_DTYPES]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing columns: {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown columns: {', '.join(map(str, unknown))}")
            raise ValueError("batch does not match TASK_SCHEMA; " + "; ".join(parts))
        cols = [np.asarray(batch[c]) for c in TASK_COLUMNS]
        n = cols[0].shape[0] if cols[0].ndim == 1 else -1
        for name, col in zip(TASK_COLUMNS, cols, strict=True):
            if col.ndim != 1 or col.shape[0] != n:
                raise ValueError(
                    f"column {name!r} has shape {col.shape}; every column must "
                    f"be 1-D with the length of 'task_id' ({n})"
                )
            want = _NUMPY_DTYPES[name]
            if col.dtype != want and not np.can_cast(col.dtype, want, "same_kind"):
                raise TypeError(
                    f"column {name!r} has dtype {col.dtype}, which does not cast to {want}"
                )
        return cols

    # ------------------------------------------------------------------ buffers
    @property
    def _capacity(self) -> int:
        return self._buffers["task_id"].shape[0]

    @staticmethod
    def _allocate(rows: int) -> dict[str, np.ndarray]:
        return {name: np.empty(rows, dtype=dt) for name, dt in _NUMPY_DTYPES.items()}

    def _grow(self, need: int) -> None:
        rows = min(self.chunk_rows, max(need, 2 * self._capacity))
        bigger = self._allocate(rows)
        for name, buf in self._buffers.items():
            bigger[name][: self._fill] = buf[: self._fill]
        self._buffers = bigger

    def _flush(self) -> None:
        """Hand the buffered rows to the writer as one row group."""
        if self._fill == 0:
            return
        table = pa.Table.from_arrays(
            [pa.array(self._buffers[name][: self._fill]) for name in TASK_COLUMNS],
            schema=TASK_SCHEMA,
        )
        self._fill = 0
        if self._pool is None:
            self._write(table)
            return
        self._wait()
        self._pending = self._pool.submit(self._write, table)
        # the table may share memory with the buffers just submitted: fill the others
        filled, self._buffers = self._buffers, (self._spare or self._allocate(self._capacity))
        self._spare = filled

    def _write(self, table: pa.Table) -> None:
        assert self._writer is not None
        self._writer.write_table(table, row_group_size=table.num_rows)
        self.row_groups += 1

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
        except BaseException:
            self._abort()
            raise
        self._closed = True
        _fsync_path(self.partial_path)
        os.replace(self.partial_path, self.path)
        _fsync_path(self.path.parent, directory=True)
        return self.path

    def _finish_partial(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._buffers = self._spare = {}

    def _abort(self) -> None:
        """Stop writing; leave the row groups written so far in a readable ``.partial``."""
        self._closed = self._aborted = True
        self._fill = 0
        for step in (self._wait, self._finish_partial):
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

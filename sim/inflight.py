"""The rows of the tasks in flight, kept from epoch to epoch in preallocated columns.

Each epoch appends its new tasks after the rows carried over from earlier epochs, and once
the finished rows have gone to the sink, moves the others to the front in their order. The
columns of one dtype are the rows of one 2-D block (column, capacity), so every column is a
contiguous array and dropping finished rows is one compiled pass per block
(:func:`sim.kernels.keep_rows`), whatever the number of columns.

When nothing is carried over, the new rows need not be copied at all: :meth:`append` can
adopt the caller's arrays as the columns (``adopt``), and the rows still in flight after the
epoch are then copied into the blocks by :meth:`keep`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.kernels import keep_rows


class InFlight:
    """Columns ``(name, dtype)`` of ``n`` rows in flight, growing as needed."""

    def __init__(self, columns: Sequence[tuple[str, type]], capacity: int = 1024) -> None:
        dtypes: list[np.dtype] = []
        sizes: list[int] = []
        self._slot: dict[str, tuple[int, int]] = {}
        self._dtype: dict[str, np.dtype] = {}
        for name, dtype in columns:
            dt = np.dtype(dtype)
            self._dtype[name] = dt
            if dt not in dtypes:
                dtypes.append(dt)
                sizes.append(0)
            b = dtypes.index(dt)
            self._slot[name] = (b, sizes[b])
            sizes[b] += 1
        self.names = tuple(self._slot)
        self.capacity = max(int(capacity), 1)
        self.blocks = [
            np.empty((m, self.capacity), dtype=dt) for dt, m in zip(dtypes, sizes, strict=True)
        ]
        self.n = 0
        self._views: dict[str, np.ndarray] | None = None
        self._loose: dict[str, np.ndarray] | None = None  # the rows, outside the blocks
        self._columns()

    def __len__(self) -> int:
        return self.n

    def _columns(self) -> None:
        """Each column as a whole row of its block (slicing those is the cheapest view)."""
        self._full = [(name, self.blocks[b][r]) for name, (b, r) in self._slot.items()]

    def _span(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        return {name: col[lo:hi] for name, col in self._full}

    def rows(self) -> dict[str, np.ndarray]:
        """Every column's first ``n`` rows (valid until the next append or keep)."""
        if self._loose is not None:
            return self._loose
        if self._views is None:
            self._views = self._span(0, self.n)
        return self._views

    def append(self, k: int, adopt: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Add ``k`` rows at the end; returns their columns, which the caller fills (their
        contents are undefined until then). With no rows in flight, the arrays of ``adopt``
        (of the columns' dtypes and length ``k``) become those columns as they are, and the
        other columns are new arrays."""
        k = int(k)
        if self.n == 0 and adopt is not None:
            self._loose = {
                name: adopt[name]
                if name in adopt and adopt[name].dtype == dt and adopt[name].shape == (k,)
                else np.empty(k, dtype=dt)
                for name, dt in self._dtype.items()
            }
            self.n = k
            return self._loose
        self._settle()
        lo = self.n
        hi = lo + k
        self._reserve(hi)
        self.n = hi
        self._views = None
        return self._span(lo, hi)

    def _reserve(self, hi: int) -> None:
        """Room for ``hi`` rows, keeping the first ``n``."""
        lo = self.n
        if hi > self.capacity:
            capacity = max(hi, 2 * self.capacity)
            grown = []
            for block in self.blocks:
                new = np.empty((block.shape[0], capacity), dtype=block.dtype)
                new[:, :lo] = block[:, :lo]
                grown.append(new)
            self.blocks = grown
            self.capacity = capacity
            self._columns()

    def _settle(self, idx: np.ndarray | None = None) -> None:
        """Copy adopted rows (those ``idx``, all when None) into the blocks."""
        loose = self._loose
        if loose is None:
            return
        self._loose = None
        m = self.n if idx is None else idx.shape[0]
        self.n = 0
        self._reserve(m)
        for name, col in self._full:
            col[:m] = loose[name] if idx is None else loose[name][idx]
        self.n = m
        self._views = None

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` rows (e.g. to take back an append)."""
        self._settle()
        self.n = min(self.n, int(n))
        self._views = None

    def keep(self, idx: np.ndarray) -> None:
        """Keep only rows ``idx`` (ascending), moved to the front in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        if self._loose is not None:
            self._settle(idx)
            return
        if 0 < idx.shape[0] < self.n:
            for block in self.blocks:
                keep_rows(block, idx)
        self.n = idx.shape[0]
        self._views = None

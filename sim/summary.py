"""Streaming run summary: counts, exact means, latency quantiles, in bounded memory.

A run can finish tens of millions of tasks; the summary sees them batch by batch and keeps
only fixed-size state. Two choices make the result independent of how the rows were cut
into batches (epoch length, chunking, the order in which the engine finishes tasks):

- sums are exact (:class:`ExactSum`), so a mean is the correctly rounded mean of the data
  however it was split, and 60 million tasks lose no accuracy;
- latency quantiles come from a fixed histogram (:class:`LogHistogram`) whose bins do not
  depend on the data, with relative error at most 1/2048 (< 0.05 %).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np

# Columns the summary reads from a batch (a subset of sim.records.TASK_SCHEMA).
SUMMARY_COLUMNS = (
    "arrival", "offload", "status", "in_flight", "deadline_met", "latency", "wait_uplink",
    "tx_time", "wait_compute", "compute_time", "energy", "edge_energy", "cost",
)
_STATUS_COMPLETED = 0
_STATUS_DROPPED = 1

# Rows are processed in blocks of this size: small enough that the temporaries stay in
# cache, large enough that the per-block Python work is negligible.
_BLOCK_ROWS = 1 << 16

_TWO26 = float(2**26)
_TWO53 = float(2**53)
_EXP_OFFSET = 1100  # frexp exponents of finite doubles lie in [-1073, 1024]
_EXP_BUCKETS = 2200
_LEVEL_BITS = 37  # 2**37 * _SUM_BLOCK <= 2**53: a level's float64 sum is exact
_MAX_LEVELS = 8
_SUM_BLOCK = 1 << 16


class ExactSum:
    """The exact sum of float64 values, in memory independent of how many were added.

    The running total is kept as Python integers ``acc[w]`` meaning ``sum(acc[w] * 2**w)``,
    so it is exact whatever the order of the values and however they are split between
    calls. Values are taken in blocks of at most 2**16; within a block, with ``|x| < 2**E``
    for all values, ``x * 2**(37 - E)`` is cut into integer digits of 37 bits each
    (``floor`` and subtract, which are exact), and each level of digits is summed in
    float64, which is exact because the sum stays below 2**53. Most blocks need two or
    three levels. Blocks with very large values or a very wide dynamic range fall back to
    summing the 53-bit integer mantissas per binary exponent with ``np.bincount``.
    """

    __slots__ = ("_acc",)

    def __init__(self) -> None:
        self._acc: dict[int, int] = {}

    def add(self, values: np.ndarray) -> None:
        """Add finite float64 ``values`` (zeros may stand for rows that are left out)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        for start in range(0, x.shape[0], _SUM_BLOCK):
            block = x[start:start + _SUM_BLOCK]
            if not self._add_levels(block):
                self._add_buckets(block)

    def _add_levels(self, x: np.ndarray) -> bool:
        if x.shape[0] == 0:
            return True
        top = max(float(x.max()), -float(x.min()))
        if not math.isfinite(top):
            raise ValueError("ExactSum.add needs finite values")
        if top == 0.0:
            return True
        exponent = math.frexp(top)[1]  # every |x| < 2**exponent
        if not -900 < exponent <= _LEVEL_BITS:  # scaling down could round tiny values;
            return False  # blocks of only subnormal-sized values need a huge factor
        digits = x * (2.0 ** (_LEVEL_BITS - exponent))
        level = np.empty_like(digits)
        weight = exponent - _LEVEL_BITS
        found: list[tuple[int, int]] = []
        for _ in range(_MAX_LEVELS):
            np.floor(digits, out=level)
            found.append((weight, int(np.sum(level))))
            digits -= level  # the fractional parts, in [0, 1), exact
            if not digits.any():
                acc = self._acc
                for w, v in found:
                    if v:
                        acc[w] = acc.get(w, 0) + v
                return True
            digits *= 2.0 ** _LEVEL_BITS
            weight -= _LEVEL_BITS
        return False

    def _add_buckets(self, x: np.ndarray) -> None:
        mant, exp = np.frexp(x)
        mant *= _TWO53  # integer valued, |mant| < 2**53
        high = np.floor(mant * (1.0 / _TWO26))  # |high| <= 2**27
        mant -= high * _TWO26  # low half, in [0, 2**26)
        index = exp.astype(np.intp)
        index += _EXP_OFFSET
        high_sum = np.bincount(index, high, _EXP_BUCKETS)
        low_sum = np.bincount(index, mant, _EXP_BUCKETS)
        acc = self._acc
        for i in np.flatnonzero((high_sum != 0) | (low_sum != 0)).tolist():
            w = i - _EXP_OFFSET - 53
            acc[w] = acc.get(w, 0) + (int(high_sum[i]) << 26) + int(low_sum[i])

    def merge(self, other: ExactSum) -> None:
        """Add the values summed by ``other``."""
        for w, v in other._acc.items():
            self._acc[w] = self._acc.get(w, 0) + v

    def fraction(self) -> Fraction:
        """The exact sum as a rational number."""
        acc = {w: v for w, v in self._acc.items() if v != 0}
        if not acc:
            return Fraction(0)
        low = min(acc)
        total = sum(v << (w - low) for w, v in acc.items())
        if low >= 0:
            return Fraction(total << low)
        return Fraction(total, 1 << -low)

    def __float__(self) -> float:
        return _to_float(self.fraction())


def _to_float(value: Fraction) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


class Moments:
    """Count, exact sum and exact sum of squares of a quantity, for its mean and std."""

    __slots__ = ("count", "sum", "sum_sq")

    def __init__(self, squares: bool = True) -> None:
        self.count = 0
        self.sum = ExactSum()
        self.sum_sq: ExactSum | None = ExactSum() if squares else None

    def add(self, values: np.ndarray, mask: np.ndarray) -> None:
        """Add ``values[mask]``; non-finite values must already be out of ``mask``."""
        kept = np.where(mask, values, 0.0)
        self.count += int(np.count_nonzero(mask))
        self.sum.add(kept)
        if self.sum_sq is not None:
            kept *= kept
            self.sum_sq.add(kept)

    def merge(self, other: Moments) -> None:
        self.count += other.count
        self.sum.merge(other.sum)
        if self.sum_sq is not None and other.sum_sq is not None:
            self.sum_sq.merge(other.sum_sq)

    def total(self) -> float:
        return float(self.sum)

    def mean(self) -> float | None:
        """Correctly rounded mean of the exact sum; None when nothing was added."""
        if self.count == 0:
            return None
        return _to_float(self.sum.fraction() / self.count)

    def std(self) -> float | None:
        """Sample standard deviation (ddof = 1); None for fewer than two values."""
        if self.sum_sq is None or self.count < 2:
            return None
        s1 = self.sum.fraction()
        var = (self.sum_sq.fraction() - s1 * s1 / self.count) / (self.count - 1)
        return math.sqrt(max(_to_float(var), 0.0))


class LogHistogram:
    """Counts of positive values in fixed, data-independent bins spaced by octaves.

    Each octave [2**o, 2**(o+1)) for ``min_exponent <= o < max_exponent`` is cut into
    ``sub_bins`` equal bins (the HDR-histogram layout), so a bin is at most
    1/``sub_bins`` of its lower edge wide: with the default 1024 sub-bins a value is known
    to within 1/1024 and a bin's midpoint is within 1/2048 (< 0.05 %) of any value in it.
    Bin indices come from ``np.frexp`` and are exact, so the same values always land in
    the same bins on every platform. Values below ``2**min_exponent`` (zero included) and
    at or above ``2**max_exponent`` go to an underflow and an overflow bin; the exact
    minimum and maximum are kept as well. The defaults span 0.93 ns to 1.05e6 s.
    """

    def __init__(self, min_exponent: int = -30, max_exponent: int = 20,
                 sub_bins: int = 1024) -> None:
        if max_exponent <= min_exponent:
            raise ValueError("max_exponent must exceed min_exponent")
        if sub_bins < 1 or sub_bins & (sub_bins - 1):
            raise ValueError("sub_bins must be a power of two")
        self.min_exponent = int(min_exponent)
        self.max_exponent = int(max_exponent)
        self.sub_bins = int(sub_bins)
        self.n_regular = (self.max_exponent - self.min_exponent) * self.sub_bins
        # index 0: underflow, 1..n_regular: regular bins, n_regular + 1: overflow
        self.counts = np.zeros(self.n_regular + 2, dtype=np.int64)
        self.min = math.inf
        self.max = -math.inf

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def add(self, values: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Count ``values`` (those where ``mask`` is True, if given); NaN is never counted."""
        x = np.asarray(values, dtype=np.float64).ravel()
        valid = ~np.isnan(x) if mask is None else (np.asarray(mask, bool) & ~np.isnan(x))
        if not valid.any():
            return
        mant, exp = np.frexp(x)
        index = exp.astype(np.int64)
        index -= self.min_exponent + 2
        index *= self.sub_bins
        with np.errstate(invalid="ignore"):  # NaN and inf rows are overwritten below
            index += np.floor(mant * (2 * self.sub_bins)).astype(np.int64)
        index += 1
        index[x < 2.0 ** self.min_exponent] = 0
        index[x >= 2.0 ** self.max_exponent] = self.n_regular + 1
        discard = self.n_regular + 2
        index[~valid] = discard
        self.counts += np.bincount(index, minlength=discard + 1)[:discard]
        self.min = min(self.min, float(np.min(x, where=valid, initial=math.inf)))
        self.max = max(self.max, float(np.max(x, where=valid, initial=-math.inf)))

    def merge(self, other: LogHistogram) -> None:
        """Add the counts of a histogram with the same layout."""
        if (other.min_exponent, other.max_exponent, other.sub_bins) != (
                self.min_exponent, self.max_exponent, self.sub_bins):
            raise ValueError("histograms with different bins cannot be merged")
        self.counts += other.counts
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def edges(self) -> np.ndarray:
        """Edges of all bins (length ``len(counts) + 1``); the outer bins end at min/max."""
        octaves = 2.0 ** np.arange(self.min_exponent, self.max_exponent, dtype=np.float64)
        steps = 1.0 + np.arange(self.sub_bins, dtype=np.float64) / self.sub_bins
        regular = (octaves[:, None] * steps[None, :]).ravel()
        low = min(self.min, 2.0 ** self.min_exponent) if math.isfinite(self.min) else 0.0
        top = 2.0 ** self.max_exponent
        high = max(self.max, top) if math.isfinite(self.max) else top
        return np.concatenate(([low], regular, [top, high]))

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """``(edges, counts)`` over the non-empty range: from the first to the last bin
        that holds a value (empty arrays when nothing was counted)."""
        nonzero = np.flatnonzero(self.counts)
        if nonzero.size == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        first, last = int(nonzero[0]), int(nonzero[-1])
        return self.edges()[first:last + 2], self.counts[first:last + 1].copy()

    def _representative(self, bins: np.ndarray) -> np.ndarray:
        edges = self.edges()
        mid = 0.5 * (edges[bins] + edges[bins + 1])
        return np.clip(mid, self.min, self.max)

    def quantile(self, q: float | np.ndarray) -> float | np.ndarray | None:
        """Estimate of ``np.quantile(values, q)`` (linear interpolation between order
        statistics), each order statistic taken as the midpoint of its bin clamped to the
        exact min and max (the first and last order statistics are exact); None when the
        histogram is empty."""
        n = self.n
        if n == 0:
            return None
        qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
        if np.any((qs < 0) | (qs > 1)):
            raise ValueError("quantiles must lie in [0, 1]")
        pos = qs * (n - 1)
        lower = np.floor(pos).astype(np.int64)
        frac = pos - lower
        upper = np.minimum(lower + 1, n - 1)
        cum = np.cumsum(self.counts)
        lo_val = self._representative(np.searchsorted(cum, lower, side="right"))
        hi_val = self._representative(np.searchsorted(cum, upper, side="right"))
        # the smallest and largest order statistics are known exactly
        lo_val = np.where(lower == 0, self.min, np.where(lower == n - 1, self.max, lo_val))
        hi_val = np.where(upper == n - 1, self.max, hi_val)
        out = np.where(frac > 0, lo_val + frac * (hi_val - lo_val), lo_val)
        return float(out[0]) if np.ndim(q) == 0 else out


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
        return
    out[prefix] = _jsonable(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class SummaryAccumulator:
    """Streams task batches into the statistics of a run's ``summary.json``.

    ``add`` takes a batch of task rows (``dict`` of equal-length columns, see
    :data:`sim.records.TASK_SCHEMA`; only :data:`SUMMARY_COLUMNS` are read). Rows that
    arrived before ``warmup`` are counted in ``n_warmup_excluded`` and otherwise ignored.
    Small batches are copied into a block buffer and processed together, so the cost of a
    one-row batch is a few microseconds; memory stays bounded by that buffer and the
    latency histogram (about 0.5 MB) however many tasks are added.

    Definitions (all over tasks that arrived at or after ``warmup``):

    - completed: ``status == 0``; dropped: ``status == 1``; in flight: ``in_flight``.
      Drained tasks that finished after the horizon count as completed and in flight.
    - latency statistics: completed tasks with a finite latency;
    - ``wait_uplink_mean``, ``tx_time_mean``: offloaded tasks where the value is finite;
    - ``wait_compute_mean``, ``compute_time_mean``: tasks not dropped, where finite;
    - ``energy_*``, ``edge_energy_*``, ``cost_*``: all tasks (dropped ones included) where
      the value is finite;
    - ``deadline_miss_rate``: 1 - (tasks with ``deadline_met``) / ``n_tasks``;
    - ``throughput``: ``n_completed / (horizon - warmup)`` [tasks/s].

    Undefined statistics (e.g. a mean over no tasks) are ``None`` so that the result is
    valid JSON.
    """

    def __init__(self, horizon: float, warmup: float, latency_weight: float) -> None:
        if not horizon > warmup >= 0:
            raise ValueError(f"need horizon > warmup >= 0, got horizon={horizon}, "
                             f"warmup={warmup}")
        self.horizon = float(horizon)
        self.warmup = float(warmup)
        self.latency_weight = float(latency_weight)
        self.n_tasks = 0
        self.n_warmup_excluded = 0
        self.n_completed = 0
        self.n_dropped = 0
        self.n_in_flight = 0
        self.n_offloaded = 0
        self.n_deadline_met = 0
        self.latency = Moments()
        self.latency_local = Moments(squares=False)
        self.wait_uplink = Moments(squares=False)
        self.tx_time = Moments(squares=False)
        self.wait_compute = Moments(squares=False)
        self.compute_time = Moments(squares=False)
        self.energy = Moments()
        self.energy_local = Moments(squares=False)
        self.edge_energy = Moments(squares=False)
        self.cost = Moments()
        self.histogram = LogHistogram()
        self._buffer: dict[str, np.ndarray] | None = None
        self._fill = 0

    # ------------------------------------------------------------------ input
    def add(self, batch: Mapping[str, np.ndarray]) -> None:
        """Add one batch of task rows (any number of rows, any order)."""
        try:
            cols = [np.asarray(batch[name]) for name in SUMMARY_COLUMNS]
        except KeyError as err:
            missing = [c for c in SUMMARY_COLUMNS if c not in batch]
            raise KeyError(f"batch lacks summary columns: {', '.join(missing)}") from err
        n = cols[0].shape[0] if cols[0].ndim == 1 else -1
        for name, col in zip(SUMMARY_COLUMNS, cols, strict=True):
            if col.ndim != 1 or col.shape[0] != n:
                raise ValueError(f"column {name!r} has shape {col.shape}; every column "
                                 f"must be 1-D with the length of 'arrival' ({n})")
        if n == 0:
            return
        if n >= _BLOCK_ROWS:
            self._flush()
            for start in range(0, n, _BLOCK_ROWS):
                self._process([c[start:start + _BLOCK_ROWS] for c in cols])
            return
        if self._fill + n > _BLOCK_ROWS:
            self._flush()
        buf = self._buffer
        if buf is None:
            buf = self._buffer = {name: np.empty(_BLOCK_ROWS, dtype=_BUFFER_DTYPES[name])
                                  for name in SUMMARY_COLUMNS}
        end = self._fill + n
        for name, col in zip(SUMMARY_COLUMNS, cols, strict=True):
            buf[name][self._fill:end] = col
        self._fill = end

    def merge(self, other: SummaryAccumulator) -> None:
        """Add everything ``other`` has seen (e.g. to pool shards of one run)."""
        if (other.horizon, other.warmup) != (self.horizon, self.warmup):
            raise ValueError("summaries with a different horizon or warmup cannot be merged")
        self._flush()
        other._flush()
        for key in ("n_tasks", "n_warmup_excluded", "n_completed", "n_dropped",
                    "n_in_flight", "n_offloaded", "n_deadline_met"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        for key in ("latency", "latency_local", "wait_uplink", "tx_time", "wait_compute",
                    "compute_time", "energy", "energy_local", "edge_energy", "cost"):
            getattr(self, key).merge(getattr(other, key))
        self.histogram.merge(other.histogram)

    def _flush(self) -> None:
        if self._fill and self._buffer is not None:
            fill, self._fill = self._fill, 0
            self._process([self._buffer[name][:fill] for name in SUMMARY_COLUMNS])

    def _process(self, cols: list[np.ndarray]) -> None:
        (arrival, offload, status, in_flight, deadline_met, latency, wait_uplink, tx_time,
         wait_compute, compute_time, energy, edge_energy, cost) = cols
        n = arrival.shape[0]
        keep = arrival >= self.warmup
        n_keep = int(np.count_nonzero(keep))
        self.n_warmup_excluded += n - n_keep
        if n_keep == 0:
            return
        offload = offload.astype(bool, copy=False)
        if n_keep < n:
            offload = offload & keep
        completed = (status == _STATUS_COMPLETED) & keep
        not_dropped = (status != _STATUS_DROPPED) & keep
        self.n_tasks += n_keep
        self.n_completed += int(np.count_nonzero(completed))
        self.n_dropped += n_keep - int(np.count_nonzero(not_dropped))
        self.n_in_flight += int(np.count_nonzero(in_flight.astype(bool, copy=False) & keep))
        self.n_offloaded += int(np.count_nonzero(offload))
        self.n_deadline_met += int(np.count_nonzero(deadline_met.astype(bool, copy=False)
                                                    & keep))

        lat_ok = completed & np.isfinite(latency)
        self.latency.add(latency, lat_ok)
        self.latency_local.add(latency, lat_ok & ~offload)
        self.histogram.add(latency, lat_ok)
        self.wait_uplink.add(wait_uplink, offload & np.isfinite(wait_uplink))
        self.tx_time.add(tx_time, offload & np.isfinite(tx_time))
        self.wait_compute.add(wait_compute, not_dropped & np.isfinite(wait_compute))
        self.compute_time.add(compute_time, not_dropped & np.isfinite(compute_time))
        energy_ok = keep & np.isfinite(energy)
        self.energy.add(energy, energy_ok)
        self.energy_local.add(energy, energy_ok & ~offload)
        self.edge_energy.add(edge_energy, keep & np.isfinite(edge_energy))
        self.cost.add(cost, keep & np.isfinite(cost))

    # ------------------------------------------------------------------ output
    def latency_quantile(self, q: float) -> float | None:
        """Latency quantile of completed tasks (relative error < 0.05 %), None if none."""
        self._flush()
        value = self.histogram.quantile(q)
        return None if value is None else float(value)

    def latency_histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """``(edges [s], counts)`` of completed-task latency over the non-empty range.

        ``edges`` has one more entry than ``counts``; the first and last edges are clamped
        to the exact minimum and maximum latency. Both are empty with no completed task.
        """
        self._flush()
        return self.histogram.histogram()

    def result(self, extra: Mapping[str, Any] | None = None,
               include_histogram: bool = False) -> dict[str, Any]:
        """The summary as a flat, JSON-ready dict.

        ``extra`` (e.g. utilisations and constraint violation counts from the engine) is
        merged in; nested mappings are flattened with dotted keys, NumPy values converted
        and non-finite floats written as None. A key of ``extra`` that collides with a
        summary key raises ``ValueError``. ``include_histogram`` adds
        ``latency_hist_edges`` and ``latency_hist_counts`` (see :meth:`latency_histogram`).
        """
        self._flush()
        n = self.n_tasks
        span = self.horizon - self.warmup
        quantiles = self.histogram.quantile([0.5, 0.9, 0.95, 0.99])
        p50, p90, p95, p99 = (None,) * 4 if quantiles is None else (
            float(v) for v in quantiles)

        def ratio(a: int, b: int) -> float | None:
            return a / b if b else None

        def diff_mean(whole: Moments, part: Moments) -> float | None:
            count = whole.count - part.count
            if count == 0:
                return None
            return _to_float((whole.sum.fraction() - part.sum.fraction()) / count)

        latency_mean = self.latency.mean()
        energy_mean = self.energy.mean()
        w1 = self.latency_weight
        out: dict[str, Any] = {
            "horizon": self.horizon,
            "warmup": self.warmup,
            "latency_weight": w1,
            "n_tasks": n,
            "n_warmup_excluded": self.n_warmup_excluded,
            "n_completed": self.n_completed,
            "n_dropped": self.n_dropped,
            "n_in_flight": self.n_in_flight,
            "n_offloaded": self.n_offloaded,
            "n_local": n - self.n_offloaded,
            "n_deadline_met": self.n_deadline_met,
            "offload_fraction": ratio(self.n_offloaded, n),
            "completion_rate": ratio(self.n_completed, n),
            "drop_rate": ratio(self.n_dropped, n),
            "deadline_miss_rate": None if n == 0 else 1.0 - self.n_deadline_met / n,
            "throughput": self.n_completed / span,
            "latency_mean": latency_mean,
            "latency_std": self.latency.std(),
            "latency_min": self.histogram.min if self.latency.count else None,
            "latency_p50": p50,
            "latency_p90": p90,
            "latency_p95": p95,
            "latency_p99": p99,
            "latency_max": self.histogram.max if self.latency.count else None,
            "latency_mean_local": self.latency_local.mean(),
            "latency_mean_offloaded": diff_mean(self.latency, self.latency_local),
            "wait_uplink_mean": self.wait_uplink.mean(),
            "tx_time_mean": self.tx_time.mean(),
            "wait_compute_mean": self.wait_compute.mean(),
            "compute_time_mean": self.compute_time.mean(),
            "energy_mean": energy_mean,
            "energy_std": self.energy.std(),
            "energy_total": self.energy.total(),
            "energy_mean_local": self.energy_local.mean(),
            "energy_mean_offloaded": diff_mean(self.energy, self.energy_local),
            "edge_energy_mean": self.edge_energy.mean(),
            "edge_energy_total": self.edge_energy.total(),
            "cost_mean": self.cost.mean(),
            "cost_std": self.cost.std(),
            "cost_total": self.cost.total(),
            "cost_of_means": (None if latency_mean is None or energy_mean is None
                              else w1 * latency_mean + (1.0 - w1) * energy_mean),
        }
        out = {k: _jsonable(v) for k, v in out.items()}
        if include_histogram:
            edges, counts = self.latency_histogram()
            out["latency_hist_edges"] = edges.tolist()
            out["latency_hist_counts"] = counts.tolist()
        if extra:
            flat: dict[str, Any] = {}
            _flatten("", extra, flat)
            clash = sorted(set(flat) & set(out))
            if clash:
                raise ValueError(f"extra keys collide with summary keys: {', '.join(clash)}")
            out.update(flat)
        return out


_BUFFER_DTYPES = {
    "arrival": np.float64, "offload": np.bool_, "status": np.int8, "in_flight": np.bool_,
    "deadline_met": np.bool_, "latency": np.float64, "wait_uplink": np.float64,
    "tx_time": np.float64, "wait_compute": np.float64, "compute_time": np.float64,
    "energy": np.float64, "edge_energy": np.float64, "cost": np.float64,
}

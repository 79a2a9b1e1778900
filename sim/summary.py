"""Streaming run summary: counts, exact means, latency quantiles, in bounded memory.

A run can finish tens of millions of tasks; the summary sees them batch by batch and keeps
only fixed-size state. Two choices make the result independent of how the rows were cut
into batches (epoch length, chunking, the order in which the engine finishes tasks):

- sums are exact (:class:`ExactSum`), so a mean is the correctly rounded mean of the data
  however it was split, and 60 million tasks lose no accuracy;
- latency quantiles come from a fixed histogram (:class:`LogHistogram`) whose bins do not
  depend on the data, with relative error at most 1/2048 (< 0.05 %).

The summary sits on the engine's hot path (one batch per decision epoch), so the per-row
work is compiled with Numba: :class:`SummaryAccumulator` reads each batch in one compiled
call that updates every count, exact sum and histogram bin, block by block of 1024 rows,
in branch-free passes that run as vector code.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
from numba import njit

from sim.kernels import finish_summary

# Columns the summary reads from a batch (a subset of sim.records.TASK_SCHEMA).
SUMMARY_COLUMNS = (
    "arrival",
    "offload",
    "status",
    "in_flight",
    "deadline_met",
    "latency",
    "wait_uplink",
    "tx_time",
    "wait_compute",
    "compute_time",
    "energy",
    "edge_energy",
    "cost",
)
_STATUS_COMPLETED = 0
_STATUS_DROPPED = 1

# Exact sums are fixed-point integers in units of 2**-1074 (the smallest subnormal double),
# held as _LIMBS little-endian limbs of 32 bits in int64 cells; the top limb is signed and
# takes whatever lies above, so the range (|total| < 2**1133) covers any realistic count
# of doubles.
_LIMBS = 68
_LIMB_MASK = (1 << 32) - 1
_UNIT_EXPONENT = -1074
# Values are summed in blocks of _BLOCK: with |x| < 2**E over a block, x * 2**(52 - E) is
# cut into two integer digits of at most 52 bits, and _BLOCK of them sum to less than
# 2**62 in int64.
_BLOCK = 1024
_DIGIT_BITS = 52
_TWO_DIGIT = float(2**_DIGIT_BITS)
_ABS_MASK = (1 << 63) - 1
_INT64_MAX = (1 << 63) - 1
# Blocks the digits cannot take go through partial sums per binary exponent: a double's
# 53-bit integer mantissa is cut into a high part of 27 bits and a low part of 26 bits,
# each shifted by the low _GROUP_BITS bits of its exponent and added to an int64 cell of
# its exponent group; a part is below 2**42, so a block cannot overflow a cell.
_GROUP_BITS = 4
_GROUPS = 2048 >> _GROUP_BITS  # biased exponents 0..2047
_CELLS = 2 * _GROUPS  # (high, low) per group
_LOW_BITS = 26


@njit(cache=True, inline="always")
def _add_at(limbs: np.ndarray, bit: int, value: int) -> None:
    """Add ``value * 2**bit`` to unnormalised ``limbs``; needs ``|value| < 2**62``."""
    k = bit >> 5
    s = bit & 31
    low = (value & _LIMB_MASK) << s  # < 2**63
    high = (value >> 32) << s  # |.| < 2**61
    limbs[k] += low & _LIMB_MASK
    limbs[k + 1] += (low >> 32) + (high & _LIMB_MASK)
    limbs[k + 2] += high >> 32


@njit(cache=True)
def _normalize(limbs: np.ndarray) -> None:
    """Carry ``limbs`` so that all but the top one lie in [0, 2**32)."""
    carry = np.int64(0)
    for k in range(limbs.shape[0] - 1):
        t = limbs[k] + carry
        limbs[k] = t & _LIMB_MASK
        carry = t >> 32
    limbs[limbs.shape[0] - 1] += carry


@njit(cache=True)
def _add_by_exponent(values: np.ndarray, n: int, limbs: np.ndarray) -> None:
    """Add finite ``values[:n]`` (n <= _BLOCK) to ``limbs`` through per-exponent partial
    sums of their integer mantissas; exact for any finite doubles."""
    cells = np.zeros(_CELLS, dtype=np.int64)
    for i in range(n):
        bits = np.float64(values[i]).view(np.int64)
        biased = (bits >> 52) & 0x7FF
        normal = np.int64(biased != 0)
        mantissa = (bits & 0xFFFFFFFFFFFFF) | (normal << 52)
        position = biased - normal  # x = mantissa * 2**(position - 1074)
        shift = position & ((1 << _GROUP_BITS) - 1)
        cell = 2 * (position >> _GROUP_BITS)
        sign = bits >> 63  # 0 or -1
        high = (mantissa >> _LOW_BITS) << shift
        low = (mantissa & ((1 << _LOW_BITS) - 1)) << shift
        cells[cell] += (high ^ sign) - sign
        cells[cell + 1] += (low ^ sign) - sign
    for g in range(_GROUPS):
        if cells[2 * g]:
            _add_at(limbs, (g << _GROUP_BITS) + _LOW_BITS, cells[2 * g])
        if cells[2 * g + 1]:
            _add_at(limbs, g << _GROUP_BITS, cells[2 * g + 1])


@njit(cache=True, inline="always")
def _magnitude(x: float) -> int:
    """The bits of ``|x|`` as an integer, which orders magnitudes like the floats."""
    return np.float64(x).view(np.int64) & _ABS_MASK


@njit(cache=True, inline="always")
def _add_row(buf: np.ndarray, q: int, m: int, top: int, sums: np.ndarray) -> bool:
    """Add ``buf[q, :m]`` (m <= _BLOCK) exactly to the unnormalised limbs ``sums[q]``;
    ``top`` is their largest :func:`_magnitude`. Returns False, adding nothing, if that
    is not finite.

    With ``|x| < 2**E`` over the block, ``y = x * 2**(52 - E)`` is exact and
    ``y = d0 + d1 * 2**-52`` with integer digits ``d0 = trunc(y)`` and
    ``d1 = trunc((y - d0) * 2**52)`` whenever the remainder after ``d1`` is zero, i.e. for
    every value within 2**51 of the block's largest. The loop has no branches, so it
    compiles to vector code. Blocks with a remainder, a value of 2**52 or more, or only
    values below 2**-971 go through :func:`_add_by_exponent` instead.
    """
    if top == 0:
        return True
    biased = top >> 52
    if biased == 0x7FF:
        return False
    exponent = biased - 1022  # every |x| < 2**exponent
    if biased != 0 and 2 * _DIGIT_BITS - 1074 <= exponent <= _DIGIT_BITS:
        scale = np.int64((_DIGIT_BITS - exponent + 1023) << 52).view(np.float64)
        high = low = np.int64(0)
        rest = False
        for i in range(m):
            y = buf[q, i] * scale
            d0 = np.int64(y)
            r = (y - np.float64(d0)) * _TWO_DIGIT
            d1 = np.int64(r)
            rest |= r != np.float64(d1)
            high += d0
            low += d1
        if not rest:
            _add_at(sums[q], exponent - _DIGIT_BITS - _UNIT_EXPONENT, high)
            _add_at(sums[q], exponent - 2 * _DIGIT_BITS - _UNIT_EXPONENT, low)
            return True
    _add_by_exponent(buf[q], m, sums[q])
    return True


@njit(cache=True)
def _sum_kernel(
    values: np.ndarray, mask: np.ndarray, masked: bool, squares: bool
) -> tuple[np.ndarray, bool]:
    """Exact sums of ``values`` (where ``mask``, if ``masked``) and, if ``squares``, of
    their float64 squares, as normalised limbs ``(2, _LIMBS)``; False if a summed value
    (or square) is not finite."""
    sums = np.zeros((2, _LIMBS), dtype=np.int64)
    buf = np.empty((2, _BLOCK))
    n = values.shape[0]
    for start in range(0, n, _BLOCK):
        m = min(n, start + _BLOCK) - start
        top = top_sq = np.int64(0)
        for i in range(m):
            x = values[start + i]
            if masked and not mask[start + i]:
                x = 0.0
            buf[0, i] = x
            buf[1, i] = x * x
            top = max(top, _magnitude(x))
            top_sq = max(top_sq, _magnitude(x * x))
        if not _add_row(buf, 0, m, top, sums):
            return sums, False
        if squares and not _add_row(buf, 1, m, top_sq, sums):
            return sums, False
        if (start // _BLOCK) & 0xFFFF == 0xFFFF:
            _normalize(sums[0])
            _normalize(sums[1])
    _normalize(sums[0])
    _normalize(sums[1])
    return sums, True


def _limbs_to_fraction(limbs: np.ndarray) -> Fraction:
    nonzero = np.flatnonzero(limbs)
    if nonzero.size == 0:
        return Fraction(0)
    first = int(nonzero[0])
    body = limbs[first:-1].astype("<u4").tobytes()
    total = int.from_bytes(body, "little") + (int(limbs[-1]) << (32 * (_LIMBS - 1 - first)))
    weight = _UNIT_EXPONENT + 32 * first
    if weight >= 0:
        return Fraction(total << weight)
    return Fraction(total, 1 << -weight)


class ExactSum:
    """The exact sum of float64 values, in memory independent of how many were added.

    Every finite double is an integer multiple of 2**-1074, so the running total is kept
    as one fixed-point integer in those units: 68 limbs of 32 bits (the top one signed),
    which hold any sum of fewer than 2**100 doubles exactly, whatever the order of the
    values and however they are split between calls. Values are added by compiled code, a
    block of 1024 at a time: scaled by a power of two to the block's largest magnitude,
    each is cut exactly into two 52-bit integer digits, whose int64 sums over the block
    cannot overflow and are added to the limbs at their binary weights (see
    :func:`_add_row`). Nothing is ever rounded, so the total is exact.
    """

    __slots__ = ("_limbs",)

    def __init__(self) -> None:
        self._limbs = np.zeros(_LIMBS, dtype=np.int64)

    def add(self, values: np.ndarray) -> None:
        """Add finite float64 ``values`` (zeros may stand for rows that are left out)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        limbs, ok = _sum_kernel(x, np.zeros(0, dtype=np.bool_), False, False)
        if not ok:
            raise ValueError("ExactSum.add needs finite values")
        self._add_limbs(limbs[0])

    def _add_limbs(self, limbs: np.ndarray) -> None:
        """Add a total given as limbs (normalised or not, each below 2**62 in size)."""
        self._limbs += limbs
        _normalize(self._limbs)

    def merge(self, other: ExactSum) -> None:
        """Add the values summed by ``other``."""
        self._add_limbs(other._limbs)

    def fraction(self) -> Fraction:
        """The exact sum as a rational number."""
        return _limbs_to_fraction(self._limbs)

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
        x, keep = np.broadcast_arrays(
            np.asarray(values, dtype=np.float64), np.asarray(mask, dtype=np.bool_)
        )
        limbs, ok = _sum_kernel(x.ravel(), keep.ravel(), True, self.sum_sq is not None)
        if not ok:
            raise ValueError("ExactSum.add needs finite values")
        self.count += int(np.count_nonzero(mask))
        self.sum._add_limbs(limbs[0])
        if self.sum_sq is not None:
            self.sum_sq._add_limbs(limbs[1])

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


@njit(cache=True, inline="always")
def _bin_index(
    x: float, low: float, high: float, min_exponent: int, sub_log2: int, n_regular: int
) -> int:
    """The :class:`LogHistogram` bin of ``x`` (not NaN): 0 below ``low``, ``n_regular + 1``
    at or above ``high``, else ``(octave - min_exponent) * sub_bins + sub_bin + 1``."""
    if x < low:
        return 0
    if x >= high:
        return n_regular + 1
    bits = np.float64(x).view(np.int64)
    biased = (bits >> 52) & 0x7FF
    if biased == 0:  # subnormal, only reached when min_exponent < -1022
        mant, exp = math.frexp(x)
        return ((exp - min_exponent - 2) << sub_log2) + math.floor(mant * (2 << sub_log2)) + 1
    return (
        ((biased - 1023 - min_exponent) << sub_log2)
        + ((bits & 0xFFFFFFFFFFFFF) >> (52 - sub_log2))
        + 1
    )


@njit(cache=True)
def _histogram_kernel(
    values: np.ndarray,
    mask: np.ndarray,
    masked: bool,
    counts: np.ndarray,
    low: float,
    high: float,
    min_exponent: int,
    sub_log2: int,
    n_regular: int,
) -> tuple[float, float]:
    """Count the non-NaN ``values`` (where ``mask``, if ``masked``) into ``counts``;
    returns their minimum and maximum (inf and -inf when none)."""
    smallest = np.inf
    largest = -np.inf
    for i in range(values.shape[0]):
        x = values[i]
        if np.isnan(x) or (masked and not mask[i]):
            continue
        counts[_bin_index(x, low, high, min_exponent, sub_log2, n_regular)] += 1
        if x < smallest:
            smallest = x
        if x > largest:
            largest = x
    return smallest, largest


class LogHistogram:
    """Counts of positive values in fixed, data-independent bins spaced by octaves.

    Each octave [2**o, 2**(o+1)) for ``min_exponent <= o < max_exponent`` is cut into
    ``sub_bins`` equal bins (the HDR-histogram layout), so a bin is at most
    1/``sub_bins`` of its lower edge wide: with the default 1024 sub-bins a value is known
    to within 1/1024 and a bin's midpoint is within 1/2048 (< 0.05 %) of any value in it.
    Bin indices are read off the binary exponent and the leading mantissa bits of each
    value, exactly, so the same values always land in the same bins on every platform.
    Values below ``2**min_exponent`` (zero included) and at or above ``2**max_exponent``
    go to an underflow and an overflow bin; the exact minimum and maximum are kept as
    well. The defaults span 0.93 ns to 1.05e6 s.
    """

    def __init__(
        self, min_exponent: int = -30, max_exponent: int = 20, sub_bins: int = 1024
    ) -> None:
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
        if mask is None:
            keep, masked = np.zeros(0, dtype=np.bool_), False
        else:
            keep, masked = np.broadcast_to(np.asarray(mask, dtype=np.bool_), x.shape), True
        low, high = _histogram_kernel(x, keep, masked, self.counts, *self._layout())
        self.min = min(self.min, low)
        self.max = max(self.max, high)

    def _layout(self) -> tuple[float, float, int, int, int]:
        """What the compiled passes need to find a bin: the lower and upper bounds of the
        regular bins, ``min_exponent``, log2 of ``sub_bins`` and ``n_regular``."""
        return (
            2.0**self.min_exponent,
            2.0**self.max_exponent,
            self.min_exponent,
            self.sub_bins.bit_length() - 1,
            self.n_regular,
        )

    def merge(self, other: LogHistogram) -> None:
        """Add the counts of a histogram with the same layout."""
        if (other.min_exponent, other.max_exponent, other.sub_bins) != (
            self.min_exponent,
            self.max_exponent,
            self.sub_bins,
        ):
            raise ValueError("histograms with different bins cannot be merged")
        self.counts += other.counts
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def edges(self) -> np.ndarray:
        """Edges of all bins (length ``len(counts) + 1``); the outer bins end at min/max."""
        octaves = 2.0 ** np.arange(self.min_exponent, self.max_exponent, dtype=np.float64)
        steps = 1.0 + np.arange(self.sub_bins, dtype=np.float64) / self.sub_bins
        regular = (octaves[:, None] * steps[None, :]).ravel()
        low = min(self.min, 2.0**self.min_exponent) if math.isfinite(self.min) else 0.0
        top = 2.0**self.max_exponent
        high = max(self.max, top) if math.isfinite(self.max) else top
        return np.concatenate(([low], regular, [top, high]))

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """``(edges, counts)`` over the non-empty range: from the first to the last bin
        that holds a value (empty arrays when nothing was counted)."""
        nonzero = np.flatnonzero(self.counts)
        if nonzero.size == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        first, last = int(nonzero[0]), int(nonzero[-1])
        return self.edges()[first : last + 2], self.counts[first : last + 1].copy()

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


# Column types the summary kernel is compiled for: the task table's, and for batches of
# other types these conversions (a float64 status compares with 0 and 1 exactly like the
# status it came from).
_COLUMN_DTYPES = [
    np.dtype(np.bool_)
    if name in ("offload", "in_flight", "deadline_met")
    else np.dtype(np.int8)
    if name == "status"
    else np.dtype(np.float64)
    for name in SUMMARY_COLUMNS
]
_CAST_DTYPES = [
    np.dtype(np.float64) if name == "status" else dtype
    for name, dtype in zip(SUMMARY_COLUMNS, _COLUMN_DTYPES, strict=True)
]
_NDARRAYS = [np.ndarray] * len(SUMMARY_COLUMNS)
_ONES = [1] * len(SUMMARY_COLUMNS)
_get_columns = operator.itemgetter(*SUMMARY_COLUMNS)
_dtype_of = operator.attrgetter("dtype")
_ndim_of = operator.attrgetter("ndim")
# The pending limbs take the digit sums of 2**20 blocks before they must be carried.
_CARRY_BLOCKS = 1 << 20
# Quantities whose exact sums the summary kernel accumulates, in its rows of limbs.
(
    _Q_LATENCY,
    _Q_LATENCY_LOCAL,
    _Q_LATENCY_SQ,
    _Q_WAIT_UPLINK,
    _Q_TX_TIME,
    _Q_WAIT_COMPUTE,
    _Q_COMPUTE_TIME,
    _Q_ENERGY,
    _Q_ENERGY_LOCAL,
    _Q_ENERGY_SQ,
    _Q_EDGE_ENERGY,
    _Q_COST,
    _Q_COST_SQ,
) = range(13)
_N_QUANTITIES = 13
# Counters of the summary kernel, in its output order: the accumulator's attributes, then
# the counts of its Moments attributes.
_COUNTERS = (
    "n_tasks",
    "n_warmup_excluded",
    "n_completed",
    "n_dropped",
    "n_in_flight",
    "n_offloaded",
    "n_deadline_met",
)
_MOMENTS = (
    "latency",
    "latency_local",
    "wait_uplink",
    "tx_time",
    "wait_compute",
    "compute_time",
    "energy",
    "energy_local",
    "edge_energy",
    "cost",
)


# Row flags of the summary kernel: the row arrived at or after the warm-up (KEEP), and
# with KEEP: completed (DONE), not dropped (ALIVE), offloaded (OFF) or local (LOCAL).
_KEEP, _DONE, _ALIVE, _OFF, _LOCAL = 1, 2, 4, 8, 16


@njit(cache=True, inline="always")
def _row_flags(arrival, offload, status, in_flight, deadline_met, warmup, flags, found):
    """Flags of the rows into ``flags``; adds the _COUNTERS to ``found``."""
    n_keep = n_completed = n_dropped = n_in_flight = n_offloaded = n_met = np.int64(0)
    for i in range(arrival.shape[0]):
        keep = np.uint8(arrival[i] >= warmup)
        st = status[i]
        done = keep & np.uint8(st == _STATUS_COMPLETED)
        dropped = keep & np.uint8(st == _STATUS_DROPPED)
        off = keep & np.uint8(offload[i])
        flags[i] = (
            keep * _KEEP
            + done * _DONE
            + (keep ^ dropped) * _ALIVE
            + off * _OFF
            + (keep ^ off) * _LOCAL
        )
        n_keep += keep
        n_completed += done
        n_dropped += dropped
        n_in_flight += keep & np.uint8(in_flight[i])
        n_offloaded += off
        n_met += keep & np.uint8(deadline_met[i])
    found[0] += n_keep
    found[1] += arrival.shape[0] - n_keep
    found[2] += n_completed
    found[3] += n_dropped
    found[4] += n_in_flight
    found[5] += n_offloaded
    found[6] += n_met


@njit(cache=True, inline="always")
def _fill(values, flags, need, split, square, buf, q, tops, found, c):
    """Write one column's rows to ``buf[q]``: the value where the row's flags hold every
    bit of ``need`` and the value is finite, else 0; with ``split`` the local ones among
    them to the next row, with ``square`` their squares to the row after. Sets ``tops``
    to the largest :func:`_magnitude` of each buffer row and adds the counts of kept
    (and local) values to ``found[c]`` (and ``found[c + 1]``)."""
    count = local = top = top_local = top_sq = np.int64(0)
    for i in range(values.shape[0]):
        x = values[i]
        ok = ((flags[i] & need) == need) & np.isfinite(x)
        x = x if ok else 0.0
        buf[q, i] = x
        count += ok
        top = max(top, _magnitude(x))
        if split:
            inside = (flags[i] & _LOCAL) != 0
            y = x if inside else 0.0
            buf[q + 1, i] = y
            local += ok & inside
            top_local = max(top_local, _magnitude(y))
        if square:
            y = x * x
            buf[q + 1 + split, i] = y
            top_sq = max(top_sq, _magnitude(y))
    tops[q] = top
    found[c] += count
    if split:
        tops[q + 1] = top_local
        found[c + 1] += local
    if square:
        tops[q + 1 + split] = top_sq


@njit(cache=True, inline="always")
def _order_key(x: float) -> int:
    """An integer that orders like ``x`` (not NaN) among the floats."""
    bits = np.float64(x).view(np.int64)
    return bits ^ ((bits >> 63) & _ABS_MASK)


@njit(cache=True, inline="always")
def _from_key(key: int) -> float:
    """The float whose :func:`_order_key` is ``key``."""
    return np.int64(key ^ ((key >> 63) & _ABS_MASK)).view(np.float64)


@njit(cache=True, inline="always")
def _latency_bins(latency, flags, bins, low, high, min_exponent, sub_log2, n_regular):
    """``bins[i]``: the :class:`LogHistogram` bin of the row's latency if the row is
    completed and the latency finite, else -1. Returns the :func:`_order_key` of the
    smallest and the largest of those latencies (the int64 extremes when there are none).
    Unless the regular bins reach below the normal doubles, the bins come from a
    branch-free pass."""
    lowest = np.int64(_INT64_MAX)
    highest = np.int64(-_INT64_MAX - 1)
    if min_exponent >= -1022:
        for i in range(latency.shape[0]):
            x = latency[i]
            ok = ((flags[i] & _DONE) != 0) & np.isfinite(x)
            bits = np.float64(x).view(np.int64)
            index = (
                ((((bits >> 52) & 0x7FF) - 1023 - min_exponent) << sub_log2)
                + ((bits & 0xFFFFFFFFFFFFF) >> (52 - sub_log2))
                + 1
            )
            index = n_regular + 1 if x >= high else index
            index = 0 if x < low else index
            bins[i] = index if ok else -1
            key = bits ^ ((bits >> 63) & _ABS_MASK)
            lowest = min(lowest, key if ok else _INT64_MAX)
            highest = max(highest, key if ok else -_INT64_MAX - 1)
    else:
        for i in range(latency.shape[0]):
            x = latency[i]
            bins[i] = -1
            if flags[i] & _DONE and np.isfinite(x):
                bins[i] = _bin_index(x, low, high, min_exponent, sub_log2, n_regular)
                lowest = min(lowest, _order_key(x))
                highest = max(highest, _order_key(x))
    return lowest, highest


@njit(cache=True, inline="always")
def _count_bins(bins, m, hist, step):
    """Add ``step`` to ``hist`` at the ``bins[:m]`` that are not -1."""
    for i in range(m):
        b = bins[i]
        if b >= 0:
            hist[b] += step


@njit(cache=True)
def _summary_kernel(
    arrival,
    offload,
    status,
    in_flight,
    deadline_met,
    latency,
    wait_uplink,
    tx_time,
    wait_compute,
    compute_time,
    energy,
    edge_energy,
    cost,
    warmup,
    limbs,
    carry,
    counts,
    extremes,
    hist,
    low,
    high,
    min_exponent,
    sub_log2,
    n_regular,
):
    """Add one batch to the summary's pending state.

    Adds to ``limbs`` (the exact sums of the _N_QUANTITIES quantities, normalised only
    with ``carry``), ``counts`` (the _COUNTERS then the _MOMENTS counts) and ``hist``
    (latency bin counts), and lowers or raises ``extremes`` (latency min and max). Per
    block of _BLOCK rows, one pass sets each row's flags, one pass per column writes its
    quantities to a buffer (zero where a row is left out), :func:`_add_row` sums each
    buffer row exactly, one pass finds the latency bins and a last one counts them. All
    passes but the last are branch-free with a handful of accumulators, so they compile
    to vector code. Returns False, changing nothing, when a square overflows to infinity.
    The helpers are inlined: calls would take and release a reference to every array
    they are passed, which costs more than a small block's work.
    """
    n = arrival.shape[0]
    size = min(n, _BLOCK)
    work = np.zeros((_N_QUANTITIES, _LIMBS), dtype=np.int64)
    found = np.zeros(len(_COUNTERS) + len(_MOMENTS), dtype=np.int64)
    tops = np.zeros(_N_QUANTITIES, dtype=np.int64)
    flags = np.empty(size, dtype=np.uint8)
    buf = np.empty((_N_QUANTITIES, size))
    bins = np.empty(size, dtype=np.int64)
    lowest = np.int64(_INT64_MAX)
    highest = np.int64(-_INT64_MAX - 1)
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        m = stop - start
        _row_flags(
            arrival[start:stop],
            offload[start:stop],
            status[start:stop],
            in_flight[start:stop],
            deadline_met[start:stop],
            warmup,
            flags,
            found,
        )
        _fill(latency[start:stop], flags, _DONE, True, True, buf, _Q_LATENCY, tops, found, 7)
        _fill(
            wait_uplink[start:stop], flags, _OFF, False, False, buf, _Q_WAIT_UPLINK, tops, found, 9
        )
        _fill(tx_time[start:stop], flags, _OFF, False, False, buf, _Q_TX_TIME, tops, found, 10)
        _fill(
            wait_compute[start:stop],
            flags,
            _ALIVE,
            False,
            False,
            buf,
            _Q_WAIT_COMPUTE,
            tops,
            found,
            11,
        )
        _fill(
            compute_time[start:stop],
            flags,
            _ALIVE,
            False,
            False,
            buf,
            _Q_COMPUTE_TIME,
            tops,
            found,
            12,
        )
        _fill(energy[start:stop], flags, _KEEP, True, True, buf, _Q_ENERGY, tops, found, 13)
        _fill(
            edge_energy[start:stop],
            flags,
            _KEEP,
            False,
            False,
            buf,
            _Q_EDGE_ENERGY,
            tops,
            found,
            15,
        )
        _fill(cost[start:stop], flags, _KEEP, False, True, buf, _Q_COST, tops, found, 16)
        ok = True
        for q in range(_N_QUANTITIES):
            ok &= _add_row(buf, q, m, tops[q], work)
        if not ok:  # only a square can overflow: undo the histogram of earlier blocks
            for undo in range(0, start, _BLOCK):
                end = undo + _BLOCK
                _row_flags(
                    arrival[undo:end],
                    offload[undo:end],
                    status[undo:end],
                    in_flight[undo:end],
                    deadline_met[undo:end],
                    warmup,
                    flags,
                    found,
                )
                _latency_bins(
                    latency[undo:end], flags, bins, low, high, min_exponent, sub_log2, n_regular
                )
                _count_bins(bins, _BLOCK, hist, -1)
            return False
        lo, hi = _latency_bins(
            latency[start:stop], flags, bins, low, high, min_exponent, sub_log2, n_regular
        )
        _count_bins(bins, m, hist, 1)
        lowest = min(lowest, lo)
        highest = max(highest, hi)
        if (start // _BLOCK) & 0xFFFF == 0xFFFF:
            for q in range(_N_QUANTITIES):
                _normalize(work[q])

    for q in range(_N_QUANTITIES):
        for k in range(_LIMBS):
            limbs[q, k] += work[q, k]
        if carry:
            _normalize(limbs[q])
    for k in range(found.shape[0]):
        counts[k] += found[k]
    if lowest <= highest:  # some latency was counted
        extremes[0] = min(extremes[0], _from_key(lowest))
        extremes[1] = max(extremes[1], _from_key(highest))
    return True


@njit(cache=True)
def _finish_summary_kernel(
    finish_args,
    warmup,
    limbs,
    carry,
    counts,
    extremes,
    hist,
    low,
    high,
    min_exponent,
    sub_log2,
    n_regular,
):
    """:func:`sim.kernels.finish_summary` of ``finish_args`` (its arguments, as a tuple),
    then :func:`_summary_kernel` of its columns with the rest: the finished rows go into
    the summary without being handed back to Python (each array handed back costs about as
    much as a small batch's work)."""
    c = finish_summary(*finish_args)
    # finish_summary's order: arrival, offload, tx_time, wait_uplink, wait_compute,
    # compute_time, latency, energy, edge_energy, cost, status, deadline_met, in_flight
    return _summary_kernel(
        c[0],
        c[1],
        c[10],
        c[12],
        c[11],
        c[6],
        c[3],
        c[2],
        c[4],
        c[5],
        c[7],
        c[8],
        c[9],
        warmup,
        limbs,
        carry,
        counts,
        extremes,
        hist,
        low,
        high,
        min_exponent,
        sub_log2,
        n_regular,
    )


class SummaryAccumulator:
    """Streams task batches into the statistics of a run's ``summary.json``.

    ``add`` takes a batch of task rows (``dict`` of equal-length columns, see
    :data:`sim.records.TASK_SCHEMA`; only :data:`SUMMARY_COLUMNS` are read). Rows that
    arrived before ``warmup`` are counted in ``n_warmup_excluded`` and otherwise ignored.
    Each batch is read by one compiled call (:func:`_summary_kernel`) into fixed-size
    pending state: the exact sums as integer limbs, the counters, the latency extremes,
    and the latency histogram itself. The pending sums and counts are carried into the
    attributes whenever a result is asked for (``result``, ``latency_quantile``,
    ``latency_histogram``, ``merge``). A one-row batch costs a few microseconds, and
    memory stays bounded by the pending state and the latency histogram (about 0.5 MB
    together) however many tasks are added.

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

    #: it reads only SUMMARY_COLUMNS, so an engine may hand it just those
    needs_table = False

    def __init__(self, horizon: float, warmup: float, latency_weight: float) -> None:
        if not horizon > warmup >= 0:
            raise ValueError(f"need horizon > warmup >= 0, got horizon={horizon}, warmup={warmup}")
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
        # pending state of the rows added since the last flush
        self._limbs = np.zeros((_N_QUANTITIES, _LIMBS), dtype=np.int64)
        self._counts = np.zeros(len(_COUNTERS) + len(_MOMENTS), dtype=np.int64)
        self._extremes = np.array([math.inf, -math.inf])
        self._blocks = 0  # blocks added to _limbs since they were last normalised
        self._hist_of = self.histogram  # the histogram that _hist_layout describes
        self._hist_layout = self.histogram._layout()
        self._pending = False

    # ------------------------------------------------------------------ input
    def add(self, batch: Mapping[str, np.ndarray]) -> None:
        """Add one batch of task rows (any number of rows, any order)."""
        try:
            cols = _get_columns(batch)
        except KeyError as err:
            missing = [c for c in SUMMARY_COLUMNS if c not in batch]
            raise KeyError(f"batch lacks summary columns: {', '.join(missing)}") from err
        if list(map(type, cols)) != _NDARRAYS or list(map(_dtype_of, cols)) != _COLUMN_DTYPES:
            cols = tuple(
                np.require(np.asarray(c), dtype, "CW")
                for c, dtype in zip(cols, _CAST_DTYPES, strict=True)
            )
        n = len(cols[0]) if cols[0].ndim == 1 else -1
        if list(map(_ndim_of, cols)) != _ONES or list(map(len, cols)) != [n] * len(cols):
            for name, col in zip(SUMMARY_COLUMNS, cols, strict=True):
                if col.ndim != 1 or col.shape[0] != n:
                    raise ValueError(
                        f"column {name!r} has shape {col.shape}; every column "
                        f"must be 1-D with the length of 'arrival' ({n})"
                    )
        if n == 0:
            return
        self._blocks += -(-n // _BLOCK)
        carry = self._blocks > _CARRY_BLOCKS
        hist = self.histogram
        if hist is not self._hist_of:
            self._hist_layout, self._hist_of = hist._layout(), hist
        if not _summary_kernel(
            *cols,
            self.warmup,
            self._limbs,
            carry,
            self._counts,
            self._extremes,
            hist.counts,
            *self._hist_layout,
        ):
            raise ValueError("ExactSum.add needs finite values")
        if carry:
            self._blocks = 0
        self._pending = True

    def add_finished(self, args: tuple) -> None:
        """Add the rows that :func:`sim.kernels.finish_summary` makes of ``args`` (its
        arguments, the finished rows' indices first), as ``add`` of its columns would, in
        one compiled call."""
        n = args[0].shape[0]
        if n == 0:
            return
        self._blocks += -(-n // _BLOCK)
        carry = self._blocks > _CARRY_BLOCKS
        hist = self.histogram
        if hist is not self._hist_of:
            self._hist_layout, self._hist_of = hist._layout(), hist
        if not _finish_summary_kernel(
            args,
            self.warmup,
            self._limbs,
            carry,
            self._counts,
            self._extremes,
            hist.counts,
            *self._hist_layout,
        ):
            raise ValueError("ExactSum.add needs finite values")
        if carry:
            self._blocks = 0
        self._pending = True

    def merge(self, other: SummaryAccumulator) -> None:
        """Add everything ``other`` has seen (e.g. to pool shards of one run)."""
        if (other.horizon, other.warmup) != (self.horizon, self.warmup):
            raise ValueError("summaries with a different horizon or warmup cannot be merged")
        self._flush()
        other._flush()
        for key in _COUNTERS:
            setattr(self, key, getattr(self, key) + getattr(other, key))
        for key in _MOMENTS:
            getattr(self, key).merge(getattr(other, key))
        self.histogram.merge(other.histogram)

    def _flush(self) -> None:
        """Carry the pending state into the attributes."""
        if not self._pending:
            return
        self._pending = False
        sums = (
            (_Q_LATENCY, self.latency.sum),
            (_Q_LATENCY_SQ, self.latency.sum_sq),
            (_Q_LATENCY_LOCAL, self.latency_local.sum),
            (_Q_WAIT_UPLINK, self.wait_uplink.sum),
            (_Q_TX_TIME, self.tx_time.sum),
            (_Q_WAIT_COMPUTE, self.wait_compute.sum),
            (_Q_COMPUTE_TIME, self.compute_time.sum),
            (_Q_ENERGY, self.energy.sum),
            (_Q_ENERGY_SQ, self.energy.sum_sq),
            (_Q_ENERGY_LOCAL, self.energy_local.sum),
            (_Q_EDGE_ENERGY, self.edge_energy.sum),
            (_Q_COST, self.cost.sum),
            (_Q_COST_SQ, self.cost.sum_sq),
        )
        for q, total in sums:
            assert total is not None
            total._add_limbs(self._limbs[q])
        self._limbs[:] = 0
        self._blocks = 0
        counts = self._counts.tolist()
        self._counts[:] = 0
        for key, count in zip(_COUNTERS + _MOMENTS, counts, strict=True):
            if key in _COUNTERS:
                setattr(self, key, getattr(self, key) + count)
            else:
                getattr(self, key).count += count
        low, high = self._extremes.tolist()
        self._extremes[:] = (math.inf, -math.inf)
        self.histogram.min = min(self.histogram.min, low)
        self.histogram.max = max(self.histogram.max, high)

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

    def result(
        self, extra: Mapping[str, Any] | None = None, include_histogram: bool = False
    ) -> dict[str, Any]:
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
        p50, p90, p95, p99 = (None,) * 4 if quantiles is None else (float(v) for v in quantiles)

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
            "cost_of_means": (
                None
                if latency_mean is None or energy_mean is None
                else w1 * latency_mean + (1.0 - w1) * energy_mean
            ),
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

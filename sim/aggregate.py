"""Statistics across the replications of a sweep: per-point confidence intervals and
pairwise policy comparisons, as tidy (long) tables.

The input is the sweep's ``runs.parquet`` frame (one row per finished run: ``run_id``,
``point``, ``replication``, ``policy``, one column per swept axis, then the numeric keys of
``summary.json``) and the list of swept axis paths from ``manifest.json``.

:func:`aggregate` gives, for every setting of the swept axes, every policy and every metric,
the number of replications with a value (``n``; NaN values are left out), the mean, the
sample standard deviation (ddof = 1), the standard error and the 95 % confidence interval
of the mean from Student's t distribution with ``n - 1`` degrees of freedom. With ``n = 1``
the spread and the interval are undefined and written as NaN; with zero variance the
interval is the mean itself.

:func:`compare` gives, for every setting, metric and pair of policies (A, B), the difference
of means A - B with its Welch confidence interval (Welch-Satterthwaite degrees of freedom)
and the p-value of Welch's t test (the value of :func:`scipy.stats.ttest_ind` with
``equal_var=False``).
A difference is called significant only where its interval excludes zero; ``better`` then
names the policy that is better, for the metrics whose direction is known
(:func:`direction`).

Both tables are sorted and means and variances are computed in exact rational arithmetic
and rounded once, so the same runs give the same
tables, and :func:`write_table` writes them as Parquet and CSV whose bytes depend on the
values only.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from sim.errors import SimError

CONFIDENCE = 0.95
"""Level of every confidence interval."""

ID_COLUMNS = ("run_id", "point", "replication", "policy")
"""Columns of ``runs.parquet`` that identify a run (not metrics, not axes)."""

AGGREGATE_STATS = ("n", "mean", "std", "sem", "ci_low", "ci_high")
COMPARISON_STATS = (
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "dof",
    "t",
    "p_value",
    "significant",
    "better",
)

_LOWER_IS_BETTER_PREFIXES = (
    "latency",
    "energy",
    "edge_energy",
    "cost",
    "wait_",
    "tx_time",
    "compute_time",
    "qpu_",
    "violations_",
)
_LOWER_IS_BETTER = ("deadline_miss_rate", "drop_rate")
_HIGHER_IS_BETTER = ("completion_rate", "throughput", "n_deadline_met")


def direction(metric: str) -> str | None:
    """``"lower"`` or ``"higher"``: which values of ``metric`` are better; None when the
    metric has no better direction (counts, offload fraction, utilisation, spreads, ...).

    Lower is better for latency and its components (waits, transmission, computation, QPU
    time), energy, cost, deadline-miss and drop rates and constraint violations; higher for
    completion rate, throughput and the number of tasks that met their deadline. Standard
    deviations have no direction.
    """
    if metric.endswith("_std"):
        return None
    if metric in _LOWER_IS_BETTER or metric.startswith(_LOWER_IS_BETTER_PREFIXES):
        return "lower"
    if metric in _HIGHER_IS_BETTER:
        return "higher"
    return None


# ---------------------------------------------------------------------------- statistics
def _values(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[np.isfinite(x)]


def _mean(x: np.ndarray) -> float:
    """The correctly rounded mean (exact rational arithmetic: replications are few)."""
    return float(_exact_mean(x)) if x.size else math.nan


def _exact_mean(x: np.ndarray) -> Fraction:
    return sum(map(Fraction, x.tolist()), Fraction(0)) / x.size


def _var(x: np.ndarray) -> float:
    """Sample variance (ddof = 1), correctly rounded; NaN for fewer than two values.
    Exact arithmetic makes the variance of equal values exactly zero."""
    if x.size < 2:
        return math.nan
    m = _exact_mean(x)
    return float(sum(((Fraction(v) - m) ** 2 for v in x.tolist()), Fraction(0)) / (x.size - 1))


def _t_quantile(dof: float) -> float:
    """Quantile 0.975 of Student's t with ``dof`` degrees of freedom (the function behind
    ``scipy.stats.t.ppf``, without its per-call overhead)."""
    from scipy import special

    return float(special.stdtrit(dof, 0.5 + CONFIDENCE / 2.0))


def describe(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``n, mean, std, sem, ci_low, ci_high`` of the finite ``values`` (NaNs left out).

    The interval is ``mean ± t(0.975, n - 1) · std / sqrt(n)``; it and the spread are NaN
    for ``n < 2``, and the mean is NaN for ``n = 0``.
    """
    x = _values(np.asarray(values))
    n = x.size
    mean = _mean(x)
    var = _var(x)
    std = math.sqrt(var) if n >= 2 else math.nan
    sem = std / math.sqrt(n) if n >= 2 else math.nan
    if n >= 2:
        half = _t_quantile(n - 1) * sem
        lo, hi = mean - half, mean + half
    else:
        lo = hi = math.nan
    return {"n": n, "mean": mean, "std": std, "sem": sem, "ci_low": lo, "ci_high": hi}


def welch(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Welch comparison of the means of the finite values of ``a`` and ``b``.

    Returns ``n_a, n_b, mean_a, mean_b, diff`` (= mean_a - mean_b), the 95 % interval
    ``diff ± t(0.975, dof) · se`` with ``se = sqrt(s_a²/n_a + s_b²/n_b)`` and the
    Welch-Satterthwaite ``dof = se⁴ / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1))``, the t
    statistic ``diff / se`` and its two-sided p-value ``2 · F_t(-|t|; dof)``: the values of
    :func:`scipy.stats.ttest_ind` with ``equal_var=False``, computed with the same special
    functions but without its per-call overhead.

    Either side with fewer than two values: everything but the counts, means and
    difference is NaN. Both sides without variance: the interval is the difference itself
    (``dof`` NaN), and, as from scipy, the p-value is 0 for different means (t infinite)
    and NaN for equal ones.
    """
    from scipy import special

    xa, xb = _values(np.asarray(a)), _values(np.asarray(b))
    na, nb = xa.size, xb.size
    ma, mb = _mean(xa), _mean(xb)
    out = {
        "n_a": na,
        "n_b": nb,
        "mean_a": ma,
        "mean_b": mb,
        "diff": ma - mb,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "dof": math.nan,
        "t": math.nan,
        "p_value": math.nan,
    }
    if na < 2 or nb < 2:
        return out
    qa, qb = _var(xa) / na, _var(xb) / nb
    se = math.sqrt(qa + qb)
    diff = out["diff"]
    if se == 0.0:
        out["ci_low"] = out["ci_high"] = diff
    else:
        dof = (qa + qb) ** 2 / (qa * qa / (na - 1) + qb * qb / (nb - 1))
        half = _t_quantile(dof) * se
        out.update(dof=dof, ci_low=diff - half, ci_high=diff + half)
    # Welch's t and its two-sided p-value, as scipy.stats.ttest_ind(equal_var=False)
    # computes them, without its per-call overhead (a sweep makes thousands of these)
    if se == 0.0:
        out["t"] = math.copysign(math.inf, diff) if diff != 0 else math.nan
        out["p_value"] = 0.0 if diff != 0 else math.nan
    else:
        t = diff / se
        out["t"] = t
        out["p_value"] = float(2.0 * special.stdtr(out["dof"], -abs(t)))
    return out


def significant(ci_low: float, ci_high: float) -> bool:
    """Whether an interval excludes zero (False when it is undefined)."""
    return bool(np.isfinite(ci_low) and np.isfinite(ci_high) and (ci_low > 0 or ci_high < 0))


# ---------------------------------------------------------------------------- tables
def split_columns(runs: pd.DataFrame, axes: Sequence[str]) -> tuple[list[str], list[str]]:
    """The swept axis columns (without ``policy``) and the metric columns of ``runs``.

    Axis columns come in the order of ``axes``; metrics are every other numeric column
    that is not an identifier, in name order.
    """
    missing = [c for c in ("point", "replication", "policy") if c not in runs.columns]
    if missing:
        raise SimError(f"runs table lacks the columns {', '.join(missing)}")
    axis_cols = [a for a in axes if a != "policy"]
    absent = [a for a in axis_cols if a not in runs.columns]
    if absent:
        raise SimError(
            f"runs table lacks the swept axis columns {', '.join(absent)}; "
            f"it has {', '.join(map(str, runs.columns))}"
        )
    skip = set(ID_COLUMNS) | set(axis_cols)
    metrics = sorted(
        c
        for c in runs.columns
        if c not in skip
        and (pd.api.types.is_numeric_dtype(runs[c]) and not pd.api.types.is_bool_dtype(runs[c]))
    )
    return axis_cols, metrics


def _groups(runs: pd.DataFrame, axis_cols: list[str]):
    """``(point, axis values, policy, frame)`` per setting and policy, in a fixed order:
    by the lowest point number, then policy name."""
    if runs.empty:
        return []
    keys = [*axis_cols, "policy"]
    out = []
    for key, frame in runs.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append((int(frame["point"].min()), key[:-1], str(key[-1]), frame))
    out.sort(key=lambda g: (g[0], g[2]))
    return out


def aggregate(runs: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Tidy table of per-setting, per-policy statistics of every metric.

    Columns: ``point, policy``, the axis columns (``axes`` without ``policy``), ``metric``
    and :data:`AGGREGATE_STATS`. One row per (setting, policy, metric), sorted by point,
    policy and metric name. ``point`` is the lowest point number of the setting's runs.
    """
    axis_cols, metrics = split_columns(runs, axes)
    rows: list[dict] = []
    for point, values, policy, frame in _groups(runs, axis_cols):
        for metric in metrics:
            stats_ = describe(frame[metric].to_numpy(dtype=np.float64, na_value=np.nan))
            rows.append(
                {
                    "point": point,
                    "policy": policy,
                    **dict(zip(axis_cols, values, strict=True)),
                    "metric": metric,
                    **stats_,
                }
            )
    columns = ["point", "policy", *axis_cols, "metric", *AGGREGATE_STATS]
    return _typed(pd.DataFrame(rows, columns=columns), runs, axis_cols)


def compare(runs: pd.DataFrame, axes: Sequence[str], policies: Sequence[str] | None = None):
    """Tidy table of Welch comparisons between every pair of policies.

    For every setting of the non-policy axes, every metric and every pair (A, B) of the
    policies run there, A before B in the order of ``policies`` (default: name order):
    :data:`COMPARISON_STATS`. ``significant`` is whether the interval of A - B excludes
    zero; ``better`` is then the better policy for metrics with a :func:`direction`, else
    the empty string. Sorted by point, metric, then pair order.
    """
    axis_cols, metrics = split_columns(runs, axes)
    order = list(policies) if policies is not None else sorted(runs["policy"].unique())
    extra = sorted(set(runs["policy"].astype(str)) - set(order))
    order += extra
    rank = {p: i for i, p in enumerate(order)}
    settings: dict[tuple, list] = {}
    for point, values, policy, frame in _groups(runs, axis_cols):
        settings.setdefault(tuple(values), []).append((point, policy, frame))
    rows: list[dict] = []
    for values, members in settings.items():
        members.sort(key=lambda m: rank[m[1]])
        point = min(m[0] for m in members)
        for metric in metrics:
            better_dir = direction(metric)
            for i, (_, pa, fa) in enumerate(members):
                for _, pb, fb in members[i + 1 :]:
                    w = welch(
                        fa[metric].to_numpy(dtype=np.float64, na_value=np.nan),
                        fb[metric].to_numpy(dtype=np.float64, na_value=np.nan),
                    )
                    sig = significant(w["ci_low"], w["ci_high"])
                    better = ""
                    if sig and better_dir is not None:
                        lower = pa if w["diff"] < 0 else pb
                        better = lower if better_dir == "lower" else (pb if lower == pa else pa)
                    rows.append(
                        {
                            "point": point,
                            **dict(zip(axis_cols, values, strict=True)),
                            "metric": metric,
                            "policy_a": pa,
                            "policy_b": pb,
                            **w,
                            "significant": sig,
                            "better": better,
                        }
                    )
    columns = ["point", *axis_cols, "metric", "policy_a", "policy_b", *COMPARISON_STATS]
    table = pd.DataFrame(rows, columns=columns)
    if not table.empty:
        table["_a"] = table["policy_a"].map(rank)
        table["_b"] = table["policy_b"].map(rank)
        table = table.sort_values(["point", "metric", "_a", "_b"], kind="stable")
        table = table.drop(columns=["_a", "_b"]).reset_index(drop=True)
    return _typed(table, runs, axis_cols)


def _typed(table: pd.DataFrame, runs: pd.DataFrame, axis_cols: list[str]) -> pd.DataFrame:
    """Fixed column types, so that empty and full tables have the same schema."""
    types: dict[str, str] = {
        "point": "int64",
        "n": "int64",
        "n_a": "int64",
        "n_b": "int64",
        "significant": "bool",
    }
    for name in ("policy", "policy_a", "policy_b", "metric", "better"):
        types[name] = "object"
    for col in axis_cols:
        numeric = pd.api.types.is_numeric_dtype(runs[col]) and not runs[col].dtype == bool
        types[col] = "float64" if numeric else "object"
    for col in table.columns:
        dtype = types.get(col, "float64")
        table[col] = table[col].astype(dtype)
    return table.reset_index(drop=True)


# ---------------------------------------------------------------------------- files
def _format_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "" if math.isnan(v) else repr(v)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def csv_bytes(table: pd.DataFrame) -> bytes:
    """``table`` as CSV (comma-separated, ``\\n`` line ends, quoted where needed): floats in
    Python's shortest round-trip form (``repr``), NaN as an empty field, booleans as
    ``true``/``false``, so the text depends on the values only."""
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(table.columns))
    for row in table.itertuples(index=False, name=None):
        writer.writerow([_format_cell(v) for v in row])
    return buf.getvalue().encode("utf-8")


def parquet_bytes(table: pd.DataFrame) -> bytes:
    """``table`` as a Parquet file (zstd, no index), deterministic for equal tables."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsynced
    and renamed over ``path``, so readers see the old file or the new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


def write_table(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Write ``table`` to ``<stem>.parquet`` and ``<stem>.csv`` atomically."""
    stem = Path(stem)
    return [
        write_bytes_atomic(stem.with_suffix(".parquet"), parquet_bytes(table)),
        write_bytes_atomic(stem.with_suffix(".csv"), csv_bytes(table)),
    ]

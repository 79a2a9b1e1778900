"""Sweeps: one scenario file expanded into many runs, and the loop that runs them.

A scenario file becomes a sweep with a top-level ``sweep`` block::

    sweep:
      grid:                                   # cartesian product of these axes
        channel.bandwidth: [3 MHz, 5 MHz, 7 MHz, 9 MHz]
        policy: [local, greedy, {id: random, params: {offload_probability: 0.5}}]
      zip:                                    # each group's axes vary together
        - {vehicles.count: [3, 6, 9], servers.count: [1, 2, 3]}
      replications: 5

An axis is a config path (dotted keys, ``[i]`` for list items: ``servers.sites[0].cpu``)
and the list of values it takes, written as in the rest of the file (units included). Each
grid axis and each zip group is one dimension of the product; points are numbered with the
first dimension varying slowest, in the order the file writes them. ``policy`` takes policy
ids or mappings ``{id, params, label}``; its value in the results is the label (the id, or
``id(param=value, ...)`` when parameters are given and no label is).

Every point is validated as a whole scenario before anything runs; an error names the
axis, the value and the line where that value is written. Replication ``r`` of every point
runs with the seed path ``(r,)`` under the scenario's root ``seed``, so runs that differ
only in policy or in a swept value see the same arrival, size, mobility and channel draws
(common random numbers).

:func:`run_sweep` runs the planned runs through an executor (:mod:`sim.executors`) into a
results folder (:mod:`sim.store`), skipping those already finished there.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sim.errors import NO_VALUE, ScenarioError, SimError
from sim.scenario import SWEEP_KEY, KeyPath, LineMap, key_text, load_yaml, validate_data

MAX_RUNS = 1_000_000
"""Most runs one sweep may plan."""
MAX_REPLICATIONS = 100_000
"""Most replications per point."""

SWEEP_KEYS = ("grid", "zip", "replications")
_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")
_BRACKET_UNIT = re.compile(r"\[([^\[\]]*[A-Za-z][^\[\]]*)\]\s*$")

AxisKind = Literal["grid", "zip"]


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Axis:
    """One swept config path and the values it takes."""

    path: str
    """The config path as written (``channel.bandwidth``)."""
    key: KeyPath
    """The path as keys and list indexes (``("channel", "bandwidth")``)."""
    kind: AxisKind
    group: int
    """Dimension of the product this axis belongs to (zip axes share one)."""
    values: tuple[Any, ...]
    """The values as written in the file."""
    lines: tuple[int | None, ...]
    """The line of each value in the file."""
    source: KeyPath
    """Where the axis is written inside the file (``("sweep", "grid", "policy")``)."""
    unit: str = ""
    si_values: tuple[float | str, ...] = ()
    """Each value as it appears in the results: SI float, or text (see :func:`si_value`)."""

    @property
    def numeric(self) -> bool:
        return all(isinstance(v, float) for v in self.si_values)

    def describe(self, index: int) -> str:
        """``channel.bandwidth = '3 MHz'``: the axis at one of its values, as written."""
        return f"{self.path} = {_written(self.values[index])}"


@dataclass(frozen=True)
class RunSpec:
    """One planned run: a resolved configuration and a seed path, named by their hash."""

    run_id: str
    point: int
    replication: int
    policy: str
    """The policy label (the policy id unless a sweep value gives parameters or a label)."""
    params: dict[str, float | str]
    """Each axis path and its value at this point (SI float or text)."""
    seed_root: int
    seed_path: tuple[int, ...]
    config: dict[str, Any]
    """The resolved scenario (``Scenario.model_dump(mode="json")``, SI units)."""
    scenario: Any = field(default=None, repr=False, compare=False)
    """The validated :class:`~sim.config.Scenario` the run simulates."""

    def describe(self) -> str:
        """``point 3, replication 1 (policy=greedy, channel.bandwidth=5e+06)``."""
        items = ", ".join(f"{k}={_short(v)}" for k, v in self.params.items())
        return f"point {self.point}, replication {self.replication}" + (
            f" ({items})" if items else ""
        )


@dataclass
class Sweep:
    """A fully expanded and validated sweep."""

    name: str
    source: Path | None
    root_seed: int
    replications: int
    axes: list[Axis]
    runs: list[RunSpec]
    """Every run, ordered by (point, replication)."""
    n_points: int
    code_version: str
    sweep_id: str = field(init=False)

    def __post_init__(self) -> None:
        ids = json.dumps([r.run_id for r in self.runs], separators=(",", ":"))
        self.sweep_id = hashlib.sha256(ids.encode()).hexdigest()[:12]

    def axes_record(self) -> list[dict[str, Any]]:
        """The axes as the manifest lists them."""
        return [
            {
                "path": a.path,
                "kind": a.kind,
                "group": a.group,
                "values": [_plain(v) for v in a.values],
                "si_values": list(a.si_values),
                "unit": a.unit,
            }
            for a in self.axes
        ]

    def shape_text(self) -> str:
        """``16 points x 3 replications = 48 runs (axes: channel.bandwidth 4, policy 4)``."""
        axes = ", ".join(f"{a.path} {len(a.values)}" for a in self.axes)
        return (
            f"{self.n_points} points x {self.replications} replications = {len(self.runs)} "
            f"runs (axes: {axes})"
        )


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _written(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, default=str, separators=(", ", ": "))


def _short(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- paths
def parse_path(path: str) -> KeyPath:
    """``"servers.sites[0].cpu"`` -> ``("servers", "sites", 0, "cpu")``; ValueError if the
    text is not a dotted path."""
    if not isinstance(path, str) or not path:
        raise ValueError("a config path is dotted keys, e.g. channel.bandwidth")
    out: list[str | int] = []
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        if match is None:
            raise ValueError(
                f"'{segment}' is not a key; a config path is dotted keys with [i] for list "
                "items, e.g. channel.bandwidth or servers.sites[0].cpu"
            )
        out.append(match.group(1))
        out.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return tuple(out)


def _check_path(key: KeyPath) -> str | None:
    """Why ``key`` is not a path of the scenario schema, or None if it is."""
    from pydantic import BaseModel

    from sim.config import Scenario
    from sim.scenario import _type_at

    for n in range(1, len(key) + 1):
        tp, _ = _type_at(Scenario, key[:n])
        if tp is None:
            parent, _ = _type_at(Scenario, key[: n - 1])
            part = key[n - 1]
            if isinstance(parent, type) and issubclass(parent, BaseModel):
                fields = list(parent.model_fields)
                if isinstance(part, int):
                    return f"'{key_text(key[: n - 1])}' is not a list"
                near = difflib.get_close_matches(str(part), fields, n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                where = f"in '{key_text(key[: n - 1])}'" if n > 1 else "at the top level"
                return f"no key '{part}' {where}{hint}; known: {', '.join(fields)}"
            return f"'{key_text(key[: n - 1])}' has no part '{part}'"
    return None


def _unit_of(key: KeyPath) -> str:
    """The SI unit of the field at ``key`` ('' for counts, ratios and text)."""
    from pydantic import BaseModel

    from sim.config import Scenario
    from sim.scenario import _si_unit, _type_at

    _, meta = _type_at(Scenario, key)
    unit = _si_unit(meta)
    if unit:
        return unit
    parent, _ = _type_at(Scenario, key[:-1])
    if isinstance(parent, type) and issubclass(parent, BaseModel) and isinstance(key[-1], str):
        info = parent.model_fields.get(key[-1])
        match = _BRACKET_UNIT.search((info.description or "") if info else "")
        if match:
            return {"bits": "bit"}.get(match.group(1), match.group(1))
    return ""


def _get(data: Any, key: KeyPath) -> Any:
    for part in key:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return NO_VALUE
    return data


def _set(data: dict[str, Any], key: KeyPath, value: Any) -> None:
    """Put ``value`` at ``key`` inside ``data``, creating the mappings on the way."""
    node: Any = data
    for n, part in enumerate(key[:-1]):
        nxt = key[n + 1]
        if isinstance(node, dict):
            child = node.get(part, NO_VALUE)
            if child is NO_VALUE or child is None:
                if isinstance(nxt, int):
                    raise ValueError(f"'{key_text(key[: n + 1])}' has no list to index")
                child = node[part] = {}
            elif part == "policy" and n == 0 and isinstance(child, str):
                child = node[part] = {"id": child}
        elif isinstance(node, list) and isinstance(part, int):
            if part >= len(node):
                raise ValueError(
                    f"'{key_text(key[:n])}' has {len(node)} items; there is no item {part}"
                )
            child = node[part]
        else:
            raise ValueError(f"'{key_text(key[:n])}' is not a mapping")
        if not isinstance(child, (dict, list)):
            raise ValueError(
                f"'{key_text(key[: n + 1])}' is written as a single value in the file; write "
                "it as a mapping to sweep one of its parts"
            )
        node = child
    last = key[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    else:
        raise ValueError(f"cannot set '{key_text(key)}' here")


# --------------------------------------------------------------------------- reading
def _located(
    message: str,
    file: str | None,
    lines: Mapping[KeyPath, int],
    where: KeyPath,
    value: Any = NO_VALUE,
    allowed: str = "",
) -> ScenarioError:
    line = None
    for n in range(len(where), 0, -1):
        if where[:n] in lines:
            line = lines[where[:n]]
            break
    return ScenarioError(
        message, key=key_text(where), value=value, allowed=allowed, file=file, line=line
    )


def _policy_label(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if isinstance(value.get("label"), str):
            return value["label"]
        pid = str(value.get("id", "greedy"))
        params = value.get("params") or {}
        if isinstance(params, Mapping) and params:
            inner = ", ".join(f"{k}={_label_value(v)}" for k, v in params.items())
            return f"{pid}({inner})"
        return pid
    return str(value)


def _label_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str, separators=(",", ":"))


def _read_axes(
    block: Mapping[str, Any], file: str | None, lines: Mapping[KeyPath, int]
) -> tuple[list[Axis], int]:
    """The axes of a ``sweep`` block and its replications, checked for shape."""
    root: KeyPath = (SWEEP_KEY,)
    unknown = [k for k in block if k not in SWEEP_KEYS]
    if unknown:
        near = difflib.get_close_matches(unknown[0], SWEEP_KEYS, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise _located(
            f"unknown key{hint}", file, lines, (*root, unknown[0]), allowed=", ".join(SWEEP_KEYS)
        )
    replications = block.get("replications", 1)
    if (
        isinstance(replications, bool)
        or not isinstance(replications, int)
        or not 1 <= replications <= MAX_REPLICATIONS
    ):
        raise _located(
            "must be a whole number of replications",
            file,
            lines,
            (*root, "replications"),
            value=replications,
            allowed=f"1 <= value <= {MAX_REPLICATIONS}",
        )
    groups: list[tuple[AxisKind, KeyPath, Mapping[str, Any]]] = []
    for section in block:
        if section == "grid":
            grid = block["grid"]
            if not isinstance(grid, Mapping):
                raise _located(
                    "must be a mapping of config paths to lists of values",
                    file,
                    lines,
                    (*root, "grid"),
                    value=grid,
                )
            groups.extend(("grid", (*root, "grid", p), {p: v}) for p, v in grid.items())
        elif section == "zip":
            zips = block["zip"]
            zips = [zips] if isinstance(zips, Mapping) else zips
            if not isinstance(zips, list) or not all(isinstance(z, Mapping) for z in zips):
                raise _located(
                    "must be a list of mappings, each of config paths to lists of equal length",
                    file,
                    lines,
                    (*root, "zip"),
                    value=block["zip"],
                )
            single = isinstance(block["zip"], Mapping)
            for n, group in enumerate(zips):
                where = (*root, "zip") if single else (*root, "zip", n)
                if not group:
                    raise _located("a zip group needs at least one axis", file, lines, where)
                groups.append(("zip", where, group))
    axes: list[Axis] = []
    seen: dict[KeyPath, str] = {}
    for number, (kind, where, members) in enumerate(groups):
        lengths = {}
        for path, values in members.items():
            source = (*where, path) if kind == "zip" else where
            try:
                key = parse_path(path)
            except ValueError as exc:
                raise _located(str(exc), file, lines, source) from None
            problem = _check_path(key)
            if problem is not None:
                raise _located(f"not a config path: {problem}", file, lines, source)
            if key in (("name",), ("description",)):
                raise _located("the scenario's name cannot be swept", file, lines, source)
            for other_key, other in seen.items():
                n = min(len(key), len(other_key))
                if key[:n] == other_key[:n]:
                    what = "twice" if key == other_key else f"and so does '{other}'"
                    raise _located(f"'{path}' is swept {what}", file, lines, source)
            seen[key] = path
            if not isinstance(values, list) or not values:
                raise _located(
                    "must be a non-empty list of values", file, lines, source, value=values
                )
            lengths[path] = len(values)
            axes.append(
                Axis(
                    path=path,
                    key=key,
                    kind=kind,
                    group=number,
                    values=tuple(values),
                    lines=tuple(lines.get((*source, i)) for i in range(len(values))),
                    source=source,
                    unit=_unit_of(key),
                )
            )
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{p} has {n}" for p, n in lengths.items())
            raise _located(
                f"the axes of a zip group vary together and need lists of one length: {sizes}",
                file,
                lines,
                where,
            )
    for axis in axes:
        if axis.key == ("policy",):
            labels = [_policy_label(v) for v in axis.values]
            dup = next((lb for lb in labels if labels.count(lb) > 1), None)
            if dup is not None:
                raise _located(
                    f"two values have the label '{dup}'; give them distinct 'label's",
                    file,
                    lines,
                    axis.source,
                )
    return axes, replications


def si_value(resolved: Any, key: KeyPath, written: Any) -> float | str:
    """How one swept value appears in the results.

    Numbers are SI floats; a distribution is its mean (a fixed value is itself); the policy
    is its label; anything else is its compact JSON text.
    """
    if key == ("policy",):
        return _policy_label(written)
    if isinstance(resolved, bool):
        return json.dumps(resolved)
    if isinstance(resolved, (int, float)):
        return float(resolved)
    if isinstance(resolved, Mapping) and resolved.get("kind") in ("fixed", "uniform"):
        if resolved["kind"] == "fixed":
            return float(resolved["value"])
        return 0.5 * (float(resolved["low"]) + float(resolved["high"]))
    if isinstance(resolved, Mapping) and resolved.get("kind") == "exponential":
        return float(resolved["mean"])
    if isinstance(resolved, str):
        return resolved
    return json.dumps(resolved, sort_keys=True, separators=(",", ":"))


def _point_error(
    exc: ScenarioError, axes: Sequence[Axis], choice: Sequence[int], point: int
) -> ScenarioError:
    """``exc`` from validating one point, saying which axis value (or point) caused it."""
    culprit = None
    if exc.key:
        key = parse_key_text(exc.key)
        for axis in axes:
            n = min(len(axis.key), len(key))
            if axis.key[:n] == key[:n]:
                culprit = axis
                break
    if culprit is not None:
        index = choice[axes.index(culprit)]
        note = (
            f" [sweep {culprit.kind} axis '{culprit.path}', value {index + 1} of "
            f"{len(culprit.values)}: {_written(culprit.values[index])}]"
        )
    else:
        at = ", ".join(a.describe(i) for a, i in zip(axes, choice, strict=True))
        note = f" [at sweep point {point}: {at}]"
    return ScenarioError(
        exc.message + note,
        key=exc.key,
        value=exc.value,
        allowed=exc.allowed,
        file=exc.file,
        line=exc.line,
    )


def parse_key_text(text: str) -> KeyPath:
    """The inverse of :func:`sim.scenario.key_text` (``servers.sites[0]`` -> keys)."""
    try:
        return parse_path(text)
    except ValueError:
        return tuple(text.split("."))


def _moved_lines(lines: LineMap, source: KeyPath, target: KeyPath) -> LineMap:
    """The line entries under ``source`` re-rooted at ``target``."""
    n = len(source)
    return {(*target, *k[n:]): v for k, v in lines.items() if k[:n] == source}


def load_sweep(
    path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | None = None,
    replications: int | None = None,
) -> Sweep:
    """Read a scenario file with a ``sweep`` block and expand it into validated runs.

    ``overrides`` replace values of the base scenario as on a command line (dotted keys, as
    for :func:`sim.scenario.load_scenario`); ``replications`` replaces the block's count.
    Raises :class:`ScenarioError` naming the file, line, axis and value of the first
    problem; nothing is run.
    """
    data, lines = load_yaml(path)
    file = os.fspath(path)
    if SWEEP_KEY not in data:
        raise ScenarioError(
            "has no 'sweep' block; run it with 'run_sim.py run' or add a sweep", file=file
        )
    block = data.pop(SWEEP_KEY)
    if not isinstance(block, Mapping):
        raise _located(
            "must be a mapping with keys grid, zip and replications",
            file,
            lines,
            (SWEEP_KEY,),
            value=block,
        )
    return expand(data, block, lines, file, overrides, replications, source=Path(file))


def has_sweep(path: str | os.PathLike[str]) -> bool:
    """Whether the scenario file has a top-level ``sweep`` block."""
    data, _ = load_yaml(path)
    return SWEEP_KEY in data


def expand(
    base: Mapping[str, Any],
    block: Mapping[str, Any],
    lines: LineMap | None = None,
    file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    replications: int | None = None,
    source: Path | None = None,
) -> Sweep:
    """Expand a base scenario (plain data) and a ``sweep`` block into a :class:`Sweep`."""
    from sim.provenance import code_version, config_digest

    lines = dict(lines or {})
    axes, count = _read_axes(block, file, lines)
    if replications is not None:
        if not 1 <= int(replications) <= MAX_REPLICATIONS:
            raise ScenarioError(
                "out of range",
                key="sweep.replications",
                value=replications,
                allowed=f"1 <= value <= {MAX_REPLICATIONS}",
                file="command line",
            )
        count = int(replications)
    base = copy.deepcopy(dict(base))
    overridden: list[KeyPath] = []
    for dotted, value in (overrides or {}).items():
        key = parse_key_text(dotted)
        for axis in axes:
            n = min(len(axis.key), len(key))
            if axis.key[:n] == key[:n]:
                raise ScenarioError(
                    f"'{dotted}' is swept (axis '{axis.path}'); it cannot also be replaced",
                    key=dotted,
                    value=value,
                    file="command line",
                )
        try:
            _set(base, key, value)
        except ValueError as exc:
            raise ScenarioError(str(exc), key=dotted, value=value, file="command line") from None
        overridden.append(key)

    groups: dict[int, list[int]] = {}
    for i, axis in enumerate(axes):
        groups.setdefault(axis.group, []).append(i)
    sizes = [len(axes[members[0]].values) for members in groups.values()]
    n_points = math.prod(sizes)
    if n_points * count > MAX_RUNS:
        raise _located(
            f"plans {n_points} points x {count} replications = {n_points * count} runs; "
            f"at most {MAX_RUNS} are allowed",
            file,
            lines,
            (SWEEP_KEY,),
        )

    si: list[list[float | str | None]] = [[None] * len(a.values) for a in axes]
    points: list[tuple[tuple[int, ...], dict[str, Any], Any]] = []
    digests: dict[str, int] = {}
    for number, position in enumerate(itertools.product(*(range(s) for s in sizes))):
        choice = [0] * len(axes)
        for g, members in enumerate(groups.values()):
            for i in members:
                choice[i] = position[g]
        data = copy.deepcopy(base)
        point_lines = dict(lines)
        for axis, index in zip(axes, choice, strict=True):
            value = copy.deepcopy(axis.values[index])
            if axis.key == ("policy",) and isinstance(value, dict):
                value.pop("label", None)
            try:
                _set(data, axis.key, value)
            except ValueError as exc:
                raise _located(
                    f"cannot apply this axis: {exc}", file, lines, (*axis.source, index)
                ) from None
            for k in [k for k in point_lines if k[: len(axis.key)] == axis.key]:
                del point_lines[k]
            if axis.lines[index] is not None:
                point_lines[axis.key] = axis.lines[index]  # type: ignore[assignment]
            point_lines.update(_moved_lines(lines, (*axis.source, index), axis.key))
        try:
            scenario = validate_data(data, point_lines, file, overridden)
        except ScenarioError as exc:
            raise _point_error(exc, axes, choice, number) from None
        config = scenario.model_dump(mode="json")
        digest = config_digest(config)
        if digest in digests:
            first = digests[digest]
            raise ScenarioError(
                f"sweep points {first} and {number} give the same scenario; every point must "
                "differ (two values of an axis mean the same)",
                key=SWEEP_KEY,
                file=file,
                line=lines.get((SWEEP_KEY,)),
            )
        digests[digest] = number
        for i, (axis, index) in enumerate(zip(axes, choice, strict=True)):
            if si[i][index] is None:
                si[i][index] = si_value(_get(config, axis.key), axis.key, axis.values[index])
        points.append((tuple(choice), config, scenario))

    final_axes = []
    for axis, values in zip(axes, si, strict=True):
        if not all(isinstance(v, float) for v in values):
            values = [v if isinstance(v, str) else repr(v) for v in values]
        final_axes.append(
            Axis(**{**axis.__dict__, "si_values": tuple(values)})  # type: ignore[arg-type]
        )

    version = code_version()
    runs: list[RunSpec] = []
    for number, (choice, config, scenario) in enumerate(points):
        params = {a.path: a.si_values[i] for a, i in zip(final_axes, choice, strict=True)}
        policy = params.get("policy", scenario.policy.id)
        for r in range(count):
            seed_path = (r,)
            run_id = run_identity(config, seed_path, version)
            runs.append(
                RunSpec(
                    run_id=run_id,
                    point=number,
                    replication=r,
                    policy=str(policy),
                    params=params,
                    seed_root=scenario.seed,
                    seed_path=seed_path,
                    config=config,
                    scenario=scenario,
                )
            )
    first = points[0][2]
    return Sweep(
        name=first.name,
        source=source,
        root_seed=first.seed,
        replications=count,
        axes=final_axes,
        runs=runs,
        n_points=n_points,
        code_version=version,
    )


def run_identity(config: Mapping[str, Any], seed_path: Sequence[int], version: str) -> str:
    """A run's id: 16 hex digits of the SHA-256 of its resolved configuration, seed path
    and code version (canonical JSON)."""
    from sim.provenance import to_jsonable

    text = json.dumps(
        {"config": to_jsonable(config), "seed_path": list(seed_path), "code": version},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- running
@dataclass
class SweepReport:
    """What one invocation of :func:`run_sweep` did."""

    out_dir: Path
    total: int
    skipped: int = 0
    """Runs already finished in the results folder before this invocation."""
    finished: int = 0
    failed: list[tuple[RunSpec, str]] = field(default_factory=list)
    """Runs that failed in this invocation, or earlier and were not retried."""
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def default_results_dir(sweep: Sweep) -> Path:
    """``results/<scenario name>/<sweep id>`` in this checkout."""
    from sim.runner import REPO

    return REPO / "results" / sweep.name / sweep.sweep_id


def _failure_line(spec: RunSpec, error: str) -> str:
    return f"run {spec.run_id} failed ({spec.describe()}): {error}"


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: stop cleanly, keep what is finished."""


def run_sweep(
    sweep: Sweep,
    out_dir: Path | None = None,
    executor: Any = None,
    retry_failed: bool = False,
    quiet: bool = False,
    report: Callable[[str], None] | None = None,
) -> SweepReport:
    """Run every planned run of ``sweep`` not yet finished in ``out_dir``.

    ``executor`` is an :class:`sim.executors.Executor` (default: a process pool with one
    worker per core). Runs that failed before are redone only with ``retry_failed``. A run
    that fails is recorded as failed with its traceback and reported through ``report``
    (one line) while the others go on. On Ctrl-C (or SIGTERM) the runs under way are
    abandoned, the manifest is saved consistent and ``KeyboardInterrupt`` propagates.
    """
    from sim.executors import ProcessExecutor, WorkerFailure
    from sim.provenance import git_state
    from sim.store import RunStore, execute_run

    out = Path(out_dir) if out_dir is not None else default_results_dir(sweep)
    say = report or (lambda line: print(line, file=sys.stderr))
    started = time.perf_counter()
    store = RunStore(out, sweep)
    store.open(retry_failed=retry_failed)
    result = SweepReport(out_dir=out, total=len(sweep.runs), skipped=store.count("finished"))
    todo = store.pending()
    result.failed = [(s, store.error(s.run_id) or "failed") for s in store.failed_runs()]
    if not todo:
        store.save(force=True)
        result.elapsed = time.perf_counter() - started
        return result
    own_executor = executor is None
    if executor is None:
        executor = ProcessExecutor()
    git = git_state()
    tasks = [store.task(spec, git, remote=executor.remote) for spec in todo]
    if executor.forks_driver:
        warm_up(todo)
    bar = _progress(sweep, result.skipped, quiet)
    previous = _sigterm_as_interrupt()
    outcomes: Iterator[tuple[int, Any]] | None = None
    try:
        outcomes = executor.map_unordered(
            execute_run, tasks, on_start=lambda i: store.mark_running(todo[i].run_id)
        )
        for index, outcome in outcomes:
            spec = todo[index]
            if isinstance(outcome, WorkerFailure):
                store.record_failure(spec, outcome.error, outcome.traceback)
                error = outcome.error
            else:
                store.commit(spec, outcome)
                error = outcome.error if outcome.status == "failed" else None
            if error is None:
                result.finished += 1
            else:
                result.failed.append((spec, error))
                line = _failure_line(spec, error)
                if bar is not None:
                    bar.write(line, file=sys.stderr)
                else:
                    say(line)
            store.save()
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        guard = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if outcomes is not None:
                outcomes.close()  # type: ignore[attr-defined]
            executor.abort()
            store.release_running()
            store.save(force=True)
        finally:
            signal.signal(signal.SIGINT, guard)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if bar is not None:
            bar.close()
        if own_executor:
            executor.close()
    store.save(force=True)
    result.elapsed = time.perf_counter() - started
    return result


def warm_up(specs: Sequence[RunSpec]) -> None:
    """Load (or compile) the engine's and each policy's compiled kernels in this process
    with a run of a few epochs per policy, so that workers forked afterwards start warm
    instead of each loading them (or compiling them at once, on a cold cache). Errors are
    left for the real runs to report."""
    from sim.runner import run_scenario

    seen: set[str] = set()
    for spec in specs:
        scenario = spec.scenario
        if scenario is None or scenario.policy.id in seen:
            continue
        seen.add(scenario.policy.id)
        engine = scenario.engine
        short = engine.epoch * max(2, scenario.epochs_per_mobility_step + 1)
        tiny = scenario.model_copy(
            update={"engine": engine.model_copy(update={"horizon": short, "warmup": 0.0})}
        )
        try:
            run_scenario(tiny, write=False)
        except Exception:
            continue


def _sigterm_as_interrupt() -> Any:
    """Make SIGTERM stop a sweep like Ctrl-C; return the previous handler (None when this
    is not the main thread, where handlers cannot be set)."""

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


def _progress(sweep: Sweep, done: int, quiet: bool) -> Any:
    """A tqdm bar over the runs (None when quiet or not on a terminal)."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(
        total=len(sweep.runs),
        initial=done,
        unit="run",
        desc=sweep.name,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )


def build_report(results_dir: Path, quiet: bool = False) -> dict[str, Path] | None:
    """Aggregate, plot and write the report of a results folder with
    ``sim.report.build_outputs``; None when that module is not installed."""
    import importlib
    import importlib.util

    if importlib.util.find_spec("sim.report") is None:
        return None
    module = importlib.import_module("sim.report")
    build = getattr(module, "build_outputs", None)
    if build is None:
        raise SimError("sim.report has no build_outputs(results_dir, quiet)")
    return build(Path(results_dir), quiet=quiet)

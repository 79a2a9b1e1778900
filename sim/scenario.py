"""Reading scenario files: safe YAML in, a validated :class:`~sim.config.Scenario` out.

A scenario file is plain YAML: mappings, lists, numbers, text. Nothing a file asks for is
ever executed or constructed (no tags, no anchors or aliases), the file size and nesting
depth are capped, and keys may not repeat. Every problem, from an unreadable file to a
policy parameter that contradicts the rest of the scenario, is reported as one
:class:`~sim.errors.ScenarioError` naming the file, line, key, value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
import types
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError, WithJsonSchema

from sim.config import SUMO_MODELS, Scenario
from sim.errors import NO_VALUE, ScenarioError
from sim.units import UNITS_HELP

MAX_BYTES = 1 << 20
"""Largest scenario file read [bytes]."""
MAX_DEPTH = 32
"""Deepest nesting of mappings and lists in a scenario file."""

KeyPath = tuple[str | int, ...]
LineMap = dict[KeyPath, int]

_YAML = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_YAML + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _MAP, _SEQ = _YAML + "timestamp", _YAML + "map", _YAML + "seq"
_SI_UNIT = {
    "time": "s",
    "frequency": "Hz",
    "rate": "/s",
    "bits": "bit",
    "cycles": "cycles",
    "power": "W",
    "energy": "J",
    "length": "m",
    "speed": "m/s",
    "ratio": "",
    "power_density": "W/Hz",
}


_LIBYAML = hasattr(yaml, "CSafeLoader")


class _Loader(yaml.CSafeLoader if _LIBYAML else yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml when available), used only for its events and for
    resolving plain scalars; ``1e9`` reads as a number, as in YAML 1.2."""


_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def key_text(path: KeyPath) -> str:
    """The dotted spelling of a key path: ``("servers", "sites", 0, "cpu")`` ->
    ``servers.sites[0].cpu``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _tag_text(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


# --------------------------------------------------------------------------- reading YAML
def _read_text(path: Path, file: str) -> str:
    """The file's text, refusing anything that is not a small UTF-8 regular file."""

    def fail(message: str, line: int | None = None) -> ScenarioError:
        return ScenarioError(message, file=file, line=line)

    try:
        info = path.stat()
    except FileNotFoundError:
        raise fail("no such file") from None
    except PermissionError:
        raise fail("permission denied") from None
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read the file ({getattr(exc, 'strerror', None) or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise fail("is a directory, not a scenario file")
    if not stat.S_ISREG(info.st_mode):
        raise fail("is not a regular file")
    too_big = f"is larger than {MAX_BYTES // 1024} KiB; a scenario file is a short text"
    if info.st_size > MAX_BYTES:
        raise fail(too_big)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as exc:
        raise fail(f"cannot read the file ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise fail(too_big)
    if b"\0" in raw:
        line = raw.count(b"\n", 0, raw.index(b"\0")) + 1
        raise fail("is not a text file (it contains NUL bytes); a scenario is UTF-8 YAML", line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise fail(
            f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})", line
        ) from None
    return text.removeprefix("\ufeff")


class _Composer:
    """Builds plain Python values and their line numbers from the parser's events."""

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.lines: LineMap = {}

    def fail(self, message: str, path: KeyPath, event: yaml.Event) -> ScenarioError:
        return ScenarioError(
            message, key=key_text(path), file=self.file, line=event.start_mark.line + 1
        )

    def node(self, path: KeyPath, depth: int) -> Any:
        event = self.loader.get_event()
        if depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels", path, event)
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise self.fail(
                "anchors and aliases (&name, *name) are not allowed in a "
                "scenario file; write the values out",
                path,
                event,
            )
        if isinstance(event, yaml.ScalarEvent):
            return self.scalar(event, path)
        if isinstance(event, yaml.SequenceStartEvent):
            self.check_tag(event, _SEQ, path)
            items: list[Any] = []
            while not self.loader.check_event(yaml.SequenceEndEvent):
                item = (*path, len(items))
                self.lines[item] = self.loader.peek_event().start_mark.line + 1
                items.append(self.node(item, depth + 1))
            self.loader.get_event()
            return items
        self.check_tag(event, _MAP, path)
        out: dict[str, Any] = {}
        while not self.loader.check_event(yaml.MappingEndEvent):
            key_event = self.loader.get_event()
            if (
                not isinstance(key_event, yaml.ScalarEvent)
                or key_event.anchor is not None
                or key_event.tag not in (None, "!", _STR)
            ):
                raise self.fail("keys must be plain names", path, key_event)
            key = key_event.value
            line = key_event.start_mark.line + 1
            if (*path, key) in self.lines:
                raise ScenarioError(
                    f"duplicate key '{key}' (first at line {self.lines[(*path, key)]}, "
                    f"again at line {line})",
                    key=key_text((*path, key)),
                    file=self.file,
                    line=line,
                )
            self.lines[(*path, key)] = line
            out[key] = self.node((*path, key), depth + 1)
        self.loader.get_event()
        return out

    def check_tag(self, event: yaml.Event, standard: str, path: KeyPath) -> None:
        if event.tag not in (None, "!", standard):
            raise self.fail(
                f"tag '{_tag_text(event.tag)}' is not allowed; a scenario file "
                "is plain YAML without tags",
                path,
                event,
            )

    def scalar(self, event: yaml.ScalarEvent, path: KeyPath) -> Any:
        tag = event.tag
        if tag in (None, "!"):
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag in (_STR, _TIMESTAMP):
            return event.value
        if tag == _NULL:
            return None
        construct = {
            _BOOL: self.loader.construct_yaml_bool,
            _INT: self.loader.construct_yaml_int,
            _FLOAT: self.loader.construct_yaml_float,
        }.get(tag)
        if construct is None:
            raise self.fail(
                f"tag '{_tag_text(tag)}' is not allowed; a scenario file is "
                "plain YAML without tags",
                path,
                event,
            )
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark)
        try:
            return construct(node)
        except (ValueError, KeyError, OverflowError):
            raise self.fail(
                f"cannot read {event.value[:40]!r} as {_tag_text(tag)}", path, event
            ) from None


def _yaml_error(exc: yaml.YAMLError, text: str, file: str) -> ScenarioError:
    """One line saying where and why the YAML syntax is broken."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    if isinstance(exc, yaml.MarkedYAMLError):
        what = " ".join(p for p in (exc.context, exc.problem) if p)
    elif isinstance(exc, yaml.reader.ReaderError):
        source = text.encode() if _LIBYAML else text
        line = source.count("\n" if isinstance(source, str) else b"\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or " ")
        what = f"character U+{char:04X} is not allowed in YAML"
    else:
        what = str(exc)
    return ScenarioError(f"invalid YAML: {what or 'syntax error'}", file=file, line=line)


def load_yaml(path: str | os.PathLike[str]) -> tuple[dict[str, Any], LineMap]:
    """Read a scenario file into plain data and the line of every key.

    Returns ``(data, linemap)``: ``data`` is a dict of dicts, lists, text, numbers, booleans
    and ``None``; ``linemap`` maps each key path (``("channel", "noise")``,
    ``("servers", "sites", 0, "position")``) to the 1-based line where it is written. Raises
    :class:`ScenarioError` for anything that is not a small, plain YAML mapping.
    """
    file = os.fspath(path)
    text = _read_text(Path(file), file)
    loader = _Loader(text)
    composer = _Composer(loader, file)
    try:
        loader.get_event()
        if loader.check_event(yaml.StreamEndEvent):
            raise ScenarioError(
                "the file is empty; a scenario is a mapping such as 'vehicles: {count: 3}'",
                file=file,
            )
        loader.get_event()
        top = loader.peek_event()
        if isinstance(top, yaml.ScalarEvent) and composer.scalar(top, ()) is None:
            raise ScenarioError("the file holds no scenario (only comments or null)", file=file)
        if not isinstance(top, yaml.MappingStartEvent) or top.tag not in (None, "!", _MAP):
            kind = "a list" if isinstance(top, yaml.SequenceStartEvent) else "a single value"
            raise ScenarioError(
                f"the top level is {kind}; a scenario is a mapping of keys "
                f"({', '.join(Scenario.model_fields)})",
                file=file,
                line=top.start_mark.line + 1,
            )
        data = composer.node((), 1)
        loader.get_event()
        if not loader.check_event(yaml.StreamEndEvent):
            raise ScenarioError(
                "more than one YAML document; a scenario file holds one",
                file=file,
                line=loader.peek_event().start_mark.line + 1,
            )
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, file) from None
    finally:
        loader.dispose()
    return data, composer.lines


# --------------------------------------------------------------------------- validation
def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` and ``Optional`` from a type, collecting the metadata."""
    meta: list[Any] = []
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            meta.extend(tp.__metadata__)
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp, meta
            tp = args[0]
        else:
            return tp, meta


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _type_at(model: type[BaseModel], loc: KeyPath) -> tuple[Any, list[Any]]:
    """The declared type and constraints found at ``loc`` inside ``model``."""
    tp: Any = model
    meta: list[Any] = []
    for part in loc:
        origin = get_origin(tp)
        if _is_model(tp) and isinstance(part, str) and part in tp.model_fields:
            field = tp.model_fields[part]
            tp, inner = _unwrap(field.annotation)
            meta = list(field.metadata) + inner
        elif origin in (list, tuple) and isinstance(part, int):
            args = get_args(tp)
            if origin is list or (len(args) == 2 and args[1] is Ellipsis):
                tp, meta = _unwrap(args[0])
            elif part < len(args):
                tp, meta = _unwrap(args[part])
            else:
                return None, []
        elif origin is dict:
            tp, meta = _unwrap(get_args(tp)[1])
        else:
            return None, []
    return tp, meta


def _raw(data: Any, path: KeyPath) -> Any:
    """What the user wrote at ``path``, or :data:`NO_VALUE`."""
    for part in path:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return NO_VALUE
    return data


def _number(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _si_unit(meta: list[Any]) -> str:
    for item in meta:
        if isinstance(item, WithJsonSchema) and item.json_schema:
            text = str(item.json_schema.get("description", ""))
            for dimension, help_text in UNITS_HELP.items():
                if help_text in text:
                    return _SI_UNIT[dimension]
    return ""


def _range_text(meta: list[Any], unit: str) -> str:
    """``0 < value <= 1``, ``value > 0 Hz``: the bounds declared on a field."""
    bounds = {
        name: _number(getattr(m, name))
        for m in meta
        for name in ("gt", "ge", "lt", "le")
        if getattr(m, name, None) is not None
    }
    low = next(((op, bounds[k]) for k, op in (("gt", ">"), ("ge", ">=")) if k in bounds), None)
    high = next(((op, bounds[k]) for k, op in (("lt", "<"), ("le", "<=")) if k in bounds), None)
    if low and high:
        text = f"{low[1]} {low[0].replace('>', '<')} value {high[0]} {high[1]}"
    elif low or high:
        op, bound = low or high  # type: ignore[misc]
        text = f"value {op} {bound}"
    else:
        return ""
    return f"{text} {unit}" if unit else text


class _Locator:
    """Turns a key path into a located :class:`ScenarioError`."""

    def __init__(
        self,
        data: Any,
        lines: Mapping[KeyPath, int],
        file: str | None,
        overridden: Collection[KeyPath],
    ) -> None:
        self.data = data
        self.lines = lines
        self.file = file
        self.overridden = overridden

    def error(
        self, path: KeyPath, message: str, *, value: Any = NO_VALUE, allowed: str = ""
    ) -> ScenarioError:
        raw = _raw(self.data, path)
        value = raw if raw is not NO_VALUE else value
        if any(path[: len(o)] == o for o in self.overridden):
            return ScenarioError(
                message, key=key_text(path), value=value, allowed=allowed, file="command line"
            )
        line = None
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                line = self.lines[path[:n]]
                break
        return ScenarioError(
            message, key=key_text(path), value=value, allowed=allowed, file=self.file, line=line
        )


_NAME = re.compile(r"'([A-Za-z_][\w.]*)'|\b([A-Za-z_][\w.]*)")


def _refine(model: type[BaseModel], loc: KeyPath, message: str, data: Any) -> KeyPath:
    """The key a model-level check complains about: the first field named in its message,
    quoted names first, preferring fields the user wrote."""
    quoted, bare = [], []
    for match in _NAME.finditer(message):
        (quoted if match.group(1) else bare).append(match.group(1) or match.group(2))
    candidates = []
    for name in quoted + bare:
        sub = tuple(name.rstrip(".").split("."))
        if _type_at(model, loc + sub)[0] is not None:
            candidates.append(loc + sub)
    written = [c for c in candidates if _raw(data, c) is not NO_VALUE]
    return (written or candidates or [loc])[0]


_INTERNAL_LOC = re.compile(r"^(\[key\]|[\w-]+\[.*\])$")


def _clean_loc(loc: KeyPath, data: Any) -> KeyPath:
    """``loc`` without the entries pydantic adds for its own schema (``[key]``,
    ``function-after[...]``) that are not keys of the data."""
    out: list[str | int] = []
    for part in loc:
        inside = _raw(data, (part,))
        if inside is NO_VALUE and isinstance(part, str) and _INTERNAL_LOC.match(part):
            continue
        out.append(part)
        data = inside
    return tuple(out)


def _translate(
    err: Mapping[str, Any], model: type[BaseModel], prefix: KeyPath, data: Any, where: _Locator
) -> ScenarioError:
    """The first pydantic error of ``model`` (found under ``prefix``) as a ScenarioError."""
    loc = _clean_loc(err["loc"], _raw(data, prefix))
    kind = err["type"]
    value = err.get("input", NO_VALUE)
    message = re.sub(r"^(Value error|Assertion failed), ", "", err["msg"])
    message = re.sub(r"^Input should be ", "must be ", message)
    tp, meta = _type_at(model, loc)
    allowed = ""
    if kind == "extra_forbidden" and loc:
        parent, _ = _type_at(model, loc[:-1])
        fields = list(parent.model_fields) if _is_model(parent) else []
        near = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        message = "unknown key" + (f" (did you mean '{near[0]}'?)" if near else "")
        allowed = ", ".join(fields) or "no keys"
    elif kind == "literal_error":
        choices = get_args(tp) if get_origin(tp) is Literal else ()
        message = "not one of the choices"
        allowed = ", ".join(repr(c) for c in choices) or err.get("ctx", {}).get("expected", "")
    elif kind == "missing" and loc and isinstance(loc[-1], int):
        loc = loc[:-1]
        size = len(get_args(_type_at(model, loc)[0]))
        message = f"needs {size} items" if size else "an item is missing"
        value = NO_VALUE
    elif kind == "missing":
        message = "required key is missing"
        value = NO_VALUE
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        unit = _si_unit(meta)
        converted = _raw(data, prefix + loc) not in (NO_VALUE, value)
        message = "out of range" + (
            f" ({_number(value)} {unit})".replace(" )", ")") if converted else ""
        )
        allowed = _range_text(meta, unit)
    elif kind in ("model_type", "model_attributes_type", "dict_type") and _is_model(tp):
        message = "must be a mapping of keys"
        allowed = ", ".join(tp.model_fields)
    elif kind == "string_pattern_mismatch":
        message = "not allowed here"
        allowed = f"text matching {err.get('ctx', {}).get('pattern', '')}"
    elif kind in ("value_error", "assertion_error"):
        units = re.search(r"allowed units: (.*)$", message)
        allowed = units.group(1) if units else ""
        if _is_model(tp) and isinstance(value, Mapping):
            loc = _refine(model, loc, message, _raw(data, prefix))
            value = NO_VALUE
    return where.error(prefix + loc, message, value=value, allowed=allowed)


def _check_policy(scenario: Scenario, data: Any, where: _Locator) -> None:
    """Resolve the policy id, validate its parameters and its checks against the scenario."""
    from models import policies

    policy_id = scenario.policy.id
    try:
        cls = policies.get(policy_id)
    except policies.UnknownPolicy as exc:
        raise where.error(
            ("policy", "id"), str(exc), value=policy_id, allowed=", ".join(policies.available())
        ) from None
    try:
        params = cls.Params.model_validate(scenario.policy.params)
    except ValidationError as exc:
        raise _translate(exc.errors()[0], cls.Params, ("policy", "params"), data, where) from None
    for key, message in cls.check(params, scenario):
        path: KeyPath = tuple(int(p) if p.isdigit() else p for p in key.split("."))
        if path[0] == "params" or path == ("id",):
            path = ("policy", *path)
        elif path[0] not in Scenario.model_fields:
            path = ("policy", "params", *path)
        raise where.error(path, message)


def _validate(
    data: Any, linemap: Mapping[KeyPath, int], file: str | None, overridden: Collection[KeyPath]
) -> Scenario:
    where = _Locator(data, linemap, file, overridden)
    # files a scenario names (SUMO traces, networks) are relative to the scenario's folder
    context = {"base_dir": str(Path(file).resolve().parent)} if file else None
    try:
        scenario = Scenario.model_validate(data, context=context)
    except ValidationError as exc:
        raise _translate(exc.errors()[0], Scenario, (), data, where) from None
    except (ArithmeticError, TypeError) as exc:
        raise ScenarioError(
            f"a value cannot be read ({type(exc).__name__}: {exc})", file=file
        ) from None
    _resolve_files(scenario, where)
    _check_policy(scenario, data, where)
    return scenario


def _resolve_files(scenario: Scenario, where: _Locator) -> None:
    """Read the SUMO files a scenario names and fill in what it takes from them (area,
    vehicle and server counts; :func:`sim.sumo.resolve_scenario`)."""
    if scenario.mobility.model not in SUMO_MODELS and scenario.servers.placement not in (
        "junctions",
        "roads",
    ):
        return
    from sim.sumo import resolve_scenario

    try:
        resolve_scenario(scenario)
    except ScenarioError as exc:
        path: KeyPath = tuple(exc.key.split(".")) if exc.key else ()
        raise where.error(path, exc.message, value=exc.value, allowed=exc.allowed) from None


SWEEP_KEY = "sweep"
"""Top-level key of a scenario file that describes a sweep (see :mod:`sim.sweep`)."""


def _without_sweep(data: Any) -> Any:
    """The scenario data without its ``sweep`` block: the base scenario of the sweep."""
    if isinstance(data, Mapping) and SWEEP_KEY in data:
        return {k: v for k, v in data.items() if k != SWEEP_KEY}
    return data


def validate_data(
    data: Any,
    linemap: Mapping[KeyPath, int] | None = None,
    file: str | None = None,
    overridden: Collection[KeyPath] = (),
) -> Scenario:
    """Validate already-loaded scenario data, the policy and its parameters included.

    ``linemap`` and ``file`` (from :func:`load_yaml`) only serve to locate errors; errors
    about the key paths in ``overridden`` are reported as coming from the command line. A
    top-level ``sweep`` block is ignored: this validates the base scenario (use
    :func:`sim.sweep.load_sweep` to validate every point of the sweep). Raises
    :class:`ScenarioError` for the first problem found.
    """
    return _validate(_without_sweep(data), linemap or {}, file, overridden)


def load_scenario(
    path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
) -> Scenario:
    """Read and validate a scenario file.

    ``overrides`` maps dotted keys (``"seed"``, ``"engine.horizon"``) to values that replace
    the file's, as given on a command line; they are validated like the file's own values
    and errors about them are reported as coming from the command line. A file with a
    ``sweep`` block gives its base scenario, the sweep left out (see :mod:`sim.sweep`).
    """
    data, linemap = load_yaml(path)
    data = _without_sweep(data)
    overridden: list[KeyPath] = []
    for dotted, value in (overrides or {}).items():
        keys = tuple(dotted.split("."))
        parent: Any = data
        for part in keys[:-1]:
            if not isinstance(parent.get(part, {}), dict):
                break
            parent = parent.setdefault(part, {})
        else:
            parent[keys[-1]] = value
            overridden.append(keys)
    return _validate(data, linemap, os.fspath(path), overridden)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files, for editors and documentation; infinite
    defaults are written as the text ``"inf"`` so that the schema is strict JSON. The
    optional top-level ``sweep`` block is described too (its values are checked when the
    sweep is expanded)."""
    schema = _finite(Scenario.model_json_schema())
    axes = {
        "type": "object",
        "description": "config path (e.g. channel.bandwidth, policy) -> list of values",
        "additionalProperties": {"type": "array", "minItems": 1},
    }
    schema.setdefault("properties", {})[SWEEP_KEY] = {
        "type": "object",
        "description": "a sweep over this scenario (see the README, section Sweeps): "
        "grid axes (cartesian product), zip groups (axes varying together) and replications",
        "additionalProperties": False,
        "properties": {
            "grid": axes,
            "zip": {"anyOf": [axes, {"type": "array", "items": axes}]},
            "replications": {"type": "integer", "minimum": 1},
        },
    }
    return schema

"""Road-network mobility from Eclipse SUMO: trace replay, in-process SUMO, network files.

Two mobility models drive the vehicles from SUMO, both in the SUMO network's own frame
(x, y in metres, as in the ``.net.xml`` and SUMO's outputs):

* ``sumo-trace`` replays a floating-car-data (FCD) file written by ``sumo --fcd-output``,
  read as a stream (one ``<timestep>`` at a time), so a trace of any length needs memory
  only for two timesteps;
* ``sumo`` runs SUMO itself in-process through libsumo for a ``.sumocfg`` and steps it from
  the simulator's event loop, one SUMO step ahead of simulated time.

Both turn the same sequence of SUMO frames (a time, and the id, position, speed and heading
of every vehicle on the road) into the simulator's vehicles the same way, so a live run and
the replay of the FCD file that run writes give the same positions.

Time: simulated time 0 is SUMO time ``mobility.start`` (default: the first timestep of the
trace, or the begin time of the simulation). At a frame's time every vehicle of the frame is
present, exactly at the frame's position. Strictly between two frames a vehicle is present
if it is in both, at the position interpolated linearly between them, moving at the
constant velocity of that chord; a vehicle in only the earlier frame has left, one in only
the later frame has not arrived yet. After the last frame no vehicle is present. The
simulator sees the vehicle set at its mobility steps, so presence changes at the first
mobility step at or after a frame's time, and a vehicle that spends less than a mobility
step on the road may never be seen.

Vehicles and slots: the simulator has a fixed number ``n`` (``vehicles.count``) of vehicle
slots. A vehicle entering the road takes the slot that has been free the longest; a slot is
opened (slots are numbered from 0) only when none is free, so the slots in use never exceed
the most vehicles on the road at once, and the assignment does not depend on ``n``.
Vehicles entering at the same moment are served in the order of their SUMO ids, vehicles
leaving at the same moment free their slots in slot order. A slot with no vehicle is
absent: its ``present`` entry is False, its arrival rate is 0 (so it generates no tasks),
its velocity is 0 and it is parked at :data:`PARKED`, about 14,000 km from the network, so
its channel gain to every server is negligible and no policy would serve it; the world
also leaves absent slots out of the cell sizes and the interference. Tasks a vehicle
generated before leaving are still served and recorded under its slot; its successor in
the slot inherits whatever work is still queued there (rare, as slots are reused first in,
first out).

``vehicles.count``: for ``sumo-trace`` it is taken from the trace when the scenario leaves
it out (the most vehicles on the road at once from ``start`` on), and must be at least that
when given; for ``sumo`` it must be given (the number of slots, at least the most vehicles
SUMO puts on the road at once; a run that needs more stops with an error saying so).

Area: a SUMO model's area is the network's boundary (``convBoundary`` of the ``.net.xml``,
which netconvert and netgenerate start at (0, 0)), or without a network the bounding box
of the trace's positions. Lanes are offset from the road centre lines that the boundary
encloses, so vehicles can stand a few metres outside it; positions are not clamped.
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import io
import math
import os
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from sim.config import SUMO_MODELS, Area, Mobility
from sim.errors import ScenarioError, SimError
from sim.mobility import MobilityModel, _frozen, _register

__all__ = [
    "PARKED",
    "FcdSummary",
    "Frame",
    "FrameReplay",
    "RoadNetwork",
    "SumoConfig",
    "SumoFileError",
    "SumoLive",
    "SumoTrace",
    "network_of",
    "read_fcd",
    "read_network",
    "read_sumocfg",
    "resolve_scenario",
    "scan_fcd",
]

PARKED = (-1.0e7, -1.0e7)
"""Where an absent vehicle slot stands [m]: far outside any network, so its channel gain to
every server is negligible."""

TIME_TOLERANCE = 1e-6
"""Simulated and SUMO times closer than this [s] are the same instant (a sum of mobility
steps is not exactly a frame's time in floating point)."""

_CHUNK = 1 << 20  # bytes read at a time from an FCD file

TRACE_MARGIN = 50.0
"""How far below 0 a trace's positions may reach [m] when its area comes from them."""


class SumoFileError(SimError):
    """A SUMO file that is missing or cannot be read; the message names the file."""


# --------------------------------------------------------------------------- reading
def _open(path: str | os.PathLike[str]) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzip (by content, not by name)."""
    p = Path(path)
    try:
        handle: IO[bytes] = open(p, "rb")
    except FileNotFoundError:
        raise SumoFileError(f"{p}: file not found") from None
    except OSError as exc:
        raise SumoFileError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if handle.peek(2)[:2] == b"\x1f\x8b":  # type: ignore[attr-defined]
        return gzip.GzipFile(fileobj=handle)  # type: ignore[return-value]
    return handle


def _elements(
    path: str | os.PathLike[str], root_tags: Sequence[str], kind: str, tags: set[str]
) -> Iterator[ET.Element]:
    """The completed elements named in ``tags`` of an XML file, read as a stream.

    The root element must be one of ``root_tags``; each yielded element is valid until the
    next one is read, after which it is cleared to keep memory bounded.
    """
    with _open(path) as handle:
        parser = ET.iterparse(handle, events=("start", "end"))
        root = None
        try:
            for event, el in parser:
                if root is None:
                    root = el
                    if el.tag not in root_tags:
                        expected = " or ".join(f"<{t}>" for t in root_tags)
                        raise SumoFileError(
                            f"{path}: not a SUMO {kind}: its root element is <{el.tag}>, "
                            f"expected {expected}"
                        )
                    continue
                if event == "end" and el.tag in tags:
                    yield el
                    root.clear()
        except ET.ParseError as exc:
            line, column = exc.position
            reason = str(exc).split(":")[0]
            raise SumoFileError(
                f"{path}: not well-formed XML ({reason}) at line {line}, column {column + 1}"
            ) from None
        except (EOFError, gzip.BadGzipFile, OSError) as exc:
            raise SumoFileError(f"{path}: cannot be read ({exc})") from None
        if root is None:
            raise SumoFileError(f"{path}: empty file, expected a SUMO {kind}")


def _number(path: Any, el: ET.Element, key: str, where: str, default: float | None = None) -> float:
    text = el.get(key)
    if text is None:
        if default is not None:
            return default
        raise SumoFileError(f"{path}: {where} has no '{key}' attribute")
    try:
        value = float(text)
    except ValueError:
        raise SumoFileError(f"{path}: {where} has {key}={text!r}, not a number") from None
    if not math.isfinite(value):
        raise SumoFileError(f"{path}: {where} has {key}={text!r}, not a finite number")
    return value


@dataclass(frozen=True)
class Frame:
    """The vehicles on the road at one SUMO time.

    Attributes:
        time: SUMO time [s].
        ids: ``(k,)`` vehicle ids (object array of str), each at most once.
        xy: ``(k, 2)`` positions in the network frame [m].
        speed: ``(k,)`` speeds [m/s] (NaN where the trace gives none).
        angle: ``(k,)`` headings [degrees clockwise from north, SUMO's convention] (NaN
            where the trace gives none).
    """

    time: float
    ids: np.ndarray
    xy: np.ndarray
    speed: np.ndarray
    angle: np.ndarray

    @classmethod
    def make(cls, time: float, ids: list[str], rows: list[tuple[float, ...]]) -> Frame:
        data = np.array(rows, dtype=np.float64).reshape(len(rows), 4)
        return cls(
            float(time),
            np.array(ids, dtype=object),
            np.ascontiguousarray(data[:, :2]),
            data[:, 2].copy(),
            data[:, 3].copy(),
        )


class _FcdParser:
    """Expat handlers that collect an FCD file's timesteps as :class:`Frame` s.

    Attributes are kept as text and converted a whole timestep at a time, so a vehicle
    record costs one handler call; the frames completed by each chunk of input wait in
    ``done``.
    """

    def __init__(self, path: Any, parser: Any) -> None:
        self.path = path
        self.parser = parser
        self.root: str | None = None
        self.time: float | None = None
        self.last = -math.inf
        self.columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
        self.done: list[Frame] = []

    def where(self) -> str:
        return f"{self.path}: line {self.parser.CurrentLineNumber}"

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if self.root is None:
            self.root = tag
            if tag != "fcd-export":
                raise SumoFileError(
                    f"{self.path}: not a SUMO FCD file: its root element is <{tag}>, "
                    "expected <fcd-export>"
                )
        elif tag == "vehicle" and self.time is not None:
            ids, xs, ys, speeds, angles, lines = self.columns
            try:
                ids.append(attrs["id"])
                xs.append(attrs["x"])
                ys.append(attrs["y"])
            except KeyError as exc:
                raise SumoFileError(
                    f"{self.where()}: a <vehicle> of timestep time={self.time:g} has no "
                    f"{exc.args[0]!r} attribute"
                ) from None
            speeds.append(attrs.get("speed", "nan"))
            angles.append(attrs.get("angle", "nan"))
            lines.append(self.parser.CurrentLineNumber)
        elif tag == "timestep":
            text = attrs.get("time")
            try:
                t = float(text)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise SumoFileError(
                    f"{self.where()}: a <timestep> has time={text!r}, not a number"
                ) from None
            if not math.isfinite(t) or t <= self.last:
                raise SumoFileError(
                    f"{self.where()}: timestep time={text} does not come after the previous "
                    f"one ({self.last:g})"
                )
            self.time = self.last = t
            for column in self.columns:
                column.clear()

    def end(self, tag: str) -> None:
        if tag == "timestep" and self.time is not None:
            self.done.append(self._frame(self.time))
            self.time = None

    def _frame(self, t: float) -> Frame:
        ids, xs, ys, speeds, angles, lines = self.columns
        data = np.empty((len(ids), 4))
        for j, (name, column) in enumerate(
            (("x", xs), ("y", ys), ("speed", speeds), ("angle", angles))
        ):
            try:
                data[:, j] = np.array(column, dtype=np.float64)
            except ValueError:
                data[:, j] = np.nan  # locate the culprit below
                for k, text in enumerate(column):
                    try:
                        float(text)
                    except ValueError:
                        raise SumoFileError(
                            f"{self.path}: line {lines[k]}: vehicle {ids[k]!r} has "
                            f"{name}={text!r}, not a number"
                        ) from None
            bad = ~np.isfinite(data[:, j]) if j < 2 else np.isinf(data[:, j])
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise SumoFileError(
                    f"{self.path}: line {lines[k]}: vehicle {ids[k]!r} has "
                    f"{name}={column[k]!r}, not a finite number"
                )
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            for k, vid in enumerate(ids):
                if vid in seen:
                    raise SumoFileError(
                        f"{self.path}: line {lines[k]}: vehicle {vid!r} appears twice in "
                        f"timestep time={t:g}"
                    )
                seen.add(vid)
        return Frame(
            t,
            np.array(ids, dtype=object),
            np.ascontiguousarray(data[:, :2]),
            data[:, 2].copy(),
            data[:, 3].copy(),
        )


def read_fcd(path: str | os.PathLike[str]) -> Iterator[Frame]:
    """The frames of a SUMO FCD file (``sumo --fcd-output``), in time order, as a stream.

    Each ``<timestep time=...>`` gives one :class:`Frame` of its ``<vehicle>`` elements,
    which need ``id``, ``x`` and ``y``; ``speed`` and ``angle`` are read when present.
    Persons and containers are ignored. The positions must be in the network frame (not
    written with ``--fcd-output.geo``). The file is read in chunks of 1 MiB (gzip files
    decompressed on the fly), so memory holds one chunk and its timesteps. Raises
    :class:`SumoFileError`, naming the file and line, for a file that is missing, not
    well-formed, not an FCD file, with a vehicle lacking an attribute or with one that is
    not a number, a vehicle twice in one timestep, or timesteps out of order.
    """
    from xml.parsers import expat

    with _open(path) as handle:
        parser = expat.ParserCreate()
        state = _FcdParser(path, parser)
        parser.StartElementHandler = state.start
        parser.EndElementHandler = state.end
        while True:
            try:
                chunk = handle.read(_CHUNK)
                parser.Parse(chunk, not chunk)
            except expat.ExpatError as exc:
                raise SumoFileError(
                    f"{path}: not well-formed XML ({expat.ErrorString(exc.code)}) at line "
                    f"{exc.lineno}, column {exc.offset + 1}"
                ) from None
            except (EOFError, gzip.BadGzipFile, OSError) as exc:
                raise SumoFileError(f"{path}: cannot be read ({exc})") from None
            yield from state.done
            state.done.clear()
            if not chunk:
                break
        if state.root is None:
            raise SumoFileError(f"{path}: empty file, expected a SUMO FCD file")


@dataclass(frozen=True)
class FcdSummary:
    """What one pass over an FCD file learns: its time span, how many vehicles are on the
    road at each timestep, and the bounding box of the positions."""

    path: str
    times: np.ndarray  # (T,) timestep times [s]
    on_road: np.ndarray  # (T,) vehicles listed at each timestep
    n_vehicles: int  # distinct vehicle ids
    bbox: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax [m] (NaN: no vehicle)

    @property
    def first(self) -> float:
        return float(self.times[0])

    @property
    def last(self) -> float:
        return float(self.times[-1])

    def max_on_road(self, start: float) -> tuple[int, float]:
        """The most vehicles on the road at once from SUMO time ``start`` on, and the
        first time it happens."""
        keep = np.flatnonzero(self.times >= start - TIME_TOLERANCE)
        if keep.size == 0:
            return 0, start
        k = keep[int(np.argmax(self.on_road[keep]))]
        return int(self.on_road[k]), float(self.times[k])


_FileKey = tuple[str, int, int]
_T = TypeVar("_T")
_CACHE: dict[tuple[str, _FileKey], Any] = {}


def _cached(kind: str, path: str | os.PathLike[str], build: Callable[[str], _T]) -> _T:
    """``build(path)``, kept while the file keeps its size and modification time."""
    p = str(Path(path).resolve())
    try:
        st = os.stat(p)
    except OSError:
        return build(p)  # reports the problem
    key = (kind, (p, st.st_size, st.st_mtime_ns))
    if key not in _CACHE:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[key] = build(p)
    return _CACHE[key]


def _scan_fcd(path: str) -> FcdSummary:
    times: list[float] = []
    counts: list[int] = []
    ids: set[str] = set()
    lo = np.full(2, np.inf)
    hi = np.full(2, -np.inf)
    for frame in read_fcd(path):
        times.append(frame.time)
        counts.append(frame.ids.size)
        ids.update(frame.ids.tolist())
        if frame.ids.size:
            np.minimum(lo, frame.xy.min(axis=0), out=lo)
            np.maximum(hi, frame.xy.max(axis=0), out=hi)
    if not times:
        raise SumoFileError(f"{path}: the FCD file holds no <timestep>")
    bbox = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])) if ids else (math.nan,) * 4
    return FcdSummary(path, np.array(times), np.array(counts), len(ids), bbox)  # type: ignore[arg-type]


def scan_fcd(path: str | os.PathLike[str]) -> FcdSummary:
    """One streaming pass over an FCD file (checking every timestep, see :func:`read_fcd`);
    the result is kept for as long as the file is unchanged."""
    return _cached("fcd", path, _scan_fcd)


@dataclass(frozen=True)
class SumoConfig:
    """The parts of a ``.sumocfg`` the simulator needs; paths are absolute."""

    path: str
    net: str
    routes: tuple[str, ...]
    additional: tuple[str, ...]
    begin: float
    end: float | None
    step: float


def read_sumocfg(path: str | os.PathLike[str]) -> SumoConfig:
    """Read a ``.sumocfg``: its network, route and additional files (relative to the
    configuration's folder, as SUMO reads them, and checked to exist), begin, end and step
    length. Raises :class:`SumoFileError` naming what is missing or unreadable."""
    base = Path(path).resolve().parent
    values: dict[str, str] = {}
    for el in _elements(
        path,
        ("configuration", "sumoConfiguration"),
        "configuration",
        {"net-file", "route-files", "additional-files", "begin", "end", "step-length"},
    ):
        text = el.get("value")
        if text is None:
            raise SumoFileError(f"{path}: <{el.tag}> has no 'value' attribute")
        values[el.tag] = text

    def files(key: str) -> tuple[str, ...]:
        out = []
        for part in values.get(key, "").replace(",", " ").split():
            f = (base / part).resolve()
            if not f.is_file():
                raise SumoFileError(f"{path}: {key} {part!r} not found (looked for {f})")
            out.append(str(f))
        return tuple(out)

    nets = files("net-file")
    if len(nets) != 1:
        raise SumoFileError(f"{path}: needs exactly one <net-file value=...>, found {len(nets)}")

    def number(key: str) -> float | None:
        if key not in values:
            return None
        try:
            value = float(values[key])
        except ValueError:
            raise SumoFileError(f"{path}: <{key}> = {values[key]!r} is not a number") from None
        if not math.isfinite(value):
            raise SumoFileError(f"{path}: <{key}> = {values[key]!r} is not a finite number")
        return value

    step = number("step-length")
    if step is not None and step <= 0:
        raise SumoFileError(f"{path}: <step-length> must be > 0 s, got {step:g}")
    end = number("end")
    return SumoConfig(
        str(Path(path).resolve()),
        nets[0],
        files("route-files"),
        files("additional-files"),
        number("begin") or 0.0,
        None if end is None or end < 0 else end,
        1.0 if step is None else step,
    )


@dataclass(frozen=True)
class RoadNetwork:
    """A SUMO road network as the simulator uses it.

    Attributes:
        path: the ``.net.xml`` file.
        boundary: ``(xmin, ymin, xmax, ymax)`` of ``convBoundary`` [m].
        junction_ids: ``(J,)`` ids of the junctions that are not internal, sorted.
        junction_xy: ``(J, 2)`` their positions [m].
        junction_incoming: ``(J,)`` number of lanes entering each junction.
        edge_ids: ``(E,)`` ids of the normal edges (roads), sorted.
        edge_ends: ``(E,)`` (from, to) junction ids of each edge.
        edge_cars: ``(E,)`` whether a passenger car may use at least one lane.
        lanes: ``(E,)`` the lane centre lines of each edge, ``(k, 2)`` arrays [m].
    """

    path: str
    boundary: tuple[float, float, float, float]
    junction_ids: tuple[str, ...]
    junction_xy: np.ndarray
    junction_incoming: np.ndarray
    edge_ids: tuple[str, ...]
    edge_ends: tuple[tuple[str, str], ...]
    edge_cars: tuple[bool, ...]
    lanes: tuple[tuple[np.ndarray, ...], ...] = field(repr=False)

    def roads(self) -> list[np.ndarray]:
        """One centre line per road that cars use, in edge id order: the middle lane of
        each edge, keeping only the first edge (by id) of each pair of junctions, so a
        two-way street counts once."""
        seen: set[tuple[str, str]] = set()
        out = []
        for ends, cars, lanes in zip(self.edge_ends, self.edge_cars, self.lanes, strict=True):
            pair = (min(ends), max(ends))
            if not cars or not lanes or pair in seen:
                continue
            seen.add(pair)
            out.append(lanes[len(lanes) // 2])
        return out


def _shape(path: Any, text: str | None, where: str) -> np.ndarray:
    if not text:
        raise SumoFileError(f"{path}: {where} has no 'shape' attribute")
    try:
        pts = np.array(
            [[float(c) for c in p.split(",")[:2]] for p in text.split()], dtype=np.float64
        )
    except ValueError:
        raise SumoFileError(f"{path}: {where} has a shape that is not 'x,y x,y ...'") from None
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 2 or not np.isfinite(pts).all():
        raise SumoFileError(f"{path}: {where} has a shape that is not 'x,y x,y ...'")
    return pts


def _car_lane(lane: ET.Element) -> bool:
    allow = lane.get("allow")
    if allow is not None:
        classes = set(allow.split())
        return bool(classes & {"all", "passenger"})
    disallow = set((lane.get("disallow") or "").split())
    return not disallow & {"all", "passenger"}


def _read_network(path: str) -> RoadNetwork:
    boundary = None
    junctions: list[tuple[str, float, float, int]] = []
    edges: list[tuple[str, str, str, bool, tuple[np.ndarray, ...]]] = []
    for el in _elements(path, ("net",), "network (.net.xml)", {"location", "junction", "edge"}):
        if el.tag == "location":
            text = el.get("convBoundary")
            try:
                b = tuple(float(c) for c in (text or "").split(","))
            except ValueError:
                b = ()
            if len(b) != 4 or not all(math.isfinite(c) for c in b):
                raise SumoFileError(
                    f"{path}: <location> has convBoundary={text!r}, expected 'xmin,ymin,xmax,ymax'"
                )
            boundary = b
        elif el.tag == "junction":
            if el.get("type") == "internal":
                continue
            jid = el.get("id")
            if jid is None:
                raise SumoFileError(f"{path}: a <junction> has no 'id' attribute")
            where = f"junction {jid!r}"
            x = _number(path, el, "x", where)
            y = _number(path, el, "y", where)
            junctions.append((jid, x, y, len((el.get("incLanes") or "").split())))
        else:
            if el.get("function", "normal") != "normal":
                continue
            eid = el.get("id")
            if eid is None:
                raise SumoFileError(f"{path}: an <edge> has no 'id' attribute")
            lanes = [lane for lane in el if lane.tag == "lane"]
            shapes = tuple(
                _shape(path, lane.get("shape"), f"lane {lane.get('id')!r}") for lane in lanes
            )
            cars = any(_car_lane(lane) for lane in lanes)
            edges.append((eid, el.get("from", ""), el.get("to", ""), cars, shapes))
    if boundary is None:
        raise SumoFileError(f"{path}: no <location convBoundary=...>; is this a SUMO network?")
    junctions.sort(key=lambda j: j[0])
    edges.sort(key=lambda e: e[0])
    return RoadNetwork(
        path=path,
        boundary=boundary,  # type: ignore[arg-type]
        junction_ids=tuple(j[0] for j in junctions),
        junction_xy=np.array([j[1:3] for j in junctions], dtype=np.float64).reshape(-1, 2),
        junction_incoming=np.array([j[3] for j in junctions], dtype=np.int64),
        edge_ids=tuple(e[0] for e in edges),
        edge_ends=tuple((e[1], e[2]) for e in edges),
        edge_cars=tuple(e[3] for e in edges),
        lanes=tuple(e[4] for e in edges),
    )


def read_network(path: str | os.PathLike[str]) -> RoadNetwork:
    """Read a SUMO ``.net.xml`` as a stream: boundary, junctions (internal ones left out)
    and the lanes of the normal edges; kept for as long as the file is unchanged. Raises
    :class:`SumoFileError` for a file that is missing or is not a SUMO network."""
    return _cached("net", path, _read_network)


def network_of(cfg: Mobility) -> RoadNetwork | None:
    """The road network of a mobility configuration: ``net`` of a trace, the network of a
    ``.sumocfg``, or None (no network: other models, or a trace without ``net``)."""
    if cfg.model == "sumo-trace" and cfg.net is not None:
        return read_network(cfg.net)
    if cfg.model == "sumo" and cfg.config is not None:
        return read_network(read_sumocfg(cfg.config).net)
    return None


# --------------------------------------------------------------------------- replay
def _heading_velocity(speed: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Velocity vectors from SUMO speeds and headings (degrees clockwise from north);
    zero where either is unknown."""
    rad = np.deg2rad(angle)
    v = np.stack([speed * np.sin(rad), speed * np.cos(rad)], axis=1)
    v[~np.isfinite(v).all(axis=1)] = 0.0
    return v


class FrameReplay(MobilityModel):
    """Vehicle slots driven by a time-ordered stream of SUMO :class:`Frame` s (see the
    module's description for presence, interpolation and slots).

    Attributes:
        start: SUMO time at simulated time 0 [s].
        present: ``(n,)`` bool, which slots hold a vehicle on the road.
        slot_ids: the SUMO id of the vehicle in each slot (None for an empty slot).
    """

    def __init__(
        self, cfg: Mobility, n: int, rng: np.random.Generator, frames: Iterator[Frame], start: float
    ) -> None:
        super().__init__(cfg, n, rng)
        self.start = float(start)
        self._frames = frames
        self._a: Frame | None = None
        self._b: Frame | None = self._pull()
        self._a_index = -1
        self._key: tuple[int, bool] | None = None
        self._slot_of: dict[str, int] = {}
        self.slot_ids: list[str | None] = [None] * self.n
        self._free: deque[int] = deque()
        self._opened = 0
        self._slots = np.zeros(0, dtype=np.int64)
        self._origin = np.zeros((0, 2))
        self._delta = np.zeros((0, 2))
        self._t_a = self._span = 0.0
        self.present = _frozen(np.zeros(self.n, dtype=bool))
        self.velocities = _frozen(np.zeros((self.n, 2)))
        self._update()

    @property
    def sumo_time(self) -> float:
        """The SUMO time of the published state [s]."""
        return self.start + self.time

    def _pull(self) -> Frame | None:
        return next(self._frames, None)

    def _advance(self, dt: float) -> None:
        self._update()

    def _update(self) -> None:
        t = self.sumo_time
        while self._b is not None and self._b.time <= t + TIME_TOLERANCE:
            self._a, self._b = self._b, self._pull()
            self._a_index += 1
        a, b = self._a, self._b
        exact = a is not None and t <= a.time + TIME_TOLERANCE
        key = (self._a_index, exact)
        if key != self._key:
            self._key = key
            self._enter_interval(a, b, exact, t)
        x = np.full(self.n, PARKED[0])
        y = np.full(self.n, PARKED[1])
        if self._slots.size:
            w = 0.0 if exact else (t - self._t_a) / self._span
            if exact:
                x[self._slots] = self._origin[:, 0]
                y[self._slots] = self._origin[:, 1]
            else:
                x[self._slots] = self._origin[:, 0] + w * self._delta[:, 0]
                y[self._slots] = self._origin[:, 1] + w * self._delta[:, 1]
        self.positions = _frozen(np.stack([x, y], axis=1))

    def _enter_interval(self, a: Frame | None, b: Frame | None, exact: bool, t: float) -> None:
        """Set the vehicle set, slots and velocities valid until the next frame boundary."""
        if a is None or (not exact and b is None):
            ia = ib = np.zeros(0, dtype=np.int64)
        else:
            where_b = {vid: k for k, vid in enumerate(b.ids.tolist())} if b is not None else {}
            ib_all = np.array([where_b.get(vid, -1) for vid in a.ids.tolist()], dtype=np.int64)
            ia = np.arange(a.ids.size) if exact else np.flatnonzero(ib_all >= 0)
            ib = ib_all[ia]
        ids = a.ids[ia] if a is not None else np.zeros(0, dtype=object)
        self._slots = self._assign(ids.tolist(), t)
        velocity = np.zeros((self.n, 2))
        if ia.size:
            assert a is not None
            self._origin = a.xy[ia]
            self._t_a = a.time
            moving = ib >= 0
            v = _heading_velocity(a.speed[ia], a.angle[ia])
            if b is not None:
                self._span = b.time - a.time
                self._delta = np.zeros_like(self._origin)
                self._delta[moving] = b.xy[ib[moving]] - self._origin[moving]
                v[moving] = self._delta[moving] / self._span
            velocity[self._slots] = v
        present = np.zeros(self.n, dtype=bool)
        present[self._slots] = True
        if not np.array_equal(present, self.present):
            self.present = _frozen(present)
        self.velocities = _frozen(velocity)

    def _assign(self, ids: list[str], t: float) -> np.ndarray:
        """Slots of the vehicles ``ids`` now on the road: leaving vehicles free theirs,
        entering ones take the longest-free slot, or open a new one."""
        on_road = set(ids)
        for slot in sorted(s for vid, s in self._slot_of.items() if vid not in on_road):
            del self._slot_of[self.slot_ids[slot]]  # type: ignore[arg-type]
            self.slot_ids[slot] = None
            self._free.append(slot)
        for vid in sorted(v for v in on_road if v not in self._slot_of):
            if self._free:
                slot = self._free.popleft()
            elif self._opened < self.n:
                slot = self._opened
                self._opened += 1
            else:
                raise SimError(
                    f"at SUMO time {t:g} s there are {len(on_road)} vehicles on the road, "
                    f"more than the {self.n} vehicle slots (vehicles.count); raise "
                    f"vehicles.count to at least the most vehicles on the road at once"
                )
            self._slot_of[vid] = slot
            self.slot_ids[slot] = vid
        return np.array([self._slot_of[v] for v in ids], dtype=np.int64)

    def close(self) -> None:
        """Stop reading frames; the state stays as last published."""
        close = getattr(self._frames, "close", None)
        if close is not None:
            close()


@_register
class SumoTrace(FrameReplay):
    """Replay of a SUMO FCD file (``mobility.fcd``), read as a stream.

    ``n`` must be at least the most vehicles the trace has on the road at once from
    ``mobility.start`` (the first timestep when unset) on.
    """

    id = "sumo-trace"

    def __init__(self, cfg: Mobility, n: int, rng: np.random.Generator) -> None:
        if cfg.fcd is None:
            raise SimError("mobility model 'sumo-trace' needs 'fcd', the FCD file to replay")
        summary = scan_fcd(cfg.fcd)
        start = summary.first if cfg.start is None else float(cfg.start)
        need, when = summary.max_on_road(start)
        if n < need:
            raise SimError(
                f"vehicles.count is {n} but the trace {cfg.fcd} has {need} vehicles on the "
                f"road at SUMO time {when:g} s; give at least {need} vehicle slots"
            )
        self.summary = summary
        super().__init__(cfg, n, rng, read_fcd(cfg.fcd), start)


# --------------------------------------------------------------------------- live SUMO
_ACTIVE: list[SumoLive] = []


def _close_active() -> None:
    while _ACTIVE:
        _ACTIVE[-1].close()


atexit.register(_close_active)


def import_libsumo() -> Any:
    """The libsumo module, or a :class:`SimError` saying how to install it."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # libsumo's version notes
            import libsumo
    except ImportError as exc:
        raise SimError(
            "mobility model 'sumo' runs SUMO in-process through libsumo, which cannot be "
            f"imported ({exc}); install it with: pip install 'qvecsim[sumo]' (the "
            "eclipse-sumo and libsumo packages)"
        ) from None
    return libsumo


@_register
class SumoLive(FrameReplay):
    """SUMO run in-process through libsumo for ``mobility.config`` (a ``.sumocfg``).

    SUMO is stepped from :meth:`advance`, that is from the simulator's event loop, and
    stays one SUMO step ahead of simulated time so that positions between SUMO steps are
    interpolated exactly as a replay of its FCD output would be. SUMO's random seed is
    drawn from the model's generator, so runs with different scenario seeds are different
    SUMO replications (a seed in the ``.sumocfg`` is overridden). The simulation stops at
    the configuration's ``end``, after which no vehicle is present. libsumo holds one
    simulation per process: building another ``sumo`` model closes this one. ``extra_args``
    are added to SUMO's command line (e.g. ``["--fcd-output", "out.xml"]``).
    """

    id = "sumo"

    def __init__(
        self,
        cfg: Mobility,
        n: int,
        rng: np.random.Generator,
        extra_args: Sequence[str] = (),
    ) -> None:
        if cfg.config is None:
            raise SimError("mobility model 'sumo' needs 'config', a .sumocfg file")
        self.sumo_config = read_sumocfg(cfg.config)
        libsumo = import_libsumo()
        self._libsumo = libsumo
        _close_active()
        seed = int(rng.integers(0, 2**31 - 1))
        args = ["sumo", "-c", self.sumo_config.path, "--no-step-log", "--seed", str(seed)]
        try:
            libsumo.start([*args, *extra_args])
        except Exception as exc:
            raise SimError(f"SUMO could not start {cfg.config}: {exc}") from None
        _ACTIVE.append(self)
        self._open = True
        try:
            begin = float(libsumo.simulation.getTime())
            start = begin if cfg.start is None else float(cfg.start)
            if start < begin - TIME_TOLERANCE:
                raise SimError(
                    f"mobility.start ({start:g} s) is before the begin time of {cfg.config} "
                    f"({begin:g} s)"
                )
            super().__init__(cfg, n, rng, self._steps(), start)
        except BaseException:
            self.close()
            raise

    def _steps(self) -> Iterator[Frame]:
        """Step SUMO and yield each step's frame, until the configuration's end."""
        libsumo = self._libsumo
        sim, veh = libsumo.simulation, libsumo.vehicle
        tc = libsumo.constants
        variables = (tc.VAR_POSITION, tc.VAR_SPEED, tc.VAR_ANGLE)
        dt = float(sim.getDeltaT())
        end = float(sim.getEndTime())  # the configuration's, or the command line's
        while end < 0 or sim.getTime() < end - TIME_TOLERANCE:
            if not self._open:
                raise SimError("the SUMO simulation was closed (another 'sumo' model started)")
            try:
                libsumo.simulationStep()
                for vid in sim.getDepartedIDList():
                    veh.subscribe(vid, variables)
                results = veh.getAllSubscriptionResults()
                t = float(sim.getTime()) - dt
            except Exception as exc:
                raise SimError(f"SUMO failed at time {sim.getTime():g} s: {exc}") from None
            ids = list(results)
            rows = [
                (*results[v][tc.VAR_POSITION], results[v][tc.VAR_SPEED], results[v][tc.VAR_ANGLE])
                for v in ids
            ]
            yield Frame.make(t, ids, rows)

    def close(self) -> None:
        """End the SUMO simulation (idempotent); its outputs are then complete."""
        if getattr(self, "_open", False):
            self._open = False
            with contextlib.suppress(Exception):
                self._libsumo.close()
        if self in _ACTIVE:
            _ACTIVE.remove(self)


# --------------------------------------------------------------------------- scenario
def _located(key: str, call: Callable[[], _T]) -> _T:
    try:
        return call()
    except SumoFileError as exc:
        raise ScenarioError(str(exc), key=key) from None


def resolve_scenario(scenario: Any) -> None:
    """Check a scenario's SUMO files and fill in what it takes from them, in place.

    For the SUMO models: the FCD file is read through (every timestep checked), the
    ``.sumocfg`` and the network are read; ``mobility.area`` becomes the network's
    boundary (or the trace's bounding box) and must equal it when given;
    ``vehicles.count`` is taken from the trace when not given and must be at least the
    most vehicles on the road at once when given, and must be given for ``sumo``. For
    ``servers.placement`` junctions or roads, the sites are found in the network and
    ``servers.count`` becomes their number when not given (roads: must equal it when
    given). Raises :class:`ScenarioError` naming the key (``key``, no file or line).
    """
    from sim.placement import network_sites

    mob, vehicles, servers = scenario.mobility, scenario.vehicles, scenario.servers
    network: RoadNetwork | None = None
    if mob.model == "sumo-trace":
        summary = _located("mobility.fcd", lambda: scan_fcd(mob.fcd))
        start = summary.first if mob.start is None else float(mob.start)
        if not summary.first - TIME_TOLERANCE <= start <= summary.last + TIME_TOLERANCE:
            raise ScenarioError(
                f"outside the trace, which runs from {summary.first:g} s to {summary.last:g} s",
                key="mobility.start",
                value=mob.start,
                allowed=f"{summary.first:g} s to {summary.last:g} s",
            )
        need, when = summary.max_on_road(start)
        if "count" not in vehicles.model_fields_set:
            vehicles.count = max(need, 1)
        elif vehicles.count < need:
            raise ScenarioError(
                f"fewer vehicle slots than the {need} vehicles the trace has on the road "
                f"at SUMO time {when:g} s; leave it out to take it from the trace",
                key="vehicles.count",
                value=vehicles.count,
                allowed=f"at least {need}",
            )
        if mob.net is not None:
            network = _located("mobility.net", lambda: read_network(mob.net))
            boundary = network.boundary
        elif summary.n_vehicles:
            boundary = summary.bbox
        else:
            raise ScenarioError(
                "the trace has no vehicle, so it gives no area; set mobility.net",
                key="mobility.fcd",
            )
    elif mob.model == "sumo":
        sumocfg = _located("mobility.config", lambda: read_sumocfg(mob.config))
        network = _located("mobility.config", lambda: read_network(sumocfg.net))
        boundary = network.boundary
        if mob.start is not None and mob.start < sumocfg.begin - TIME_TOLERANCE:
            raise ScenarioError(
                f"before the begin time of {mob.config} ({sumocfg.begin:g} s)",
                key="mobility.start",
                allowed=f"at least {sumocfg.begin:g} s",
            )
        if "count" not in vehicles.model_fields_set:
            raise ScenarioError(
                "required with mobility model 'sumo': the number of vehicle slots, at least "
                "the most vehicles SUMO has on the road at once",
                key="vehicles.count",
            )
        _located("mobility.model", lambda: _check_libsumo())
    else:
        boundary = None
    if boundary is not None:
        _set_area(mob, boundary, network is None)
    if servers.placement in ("junctions", "roads"):
        if network is None:
            needs = (
                "a trace's network: set mobility.net"
                if mob.model == "sumo-trace"
                else f"a SUMO road network (mobility model {' or '.join(SUMO_MODELS)})"
            )
            raise ScenarioError(
                f"placement '{servers.placement}' needs {needs}",
                key="servers.placement",
                value=servers.placement,
            )
        given = "count" in servers.model_fields_set
        try:
            sites = network_sites(servers, network, servers.count if given else None)
        except ValueError as exc:
            raise ScenarioError(str(exc), key="servers.count" if given else "servers") from None
        if not given:
            servers.count = len(sites)


def _check_libsumo() -> None:
    try:
        import_libsumo()
    except SimError as exc:
        raise SumoFileError(str(exc)) from None


def _set_area(mob: Mobility, boundary: Sequence[float], from_trace: bool) -> None:
    """Area from a network's boundary, or from a trace's bounding box (whose vehicles
    may stand up to :data:`TRACE_MARGIN` below 0, on lanes offset from the border roads)."""
    xmin, ymin, xmax, ymax = (float(c) for c in boundary)
    low = -TRACE_MARGIN if from_trace else -0.005
    if xmin < low or ymin < low or xmax <= 0 or ymax <= 0:
        where = "the trace's positions" if from_trace else "the network's boundary"
        raise ScenarioError(
            f"the network frame does not start at (0, 0): {where} span "
            f"({xmin:g}, {ymin:g}) to ({xmax:g}, {ymax:g}) m; build the network without "
            f"--offset.disable-normalization (netconvert moves it to start at 0) and write "
            f"the trace without --fcd-output.geo",
            key="mobility.fcd"
            if from_trace
            else ("mobility.net" if mob.model == "sumo-trace" else "mobility.config"),
        )
    width, height = math.ceil(xmax * 100) / 100, math.ceil(ymax * 100) / 100
    if "area" not in mob.model_fields_set:
        mob.area = Area(width=width, height=height)
    elif abs(mob.area.width - width) > 0.01 or abs(mob.area.height - height) > 0.01:
        raise ScenarioError(
            f"a SUMO model's area is its network's ({width:g} m x {height:g} m); leave "
            "mobility.area out",
            key="mobility.area",
            value={"width": mob.area.width, "height": mob.area.height},
            allowed=f"width: {width:g}, height: {height:g}",
        )


def is_sumo(cfg: Mobility) -> bool:
    """Whether a mobility configuration is driven by SUMO."""
    return cfg.model in SUMO_MODELS

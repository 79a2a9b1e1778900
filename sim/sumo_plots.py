"""Maps of a SUMO-driven run: the road network, the edge servers and the vehicles.

:func:`plot_network_snapshot` draws one map: every lane of the network as a thin line, the
servers as numbered triangles, and the vehicles on the road at one moment, coloured by a
per-vehicle value (the latency of their tasks) or by the server their tasks went to.

:func:`plot_sumo_run` makes the two maps of a finished run from its task table: it rebuilds
the run's mobility model from the scenario and seeds, moves it to the snapshot time with
the same steps as the engine (for the ``sumo`` model this runs SUMO again up to that time,
with the same seed) and reduces the tasks that arrived around that time per vehicle.

Matplotlib is imported inside the functions and drawn with the Agg canvas directly, as in
:mod:`sim.plots`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from sim.sumo import RoadNetwork

__all__ = ["SNAPSHOT_FIGURES", "Snapshot", "plot_network_snapshot", "plot_sumo_run", "snapshot"]

SNAPSHOT_FIGURES = ("network_latency", "network_servers")
"""Figure names of :func:`plot_sumo_run`; each is written as PNG and SVG."""

_WINDOW = 1.0  # s of task arrivals around the snapshot time that colour the vehicles


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def plot_network_snapshot(
    path: str | Path,
    network: RoadNetwork | None,
    server_positions: np.ndarray,
    vehicle_positions: np.ndarray,
    values: np.ndarray | None = None,
    *,
    kind: Literal["latency", "server"] = "latency",
    title: str = "",
    area: tuple[float, float] | None = None,
) -> Path:
    """Draw a map of the network with servers and vehicles and save it to ``path``.

    Args:
        path: output file; its suffix chooses the format (``.png``, ``.svg``, ...).
        network: the road network whose lanes are drawn (None: no roads, e.g. a trace
            without its network).
        server_positions: ``(M, 2)`` server sites [m], labelled by their index.
        vehicle_positions: ``(k, 2)`` positions of the vehicles to draw [m] (only those on
            the road).
        values: ``(k,)`` per vehicle: with ``kind="latency"`` a latency [s] (NaN: no task
            to show, drawn hollow); with ``kind="server"`` the server index its tasks went
            to (-1: computed on board, drawn as a cross; -2: no task, drawn hollow),
            joined to its server by a thin line.
        kind: what ``values`` holds.
        title: figure title.
        area: ``(width, height)`` drawn as a dotted frame when given and there is no
            network to draw.

    Returns:
        ``Path(path)``.
    """
    import matplotlib
    from matplotlib.collections import LineCollection

    path = Path(path)
    vehicles = np.asarray(vehicle_positions, dtype=np.float64).reshape(-1, 2)
    servers = np.asarray(server_positions, dtype=np.float64).reshape(-1, 2)
    k = vehicles.shape[0]
    if values is None:
        values = np.full(k, np.nan if kind == "latency" else -2.0)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.shape[0] != k:
        raise ValueError(f"values has {values.shape[0]} entries for {k} vehicles")
    if kind not in ("latency", "server"):
        raise ValueError(f"kind must be 'latency' or 'server', got {kind!r}")

    with matplotlib.rc_context({"font.size": 10, "savefig.dpi": 150, "svg.hashsalt": "qvecsim"}):
        fig = _figure(7.0, 6.2)
        ax = fig.add_axes((0.09, 0.08, 0.76, 0.84))
        if network is not None:
            lanes = [lane for edge in network.lanes for lane in edge]
            ax.add_collection(LineCollection(lanes, colors="0.72", linewidths=0.8, zorder=1))
        if area is not None and network is None:
            w, h = area
            ax.plot([0, w, w, 0, 0], [0, 0, h, h, 0], ls=":", color="0.5", lw=0.8, zorder=1)
        hollow = ~np.isfinite(values) if kind == "latency" else values == -2
        if hollow.any():
            ax.scatter(
                *vehicles[hollow].T,
                s=22,
                facecolors="none",
                edgecolors="0.45",
                linewidths=0.8,
                zorder=3,
                label="no task in the window",
            )
        if kind == "latency":
            shown = ~hollow
            if shown.any():
                ms = values[shown] * 1e3
                points = ax.scatter(
                    *vehicles[shown].T, c=ms, cmap="viridis", s=26, zorder=4, edgecolors="none"
                )
                cax = fig.add_axes((0.87, 0.08, 0.03, 0.84))
                fig.colorbar(points, cax=cax, label="mean latency [ms]")
        else:
            cmap = matplotlib.colormaps["tab20"]
            local = values == -1
            served = np.flatnonzero(values >= 0)
            if served.size:
                srv = values[served].astype(np.int64)
                colours = cmap(srv % 20)
                links = np.stack([vehicles[served], servers[srv]], axis=1)
                ax.add_collection(
                    LineCollection(links, colors=colours, linewidths=0.6, alpha=0.6, zorder=2)
                )
                ax.scatter(*vehicles[served].T, c=colours, s=26, zorder=4, edgecolors="none")
            if local.any():
                ax.scatter(
                    *vehicles[local].T,
                    marker="x",
                    c="black",
                    s=26,
                    zorder=4,
                    linewidths=1.0,
                    label="computed on board",
                )
        server_colours = (
            matplotlib.colormaps["tab20"](np.arange(servers.shape[0]) % 20)
            if kind == "server"
            else "black"
        )
        ax.scatter(
            *servers.T,
            marker="^",
            s=90,
            c=server_colours,
            edgecolors="black",
            linewidths=0.8,
            zorder=5,
            label="edge server",
        )
        for j, (x, y) in enumerate(servers.tolist()):
            ax.annotate(
                str(j), (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8, zorder=6
            )
        ax.set_aspect("equal", adjustable="datalim")
        ax.autoscale_view()
        ax.set_xlabel("x [m]")
        ax.set_ylabel("y [m]")
        ax.grid(True, alpha=0.2)
        if title:
            ax.set_title(title)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"Date": None} if path.suffix == ".svg" else {"Software": None}
        fig.savefig(path, metadata=meta)
    return path


class Snapshot:
    """Vehicles on the road at one simulated time, with their tasks around it.

    Attributes:
        time: simulated time [s] of the positions.
        slots: ``(k,)`` the vehicle slots on the road.
        positions: ``(k, 2)`` their positions [m].
        latency: ``(k,)`` mean latency [s] of their completed tasks arriving within the
            window around ``time`` (NaN: none).
        server: ``(k,)`` the server of their last task in the window (-1: local, -2: none).
    """

    def __init__(
        self,
        time: float,
        slots: np.ndarray,
        positions: np.ndarray,
        latency: np.ndarray,
        server: np.ndarray,
    ) -> None:
        self.time = time
        self.slots = slots
        self.positions = positions
        self.latency = latency
        self.server = server


def _tasks_in_window(table: Any, lo: float, hi: float) -> dict[str, np.ndarray]:
    """Columns vehicle, arrival, latency, server, status of the tasks arriving in [lo, hi)."""
    import pyarrow.dataset as ds

    columns = ["vehicle", "arrival", "latency", "server", "status"]
    if isinstance(table, (str, Path)):
        data = ds.dataset(str(table), format="parquet")
        arrival = ds.field("arrival")
        got = data.to_table(columns=columns, filter=(arrival >= lo) & (arrival < hi))
        return {c: got.column(c).to_numpy() for c in columns}
    cols = {c: np.asarray(table[c]) for c in columns}
    keep = (cols["arrival"] >= lo) & (cols["arrival"] < hi)
    return {c: v[keep] for c, v in cols.items()}


def snapshot(
    scenario: Any,
    table: Any,
    time: float | None = None,
    seed_path: Sequence[int] = (),
    window: float = _WINDOW,
) -> Snapshot:
    """The vehicles of a finished run at simulated ``time`` (default: the mobility step
    nearest the middle of the horizon), with the tasks arriving within ``window`` seconds
    around it, from ``table`` (a ``tasks.parquet`` path or a mapping of columns)."""
    from sim.mobility import make_mobility
    from sim.seeds import SeedTree

    step = scenario.epochs_per_mobility_step * float(scenario.engine.epoch)
    horizon = float(scenario.engine.horizon)
    target = 0.5 * horizon if time is None else float(time)
    k = max(0, min(round(target / step), math.ceil(horizon / step - 1e-9) - 1))
    seeds = SeedTree(scenario.seed, tuple(seed_path))
    model = make_mobility(scenario.mobility, scenario.vehicles.count, seeds.generator("mobility"))
    try:
        for _ in range(k):
            model.advance(step)
        slots = np.flatnonzero(model.present)
        positions = model.positions[slots].copy()
    finally:
        model.close()
    t = model.time
    half = 0.5 * max(window, step)
    tasks = _tasks_in_window(table, t - half, t + half)
    n = int(scenario.vehicles.count)
    done = (tasks["status"] == 0) & np.isfinite(tasks["latency"])
    vehicle = tasks["vehicle"].astype(np.int64)
    total = np.bincount(vehicle[done], tasks["latency"][done], minlength=n)
    count = np.bincount(vehicle[done], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        latency = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    server = np.full(n, -2, dtype=np.int64)
    order = np.argsort(tasks["arrival"], kind="stable")
    server[vehicle[order]] = tasks["server"].astype(np.int64)[order]  # the last one wins
    return Snapshot(t, slots, positions, latency[slots], server[slots])


def plot_sumo_run(
    figures_dir: str | Path,
    scenario: Any,
    table: Any,
    seed_path: Sequence[int] = (),
    server_positions: np.ndarray | None = None,
    time: float | None = None,
) -> list[Path]:
    """Write the maps of a SUMO-driven run (:data:`SNAPSHOT_FIGURES`, PNG and SVG) into
    ``figures_dir`` and return their paths; ``table`` is the run's ``tasks.parquet`` (or a
    mapping of its columns). Nothing is written for a scenario without SUMO mobility."""
    from sim.config import SUMO_MODELS
    from sim.placement import place_servers
    from sim.sumo import network_of

    if scenario.mobility.model not in SUMO_MODELS:
        return []
    network = network_of(scenario.mobility)
    if server_positions is None:
        server_positions = place_servers(scenario.servers, scenario.mobility.area, network)
    snap = snapshot(scenario, table, time, seed_path)
    area = (float(scenario.mobility.area.width), float(scenario.mobility.area.height))
    when = f"t = {snap.time:g} s, {snap.slots.size} vehicles"
    out = []
    for name, kind, values, what in (
        ("network_latency", "latency", snap.latency, "mean task latency"),
        ("network_servers", "server", snap.server.astype(np.float64), "server of the tasks"),
    ):
        for suffix in (".png", ".svg"):
            out.append(
                plot_network_snapshot(
                    Path(figures_dir) / f"{name}{suffix}",
                    network,
                    server_positions,
                    snap.positions,
                    values,
                    kind=kind,  # type: ignore[arg-type]
                    title=f"{scenario.name}: {what} ({when})",
                    area=area,
                )
            )
    return out

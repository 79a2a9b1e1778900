"""Where the edge servers stand, and what each one has (CPU per core, cores, bandwidth).

Placement is deterministic: the same configuration gives the same sites, so runs that
differ in anything else share their server layout. Sites are in the frame of the mobility
model: the area ``[0, width] x [0, height]``, or a SUMO network's own coordinates, where
servers can also stand at junctions or along the roads.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from sim.config import Area, Servers

if TYPE_CHECKING:
    from sim.sumo import RoadNetwork

__all__ = [
    "grid_shape",
    "junction_sites",
    "network_sites",
    "place_servers",
    "road_sites",
    "server_attributes",
]


def grid_shape(count: int, width: float = 1.0, height: float = 1.0) -> tuple[int, int]:
    """``(rows, cols)`` of the most nearly square grid with at least ``count`` cells.

    The grid has ``ceil(sqrt(count))`` cells along the longer side of the area and as few
    along the shorter side as fit ``count`` (along x when the area is square), so it never
    has a whole empty row or column: 2 -> 1 x 2, 3 -> 2 x 2, 5 -> 2 x 3, 100 -> 10 x 10.
    """
    if count < 1:
        raise ValueError(f"a grid needs at least one cell, got count={count}")
    long_side = math.isqrt(count - 1) + 1
    short_side = -(-count // long_side)
    if height > width:
        return long_side, short_side
    return short_side, long_side


def junction_sites(
    network: RoadNetwork,
    count: int | None = None,
    min_spacing: float = 0.0,
    select: str = "spread",
) -> np.ndarray:
    """Junctions of ``network`` chosen as server sites, ``(k, 2)`` in the order chosen.

    Junctions are considered in the order of ``select``, each taken unless it is closer
    than ``min_spacing`` to one already taken, until ``count`` are taken (all that qualify
    when ``count`` is None):

    * ``spread``: first the junction nearest the centroid of all junctions, then each time
      the junction farthest from those already taken (farthest-point order, which spreads
      the sites evenly; ties go to the lowest junction id);
    * ``largest``: by number of incoming lanes, most first (ties by junction id).

    Raises ``ValueError`` when fewer than ``count`` junctions qualify.
    """
    xy = network.junction_xy
    j = xy.shape[0]
    if j == 0:
        raise ValueError(f"the network {network.path} has no junctions")
    if select not in ("spread", "largest"):
        raise ValueError(f"unknown junction selection {select!r}; known: spread, largest")
    want = j if count is None else int(count)
    taken: list[int] = []
    if select == "spread":
        # farthest-point order; a junction closer than min_spacing to a taken one is never
        # farther than the next pick, so the order stops at the first such pick
        centre = xy.mean(axis=0)
        k = int(np.argmin(np.hypot(*(xy - centre).T)))
        nearest = np.full(j, np.inf)
        while len(taken) < want:
            taken.append(k)
            np.minimum(nearest, np.hypot(*(xy - xy[k]).T), out=nearest)
            k = int(np.argmax(nearest))
            if not nearest[k] > 0.0 or nearest[k] < min_spacing:
                break
    else:
        order = np.lexsort((np.arange(j), -network.junction_incoming))
        for k in order.tolist():
            if len(taken) == want:
                break
            if taken and np.hypot(*(xy[taken] - xy[k]).T).min() < min_spacing:
                continue
            taken.append(k)
    if count is not None and len(taken) < count:
        spacing = f" at least {min_spacing:g} m apart" if min_spacing > 0 else ""
        raise ValueError(
            f"servers.count is {count} but the network has only {len(taken)} distinct "
            f"junctions{spacing}"
        )
    return xy[taken].copy()


def road_sites(network: RoadNetwork, spacing: float) -> np.ndarray:
    """Sites along the roads of ``network`` (:meth:`RoadNetwork.roads`), ``spacing`` apart.

    Candidate points every ``spacing / 4`` along each road (both ends included), roads in
    edge id order, are taken in turn unless closer than ``spacing`` to a site already
    taken. The sites are thus pairwise at least ``spacing`` apart, and every candidate point
    is within ``spacing`` of one; along a straight road they fall exactly every
    ``spacing`` metres from its start.
    """
    spacing = float(spacing)
    if not spacing > 0.0:
        raise ValueError(f"spacing must be > 0 m, got {spacing}")
    cells: dict[tuple[int, int], list[int]] = {}
    sites: list[tuple[float, float]] = []
    limit = spacing * (1.0 - 1e-9)  # candidates exactly one spacing apart are kept
    for line in network.roads():
        seg = np.hypot(*np.diff(line, axis=0).T)
        along = np.concatenate([[0.0], np.cumsum(seg)])
        length = float(along[-1])
        steps = max(1, math.ceil(length / (0.25 * spacing) - 1e-9))
        s = np.minimum(np.arange(steps + 1) * (0.25 * spacing), length)
        pts = np.column_stack([np.interp(s, along, line[:, 0]), np.interp(s, along, line[:, 1])])
        for x, y in pts.tolist():
            cx, cy = math.floor(x / spacing), math.floor(y / spacing)
            near = (
                k
                for dx in (-1, 0, 1)
                for dy in (-1, 0, 1)
                for k in cells.get((cx + dx, cy + dy), ())
            )
            if any(math.hypot(x - sites[k][0], y - sites[k][1]) < limit for k in near):
                continue
            cells.setdefault((cx, cy), []).append(len(sites))
            sites.append((x, y))
    if not sites:
        raise ValueError(f"the network {network.path} has no road that cars use")
    return np.array(sites, dtype=np.float64)


def network_sites(cfg: Servers, network: RoadNetwork, count: int | None) -> np.ndarray:
    """Sites of placement ``junctions`` or ``roads`` on ``network``; ``count`` None takes
    every site the placement finds, otherwise it must be able to give ``count`` (roads:
    exactly ``count``). Raises ``ValueError`` saying what the network gives."""
    if cfg.placement == "junctions":
        return junction_sites(network, count, float(cfg.min_spacing or 0.0), cfg.select or "spread")
    if cfg.placement == "roads":
        sites = road_sites(network, float(cfg.spacing))  # type: ignore[arg-type]
        if count is not None and sites.shape[0] != count:
            raise ValueError(
                f"servers.count is {count} but placement 'roads' with spacing "
                f"{cfg.spacing:g} m gives {sites.shape[0]} sites; leave count out to take it "
                f"from the roads"
            )
        return sites
    raise ValueError(f"placement {cfg.placement!r} does not come from a road network")


def place_servers(cfg: Servers, area: Area, network: RoadNetwork | None = None) -> np.ndarray:
    """The ``(M, 2)`` server positions [m] for ``cfg.placement``.

    * ``grid``: the centres of the cells of :func:`grid_shape` over the area, the first
      ``M`` cells in row-major order starting from the cell at the origin (row 0 is the
      lowest y, column 0 the lowest x), so a partly filled grid leaves its top row short.
    * ``line``: the centres of ``M`` equal segments of the x axis, at mid height.
    * ``list``: the positions of ``cfg.sites``, which must lie inside the area.
    * ``junctions``: ``M`` junctions of the SUMO ``network`` (:func:`junction_sites`).
    * ``roads``: the sites along the roads of ``network`` (:func:`road_sites`), which must
      number ``M``.
    """
    m = int(cfg.count)
    if cfg.placement in ("junctions", "roads"):
        if network is None:
            raise ValueError(
                f"server placement {cfg.placement!r} needs a SUMO road network "
                f"(mobility model sumo, or sumo-trace with mobility.net)"
            )
        return network_sites(cfg, network, m)
    width, height = float(area.width), float(area.height)
    if cfg.placement == "grid":
        rows, cols = grid_shape(m, width, height)
        k = np.arange(m)
        x = (k % cols + 0.5) * (width / cols)
        y = (k // cols + 0.5) * (height / rows)
        return np.column_stack([x, y])
    if cfg.placement == "line":
        x = (np.arange(m) + 0.5) * (width / m)
        return np.column_stack([x, np.full(m, 0.5 * height)])
    if cfg.placement == "list":
        if len(cfg.sites) != m:
            raise ValueError(
                f"placement 'list' needs one site per server: count is {m}, "
                f"sites has {len(cfg.sites)}"
            )
        positions = np.array([site.position for site in cfg.sites], dtype=np.float64)
        positions = positions.reshape(m, 2)
        outside = np.flatnonzero(
            (positions[:, 0] < 0)
            | (positions[:, 0] > width)
            | (positions[:, 1] < 0)
            | (positions[:, 1] > height)
        )
        if outside.size:
            k = int(outside[0])
            raise ValueError(
                f"servers.sites[{k}] at {tuple(positions[k].tolist())} m is "
                f"outside the area [0, {width:g}] x [0, {height:g}] m"
            )
        return positions
    raise ValueError(
        f"unknown server placement {cfg.placement!r}; known: grid, line, list, junctions, roads"
    )


def server_attributes(cfg: Servers) -> dict[str, np.ndarray]:
    """Per-server ``cpu`` (M,) [cycles/s per core], ``cores`` (M,) int64, ``bandwidth``
    (M,) [Hz]: a site's own value where ``cfg.sites`` sets one, else the ``cfg`` default.
    """
    m = int(cfg.count)
    cpu = np.full(m, float(cfg.cpu))
    cores = np.full(m, int(cfg.cores), dtype=np.int64)
    bandwidth = np.full(m, float(cfg.bandwidth))
    for k, site in enumerate(cfg.sites[:m]):
        if site.cpu is not None:
            cpu[k] = site.cpu
        if site.cores is not None:
            cores[k] = site.cores
        if site.bandwidth is not None:
            bandwidth[k] = site.bandwidth
    return {"cpu": cpu, "cores": cores, "bandwidth": bandwidth}

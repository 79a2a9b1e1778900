"""Where the edge servers stand, and what each one has (CPU per core, cores, bandwidth).

Placement is deterministic: the same configuration gives the same sites, so runs that
differ in anything else share their server layout.
"""

from __future__ import annotations

import math

import numpy as np

from sim.config import Area, Servers

__all__ = ["grid_shape", "place_servers", "server_attributes"]


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


def place_servers(cfg: Servers, area: Area) -> np.ndarray:
    """The ``(M, 2)`` server positions [m] for ``cfg.placement``.

    * ``grid``: the centres of the cells of :func:`grid_shape` over the area, the first
      ``M`` cells in row-major order starting from the cell at the origin (row 0 is the
      lowest y, column 0 the lowest x), so a partly filled grid leaves its top row short.
    * ``line``: the centres of ``M`` equal segments of the x axis, at mid height.
    * ``list``: the positions of ``cfg.sites``, which must lie inside the area.
    """
    m = int(cfg.count)
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
    raise ValueError(f"unknown server placement {cfg.placement!r}; known: grid, line, list")


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

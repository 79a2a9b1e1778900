"""The wireless channel of eqs. [3] and [10]: path loss, block fading, interference, rate.

Gains are computed for every (vehicle, server) pair once per mobility step with chunked
numpy (faster than a compiled loop for this dense, transcendental-heavy work on these CPUs);
rates are then evaluated per transmission from the gain, the bandwidth share and the power.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_CHUNK = 1 << 16  # pairs per chunk keeps temporaries in cache-friendly sizes


def shannon_rate(bandwidth, rx_power, noise_plus_interference):
    """R = B log2(1 + p h / (I + N0)) [bit/s] of eq. [10]; arguments broadcast."""
    return bandwidth * np.log2(1.0 + rx_power / noise_plus_interference)


def path_gain(
    distance, reference_gain: float, reference_distance: float, exponent: float, min_distance: float
):
    """h = g0 (d / d0)^-alpha of eq. [3], with d clipped below at ``min_distance``."""
    d = np.maximum(distance, min_distance)
    return reference_gain * (d / reference_distance) ** (-exponent)


def gain_matrix(
    vehicles: np.ndarray, servers: np.ndarray, cfg, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Path gain (N, M) and squared distance (N, M) between every vehicle and server."""
    n, m = vehicles.shape[0], servers.shape[0]
    gain = np.empty((n, m)) if out is None else out
    dist2 = np.empty((n, m))
    rows = max(1, _CHUNK // max(m, 1))
    half_exp = -0.5 * cfg.path_loss_exponent
    d0 = cfg.reference_distance
    dmin2 = cfg.min_distance**2
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        dx = vehicles[lo:hi, 0:1] - servers[None, :, 0]
        dy = vehicles[lo:hi, 1:2] - servers[None, :, 1]
        d2 = dx * dx + dy * dy
        dist2[lo:hi] = d2
        np.maximum(d2, dmin2, out=d2)
        if cfg.path_loss_exponent == 2.0:
            np.divide(cfg.reference_gain * d0 * d0, d2, out=gain[lo:hi])
        else:
            d2 /= d0 * d0
            np.power(d2, half_exp, out=d2)
            d2 *= cfg.reference_gain
            gain[lo:hi] = d2
    return gain, dist2


def fading_power(rng: np.random.Generator, model: str, rician_k: float, shape) -> np.ndarray:
    """Small-scale fading power |h|^2 with unit mean: Rayleigh (Exp(1)) or Rician (K)."""
    if model == "rayleigh":
        return rng.standard_exponential(shape)
    if model == "rician":
        k = float(rician_k)
        los = np.sqrt(k / (k + 1.0))
        s = np.sqrt(0.5 / (k + 1.0))
        re = los + s * rng.standard_normal(shape)
        im = s * rng.standard_normal(shape)
        return re * re + im * im
    raise ValueError(f"unknown fading model {model!r}; known: none, rayleigh, rician")


def interference(
    gain: np.ndarray, serving: np.ndarray, power: np.ndarray, activity: float
) -> np.ndarray:
    """Mean co-channel interference I_j [W] at each server (mean-field).

    Vehicles share their own server's band orthogonally, so only vehicles served by another
    server interfere; each transmits with probability ``activity`` at power ``power``:
    I_j = activity * sum_{k: serving_k != j} p_k h_kj.
    """
    n, m = gain.shape
    rx = gain * power[:, None]
    total = rx.sum(axis=0)
    own = np.zeros(m)
    np.add.at(own, serving, rx[np.arange(n), serving])
    return activity * np.maximum(total - own, 0.0)


@njit(cache=True)
def _brute_nearest(vehicles: np.ndarray, servers: np.ndarray) -> np.ndarray:
    n, m = vehicles.shape[0], servers.shape[0]
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        x, y = vehicles[i, 0], vehicles[i, 1]
        best = np.inf
        arg = 0
        for j in range(m):
            dx = x - servers[j, 0]
            dy = y - servers[j, 1]
            d2 = dx * dx + dy * dy
            if d2 < best:
                best = d2
                arg = j
        out[i] = arg
    return out


@njit(cache=True)
def _cell_candidates(servers, x0, y0, cell, nx, ny):
    """For each grid cell, every server that can be the nearest to some point of the cell,
    in index order: (start (nx * ny + 1,), members).

    A server is kept when its distance to the cell is at most the smallest, over servers,
    of the largest distance from the cell (with a relative margin against rounding), so
    the nearest server of any point in the cell, and every server tied with it, is kept.
    """
    m = servers.shape[0]
    n_cells = nx * ny
    limit = np.empty(n_cells)
    for gy in range(ny):
        ay = y0 + gy * cell
        by = ay + cell
        for gx in range(nx):
            ax = x0 + gx * cell
            bx = ax + cell
            best = np.inf
            for j in range(m):
                sx, sy = servers[j, 0], servers[j, 1]
                dx = max(abs(sx - ax), abs(sx - bx))
                dy = max(abs(sy - ay), abs(sy - by))
                best = min(best, dx * dx + dy * dy)
            limit[gy * nx + gx] = best * (1.0 + 1e-9) + 1e-12
    count = np.zeros(n_cells + 1, dtype=np.int64)
    for phase in range(2):
        if phase == 1:
            for c in range(n_cells):
                count[c + 1] += count[c]
            members = np.empty(count[n_cells], dtype=np.int64)
            fill = count[:-1].copy()
        for gy in range(ny):
            ay = y0 + gy * cell
            by = ay + cell
            for gx in range(nx):
                ax = x0 + gx * cell
                bx = ax + cell
                c = gy * nx + gx
                for j in range(m):
                    sx, sy = servers[j, 0], servers[j, 1]
                    dx = max(ax - sx, 0.0, sx - bx)
                    dy = max(ay - sy, 0.0, sy - by)
                    if dx * dx + dy * dy <= limit[c]:
                        if phase == 0:
                            count[c + 1] += 1
                        else:
                            members[fill[c]] = j
                            fill[c] += 1
    return count, members


@njit(cache=True)
def _grid_nearest(vehicles, servers, x0, y0, cell, nx, ny, start, members):
    """Nearest server of each vehicle from its cell's candidates (lowest index on ties);
    a vehicle outside the grid is compared with every server. Returns (nearest, number
    of vehicles outside)."""
    n = vehicles.shape[0]
    m = servers.shape[0]
    out = np.empty(n, dtype=np.int64)
    outside = 0
    for i in range(n):
        x, y = vehicles[i, 0], vehicles[i, 1]
        fx = (x - x0) / cell
        fy = (y - y0) / cell
        best = np.inf
        arg = 0
        if 0.0 <= fx < nx and 0.0 <= fy < ny:
            c = int(fy) * nx + int(fx)
            for p in range(start[c], start[c + 1]):
                j = members[p]
                dx = x - servers[j, 0]
                dy = y - servers[j, 1]
                d2 = dx * dx + dy * dy
                if d2 < best:
                    best = d2
                    arg = j
        else:
            outside += 1
            for j in range(m):
                dx = x - servers[j, 0]
                dy = y - servers[j, 1]
                d2 = dx * dx + dy * dy
                if d2 < best:
                    best = d2
                    arg = j
        out[i] = arg
    return out, outside


class ServerGrid:
    """Nearest-server queries through a grid of cells, each listing the servers that can
    be nearest to a point inside it (exact, lowest index on ties).

    The grid covers the servers and the given points near them, with about four cells per
    server; queries outside it fall back to a full scan.
    """

    def __init__(self, servers: np.ndarray, points: np.ndarray | None = None) -> None:
        servers = np.ascontiguousarray(servers, dtype=np.float64)
        self.servers = servers
        m = servers.shape[0]
        lo = servers.min(axis=0)
        hi = servers.max(axis=0)
        if points is not None and points.shape[0]:
            # cover the points near the servers; far ones (e.g. parked vehicles) are scanned
            reach = max(float((hi - lo).max()), 1.0)
            near = np.all((points >= lo - reach) & (points <= hi + reach), axis=1)
            if near.any():
                lo = np.minimum(lo, points[near].min(axis=0))
                hi = np.maximum(hi, points[near].max(axis=0))
        span = np.maximum(hi - lo, 1e-6)
        lo = lo - 0.01 * span
        span = span * 1.02
        cells = min(4 * m, 1 << 16)
        cell = float(max(math.sqrt(span[0] * span[1] / cells), span.max() / cells))
        self.x0, self.y0 = float(lo[0]), float(lo[1])
        self.cell = cell
        self.nx = max(1, math.ceil(span[0] / cell))
        self.ny = max(1, math.ceil(span[1] / cell))
        self.start, self.members = _cell_candidates(
            servers, self.x0, self.y0, cell, self.nx, self.ny
        )

    def nearest(self, vehicles: np.ndarray) -> tuple[np.ndarray, int]:
        """(nearest server of each vehicle, number of vehicles outside the grid)."""
        return _grid_nearest(
            np.ascontiguousarray(vehicles, dtype=np.float64),
            self.servers,
            self.x0,
            self.y0,
            self.cell,
            self.nx,
            self.ny,
            self.start,
            self.members,
        )


_GRID_MIN_SERVERS = 16
_grids: dict[bytes, ServerGrid] = {}


def nearest_server(vehicles: np.ndarray, servers: np.ndarray) -> np.ndarray:
    """Index of the nearest server of each vehicle (lowest index on ties).

    A few servers are scanned in full; more are looked up through a :class:`ServerGrid`
    built once per server layout (covering the vehicles of the first call that are near
    the servers) and kept.
    """
    if servers.shape[0] < _GRID_MIN_SERVERS:
        return _brute_nearest(vehicles, servers)
    key = np.ascontiguousarray(servers, dtype=np.float64).tobytes()
    grid = _grids.get(key)
    if grid is None:
        if len(_grids) >= 8:
            _grids.clear()
        grid = _grids[key] = ServerGrid(servers, vehicles)
    out, _ = grid.nearest(vehicles)
    return out


@njit(cache=True, inline="always")
def pair_gain(vx, vy, sx, sy, reference_gain, reference_distance, exponent, min_distance):
    """Path gain of eq. [3] for one pair (the scalar twin of :func:`path_gain`)."""
    dx = vx - sx
    dy = vy - sy
    d2 = max(dx * dx + dy * dy, min_distance * min_distance)
    if exponent == 2.0:
        return reference_gain * reference_distance * reference_distance / d2
    return reference_gain * (np.sqrt(d2) / reference_distance) ** (-exponent)


@njit(cache=True)
def _pair_gains(
    vehicles, servers, vehicle, server, reference_gain, reference_distance, exponent, min_distance
):
    out = np.empty(vehicle.shape[0])
    for k in range(vehicle.shape[0]):
        v = vehicle[k]
        s = server[k]
        out[k] = pair_gain(
            vehicles[v, 0],
            vehicles[v, 1],
            servers[s, 0],
            servers[s, 1],
            reference_gain,
            reference_distance,
            exponent,
            min_distance,
        )
    return out


class ChannelState:
    """The channel during one mobility step, computed only as far as it is asked for.

    ``nearest`` and ``cell_size`` are always computed (cheap); the full gain matrix (N, M),
    the candidate lists and the interference are computed on first use, so a policy that
    needs only its vehicles' serving cells never pays for N x M work.
    """

    def __init__(
        self,
        vehicles: np.ndarray,
        servers: np.ndarray,
        cfg,
        power_max: np.ndarray,
        fading: np.ndarray | None,
        k_candidates: int,
    ) -> None:
        self.vehicles = vehicles
        self.servers = servers
        self.cfg = cfg
        self.power_max = power_max
        self.fading = fading
        self.k = k_candidates
        self.nearest = nearest_server(vehicles, servers)
        self.cell_size = np.bincount(self.nearest, minlength=servers.shape[0])
        self._gain = self._dist2 = self._candidates = self._interference = None

    def _matrices(self) -> None:
        path, dist2 = gain_matrix(self.vehicles, self.servers, self.cfg)
        self._gain = path * self.fading if self.fading is not None else path
        self._gain.flags.writeable = False
        self._dist2 = dist2

    @property
    def gain(self) -> np.ndarray:
        """Channel power gain h_ij (N, M), fading included."""
        if self._gain is None:
            self._matrices()
        return self._gain

    @property
    def computed_gain(self) -> np.ndarray | None:
        """The (N, M) gain matrix if something has asked for it already, else None (then
        :meth:`gain_of` computes the pairs it is given from the path-loss formula)."""
        return self._gain

    def gain_of(self, vehicle: np.ndarray, server: np.ndarray) -> np.ndarray:
        """Gain h_ij of the given (vehicle, server) pairs (broadcast), fading included,
        without computing the full matrix."""
        if self._gain is not None:
            return self._gain[vehicle, server]
        vehicle, server = np.broadcast_arrays(
            np.asarray(vehicle, dtype=np.int64), np.asarray(server, dtype=np.int64)
        )
        c = self.cfg
        g = _pair_gains(
            self.vehicles,
            self.servers,
            vehicle.ravel(),
            server.ravel(),
            c.reference_gain,
            c.reference_distance,
            c.path_loss_exponent,
            c.min_distance,
        ).reshape(vehicle.shape)
        if self.fading is not None:
            g *= self.fading[vehicle, server]
        return g

    @property
    def candidates(self) -> np.ndarray:
        """The k nearest servers of each vehicle (N, k), nearest first."""
        if self._candidates is None:
            if self._dist2 is None:
                self._matrices()
            d2, k, m = self._dist2, self.k, self.servers.shape[0]
            if k == m:
                cand = np.argsort(d2, axis=1, kind="stable")
            else:
                part = np.argpartition(d2, k - 1, axis=1)[:, :k]
                d = np.take_along_axis(d2, part, axis=1)
                cand = np.take_along_axis(part, np.argsort(d, axis=1, kind="stable"), axis=1)
            cand = cand.astype(np.int64)
            # the first candidate is the serving cell, also when distances tie
            for row in np.flatnonzero(cand[:, 0] != self.nearest):
                hit = np.flatnonzero(cand[row] == self.nearest[row])
                if hit.size:
                    cand[row, hit[0]] = cand[row, 0]
                cand[row, 0] = self.nearest[row]
            self._candidates = cand
        return self._candidates

    @property
    def interference(self) -> np.ndarray:
        """Mean co-channel interference at each server [W] (zeros when disabled)."""
        if self._interference is None:
            icfg = self.cfg.interference
            if icfg.enabled:
                self._interference = interference(
                    self.gain, self.nearest, self.power_max, icfg.activity
                )
            else:
                self._interference = np.zeros(self.servers.shape[0])
        return self._interference

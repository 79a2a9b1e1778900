"""The wireless channel of eqs. [3] and [10]: path loss, block fading, interference, rate.

Gains are computed for every (vehicle, server) pair once per mobility step with chunked
numpy (faster than a compiled loop for this dense, transcendental-heavy work on these CPUs);
rates are then evaluated per transmission from the gain, the bandwidth share and the power.
"""

from __future__ import annotations

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
def nearest_server(vehicles: np.ndarray, servers: np.ndarray) -> np.ndarray:
    """Index of the nearest server of each vehicle (lowest index on ties)."""
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

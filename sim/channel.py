"""The wireless channel of eqs. [3] and [10]: path loss, block fading, interference, rate.

Gains are computed for every (vehicle, server) pair once per mobility step with chunked
numpy (faster than a compiled loop for this dense, transcendental-heavy work on these CPUs);
rates are then evaluated per transmission from the gain, the bandwidth share and the power.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 1 << 16  # pairs per chunk keeps temporaries in cache-friendly sizes


def shannon_rate(bandwidth, rx_power, noise_plus_interference):
    """R = B log2(1 + p h / (I + N0)) [bit/s] of eq. [10]; arguments broadcast."""
    return bandwidth * np.log2(1.0 + rx_power / noise_plus_interference)


def path_gain(distance, reference_gain: float, reference_distance: float, exponent: float,
              min_distance: float):
    """h = g0 (d / d0)^-alpha of eq. [3], with d clipped below at ``min_distance``."""
    d = np.maximum(distance, min_distance)
    return reference_gain * (d / reference_distance) ** (-exponent)


def gain_matrix(vehicles: np.ndarray, servers: np.ndarray, cfg, out: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Path gain (N, M) and squared distance (N, M) between every vehicle and server."""
    n, m = vehicles.shape[0], servers.shape[0]
    gain = np.empty((n, m)) if out is None else out
    dist2 = np.empty((n, m))
    rows = max(1, _CHUNK // max(m, 1))
    half_exp = -0.5 * cfg.path_loss_exponent
    d0 = cfg.reference_distance
    dmin2 = cfg.min_distance ** 2
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        dx = vehicles[lo:hi, 0:1] - servers[None, :, 0]
        dy = vehicles[lo:hi, 1:2] - servers[None, :, 1]
        d2 = dx * dx + dy * dy
        dist2[lo:hi] = d2
        np.maximum(d2, dmin2, out=d2)
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


def interference(gain: np.ndarray, serving: np.ndarray, power: np.ndarray, activity: float
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

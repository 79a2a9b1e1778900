"""Named random streams spawned from one SeedSequence per run.

There is no global random state: each component takes the :class:`numpy.random.Generator`
of its own stream. Streams are keyed by name, so adding a stream never shifts the draws of
another, and runs that differ only in policy see the same arrivals, sizes, mobility and
fading (common random numbers).
"""

from __future__ import annotations

import hashlib

import numpy as np

STREAMS = (
    "mobility",
    "arrivals",
    "task_sizes",
    "fading",
    "qpu_shots",
    "policy",
    "placement",
    "twin",
    "qpu_inputs",
)


def _name_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


class SeedTree:
    """The random streams of one run, derived from ``(root seed, path)``.

    ``path`` identifies the run inside a sweep (e.g. ``(point, replication)``); the stream
    for ``name`` is ``SeedSequence(root, spawn_key=path + (hash(name),))``, so it depends
    only on the root seed, the run's path and the stream's name.
    """

    def __init__(self, root: int, path: tuple[int, ...] = ()) -> None:
        self.root = int(root)
        self.path = tuple(int(p) for p in path)

    def sequence(self, name: str) -> np.random.SeedSequence:
        if name not in STREAMS:
            raise KeyError(f"unknown random stream {name!r}; known: {', '.join(STREAMS)}")
        return np.random.SeedSequence(self.root, spawn_key=(*self.path, _name_key(name)))

    def generator(self, name: str) -> np.random.Generator:
        """A fresh generator for stream ``name`` (same draws every time it is asked for)."""
        return np.random.Generator(np.random.PCG64(self.sequence(name)))

    def child(self, index: int) -> SeedTree:
        return SeedTree(self.root, (*self.path, index))

"""Where a result came from: seeds, configuration, code revision, packages, machine.

:func:`provenance` gathers what is needed to reproduce or audit a run, and
:func:`write_json_atomic` writes it (and ``summary.json``) so that a reader never sees a
half-written file and always gets strict JSON.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "numpy",
    "scipy",
    "simpy",
    "numba",
    "pandas",
    "pyarrow",
    "pydantic",
    "qiskit",
    "qiskit-aer",
    "matplotlib",
)
"""Distributions whose versions are recorded (None when not installed)."""

PROJECT = "qvecsim"
"""The distribution name of this project."""

CODE_VERSION_ENV = "QVECSIM_CODE_VERSION"
"""Environment variable that, when set, replaces the code version computed from git."""

_GIT_TIMEOUT = 10.0
_MAX_CHANGES = 200


@functools.cache
def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution, None for those that are missing.

    Versions are looked up once per process: installed packages do not change under a
    running interpreter, and a sweep asks for them once per run.
    """
    return {name: _version(name) for name in names}


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(path: Path | None = None) -> dict[str, Any]:
    """Revision, dirty flag and changed paths of the git checkout holding ``path``
    (default: this file). Values are None when git or the repository is unavailable."""
    here = Path(path) if path is not None else Path(__file__).resolve().parent
    top = _git(here, "rev-parse", "--show-toplevel")
    if top is None:
        return {
            "repository": None,
            "revision": None,
            "dirty": None,
            "changes": None,
            "changes_truncated": False,
        }
    revision = _git(here, "rev-parse", "HEAD")
    status = _git(here, "status", "--porcelain")
    changes = None if status is None else [ln for ln in status.splitlines() if ln.strip()]
    return {
        "repository": top.strip(),
        "revision": revision.strip() if revision else None,
        "dirty": None if changes is None else bool(changes),
        "changes": None if changes is None else changes[:_MAX_CHANGES],
        "changes_truncated": bool(changes) and len(changes) > _MAX_CHANGES,
    }


@functools.cache
def _head_revision() -> str | None:
    here = Path(__file__).resolve().parent
    revision = _git(here, "rev-parse", "HEAD")
    return revision.strip() if revision else None


def code_version() -> str:
    """The version of the simulator's code: ``<package version>+g<12 hex of the git revision>``.

    It is part of every sweep run's id, so results of different code never mix in one
    results folder. Without git (an installed wheel) it is the package version alone. The
    environment variable ``QVECSIM_CODE_VERSION``, when set and not empty, replaces it: for
    a cluster whose workers have no checkout, or to keep resuming a sweep across a commit
    known not to change results. The git revision is read once per process.
    """
    forced = os.environ.get(CODE_VERSION_ENV, "").strip()
    if forced:
        return forced
    version = _version(PROJECT) or "0+unknown"
    revision = _head_revision()
    return f"{version}+g{revision[:12]}" if revision else version


def config_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 of the configuration's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def provenance(
    seed_root: int,
    seed_path: tuple[int, ...],
    config: Mapping[str, Any],
    git: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to trace a run back to its inputs and environment.

    Holds the seeds (root and the run's path in the seed tree), the resolved configuration
    and its SHA-256, the git revision and dirty flag of the checkout holding this package,
    package versions, Python, platform, host name, process id, command line and the start
    time (ISO 8601, UTC). ``git`` is a :func:`git_state` taken earlier (a sweep reads it
    once when it starts instead of once per run); by default it is read now.
    """
    return {
        "seed_root": int(seed_root),
        "seed_path": [int(p) for p in seed_path],
        "config": to_jsonable(config),
        "config_sha256": config_digest(config),
        "git": dict(git) if git is not None else git_state(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "argv": list(sys.argv),
        "start_time": _dt.datetime.now(_dt.UTC).isoformat(),
    }


def to_jsonable(obj: Any) -> Any:
    """``obj`` with only JSON types: non-finite floats become None, NumPy scalars and
    arrays, tuples, sets and paths become plain values, lists and strings; mapping keys
    become strings."""
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_jsonable(v) for v in obj), key=repr)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    tolist = getattr(obj, "tolist", None)  # NumPy arrays and scalars
    if callable(tolist):
        return to_jsonable(tolist())
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    return str(obj)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, durable: bool = True) -> Path:
    """Write ``obj`` as JSON (sorted keys, indent 2) to ``path`` atomically.

    The text goes to a temporary file in the same directory, which is fsynced and renamed
    over ``path``, so readers see the old file or the new one, never a partial one.
    Non-finite floats are written as null, so the output is always strict JSON.
    ``durable=False`` skips the fsyncs (see :func:`write_bytes_atomic`).
    """
    text = json.dumps(to_jsonable(obj), sort_keys=True, indent=2, allow_nan=False) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"), durable)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically: temporary file, fsync, rename, fsync of the
    directory. A reader sees the old content or the new, never a partial file.

    ``durable=False`` skips both fsyncs: for files in a folder that is itself fsynced as a
    whole before it is renamed into view (a sweep's staging folder)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(target.parent)
    return target


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (creations, renames) to disk; a no-op where the
    platform cannot open directories."""
    try:
        dir_fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)

"""Where a result came from: seeds, configuration, code revision, packages, machine.

:func:`provenance` gathers what is needed to reproduce or audit a run, and
:func:`write_json_atomic` writes it (and ``summary.json``) so that a reader never sees a
half-written file and always gets strict JSON.
"""

from __future__ import annotations

import datetime as _dt
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

_GIT_TIMEOUT = 10.0
_MAX_CHANGES = 200


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution, None for those that are missing."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


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


def config_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 of the configuration's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def provenance(
    seed_root: int, seed_path: tuple[int, ...], config: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything needed to trace a run back to its inputs and environment.

    Holds the seeds (root and the run's path in the seed tree), the resolved configuration
    and its SHA-256, the git revision and dirty flag of the checkout holding this package,
    package versions, Python, platform, host name, process id, command line and the start
    time (ISO 8601, UTC).
    """
    return {
        "seed_root": int(seed_root),
        "seed_path": [int(p) for p in seed_path],
        "config": to_jsonable(config),
        "config_sha256": config_digest(config),
        "git": git_state(),
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


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON (sorted keys, indent 2) to ``path`` atomically.

    The text goes to a temporary file in the same directory, which is fsynced and renamed
    over ``path``, so readers see the old file or the new one, never a partial one.
    Non-finite floats are written as null, so the output is always strict JSON.
    """
    target = Path(path)
    text = json.dumps(to_jsonable(obj), sort_keys=True, indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return target
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return target

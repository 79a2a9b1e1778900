"""The run store: a sweep's results folder, safe against crashes and resumable.

Layout of a results folder ``D``::

    D/manifest.json     every planned run and its state (planned, running, finished, failed)
    D/runs/<run_id>/    one run's folder as sim.runner.run_scenario writes it
    D/runs.parquet      one row per finished run: axes and the numeric summary figures
    D/runs/.staging/    runs under way (removed when they are placed)

A run is written into a staging folder; every file in it is fsynced, then the folder is
renamed to ``runs/<run_id>`` by the driver, the only process that places runs. A run
folder therefore exists only complete, and what is on disk, not the manifest, says which
runs are done: on opening, the store reads each planned run's ``provenance.json``. A
finished run is never run or written again; a failed one is redone only when asked. The
manifest and ``runs.parquet`` are rewritten atomically (temporary file, fsync, rename) as
runs finish, at most a few times a second, and always when the sweep stops.

:func:`execute_run` is what an executor runs for each run, in whatever process or machine.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import shutil
import tempfile
import time
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import SimError
from sim.provenance import fsync_dir, write_bytes_atomic, write_json_atomic

FORMAT = 1
MANIFEST = "manifest.json"
RUNS_TABLE = "runs.parquet"
RUNS_DIR = "runs"
STAGING = ".staging"
STATES = ("planned", "running", "finished", "failed")

MANIFEST_INTERVAL = 0.25
"""Least time between two manifest writes while runs finish [s]."""
TABLE_INTERVAL = 2.0
"""Least time between two rewrites of ``runs.parquet`` while runs finish [s]."""


# --------------------------------------------------------------------------- worker side
@dataclass(frozen=True)
class RunTask:
    """What a worker needs to do one run (plain, picklable data)."""

    run_id: str
    scenario: Any
    """The validated :class:`~sim.config.Scenario`."""
    seed_path: tuple[int, ...]
    staging: str | None
    """Folder to stage the run in (same file system as the store); None: a temporary
    folder whose files are sent back in :attr:`RunOutcome.files`."""
    source: str | None = None
    git: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunOutcome:
    """The result of one run, as the worker reports it."""

    run_id: str
    status: str
    """``finished`` or ``failed``."""
    error: str | None = None
    traceback: str | None = None
    staged: str | None = None
    """The staging folder holding the run's files (local executors)."""
    files: dict[str, bytes] | None = None
    """The run's files by relative path (remote executors)."""
    wall_time: float = 0.0


def _fsync_tree(root: Path) -> None:
    for dirpath, _, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


def _read_tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def execute_run(task: RunTask) -> RunOutcome:
    """Do one run into a staging folder and report how it went.

    Never raises for a failure of the run itself (a bad configuration, an exception in the
    engine or a policy): the outcome is ``failed`` with the error and its traceback, and
    the staged ``provenance.json`` records them too. Ctrl-C (KeyboardInterrupt) propagates.
    """
    from sim.runner import failure_line, run_scenario

    start = time.perf_counter()
    if task.staging is not None:
        stage = Path(task.staging) / f"{task.run_id}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        stage.mkdir(parents=True)
    else:
        stage = Path(tempfile.mkdtemp(prefix=f"qvecsim-{task.run_id}-"))
    status, error, trace = "finished", None, None
    try:
        run_scenario(
            task.scenario,
            out_dir=stage,
            quiet=True,
            source=Path(task.source) if task.source else None,
            seed_path=task.seed_path,
            git=task.git,
            provenance_extra={"run_id": task.run_id, **task.extra},
            durable=False,  # the staging folder is fsynced as a whole below
        )
    except Exception as exc:
        status, error, trace = "failed", failure_line(exc), traceback.format_exc()
        if not (stage / "provenance.json").exists():
            write_json_atomic(
                stage / "provenance.json",
                {
                    "run_id": task.run_id,
                    **task.extra,
                    "seed_path": list(task.seed_path),
                    "config": task.scenario.model_dump(mode="json"),
                    "status": "failed",
                    "error": error,
                    "traceback": trace,
                    "end_time": _dt.datetime.now(_dt.UTC).isoformat(),
                },
            )
    outcome = RunOutcome(task.run_id, status, error, trace, wall_time=time.perf_counter() - start)
    if task.staging is not None:
        _fsync_tree(stage)
        outcome.staged = str(stage)
    else:
        try:
            outcome.files = _read_tree(stage)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return outcome


# --------------------------------------------------------------------------- driver side
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_state(folder: Path) -> tuple[str, str | None]:
    """``(state, error)`` of a placed run folder: ``finished`` when its provenance says
    so and its summary reads; ``failed`` with the recorded error; else ``planned``."""
    prov = _read_json(folder / "provenance.json")
    if not isinstance(prov, dict):
        return "planned", None
    if prov.get("status") == "finished" and isinstance(_read_json(folder / "summary.json"), dict):
        return "finished", None
    if prov.get("status") == "failed":
        return "failed", str(prov.get("error") or "failed")
    return "planned", None


class RunStore:
    """The results folder of one sweep, as seen by the process that drives it."""

    def __init__(self, root: Path, sweep: Any) -> None:
        self.root = Path(root)
        self.sweep = sweep
        self.runs_dir = self.root / RUNS_DIR
        self.staging = self.runs_dir / STAGING
        self.specs = {s.run_id: s for s in sweep.runs}
        self.state: dict[str, str] = dict.fromkeys(self.specs, "planned")
        self.errors: dict[str, str | None] = dict.fromkeys(self.specs)
        self.summaries: dict[str, dict[str, Any]] = {}
        self.created = _dt.datetime.now(_dt.UTC).isoformat()
        self._manifest_at = 0.0
        self._table_at = 0.0
        self._manifest_dirty = True
        self._table_dirty = True

    # ---------------------------------------------------------------- opening
    def open(self, retry_failed: bool = False) -> None:
        """Create the folder or take up an earlier one: check that it holds this sweep,
        read which runs are finished or failed from their folders, clear leftovers of
        interrupted runs and write the manifest."""
        self.root.mkdir(parents=True, exist_ok=True)
        old = _read_json(self.root / MANIFEST)
        if (self.root / MANIFEST).exists():
            self._check_same_sweep(old)
            self.created = str(old.get("created", self.created))
        elif self.runs_dir.is_dir() and any(p.name != STAGING for p in self.runs_dir.iterdir()):
            raise SimError(
                f"{self.root} holds runs but no {MANIFEST}; choose an empty folder with --out"
            )
        self.runs_dir.mkdir(exist_ok=True)
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(exist_ok=True)
        for run_id in self.specs:
            folder = self.runs_dir / run_id
            if not folder.exists():
                continue
            state, error = run_state(folder)
            if state == "failed" and retry_failed:
                state, error = "planned", None
            if state == "planned":
                self._discard(folder)
            self.state[run_id] = state
            self.errors[run_id] = error
            if state == "finished":
                self.summaries[run_id] = self._load_summary(run_id)
        self.save(force=True)

    def _check_same_sweep(self, old: Any) -> None:
        if not isinstance(old, dict) or old.get("format") != FORMAT:
            raise SimError(
                f"{self.root / MANIFEST} is not a manifest this version reads; "
                "choose another folder with --out"
            )
        planned = [r.get("run_id") for r in old.get("runs", []) if isinstance(r, dict)]
        if planned == [s.run_id for s in self.sweep.runs]:
            return
        why = "a different sweep"
        if old.get("code_version") != self.sweep.code_version:
            why = (
                f"a sweep made by code version {old.get('code_version')} (this is "
                f"{self.sweep.code_version}); runs of different code do not mix"
            )
        raise SimError(f"{self.root} holds {why}; choose another folder with --out")

    def _discard(self, folder: Path) -> None:
        trash = self.staging / f"{folder.name}.discard.{uuid.uuid4().hex[:8]}"
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _load_summary(self, run_id: str) -> dict[str, Any]:
        summary = _read_json(self.runs_dir / run_id / "summary.json")
        if not isinstance(summary, dict):
            raise SimError(f"{self.runs_dir / run_id / 'summary.json'} cannot be read")
        return summary

    # ---------------------------------------------------------------- queries
    def count(self, state: str) -> int:
        return sum(1 for s in self.state.values() if s == state)

    def pending(self) -> list[Any]:
        """The runs to do, replication by replication (every point of replication 0
        first), so that an early stop leaves whole replications."""
        todo = [s for s in self.sweep.runs if self.state[s.run_id] == "planned"]
        return sorted(todo, key=lambda s: (s.replication, s.point))

    def failed_runs(self) -> list[Any]:
        return [s for s in self.sweep.runs if self.state[s.run_id] == "failed"]

    def error(self, run_id: str) -> str | None:
        return self.errors[run_id]

    def task(self, spec: Any, git: Mapping[str, Any] | None, remote: bool = False) -> RunTask:
        """The worker's task for ``spec``; ``remote`` executors send files back instead of
        staging them in this folder."""
        return RunTask(
            run_id=spec.run_id,
            scenario=spec.scenario,
            seed_path=tuple(spec.seed_path),
            staging=None if remote else str(self.staging),
            source=str(self.sweep.source) if self.sweep.source else None,
            git=dict(git) if git is not None else None,
            extra={
                "sweep_id": self.sweep.sweep_id,
                "code_version": self.sweep.code_version,
                "point": spec.point,
                "replication": spec.replication,
                "policy": spec.policy,
                "params": spec.params,
            },
        )

    # ---------------------------------------------------------------- updates
    def mark_running(self, run_id: str) -> None:
        self.state[run_id] = "running"
        self._manifest_dirty = True

    def release_running(self) -> None:
        """After a stop: runs under way go back to ``planned``, unless their folder was
        placed before the stop (then the folder says how they ended)."""
        for run_id, state in self.state.items():
            if state not in ("running", "planned"):
                continue
            folder = self.runs_dir / run_id
            new, error = run_state(folder) if folder.exists() else ("planned", None)
            if new == "finished":
                self.summaries[run_id] = self._load_summary(run_id)
                self._table_dirty = True
            if new != state:
                self.state[run_id], self.errors[run_id] = new, error
                self._manifest_dirty = True

    def commit(self, spec: Any, outcome: RunOutcome) -> None:
        """Place a run's folder and record its state (``finished`` or ``failed``)."""
        if outcome.staged is not None:
            staged = Path(outcome.staged)
        else:
            staged = self.staging / f"{spec.run_id}.driver.{uuid.uuid4().hex[:8]}"
            staged.mkdir(parents=True)
            for rel, data in (outcome.files or {}).items():
                parts = Path(rel).parts
                if not parts or Path(rel).is_absolute() or ".." in parts:
                    raise SimError(f"a run sent back a file outside its folder: {rel!r}")
                target = staged / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            fsync_dir(staged)
        final = self.runs_dir / spec.run_id
        if final.exists():
            self._discard(final)
        os.rename(staged, final)
        fsync_dir(self.runs_dir)
        state, error = run_state(final)
        if state == "planned":  # an outcome without a usable folder
            state, error = "failed", outcome.error or "the run left no result"
        self.state[spec.run_id] = state
        self.errors[spec.run_id] = error if state == "failed" else None
        if state == "finished":
            self.summaries[spec.run_id] = self._load_summary(spec.run_id)
            self._table_dirty = True
        self._manifest_dirty = True

    def record_failure(self, spec: Any, error: str, trace: str | None = None) -> None:
        """A run whose worker was lost: keep a folder saying so, mark it failed."""
        staged = self.staging / f"{spec.run_id}.lost.{uuid.uuid4().hex[:8]}"
        staged.mkdir(parents=True)
        write_json_atomic(
            staged / "provenance.json",
            {
                "run_id": spec.run_id,
                "seed_root": spec.seed_root,
                "seed_path": list(spec.seed_path),
                "config": spec.config,
                "status": "failed",
                "error": error,
                "traceback": trace,
                "end_time": _dt.datetime.now(_dt.UTC).isoformat(),
            },
        )
        self.commit(spec, RunOutcome(spec.run_id, "failed", error, trace, staged=str(staged)))

    # ---------------------------------------------------------------- writing
    def save(self, force: bool = False) -> None:
        """Rewrite the manifest and ``runs.parquet`` if they changed (when ``force``, or
        when the last write is old enough)."""
        now = time.monotonic()
        if self._manifest_dirty and (force or now - self._manifest_at >= MANIFEST_INTERVAL):
            write_json_atomic(self.root / MANIFEST, self.manifest())
            self._manifest_at, self._manifest_dirty = now, False
        if self._table_dirty and (force or now - self._table_at >= TABLE_INTERVAL):
            write_bytes_atomic(self.root / RUNS_TABLE, runs_table_bytes(self.sweep, self.rows()))
            self._table_at, self._table_dirty = now, False

    def manifest(self) -> dict[str, Any]:
        sweep = self.sweep
        return {
            "format": FORMAT,
            "scenario": sweep.name,
            "sweep_id": sweep.sweep_id,
            "code_version": sweep.code_version,
            "source": str(sweep.source) if sweep.source else None,
            "root_seed": sweep.root_seed,
            "replications": sweep.replications,
            "n_points": sweep.n_points,
            "created": self.created,
            "updated": _dt.datetime.now(_dt.UTC).isoformat(),
            "counts": {s: self.count(s) for s in STATES},
            "axes": sweep.axes_record(),
            "runs": [
                {
                    "run_id": s.run_id,
                    "point": s.point,
                    "replication": s.replication,
                    "policy": s.policy,
                    "params": s.params,
                    "seed_root": s.seed_root,
                    "seed_path": list(s.seed_path),
                    "status": self.state[s.run_id],
                    "error": self.errors[s.run_id],
                }
                for s in sweep.runs
            ],
        }

    def rows(self) -> list[tuple[Any, dict[str, Any]]]:
        """``(spec, summary)`` of every finished run, sorted by (point, policy,
        replication)."""
        done = [s for s in self.sweep.runs if s.run_id in self.summaries]
        done.sort(key=lambda s: (s.point, s.policy, s.replication))
        return [(s, self.summaries[s.run_id]) for s in done]


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def runs_table_bytes(sweep: Any, rows: Sequence[tuple[Any, Mapping[str, Any]]]) -> bytes:
    """The Parquet bytes of ``runs.parquet``: one row per finished run.

    Columns: ``run_id``, ``point``, ``replication``, ``policy``, one per swept axis other
    than ``policy`` (named by its path; float64 in SI units, or text), then every key of the
    summaries whose values are all numbers or null, as float64 (null -> NaN), sorted by
    name. The same runs always give the same bytes.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    axes = [a for a in sweep.axes if a.path != "policy"]
    taken = {"run_id", "point", "replication", "policy", *(a.path for a in axes)}
    keys: set[str] = set()
    bad: set[str] = set()
    for _, summary in rows:
        for k, v in summary.items():
            (keys if _is_number(v) else bad).add(k)
    metrics = sorted(keys - bad - taken)
    columns: dict[str, Any] = {
        "run_id": pa.array([s.run_id for s, _ in rows], pa.string()),
        "point": pa.array([s.point for s, _ in rows], pa.int64()),
        "replication": pa.array([s.replication for s, _ in rows], pa.int64()),
        "policy": pa.array([s.policy for s, _ in rows], pa.string()),
    }
    for axis in axes:
        values = [s.params[axis.path] for s, _ in rows]
        if axis.numeric:
            columns[axis.path] = pa.array(values, pa.float64())
        else:
            columns[axis.path] = pa.array([str(v) for v in values], pa.string())
    for key in metrics:
        values = [summary.get(key) for _, summary in rows]
        columns[key] = pa.array(
            [float("nan") if v is None else float(v) for v in values], pa.float64()
        )
    table = pa.table(columns)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()

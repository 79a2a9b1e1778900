"""One run of one scenario: build the world and policy, simulate, write the results folder.

A results folder holds ``tasks.parquet`` (unless the table is off), ``summary.json``,
``latency_hist.npz`` (the summary's latency histogram: arrays ``edges`` [s] and ``counts``),
``config.yaml`` (the resolved configuration, in SI units), ``provenance.json`` and
``figures/``. Every file is written to a temporary name, fsynced and renamed when complete.
``provenance.json`` says ``running`` while the run lasts, then ``finished``, or ``failed``
(with the error and its traceback) or ``interrupted``.
"""

from __future__ import annotations

import datetime as _dt
import io
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.seeds import SeedTree

REPO = Path(__file__).resolve().parent.parent


@dataclass
class RunResult:
    out_dir: Path | None
    summary: dict


class RunSink:
    """Receives finished tasks: streams them to the summary and, if on, the task table
    (``durable=False``: not fsynced, for a staging folder fsynced as a whole)."""

    def __init__(self, scenario, table_path: Path | None, durable: bool = True) -> None:
        from sim.summary import SummaryAccumulator

        e = scenario.engine
        self.summary = SummaryAccumulator(e.horizon, e.warmup, scenario.cost.latency_weight)
        self.writer = None
        if table_path is not None:
            from sim.records import TaskTableWriter

            out = scenario.output
            self.writer = TaskTableWriter(
                table_path, out.chunk_rows, compression=out.table_compression, durable=durable
            )

    @property
    def needs_table(self) -> bool:
        """Whether finished tasks must carry every column (only for the task table)."""
        return self.writer is not None

    def add(self, batch: dict) -> None:
        self.summary.add(batch)
        if self.writer is not None:
            self.writer.append(batch)

    def add_finished(self, args: tuple) -> None:
        """The summary-only path (:meth:`sim.summary.SummaryAccumulator.add_finished`); the
        engine takes it only when ``needs_table`` is False."""
        self.summary.add_finished(args)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def default_out_dir(scenario) -> Path:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return REPO / "results" / scenario.name / stamp


def write_histogram(path: Path, edges: Any, counts: Any, durable: bool = True) -> Path:
    """Write a latency histogram as ``.npz`` (arrays ``edges``, ``counts``) atomically."""
    import numpy as np

    from sim.provenance import write_bytes_atomic

    buffer = io.BytesIO()
    np.savez(buffer, edges=np.asarray(edges, dtype=np.float64), counts=np.asarray(counts))
    return write_bytes_atomic(path, buffer.getvalue(), durable)


def _yaml_text(config: Mapping[str, Any]) -> str:
    """The resolved configuration as YAML (libyaml's emitter when available: it is ten
    times faster than PyYAML's, which matters for sweeps of short runs)."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(config, Dumper=dumper, sort_keys=False)


def run_scenario(
    scenario,
    out_dir: Path | None = None,
    quiet: bool = False,
    source: Path | None = None,
    seed_path: tuple[int, ...] = (),
    write: bool = True,
    git: Mapping[str, Any] | None = None,
    provenance_extra: Mapping[str, Any] | None = None,
    durable: bool = True,
) -> RunResult:
    """Simulate ``scenario`` and write its results folder (``write=False``: summary only).

    ``seed_path`` places the run in the seed tree of ``scenario.seed`` (a sweep gives
    replication r the path ``(r,)``). ``git`` is a :func:`sim.provenance.git_state` taken
    earlier (read now by default) and ``provenance_extra`` is merged into
    ``provenance.json`` (a sweep adds the run id, point and replication). If the run
    raises, ``provenance.json`` records ``failed`` (or ``interrupted``), the error and its
    traceback before the exception propagates. ``durable=False`` is for a staging folder
    that the caller fsyncs as a whole and renames into view when the run has ended: files
    are not fsynced one by one and no ``running`` record is written.
    """
    from sim.engine import simulate
    from sim.provenance import provenance, write_bytes_atomic, write_json_atomic

    seeds = SeedTree(scenario.seed, seed_path)
    prov: dict[str, Any] = {}
    if write:
        out_dir = Path(out_dir) if out_dir is not None else default_out_dir(scenario)
        out_dir.mkdir(parents=True, exist_ok=True)
        config = scenario.model_dump(mode="json")
        prov = provenance(scenario.seed, seed_path, config, git=git)
        if source is not None:
            prov["source"] = str(source)
        prov.update(provenance_extra or {})
        write_bytes_atomic(out_dir / "config.yaml", _yaml_text(config).encode("utf-8"), durable)
        if durable:  # a staging folder is out of view while the run lasts
            write_json_atomic(out_dir / "provenance.json", {**prov, "status": "running"})
    table = (out_dir / "tasks.parquet") if write and scenario.output.task_table else None
    try:
        sink = RunSink(scenario, table, durable)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            result = simulate(scenario, sink, seeds=seeds)
        finally:
            sink.close()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        summary = sink.summary.result(result.extra())
        timing = {
            "wall_time": wall,
            "cpu_time": cpu,
            "tasks_per_second": result.n_tasks / max(wall, 1e-12),
        }
        if write:
            assert out_dir is not None
            write_json_atomic(out_dir / "summary.json", summary, durable)
            edges, counts = sink.summary.latency_histogram()
            write_histogram(out_dir / "latency_hist.npz", edges, counts, durable)
            for name, columns in result.series.items():
                write_series(out_dir / f"{name}.parquet", columns, durable)
            if scenario.output.plots:
                from sim.plots import plot_run

                plot_run(out_dir, table, summary, (edges, counts))
                _plot_extras(out_dir / "figures", scenario, result.series, table, seed_path)
    except BaseException as exc:
        if write:
            assert out_dir is not None
            status = "failed" if isinstance(exc, Exception) else "interrupted"
            write_json_atomic(
                out_dir / "provenance.json",
                {
                    **prov,
                    "status": status,
                    "error": failure_line(exc),
                    "traceback": traceback.format_exc(),
                    "end_time": _dt.datetime.now(_dt.UTC).isoformat(),
                },
                durable,
            )
        raise
    if write:
        end = _dt.datetime.now(_dt.UTC).isoformat()
        write_json_atomic(
            out_dir / "provenance.json",
            {**prov, **timing, "status": "finished", "end_time": end},
            durable,
        )
    return RunResult(out_dir if write else None, summary)


def write_series(path: Path, columns: Mapping[str, Any], durable: bool = True) -> Path:
    """Write one of the engine's tables (e.g. ``qpu_jobs``, ``twin_sync``) as Parquet,
    atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sim.provenance import write_bytes_atomic

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(dict(columns)), sink)
    return write_bytes_atomic(path, sink.getvalue().to_pybytes(), durable)


def _plot_extras(figures: Path, scenario, series, table: Path | None, seed_path) -> None:
    """The figures of the parts a run may have: QPU jobs, the twin, SUMO road maps."""
    horizon = float(scenario.engine.horizon)
    if "qpu_jobs" in series:
        from qpu.plots import plot_qpu_jobs

        plot_qpu_jobs(series["qpu_jobs"], horizon, figures)
    if scenario.twin.enabled and "twin_sync" in series:
        from sim.twin_plots import plot_twin_series

        plot_twin_series(series, horizon, scenario.twin.model_dump(), figures)
    if table is not None:
        from sim.config import SUMO_MODELS

        if scenario.mobility.model in SUMO_MODELS:
            from sim.sumo_plots import plot_sumo_run

            plot_sumo_run(figures, scenario, table, seed_path)


def failure_line(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

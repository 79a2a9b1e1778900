"""One run of one scenario: build the world and policy, simulate, write the results folder.

A results folder holds ``tasks.parquet`` (unless the table is off), ``summary.json``,
``config.yaml`` (the resolved configuration, in SI units), ``provenance.json`` and
``figures/``. Tables are written to temporary names and renamed when complete.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass
from pathlib import Path

from sim.seeds import SeedTree

REPO = Path(__file__).resolve().parent.parent


@dataclass
class RunResult:
    out_dir: Path | None
    summary: dict


class RunSink:
    """Receives finished tasks: streams them to the summary and, if on, the task table."""

    def __init__(self, scenario, table_path: Path | None) -> None:
        from sim.records import TaskTableWriter
        from sim.summary import SummaryAccumulator

        e = scenario.engine
        self.summary = SummaryAccumulator(e.horizon, e.warmup, scenario.cost.latency_weight)
        self.writer = (
            TaskTableWriter(table_path, scenario.output.chunk_rows)
            if table_path is not None
            else None
        )

    @property
    def needs_table(self) -> bool:
        """Whether finished tasks must carry every column (only for the task table)."""
        return self.writer is not None

    def add(self, batch: dict) -> None:
        self.summary.add(batch)
        if self.writer is not None:
            self.writer.append(batch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def default_out_dir(scenario) -> Path:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return REPO / "results" / scenario.name / stamp


def run_scenario(
    scenario,
    out_dir: Path | None = None,
    quiet: bool = False,
    source: Path | None = None,
    seed_path: tuple[int, ...] = (),
    write: bool = True,
) -> RunResult:
    """Simulate ``scenario`` and write its results folder (``write=False``: summary only)."""
    import yaml

    from sim.engine import simulate
    from sim.provenance import provenance, write_json_atomic

    seeds = SeedTree(scenario.seed, seed_path)
    if write:
        out_dir = Path(out_dir) if out_dir is not None else default_out_dir(scenario)
        out_dir.mkdir(parents=True, exist_ok=True)
        config = scenario.model_dump(mode="json")
        prov = provenance(scenario.seed, seed_path, config)
        if source is not None:
            prov["source"] = str(source)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        write_json_atomic(out_dir / "provenance.json", {**prov, "status": "running"})
    table = (out_dir / "tasks.parquet") if write and scenario.output.task_table else None
    sink = RunSink(scenario, table)
    wall = time.perf_counter()
    try:
        result = simulate(scenario, sink, seeds=seeds)
    finally:
        sink.close()
    wall = time.perf_counter() - wall
    summary = sink.summary.result(result.extra())
    timing = {"wall_time": wall, "tasks_per_second": result.n_tasks / max(wall, 1e-12)}
    if write:
        write_json_atomic(out_dir / "summary.json", summary)
        if scenario.output.plots:
            from sim.plots import plot_run

            plot_run(out_dir, table, summary, sink.summary.latency_histogram())
        end = _dt.datetime.now(_dt.UTC).isoformat()
        write_json_atomic(
            out_dir / "provenance.json", {**prov, **timing, "status": "finished", "end_time": end}
        )
    return RunResult(out_dir if write else None, summary)

"""The command line: ``python run_sim.py [run] [FILE]``, ``validate``, ``plot``, ``schema``.

``run`` simulates one scenario, or a whole sweep when the file has a ``sweep`` block
(:mod:`sim.sweep`): every run into one results folder, resumable, with a progress bar.

Subcommands are plain functions registered with :func:`command`; adding one is one
decorated function. Only the standard library is imported here, so ``--help`` answers at
once; each subcommand imports what it needs. Errors the user can fix (a bad scenario, an
unknown policy) are printed as one ``error:`` line with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sim.compare import ARGUMENTS as COMPARE_ARGUMENTS
from sim.errors import SimError
from sim.train import ARGUMENTS as TRAIN_ARGUMENTS

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIO = Path("scenarios") / "quickstart.yaml"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[str, tuple[tuple[tuple[Any, ...], dict[str, Any]], ...], Handler]] = {}


def arg(*names: Any, **options: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """One argument of a subcommand, spelled as for ``ArgumentParser.add_argument``."""
    return names, options


def command(
    name: str, help: str, *arguments: tuple[tuple[Any, ...], dict[str, Any]]
) -> Callable[[Handler], Handler]:
    """Register the decorated function as subcommand ``name`` taking ``arguments``."""

    def register(handler: Handler) -> Handler:
        _COMMANDS[name] = (help, arguments, handler)
        return handler

    return register


def _scenario_path(given: Path | None) -> Path:
    """The scenario to run: the one given, else the quickstart scenario of this checkout."""
    if given is not None:
        return given
    if DEFAULT_SCENARIO.is_file():
        return DEFAULT_SCENARIO
    return REPO / DEFAULT_SCENARIO


def _format(value: Any, scale: float, unit: str, digits: int = 3) -> str:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    return f"{value * scale:.{digits}g} {unit}".rstrip()


def _summary_lines(out_dir: Path | None, summary: dict[str, Any]) -> list[str]:
    """A few lines a person reads after a run; missing figures show as n/a."""
    lines = [f"results:         {out_dir if out_dir is not None else '(not written)'}"]
    tasks = summary.get("n_tasks")
    count = tasks if isinstance(tasks, numbers.Integral) else _format(tasks, 1, "")
    lines.append(f"tasks:           {count}")
    lines.append(
        f"latency:         mean {_format(summary.get('latency_mean'), 1e3, 'ms')}, "
        f"p95 {_format(summary.get('latency_p95'), 1e3, 'ms')}"
    )
    lines.append(f"energy per task: {_format(summary.get('energy_mean'), 1, 'J')}")
    lines.append(f"deadline misses: {_format(summary.get('deadline_miss_rate'), 100, '%')}")
    return lines


_LISTED_FAILURES = 10
_SWEEP_ONLY = ("workers", "executor", "address", "retry_failed", "replications", "no_report")


@command(
    "run",
    "simulate a scenario, or every run of a sweep, and write the results folder "
    "(the default command)",
    arg(
        "file",
        nargs="?",
        type=Path,
        metavar="FILE",
        help=f"scenario file (default: {DEFAULT_SCENARIO})",
    ),
    arg(
        "--out",
        type=Path,
        metavar="DIR",
        help="results folder (default: results/NAME/TIME, or results/NAME/SWEEP_ID for a "
        "sweep; running a sweep again into its folder resumes it)",
    ),
    arg("--quiet", action="store_true", help="no progress; print only the results folder"),
    arg("--seed", type=int, metavar="N", help="root seed, replacing the scenario's"),
    arg("--horizon", metavar="T", help="simulated time, e.g. '2 s', replacing the scenario's"),
    arg(
        "--workers",
        type=int,
        metavar="N",
        help="sweeps: parallel runs (default: one per core; with ray: the cluster's CPUs)",
    ),
    arg(
        "--executor",
        choices=("inprocess", "process", "ray"),
        help="sweeps: where runs execute: this process, a local process pool (default) or "
        "a Ray cluster",
    ),
    arg(
        "--address",
        metavar="ADDR",
        help="sweeps with --executor ray: cluster address (host:port, auto, ray://...); "
        "default: start a local cluster",
    ),
    arg(
        "--retry-failed",
        action="store_true",
        help="sweeps: run again the runs that failed before (finished runs are never redone)",
    ),
    arg(
        "--replications",
        type=int,
        metavar="N",
        help="sweeps: replications per point, replacing the sweep's",
    ),
    arg(
        "--no-report",
        action="store_true",
        help="sweeps: skip the tables, figures and report at the end ('plot DIR' makes them)",
    ),
)
def run(args: argparse.Namespace) -> int:
    """Load, validate and simulate one scenario, then print its headline figures; a file
    with a ``sweep`` block runs the whole sweep (see ``sweep``)."""
    from sim.scenario import SWEEP_KEY, load_scenario, load_yaml

    path = _scenario_path(args.file)
    if args.file is not None and not path.suffix and not path.exists():
        raise SimError(f"'{path}' is neither a command ({', '.join(_COMMANDS)}) nor a file")
    overrides: dict[str, Any] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.horizon is not None:
        overrides["engine.horizon"] = args.horizon
    data, _ = load_yaml(path)
    if SWEEP_KEY in data:
        return _run_sweep(path, overrides, args)
    given = [f"--{o.replace('_', '-')}" for o in _SWEEP_ONLY if getattr(args, o, None)]
    if given:
        raise SimError(f"{', '.join(given)}: only for sweeps, and {path} has no 'sweep' block")
    scenario = load_scenario(path, overrides)

    from sim.runner import run_scenario

    result = run_scenario(scenario, out_dir=args.out, quiet=args.quiet, source=path)
    if args.quiet:
        print(result.out_dir)
    else:
        print("\n".join(_summary_lines(result.out_dir, dict(result.summary or {}))))
    return 0


def _run_sweep(path: Path, overrides: dict[str, Any], args: argparse.Namespace) -> int:
    """Expand, validate and run a sweep; build its report; say what happened."""
    from sim.executors import make_executor
    from sim.sweep import build_report, default_results_dir, load_sweep, run_sweep

    if args.workers is not None and args.workers < 1:
        raise SimError(f"--workers must be at least 1, got {args.workers}")
    if args.replications is not None and args.replications < 1:
        raise SimError(f"--replications must be at least 1, got {args.replications}")
    kind = args.executor or "process"
    if args.address and kind != "ray":
        raise SimError("--address is for --executor ray")
    sweep = load_sweep(path, overrides, replications=args.replications)
    out = args.out if args.out is not None else default_results_dir(sweep)
    quiet = args.quiet
    if not quiet:
        print(f"sweep {sweep.name}: {sweep.shape_text()}", file=sys.stderr)
        print(f"results: {out}", file=sys.stderr)
    executor = make_executor(kind, workers=args.workers, address=args.address)
    try:
        report = run_sweep(
            sweep, out, executor=executor, retry_failed=args.retry_failed, quiet=quiet
        )
    finally:
        executor.close()
    done = report.skipped + report.finished
    if not quiet:
        print(
            f"{done} of {report.total} runs finished ({report.finished} now, {report.skipped} "
            f"before), {len(report.failed)} failed, in {report.elapsed:.1f} s",
            file=sys.stderr,
        )
    if not args.no_report:
        outputs = build_report(out, quiet=quiet)
        if outputs is None and not quiet:
            print("report: skipped (sim.report is not available)", file=sys.stderr)
    if report.failed:
        print(f"error: {len(report.failed)} of {report.total} runs failed:", file=sys.stderr)
        for spec, error in report.failed[:_LISTED_FAILURES]:
            print(f"  {spec.run_id} ({spec.describe()}): {error}", file=sys.stderr)
        if len(report.failed) > _LISTED_FAILURES:
            more = len(report.failed) - _LISTED_FAILURES
            print(f"  ... and {more} more (see {out / 'manifest.json'})", file=sys.stderr)
        if not args.retry_failed:
            print("run the same command with --retry-failed to run them again", file=sys.stderr)
    print(out)
    return 1 if report.failed else 0


@command(
    "sweep",
    "run every run of a sweep file (as 'run' does for a file with a 'sweep' block)",
    *_COMMANDS["run"][1],
)
def sweep(args: argparse.Namespace) -> int:
    """Run a sweep: every point and replication of the file's ``sweep`` block, into one
    resumable results folder, then build its report."""
    from sim.scenario import SWEEP_KEY, load_yaml

    path = _scenario_path(args.file)
    data, _ = load_yaml(path)
    if SWEEP_KEY not in data:
        raise SimError(f"{path} has no 'sweep' block; 'run_sim.py run {path}' runs it once")
    return run(args)


@command(
    "plot",
    "redo the figures and the report of a results folder from its stored results",
    arg("results", type=Path, metavar="RESULTS_DIR", help="a sweep's or a run's results folder"),
    arg("--quiet", action="store_true", help="print only the written files"),
)
def plot(args: argparse.Namespace) -> int:
    """Aggregate, plot and report a results folder (nothing is simulated)."""
    from sim.sweep import build_report

    folder: Path = args.results
    if not folder.is_dir():
        raise SimError(f"{folder}: no such results folder")
    outputs = build_report(folder, quiet=args.quiet)
    if outputs is None:
        print("error: plotting needs sim.report, which is not available", file=sys.stderr)
        return 1
    for written in outputs.values():
        print(written)
    return 0


@command(
    "validate",
    "check scenario files (every point of a sweep) without running them",
    arg("files", nargs="+", type=Path, metavar="FILE", help="scenario files"),
)
def validate(args: argparse.Namespace) -> int:
    """Validate each file; report every broken one and exit 2 if any is."""
    from sim.scenario import SWEEP_KEY, load_scenario, load_yaml
    from sim.sweep import load_sweep

    status = 0
    for path in args.files:
        try:
            data, _ = load_yaml(path)
            if SWEEP_KEY in data:
                sw = load_sweep(path)
                print(f"{path}: ok (sweep {sw.shape_text()})")
                continue
            s = load_scenario(path)
        except SimError as exc:
            _report(exc)
            status = EXIT_USAGE
            continue
        print(
            f"{path}: ok ({s.vehicles.count} vehicles, {s.servers.count} servers, "
            f"policy {s.policy.id})"
        )
    return status


@command(
    "train",
    "train DDPG and Q-DDPG on a scenario: checkpoints, training logs, saved agents",
    *(arg(*names, **options) for names, options in TRAIN_ARGUMENTS),
)
def train(args: argparse.Namespace) -> int:
    """Train the agents of a scenario or training file (see :mod:`sim.train`)."""
    from sim.train import run as run_training

    return run_training(args)


@command(
    "compare",
    "compare trained DDPG and Q-DDPG agents with the heuristics: learning curves, held-out "
    "evaluation, sizes, decision latency, report",
    *(arg(*names, **options) for names, options in COMPARE_ARGUMENTS),
)
def compare(args: argparse.Namespace) -> int:
    """Evaluate the trained agents of a training file and write their comparison report
    (see :mod:`sim.compare`)."""
    from sim.compare import run as run_compare

    return run_compare(args)


@command("schema", "print the JSON Schema of scenario files")
def schema(args: argparse.Namespace) -> int:
    """Print the scenario JSON Schema (for editors' completion and checks)."""
    import json

    from sim.scenario import scenario_json_schema

    print(json.dumps(scenario_json_schema(), indent=2, allow_nan=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per registered command."""
    parser = argparse.ArgumentParser(
        prog="run_sim.py",
        description="Discrete-event simulator of vehicular edge networks. Without a command, "
        "'run' is assumed: 'run_sim.py my.yaml' runs my.yaml, 'run_sim.py' runs "
        f"{DEFAULT_SCENARIO}.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, arguments, handler) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=handler.__doc__)
        for names, options in arguments:
            p.add_argument(*names, **options)
        p.set_defaults(handler=handler)
    return parser


def _with_default_command(argv: Sequence[str]) -> list[str]:
    """Insert 'run' unless a command (or top-level help) is asked for."""
    argv = list(argv)
    if argv and (argv[0] in _COMMANDS or argv[0] in ("-h", "--help")):
        return argv
    return ["run", *argv]


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, SimError):
        return True
    base = sys.modules.get("models.policies.base")
    return base is not None and isinstance(exc, base.UnknownPolicy)


def _report(exc: BaseException) -> None:
    text = " ".join(str(exc).splitlines()) or type(exc).__name__
    print(f"error: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(_with_default_command(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        _report(exc)
        return 1
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        _report(exc)
        return EXIT_USAGE

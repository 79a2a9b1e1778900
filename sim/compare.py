"""``run_sim.py compare``: the comparison report of trained agents (see :mod:`models.compare`).

FILE is the training file given to ``run_sim.py train``; the trained runs are read from its
output folder (``--runs``, as ``train --out``). Every (agent, seed) must have finished
training. Usable three ways: ``main(["scenarios/rl/quickstart.yaml", "--eval-seeds", "5"])``,
``run(namespace)`` with the arguments of :data:`ARGUMENTS`, or as a subcommand of
:mod:`sim.cli` registered with those arguments. Needs the ``rl`` extra.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

ARGUMENTS: tuple[tuple[tuple[Any, ...], dict[str, Any]], ...] = (
    (("file",), {"type": Path, "metavar": "FILE", "help": "the training file (or scenario)"}),
    (
        ("--out",),
        {
            "type": Path,
            "default": None,
            "metavar": "DIR",
            "help": "report folder (default: <training output>/compare; running again into "
            "it resumes the evaluation runs)",
        },
    ),
    (
        ("--runs",),
        {
            "type": Path,
            "default": None,
            "metavar": "DIR",
            "help": "training output folder, as given to 'train --out' (default: the file's)",
        },
    ),
    (
        ("--agents",),
        {"nargs": "+", "default": None, "help": "agents to compare (default: the file's)"},
    ),
    (
        ("--seeds",),
        {
            "nargs": "+",
            "type": int,
            "default": None,
            "help": "training seeds (default: the file's)",
        },
    ),
    (
        ("--eval-seeds",),
        {
            "type": int,
            "default": None,
            "metavar": "N",
            "help": "held-out replications per policy and model (default: 10)",
        },
    ),
    (
        ("--eval-root",),
        {
            "type": int,
            "default": None,
            "metavar": "SEED",
            "help": "root seed of the held-out worlds; no training seed (default: 1000000)",
        },
    ),
    (
        ("--horizon",),
        {
            "default": None,
            "metavar": "T",
            "help": "evaluation horizon, e.g. '20 s' (default: the scenario's)",
        },
    ),
    (
        ("--devices",),
        {
            "nargs": "*",
            "default": None,
            "metavar": "DEVICE",
            "help": "calibrated devices the Q-DDPG decisions run on (default: fake_sherbrooke "
            "fake_torino; none: no QPU runs)",
        },
    ),
    (
        ("--qpu-shots",),
        {
            "type": int,
            "default": None,
            "metavar": "N",
            "help": "shots per decision job (default: the scenario's qpu.shots, 1024)",
        },
    ),
    (
        ("--window",),
        {
            "type": int,
            "default": None,
            "metavar": "W",
            "help": "episodes of the learning curves' moving average (default: a tenth of "
            "the episodes, at most 10)",
        },
    ),
    (
        ("--workers",),
        {
            "type": int,
            "default": None,
            "metavar": "N",
            "help": "parallel evaluation runs (default: one per core)",
        },
    ),
    (("--quiet",), {"action": "store_true", "help": "no progress; print only the report"}),
)
"""The subcommand's arguments, as ``(names, options)`` for ``ArgumentParser.add_argument``."""


def _train_command(args: argparse.Namespace) -> str:
    """The ``run_sim.py train`` command that trains what ``args`` compares."""
    parts = ["run_sim.py", "train", str(args.file)]
    if args.agents:
        parts += ["--agents", *args.agents]
    if args.seeds:
        parts += ["--seeds", *map(str, args.seeds)]
    if args.runs is not None:
        parts += ["--out", str(args.runs)]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    """Evaluate the trained agents of ``args.file`` and write the comparison report."""
    from models.compare import DEVICES, EVAL_ROOT, EVAL_SEEDS, CompareOptions, run_comparison
    from models.training import load_config
    from sim.errors import SimError
    from sim.executors import ProcessExecutor

    if args.workers is not None and args.workers < 1:
        raise SimError(f"--workers must be at least 1, got {args.workers}")
    overrides = {"agents": args.agents, "seeds": args.seeds}
    cfg, scenario = load_config(args.file, overrides)
    options = CompareOptions(
        eval_seeds=EVAL_SEEDS if args.eval_seeds is None else args.eval_seeds,
        eval_root=EVAL_ROOT if args.eval_root is None else args.eval_root,
        horizon=args.horizon,
        devices=DEVICES if args.devices is None else tuple(args.devices),
        qpu_shots=args.qpu_shots,
        window=args.window,
    )
    executor = ProcessExecutor(args.workers)
    try:
        written = run_comparison(
            cfg,
            scenario,
            source=args.file,
            runs_root=args.runs,
            out=args.out,
            options=options,
            executor=executor,
            quiet=args.quiet,
            hint=_train_command(args),
        )
    finally:
        executor.close()
    print(written["report.md"].parent)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_sim.py compare", description=__doc__.splitlines()[0])
    for names, options in ARGUMENTS:
        p.add_argument(*names, **options)
    return p


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""``run_sim.py train``: train the agents of a training file (see :mod:`models.training`).

The file is a scenario (trained on with the paper's settings) or a training file
(:class:`models.training.TrainConfig`: a ``scenario`` key, agents, seeds, episodes, MDP and
hyper-parameters). Usable three ways:
``main(["scenarios/rl/quickstart.yaml", "--seeds", "0", "1"])``,
``run(namespace)`` with the arguments of :data:`ARGUMENTS`, or as a subcommand of
:mod:`sim.cli` registered with those arguments. Needs the ``rl`` extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

ARGUMENTS: tuple[tuple[tuple[Any, ...], dict[str, Any]], ...] = (
    (("file",), {"type": Path, "metavar": "FILE", "help": "scenario file, or a training file"}),
    (("--out",), {"type": Path, "default": None, "help": "output folder (default: the file's)"}),
    (
        ("--agents",),
        {
            "nargs": "+",
            "default": None,
            "help": "agents to train (ddpg, qddpg; default: the file's)",
        },
    ),
    (
        ("--seeds",),
        {"nargs": "+", "type": int, "default": None, "help": "seeds (default: the file's)"},
    ),
    (("--episodes",), {"type": int, "default": None, "help": "episodes per agent and seed"}),
    (("--quiet",), {"action": "store_true", "help": "no progress bar"}),
)
"""The subcommand's arguments, as ``(names, options)`` for ``ArgumentParser.add_argument``."""


def run(args: argparse.Namespace) -> int:
    """Train every (agent, seed) of ``args.file``; resumes runs that have a checkpoint."""
    from models.training import load_config, train

    overrides = {"agents": args.agents, "seeds": args.seeds, "episodes": args.episodes}
    cfg, scenario = load_config(args.file, overrides)
    folders = train(cfg, scenario, output=args.out, progress=not args.quiet)
    for folder in folders:
        print(folder)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_sim.py train", description=__doc__.splitlines()[0])
    for names, options in ARGUMENTS:
        p.add_argument(*names, **options)
    return p


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

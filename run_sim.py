#!/usr/bin/env python3
"""Run the simulator: ``python run_sim.py --help`` lists the commands (see :mod:`sim.cli`)."""

from sim.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

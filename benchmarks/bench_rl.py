"""Throughput of the RL pieces on one core: environment steps, quantum-actor gradients, and
DDPG / Q-DDPG training steps with the paper's settings (batch 4, 20-step episodes).

    python benchmarks/bench_rl.py            # 2,000 training steps per agent
    python benchmarks/bench_rl.py --steps 10000   # the paper's 500 x 20

Prints rates and the ratios between peers measured in the same run: Q-DDPG against DDPG
training steps, training against bare environment steps. Needs the ``rl`` extra.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models.agents.ddpg import DdpgParams, build_agent  # noqa: E402
from models.env import OffloadEnv  # noqa: E402
from models.quantum_actor import PqcLayer  # noqa: E402
from models.training import TrainConfig, _null_logger, _pca_states  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402
from sim.seeds import SeedTree  # noqa: E402


def env_steps(scenario, n: int) -> float:
    env = OffloadEnv(scenario, seed=0)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    t = time.perf_counter()
    for _ in range(n):
        _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 4))
        if term or trunc:
            env.reset()
    dt = time.perf_counter() - t
    env.close()
    return n / dt


def actor_gradients(batch: int, repeats: int) -> float:
    layer = PqcLayer(6, 1)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1.5, 1.5, (batch, 6)))
    t = time.perf_counter()
    for _ in range(repeats):
        layer.theta.grad = None
        layer(x).sum().backward()
    return batch * repeats / (time.perf_counter() - t)


def training_steps(scenario, actor: str, n: int) -> float:
    cfg = TrainConfig(scenario="-", agents=["qddpg"])
    env = OffloadEnv(scenario, seed=0)
    pca = _pca_states(scenario, cfg, 0) if actor == "pqc" else None
    model = build_agent(actor, env, DdpgParams(), SeedTree(0).sequence("policy"), pca)
    model.set_logger(_null_logger())
    t = time.perf_counter()
    model.learn(n)
    dt = time.perf_counter() - t
    env.close()
    return n / dt


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000, help="training steps per agent")
    p.add_argument("--scenario", type=Path, default=REPO / "scenarios" / "quickstart.yaml")
    args = p.parse_args()
    torch.set_num_threads(1)
    sc = load_scenario(args.scenario)
    env_rate = env_steps(sc, 2000)
    print(f"environment (random actions): {env_rate:,.0f} steps/s")
    for batch in (4, 256, 4096):
        rate = actor_gradients(batch, max(1, 20000 // batch))
        print(f"PQC actor forward + backward, batch {batch}: {rate:,.0f} samples/s")
    rates = {}
    for actor, name in (("mlp", "DDPG"), ("pqc", "Q-DDPG")):
        rates[name] = training_steps(sc, actor, args.steps)
        print(
            f"{name} training: {rates[name]:,.0f} steps/s "
            f"({args.steps} steps; 10,000 steps would take {10000 / rates[name]:.0f} s)"
        )
    print(f"ratio Q-DDPG / DDPG training speed: {rates['Q-DDPG'] / rates['DDPG']:.2f}")
    print(f"ratio Q-DDPG training / environment alone: {rates['Q-DDPG'] / env_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

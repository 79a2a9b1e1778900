"""Throughput of the RL pieces on one core: environment steps, quantum-actor gradients (ours
and qiskit-machine-learning's EstimatorQNN + TorchConnector on the same circuit), and DDPG /
Q-DDPG training steps with the paper's settings (batch 4, 20-step episodes).

    python benchmarks/bench_rl.py                  # 2,000 training steps per agent
    python benchmarks/bench_rl.py --steps 10000    # the paper's 500 x 20
    python benchmarks/bench_rl.py --pin 0          # the process (and the engine thread) on CPU 0

Prints rates, and the ratios between peers measured in the same run: our PQC layer against
EstimatorQNN (forward + backward, and whole actor updates), Q-DDPG against DDPG training,
training against bare environment steps. Every timed part runs once untimed first (kernel
loading). Training rows also give the process CPU time over the wall time: below about 0.9,
other processes were using the core. Needs the ``rl`` extra; the EstimatorQNN rows need
``qiskit-machine-learning`` (``bench`` extra) and are skipped without it.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models.agents.ddpg import DdpgParams, build_agent  # noqa: E402
from models.env import OffloadEnv  # noqa: E402
from models.quantum_actor import PcaAngles, PqcLayer, QuantumActorNet  # noqa: E402
from models.training import TrainConfig, _null_logger, _pca_states  # noqa: E402
from qpu.templates import policy_inference  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402
from sim.seeds import SeedTree  # noqa: E402

GRADIENT_TARGET = 50_000  # samples/s, the target for the quantum actor's gradients
TRAINING_TARGET = 60.0  # s for the paper's 10,000 Q-DDPG steps
N_QUBITS, LAYERS, N_ACTIONS, BATCH = 6, 1, 4, 4


def timed(fn) -> tuple[float, float]:
    """Wall and process CPU seconds of ``fn()``."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def env_steps(scenario, n: int) -> float:
    env = OffloadEnv(scenario, seed=0)
    rng = np.random.default_rng(0)
    env.reset(seed=0)

    def run(count: int) -> None:
        for _ in range(count):
            _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 4))
            if term or trunc:
                env.reset()

    run(200)
    wall, _ = timed(lambda: run(n))
    env.close()
    return n / wall


def repeat_for(fn, seconds: float, at_least: int = 1) -> float:
    """Calls of ``fn`` per second, over at least ``seconds`` and ``at_least`` calls."""
    fn()
    calls, start = 0, time.perf_counter()
    while calls < at_least or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls / (time.perf_counter() - start)


def actor_gradients(batch: int, seconds: float = 1.0) -> float:
    """Forward + backward samples/s of our PQC layer."""
    layer = PqcLayer(N_QUBITS, LAYERS)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1.5, 1.5, (batch, N_QUBITS)))

    def step() -> None:
        layer.theta.grad = None
        layer(x).sum().backward()

    return batch * repeat_for(step, seconds)


# ------------------------------------------------------------------ EstimatorQNN peer
class PeerCircuit(nn.Module):
    """EstimatorQNN + TorchConnector in place of :class:`PqcLayer` (TorchConnector computes
    in float32; its output is cast back to the input's dtype)."""

    def __init__(self, connector: nn.Module) -> None:
        super().__init__()
        self.connector = connector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.connector(x).to(x.dtype)


def estimator_qnn(theta: np.ndarray):
    """EstimatorQNN over :func:`qpu.templates.policy_inference` (inputs x, weights theta,
    observables Z_j) and its TorchConnector, or None without qiskit-machine-learning."""
    try:
        import qiskit
        import qiskit_machine_learning
        from qiskit_machine_learning.connectors import TorchConnector
        from qiskit_machine_learning.neural_networks import EstimatorQNN
    except ImportError:
        return None
    t = policy_inference(N_QUBITS, LAYERS)
    qnn = EstimatorQNN(
        circuit=t.circuit,
        observables=list(t.observables),
        input_params=list(t.inputs),
        weight_params=list(t.weights),
    )
    name = (
        f"qiskit-machine-learning {qiskit_machine_learning.__version__} EstimatorQNN "
        f"({type(qnn.estimator).__name__}, {type(qnn.gradient).__name__}) + TorchConnector, "
        f"qiskit {qiskit.__version__}"
    )
    return qnn, TorchConnector(qnn, initial_weights=theta), name


def compare_with_estimator_qnn(pca_states: np.ndarray, samples: int, updates: int) -> None:
    rng = np.random.default_rng(1)
    ours = PqcLayer(N_QUBITS, LAYERS)
    theta = ours.theta.detach().numpy().copy()
    peer = estimator_qnn(theta)
    if peer is None:
        print("EstimatorQNN: skipped (qiskit-machine-learning is not installed; bench extra)")
        return
    qnn, connector, name = peer
    print(f"peer: {name}")

    # the same values and gradients
    x = rng.uniform(-1.5, 1.5, (BATCH, N_QUBITS))
    g = rng.normal(size=(BATCH, N_QUBITS))
    values = ours.circuit.expectations(x, theta)
    _, jac = ours.circuit.gradients(x, theta)
    qnn_values = np.asarray(qnn.forward(x, theta))
    _, qnn_jac = qnn.backward(x, theta)
    with torch.no_grad():
        torch_values = connector(torch.from_numpy(x)).double().numpy()
    print(
        f"EstimatorQNN against ours, batch {BATCH}: max |value difference| "
        f"{np.abs(qnn_values - values).max():.1e} (float64), "
        f"{np.abs(torch_values - values).max():.1e} through TorchConnector (float32); "
        f"max |Jacobian difference| {np.abs(np.asarray(qnn_jac) - jac).max():.1e}"
    )

    # forward + backward, batch 4
    xt = torch.from_numpy(x)
    gt = torch.from_numpy(g)

    def ours_step() -> None:
        ours.theta.grad = None
        (ours(xt) * gt).sum().backward()

    def peer_step() -> None:
        connector.weight.grad = None
        (connector(xt).double() * gt).sum().backward()

    calls = max(1, samples // BATCH)
    ours_rate = BATCH * repeat_for(ours_step, 1.0)
    peer_rate = BATCH * repeat_for(peer_step, 0.0, at_least=calls)
    print(f"forward + backward, batch {BATCH}: ours {ours_rate:,.0f} samples/s")
    print(
        f"forward + backward, batch {BATCH}: EstimatorQNN {peer_rate:,.1f} samples/s "
        f"({calls * BATCH} samples)"
    )
    print(f"ratio ours / EstimatorQNN, forward + backward: {ours_rate / peer_rate:,.0f}")

    # the same actor updates: PCA angles -> circuit -> tanh output map, a fixed critic,
    # Adam at the paper's actor rate; the same batches of states for both
    torch.manual_seed(0)
    pca = PcaAngles.fit(pca_states, N_QUBITS)
    actor = QuantumActorNet(pca, N_ACTIONS, N_QUBITS, LAYERS)
    with torch.no_grad():
        actor.pqc.theta.copy_(torch.from_numpy(theta))
    peer_actor = copy.deepcopy(actor)
    peer_actor.pqc = PeerCircuit(connector)
    features = pca_states.shape[1]
    critic = nn.Sequential(
        nn.Linear(features + N_ACTIONS, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
        nn.Linear(64, 1),
    )  # fmt: skip
    critic.requires_grad_(False)
    states = torch.from_numpy(pca_states.astype(np.float32))
    picks = rng.integers(0, len(states), (max(updates, 2000), BATCH))

    def updater(net: nn.Module):
        opt = torch.optim.Adam(net.parameters(), lr=DdpgParams().actor_lr)
        count = [0]

        def update() -> None:
            obs = states[picks[count[0] % len(picks)]]
            count[0] += 1
            loss = -critic(torch.cat([obs, net(obs)], dim=1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        return update

    ours_update = updater(actor)
    peer_update = updater(peer_actor)
    # the same batches for both: ``updates`` steps each, then compare the angles
    for _ in range(updates):
        ours_update()
    peer_wall, _ = timed(lambda: [peer_update() for _ in range(updates)])
    with torch.no_grad():
        diff = (actor.pqc.theta - peer_actor.pqc.connector.weight.double()).abs().max().item()
    ours_rate = repeat_for(updater(copy.deepcopy(actor)), 1.0)
    peer_rate = updates / peer_wall
    print(f"actor update (forward, backward, Adam step), batch {BATCH}: ours {ours_rate:,.0f}/s")
    print(
        f"actor update, batch {BATCH}: EstimatorQNN {peer_rate:,.2f}/s ({updates} updates; "
        f"max |theta difference| after them {diff:.1e})"
    )
    print(f"ratio ours / EstimatorQNN, actor updates: {ours_rate / peer_rate:,.0f}")


# ------------------------------------------------------------------ training
def training_steps(scenario, actor: str, n: int, pca: np.ndarray | None) -> tuple[float, float]:
    """Steps/s of ``model.learn(n)`` and the CPU / wall ratio."""
    env = OffloadEnv(scenario, seed=0)
    model = build_agent(actor, env, DdpgParams(), SeedTree(0).sequence("policy"), pca)
    model.set_logger(_null_logger())
    wall, cpu = timed(lambda: model.learn(n))
    env.close()
    return n / wall, cpu / wall


def _mark(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "MISS"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000, help="training steps per agent")
    p.add_argument("--scenario", type=Path, default=REPO / "scenarios" / "quickstart.yaml")
    p.add_argument(
        "--qnn-samples", type=int, default=256, help="EstimatorQNN forward + backward samples"
    )
    p.add_argument("--qnn-updates", type=int, default=200, help="EstimatorQNN actor updates")
    p.add_argument("--pin", type=int, metavar="CPU", help="run on this CPU only")
    args = p.parse_args()
    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})  # threads started later inherit it
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the circuit angles PqcLayer draws
    print(
        f"CPUs {sorted(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f}, "
        f"torch {torch.__version__}"
    )
    sc = load_scenario(args.scenario)
    env_rate = env_steps(sc, 2000)
    print(f"environment (random actions): {env_rate:,.0f} steps/s")
    for batch in (4, 256, 4096):
        rate = actor_gradients(batch)
        print(
            f"PQC actor forward + backward, batch {batch}: {rate:,.0f} samples/s "
            f"(target >= {GRADIENT_TARGET:,}: {_mark(rate, GRADIENT_TARGET)})"
        )
    pca = _pca_states(sc, TrainConfig(scenario="-", agents=["qddpg"]), 0)
    compare_with_estimator_qnn(pca, args.qnn_samples, args.qnn_updates)
    rates = {}
    for actor, name in (("mlp", "DDPG"), ("pqc", "Q-DDPG")):
        rates[name], busy = training_steps(sc, actor, args.steps, pca if actor == "pqc" else None)
        per_10k = 10000 / rates[name]
        mark = f", target < {TRAINING_TARGET:.0f} s: {_mark(per_10k, TRAINING_TARGET, False)}"
        print(
            f"{name} training: {rates[name]:,.0f} steps/s ({args.steps} steps, cpu/wall "
            f"{busy:.2f}; 10,000 steps would take {per_10k:.1f} s"
            f"{mark if name == 'Q-DDPG' else ''})"
        )
    print(f"ratio Q-DDPG / DDPG training speed: {rates['Q-DDPG'] / rates['DDPG']:.2f}")
    print(f"ratio Q-DDPG training / environment alone: {rates['Q-DDPG'] / env_rate:.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

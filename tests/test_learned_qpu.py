"""A trained Q-DDPG agent whose decisions run on the QPU service: with a sampling backend the
actions come from the sampled expectation values, so shot and device noise act on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_table, scenario

from models.policies import get
from models.training import TrainConfig, train_one

torch.set_num_threads(1)

DECISION_COLUMNS = ["offload", "server", "power"]


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> str:
    cfg = TrainConfig(
        scenario="quickstart", agents=["qddpg"], seeds=[5], episodes=2, episode_steps=5,
        checkpoint_every=2, ddpg={"learning_starts": 3, "pca_episodes": 2, "buffer_size": 100},
    )  # fmt: skip
    out = tmp_path_factory.mktemp("agent")
    return str(train_one(cfg, scenario(), "qddpg", 5, out))


def _run(model: str, backend: str | None, shots: int = 256, horizon: str = "1 s", **job):
    qpu = None
    if backend is not None:
        qpu = {
            "backend": backend,
            "timing": {"clops": 1e6},
            "policy_site": {"location": "cloud"},
            "jobs": {"policy_inference": {"enabled": True, "shots": shots, **job}},
        }
    sc = scenario(
        engine={"horizon": horizon},
        policy={"id": "qddpg", "params": {"model": model}},
        **({"qpu": qpu} if qpu else {}),
    )
    return run_table(sc)


def test_exact_backends_decide_as_the_actor_itself(agent):
    plain, _ = _run(agent, None)
    for backend in ("exact", "timing-only"):
        t, r = _run(agent, backend)
        assert len(t) == len(plain) > 10
        for col in DECISION_COLUMNS:
            np.testing.assert_array_equal(t[col].to_numpy(), plain[col].to_numpy())
        assert "policy_action_error_mean" not in r.extra()
        assert r.extra()["decision_latency_mean"] > 0


def test_sampled_actions_carry_shot_noise_that_shrinks_as_one_over_root_shots(agent):
    errors = {}
    for shots in (64, 4096):
        _, r = _run(agent, "aer", shots=shots)
        extra = r.extra()
        assert extra["policy_qpu_submissions"] > 10
        errors[shots] = extra["policy_action_error_mean"]
        assert extra["policy_action_error_max"] >= errors[shots] > 0
    # mean |a_sampled - a_exact| ~ |d a / d z| sqrt(2 / pi) sqrt((1 - z^2) / shots)
    ratio = errors[64] / errors[4096]
    assert 5.0 < ratio < 12.0, ratio
    # with many shots the sampled actions are the exact ones up to tiny noise
    _, r = _run(agent, "aer", shots=50_000)
    assert r.extra()["policy_action_error_mean"] < 0.02


def test_sampled_decisions_differ_from_exact_ones_and_repeat_with_the_seed(agent):
    exact, _ = _run(agent, "exact")
    a, _ = _run(agent, "aer", shots=8)
    b, _ = _run(agent, "aer", shots=8)
    assert a.equals(b)
    assert len(a) == len(exact)
    assert not np.array_equal(a.power.to_numpy(), exact.power.to_numpy())


def test_device_noise_moves_the_actions_further_than_shot_noise(agent):
    _, ideal = _run(agent, "aer", shots=4096, horizon="0.5 s")
    _, noisy = _run(agent, "aer-noisy:fake_nairobi", shots=4096, horizon="0.5 s")
    assert (
        noisy.extra()["policy_action_error_mean"] > 1.5 * ideal.extra()["policy_action_error_mean"]
    )


def _checked(agent: str, size: int):
    return scenario(
        policy={"id": "qddpg", "params": {"model": agent}},
        qpu={
            "policy_site": {"location": "cloud"},
            "jobs": {"policy_inference": {"enabled": True, "size": size}},
        },
    )


def test_the_inference_job_must_have_the_agents_circuit(agent):
    from sim.errors import ScenarioError
    from sim.scenario import validate_data

    cls = get("qddpg")
    problems = cls.check(cls.Params(model=agent), _checked(agent, 4))
    assert problems and problems[0][0] == "qpu.jobs.policy_inference"
    assert "size 6" in problems[0][1] and "size 4" in problems[0][1]
    assert cls.check(cls.Params(model=agent), _checked(agent, 6)) == []
    # validating the scenario reports it with its key
    data = _checked(agent, 4).model_dump(mode="json")
    with pytest.raises(ScenarioError, match=r"the agent's circuit is"):
        validate_data(data)

"""Sweep expansion: grid and zip axes, policies, seeds, validation of every point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, CollectSink

from sim.engine import simulate
from sim.errors import ScenarioError
from sim.scenario import load_scenario, scenario_json_schema
from sim.seeds import SeedTree
from sim.sweep import load_sweep, parse_path, run_identity

BASE = """\
name: tiny
seed: 3
engine: {horizon: 1 s, epoch: 10 ms}
vehicles: {count: 3}
servers: {count: 2, placement: line, bandwidth: 10 MHz}
mobility: {model: random_waypoint, step: 100 ms, area: {width: 400 m, height: 200 m}}
channel: {reference_gain: -40 dB, noise: -70 dBm}
output: {task_table: false, plots: false}
"""


def write(tmp_path: Path, sweep: str, base: str = BASE, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(base + sweep)
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if text in ln)


def test_grid_times_zip_gives_every_combination_in_file_order(tmp_path):
    path = write(
        tmp_path,
        """\
sweep:
  grid:
    servers.bandwidth: [3 MHz, 5 MHz, 7 MHz]
    policy: [local, greedy]
  zip:
    - {vehicles.count: [2, 4], tasks.arrival_rate: [5 /s, 20 /s]}
  replications: 2
""",
    )
    sw = load_sweep(path)
    assert sw.n_points == 3 * 2 * 2 and len(sw.runs) == 24 and sw.replications == 2
    assert [a.path for a in sw.axes] == [
        "servers.bandwidth",
        "policy",
        "vehicles.count",
        "tasks.arrival_rate",
    ]
    assert [a.kind for a in sw.axes] == ["grid", "grid", "zip", "zip"]
    assert [a.group for a in sw.axes] == [0, 1, 2, 2]
    assert sw.axes[0].si_values == (3e6, 5e6, 7e6) and sw.axes[0].unit == "Hz"
    assert sw.axes[3].unit == "/s" and sw.axes[2].unit == ""
    # first dimension slowest; the zip axes move together
    expected = [
        (bw, pol, n, rate)
        for bw in (3e6, 5e6, 7e6)
        for pol in ("local", "greedy")
        for n, rate in ((2, 5.0), (4, 20.0))
    ]
    points = [r for r in sw.runs if r.replication == 0]
    assert [r.point for r in points] == list(range(12))
    got = [
        (
            r.config["servers"]["bandwidth"],
            r.config["policy"]["id"],
            r.config["vehicles"]["count"],
            r.config["tasks"]["arrival_rate"],
        )
        for r in points
    ]
    assert got == expected
    assert all(r.policy == r.config["policy"]["id"] for r in sw.runs)
    assert points[5].params == {
        "servers.bandwidth": 5e6,
        "policy": "local",
        "vehicles.count": 4.0,
        "tasks.arrival_rate": 20.0,
    }
    # everything not swept is the base scenario's
    assert {r.config["mobility"]["area"]["width"] for r in sw.runs} == {400.0}
    assert sw.shape_text().startswith("12 points x 2 replications = 24 runs")


def test_seeds_depend_only_on_the_replication_and_ids_on_config_seed_and_code(
    tmp_path, monkeypatch
):
    path = write(
        tmp_path,
        "sweep:\n  grid:\n    policy: [local, nearest]\n    servers.bandwidth: [3 MHz, 9 MHz]\n"
        "  replications: 3\n",
    )
    monkeypatch.setenv("QVECSIM_CODE_VERSION", "v-one")
    sw = load_sweep(path)
    assert {(r.seed_root, r.seed_path, r.replication) for r in sw.runs} == {
        (3, (r,), r) for r in range(3)
    }
    ids = [r.run_id for r in sw.runs]
    assert len(set(ids)) == len(ids) == 12
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    assert ids == [r.run_id for r in load_sweep(path).runs]  # stable
    spec = sw.runs[0]
    assert spec.run_id == run_identity(spec.config, spec.seed_path, "v-one")
    assert sw.code_version == "v-one"
    monkeypatch.setenv("QVECSIM_CODE_VERSION", "v-two")
    other = load_sweep(path)
    assert not set(ids) & {r.run_id for r in other.runs}
    assert other.sweep_id != sw.sweep_id


def test_runs_differing_only_in_policy_or_swept_value_see_the_same_draws(tmp_path):
    path = write(
        tmp_path,
        "sweep:\n  grid:\n    servers.bandwidth: [3 MHz, 9 MHz]\n    policy: [local, greedy]\n"
        "  replications: 2\n",
    )
    sw = load_sweep(path)

    def frame(spec):
        sink = CollectSink()
        simulate(spec.scenario, sink, seeds=SeedTree(spec.seed_root, spec.seed_path))
        return sink.frame()

    rep1 = [frame(r) for r in sw.runs if r.replication == 1]
    assert len(rep1) == 4
    for other in rep1[1:]:
        for col in ("arrival", "vehicle", "size_bits", "cycles"):
            np.testing.assert_array_equal(other[col].to_numpy(), rep1[0][col].to_numpy())
    decisions = {tuple(f["server"].to_numpy()) for f in rep1}
    assert len(decisions) > 1  # the policies did decide differently
    rep0 = frame(next(r for r in sw.runs if r.replication == 0))
    assert len(rep0) != len(rep1[0]) or not np.array_equal(
        rep0["arrival"].to_numpy(), rep1[0]["arrival"].to_numpy()
    )


def test_policy_values_take_params_and_labels(tmp_path):
    path = write(
        tmp_path,
        """\
sweep:
  grid:
    policy:
      - local
      - {id: random, params: {offload_probability: 0.25}}
      - {id: random, params: {offload_probability: 0.75}, label: mostly-edge}
""",
    )
    sw = load_sweep(path)
    assert [r.policy for r in sw.runs] == [
        "local",
        "random(offload_probability=0.25)",
        "mostly-edge",
    ]
    assert sw.runs[2].config["policy"] == {"id": "random", "params": {"offload_probability": 0.75}}
    assert sw.axes[0].si_values == tuple(r.policy for r in sw.runs)
    dup = write(
        tmp_path,
        "sweep:\n  grid:\n    policy: [local, {id: greedy, label: local}]\n",
        name="dup.yaml",
    )
    with pytest.raises(ScenarioError, match="label 'local'"):
        load_sweep(dup)


def test_a_policy_parameter_can_be_an_axis_of_its_own(tmp_path):
    base = BASE + "policy: random\n"
    path = write(
        tmp_path,
        "sweep:\n  grid:\n    policy.params.offload_probability: [0.1, 0.9]\n",
        base=base,
    )
    sw = load_sweep(path)
    assert [r.config["policy"]["params"] for r in sw.runs] == [
        {"offload_probability": 0.1},
        {"offload_probability": 0.9},
    ]
    assert {r.policy for r in sw.runs} == {"random"}


def test_a_distribution_axis_appears_by_its_mean_in_its_unit(tmp_path):
    path = write(
        tmp_path,
        "sweep:\n  grid:\n    tasks.complexity: [1 Mcycles, [1 Mcycles, 3 Mcycles]]\n",
    )
    sw = load_sweep(path)
    assert sw.axes[0].si_values == (1e6, 2e6) and sw.axes[0].unit == "cycles"
    assert sw.runs[0].config["tasks"]["complexity"]["kind"] == "fixed"
    assert sw.runs[1].config["tasks"]["complexity"]["kind"] == "uniform"


@pytest.mark.parametrize(
    ("sweep", "key", "marker", "words"),
    [
        (
            "sweep:\n  grid:\n    servers.bandwidth: [3 MHz, -5 MHz]\n",
            "servers.bandwidth",
            "-5 MHz",
            ["out of range", "sweep grid axis 'servers.bandwidth', value 2 of 2"],
        ),
        (
            "sweep:\n  grid:\n    servers.bandwidth: [3 MHz, 5 parsecs]\n",
            "servers.bandwidth",
            "parsecs",
            ["value 2 of 2", "'5 parsecs'"],
        ),
        (
            "sweep:\n  grid:\n    policy: [local, greedyy]\n",
            "policy.id",
            "greedyy",
            ["unknown policy", "did you mean 'greedy'", "sweep grid axis 'policy'"],
        ),
        (
            "sweep:\n  grid:\n    policy:\n      - local\n"
            "      - {id: random, params: {offload_probability: 2}}\n",
            "policy.params.offload_probability",
            "offload_probability: 2",
            ["value 2 of 2"],
        ),
        (
            "sweep:\n  zip:\n    - {vehicles.count: [2, 0]}\n",
            "vehicles.count",
            "vehicles.count",
            ["sweep zip axis 'vehicles.count', value 2 of 2"],
        ),
        (
            "sweep:\n  grid:\n    servers.bandwith: [3 MHz]\n",
            "sweep.grid.servers.bandwith",
            "bandwith",
            ["not a config path", "did you mean 'bandwidth'"],
        ),
        (
            "sweep:\n  zip:\n    - {vehicles.count: [2, 3], servers.count: [1, 2, 3]}\n",
            "sweep.zip[0]",
            "vehicles.count",
            ["one length", "vehicles.count has 2", "servers.count has 3"],
        ),
        (
            "sweep:\n  grid:\n    policy: [local]\n  replication: 3\n",
            "sweep.replication",
            "replication:",
            ["did you mean 'replications'"],
        ),
        (
            "sweep:\n  grid:\n    servers.bandwidth: [3 MHz, 3e6 Hz]\n",
            "sweep",
            "sweep:",
            ["points 0 and 1 give the same scenario"],
        ),
        (
            "sweep:\n  grid:\n    servers.bandwidth: []\n",
            "sweep.grid.servers.bandwidth",
            "bandwidth: []",
            ["non-empty list"],
        ),
        (
            "sweep:\n  grid:\n    policy: [local]\n    policy.params.server: [0]\n",
            "sweep.grid.policy.params.server",
            "policy.params.server",
            ["swept"],
        ),
    ],
)
def test_a_bad_sweep_is_reported_at_its_axis_value_and_line(tmp_path, sweep, key, marker, words):
    path = write(tmp_path, sweep)
    with pytest.raises(ScenarioError) as info:
        load_sweep(path)
    err = info.value
    assert err.key == key
    assert err.file == str(path)
    assert err.line == line_of(path, marker), str(err)
    for word in words:
        assert word in str(err)
    assert "\n" not in str(err)


def test_a_cross_field_error_names_the_sweep_point(tmp_path):
    path = write(tmp_path, "sweep:\n  grid:\n    engine.horizon: [1 s, 5 ms]\n")
    with pytest.raises(ScenarioError) as info:
        load_sweep(path)
    assert "engine.horizon = '5 ms'" in str(info.value)


def test_overrides_replace_the_base_and_the_replications(tmp_path):
    path = write(tmp_path, "sweep:\n  grid:\n    policy: [local, greedy]\n  replications: 4\n")
    sw = load_sweep(path, {"engine.horizon": "2 s", "seed": 9}, replications=1)
    assert len(sw.runs) == 2 and sw.root_seed == 9
    assert {r.config["engine"]["horizon"] for r in sw.runs} == {2.0}
    with pytest.raises(ScenarioError, match=r"command line: engine\.horizon"):
        load_sweep(path, {"engine.horizon": "-1 s"})
    with pytest.raises(ScenarioError, match="is swept"):
        load_sweep(path, {"policy": "oracle"})


def test_the_base_scenario_loads_without_the_sweep_and_the_schema_describes_it(tmp_path):
    path = write(tmp_path, "sweep:\n  grid:\n    policy: [local, greedy]\n")
    base = load_scenario(path)
    assert base.name == "tiny" and base.policy.id == "greedy"
    schema = scenario_json_schema()
    assert set(schema["properties"]["sweep"]["properties"]) == {"grid", "zip", "replications"}


def test_parse_path():
    assert parse_path("servers.sites[0].cpu") == ("servers", "sites", 0, "cpu")
    assert parse_path("policy") == ("policy",)
    for bad in ("", "a..b", "a.[0]", "a.b c"):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_cli_validate_checks_every_point_and_says_where(tmp_path):
    good = write(tmp_path, "sweep:\n  grid:\n    policy: [local, greedy]\n", name="good.yaml")
    bad = write(
        tmp_path, "sweep:\n  grid:\n    servers.bandwidth: [3 MHz, -1 MHz]\n", name="bad.yaml"
    )
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_sim.py"), "validate", str(good), str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "2 points x 1 replications = 2 runs" in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"error: {bad}:{line_of(bad, '-1 MHz')}: servers.bandwidth")
    assert "value 2 of 2" in lines[0]


def test_every_shipped_sweep_expands(tmp_path):
    files = sorted((REPO / "scenarios").rglob("*.yaml"))
    sweeps = [p for p in files if "sweep:" in p.read_text()]
    assert {p.name for p in sweeps} >= {
        "paper_like_sweep.yaml",
        "bandwidth.yaml",
        "task_complexity.yaml",
        "vehicle_count.yaml",
    }
    for path in sweeps:
        sw = load_sweep(path)
        assert len(sw.runs) == sw.n_points * sw.replications
        json.dumps(sw.axes_record(), allow_nan=False)

"""Loading and validating scenario files: units, errors located by key and line, and the
refusal of anything unsafe or malformed."""

from __future__ import annotations

import json
import os
import pickle
import stat
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from sim.errors import NO_VALUE, ScenarioError, SimError
from sim.scenario import (
    MAX_BYTES,
    MAX_DEPTH,
    key_text,
    load_scenario,
    load_yaml,
    scenario_json_schema,
    validate_data,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def write(tmp_path: Path):
    """Write a dedented YAML text to a file and return its path."""

    def _write(text: str, name: str = "s.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write


def error_of(path: Path, **kwargs) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, **kwargs)
    text = str(info.value)
    assert "\n" not in text
    return info.value


# --------------------------------------------------------------------------- units
def test_units_are_converted_to_si(write) -> None:
    s = load_scenario(
        write("""
        servers:
          bandwidth: 10 MHz
          cpu: 2 GHz
        channel:
          noise: -70 dBm
          reference_gain: -40 dB
        tasks:
          deadline: 50 ms
        mobility:
          speed: [36 km/h, 54 km/h]
        """)
    )
    assert s.servers.bandwidth == pytest.approx(1e7)
    assert s.servers.cpu == pytest.approx(2e9)
    assert s.channel.noise == pytest.approx(1e-10)
    assert s.channel.reference_gain == pytest.approx(1e-4)
    assert s.tasks.deadline == pytest.approx(0.05)
    assert s.mobility.speed == pytest.approx((10.0, 15.0))


def test_exponent_without_dot_is_a_number(write) -> None:
    s = load_scenario(write("vehicles: {cpu: 1e9, energy_coefficient: 1e-27}\n"))
    assert s.vehicles.cpu == pytest.approx(1e9)
    assert s.vehicles.energy_coefficient == pytest.approx(1e-27)


def test_wrong_unit_names_the_allowed_units(write) -> None:
    err = error_of(write("servers:\n  bandwidth: 10 MHzz\n"))
    assert err.key == "servers.bandwidth"
    assert err.value == "10 MHzz"
    assert err.line == 2
    assert "MHz" in err.allowed and "GHz" in err.allowed
    assert str(err).endswith(
        ": servers.bandwidth = '10 MHzz': unit 'MHzz' is not a unit of "
        "frequency; allowed units: Hz, kHz, MHz, GHz, THz"
    )


# --------------------------------------------------------------------------- schema errors
def test_range_error_states_the_bounds(write) -> None:
    err = error_of(write("vehicles:\n  count: 3\n  semantic_accuracy: 1.5\n"))
    assert (err.key, err.value, err.line) == ("vehicles.semantic_accuracy", 1.5, 3)
    assert err.allowed == "0 < value <= 1"


def test_range_error_of_a_quantity_shows_si_value_and_unit(write) -> None:
    err = error_of(write("servers: {bandwidth: -5 MHz}\n"))
    assert err.key == "servers.bandwidth"
    assert err.value == "-5 MHz"
    assert "-5e+06 Hz" in err.message
    assert err.allowed == "value > 0 Hz"


def test_literal_error_lists_the_choices(write) -> None:
    err = error_of(write("mobility:\n  model: teleport\n"))
    assert err.key == "mobility.model"
    assert err.allowed == (
        "'static', 'random_waypoint', 'highway', 'manhattan', 'sumo-trace', 'sumo'"
    )
    assert "allowed: 'static'" in str(err)


def test_unknown_key_suggests_the_nearest(write) -> None:
    err = error_of(write("channel:\n  path_loss_exponent: 2\n  nosie: -70 dBm\n"))
    assert (err.key, err.line) == ("channel.nosie", 3)
    assert "did you mean 'noise'?" in str(err)
    assert "noise_kind" in err.allowed


def test_unknown_top_level_key(write) -> None:
    err = error_of(write("name: x\nvehicle:\n  count: 3\n"))
    assert (err.key, err.line) == ("vehicle", 2)
    assert "did you mean 'vehicles'?" in str(err)


def test_missing_tuple_item(write) -> None:
    err = error_of(write("mobility:\n  speed: [1 m/s]\n"))
    assert err.key == "mobility.speed"
    assert "2 items" in err.message


def test_section_that_is_not_a_mapping(write) -> None:
    err = error_of(write("engine: 10 s\n"))
    assert err.key == "engine"
    assert "horizon" in err.allowed


def test_line_of_nested_value(write) -> None:
    err = error_of(
        write("""
        name: nested
        channel:
          path_loss_exponent: 2
          fading:
            model: rician
            rician_k: 3 parsecs
        """)
    )
    assert (err.key, err.line) == ("channel.fading.rician_k", 6)


def test_line_of_value_in_a_list(write) -> None:
    err = error_of(
        write("""
        servers:
          count: 2
          placement: list
          sites:
            - position: [0 m, 0 m]
            - position: [100 m,
                         5 xm]
              cpu: 1 GHz
        """)
    )
    assert err.key == "servers.sites[1].position[1]"
    assert err.line == 7


def test_missing_required_key_in_a_list_item(write) -> None:
    err = error_of(
        write("""
        servers:
          count: 1
          placement: list
          sites:
            - cpu: 1 GHz
        """)
    )
    assert err.key == "servers.sites[0].position"
    assert err.value is NO_VALUE
    assert err.line == 5


# --------------------------------------------------------------------------- cross-field checks
def test_epoch_longer_than_horizon(write) -> None:
    err = error_of(write("engine:\n  horizon: 1 s\n  epoch: 2 s\n"))
    assert (err.key, err.value, err.line) == ("engine.epoch", "2 s", 3)
    assert "longer than horizon" in err.message


def test_list_placement_with_wrong_number_of_sites(write) -> None:
    err = error_of(
        write("""
        servers:
          count: 3
          placement: list
          sites:
            - position: [0, 0]
        """)
    )
    assert (err.key, err.line) == ("servers.sites", 4)
    assert "count is 3, sites has 1" in err.message


def test_semantic_efficiency_below_minimum(write) -> None:
    err = error_of(write("channel:\n  semantic_efficiency: 0.2\n"))
    assert (err.key, err.line) == ("channel.semantic_efficiency", 2)


def test_distribution_needing_a_key_points_below_the_field(write) -> None:
    err = error_of(write("tasks:\n  size: {kind: fixed}\n"))
    assert err.key == "tasks.size.value"
    assert err.value is NO_VALUE
    assert err.line == 2


# --------------------------------------------------------------------------- policies
def test_unknown_policy_lists_known_ones(write) -> None:
    err = error_of(write("policy: gredy\n"))
    assert (err.key, err.value, err.line) == ("policy.id", "gredy", 1)
    assert "did you mean 'greedy'?" in str(err)
    assert "nearest" in err.allowed


def test_fixed_policy_server_out_of_range(write) -> None:
    pytest.importorskip("models.policies")
    err = error_of(
        write("""
        servers: {count: 2}
        policy:
          id: fixed
          params:
            server: 2
        """)
    )
    assert (err.key, err.value, err.line) == ("policy.params.server", 2, 5)


def test_fixed_policy_in_range_is_accepted(write) -> None:
    s = load_scenario(write("servers: {count: 2}\npolicy: {id: fixed, params: {server: 1}}\n"))
    assert s.policy.params == {"server": 1}


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = 1


@pytest.fixture
def probe_policy(monkeypatch):
    """A policy 'probe' whose check() reports its bare parameter name."""
    from models.policies import base

    class Probe(base.Policy):
        id = "probe"
        Params = _Params

        @classmethod
        def check(cls, params, scenario):
            if params.level > scenario.vehicles.count:
                return [("level", "above the number of vehicles")]
            return []

    monkeypatch.setitem(base._REGISTRY, "probe", Probe)
    return Probe


def test_policy_params_are_validated(write, probe_policy) -> None:
    err = error_of(write("policy:\n  id: probe\n  params:\n    level: high\n"))
    assert (err.key, err.line) == ("policy.params.level", 4)


def test_policy_param_typo(write, probe_policy) -> None:
    err = error_of(write("policy:\n  id: probe\n  params:\n    levle: 2\n"))
    assert err.key == "policy.params.levle"
    assert "did you mean 'level'?" in str(err)


def test_policy_check_key_is_placed_under_params(write, probe_policy) -> None:
    err = error_of(write("vehicles: {count: 2}\npolicy: {id: probe, params: {level: 3}}\n"))
    assert (err.key, err.value, err.line) == ("policy.params.level", 3, 2)


# --------------------------------------------------------------------------- unsafe YAML
def test_duplicate_keys_name_both_lines(write) -> None:
    err = error_of(
        write("""
        channel:
          noise: -70 dBm
          fading:
            model: rayleigh
          noise: -80 dBm
        """)
    )
    assert (err.key, err.line) == ("channel.noise", 5)
    assert "line 2" in err.message and "line 5" in err.message


def test_duplicate_top_level_keys(write) -> None:
    err = error_of(write("seed: 1\nname: a\nseed: 2\n"))
    assert (err.key, err.line) == ("seed", 3)


def test_alias_bomb_is_rejected_quickly(write) -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    err = error_of(write("\n".join(lines) + "\n"))
    assert time.perf_counter() - start < 1.0
    assert "aliases" in err.message


def test_alias_alone_is_rejected(write) -> None:
    err = error_of(write("vehicles: {count: 3}\nservers: {count: *n}\n"))
    assert err.line == 2


@pytest.mark.parametrize(
    "tagged",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        '!!python/object/new:os.system ["touch {marker}"]',
        "!!python/name:os.system",
        "!custom 3",
        "!!binary aGVsbG8=",
        "!!set {{a, b}}",
        "!!omap [a: 1]",
    ],
)
def test_tags_are_rejected_and_never_executed(write, tmp_path: Path, tagged: str) -> None:
    marker = tmp_path / "executed"
    err = error_of(write(f"name: t\ndescription: {tagged.format(marker=marker)}\n"))
    assert (err.key, err.line) == ("description", 2)
    assert "tag" in err.message
    assert not marker.exists()


def test_standard_tags_are_read(write) -> None:
    s = load_scenario(write("description: !!str 12\nseed: !!int '7'\n"))
    assert (s.description, s.seed) == ("12", 7)


def test_bad_explicit_scalar(write) -> None:
    err = error_of(write("seed: !!int seven\n"))
    assert (err.key, err.line) == ("seed", 1)


def test_deep_nesting_is_rejected(write) -> None:
    depth = MAX_DEPTH + 5
    err = error_of(write("policy: {params: {x: " + "[" * depth + "]" * depth + "}}\n"))
    assert "nested deeper" in err.message


def test_very_deep_nesting_is_rejected_quickly(write) -> None:
    start = time.perf_counter()
    error_of(write("a: " + "[" * 200_000 + "]" * 200_000 + "\n"))
    assert time.perf_counter() - start < 1.0


def test_keys_must_be_plain(write) -> None:
    err = error_of(write("? [a, b]\n: 1\n"))
    assert "keys" in err.message


# --------------------------------------------------------------------------- broken files
def test_huge_file_is_rejected_without_parsing(write) -> None:
    path = write("name: big\n" + "#" * (MAX_BYTES + 10) + "\n")
    start = time.perf_counter()
    err = error_of(path)
    assert time.perf_counter() - start < 0.5
    assert "larger than" in err.message
    assert err.file == str(path)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_bytes(b"name: x\n\x00\x01\x02\xff\xfe")
    err = error_of(path)
    assert "NUL" in err.message and err.line == 2


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: x\ndescription: café\n".encode("latin-1"))
    err = error_of(path)
    assert "UTF-8" in err.message and err.line == 2


def test_control_character(tmp_path: Path) -> None:
    path = tmp_path / "bell.yaml"
    path.write_bytes('description: é\nname: "a\x07"\n'.encode())
    err = error_of(path)
    assert "U+0007" in err.message and err.line == 2


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffname: bom\n".encode())
    assert load_scenario(path).name == "bom"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_file(write, text: str) -> None:
    err = error_of(write(text))
    assert err.key == "" and ("empty" in err.message or "no scenario" in err.message)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n", "!!seq [a]\n"])
def test_top_level_must_be_a_mapping(write, text: str) -> None:
    assert "top level" in error_of(write(text)).message


def test_explicit_map_tag_is_a_mapping(write) -> None:
    assert load_scenario(write("!!map {name: tagged}\n")).name == "tagged"


def test_two_documents(write) -> None:
    err = error_of(write("name: a\n---\nname: b\n"))
    assert err.line == 2


def test_syntax_error_has_a_line(write) -> None:
    err = error_of(write("name: a\nengine:\n  horizon: [1 s\nseed: 3\n"))
    assert "invalid YAML" in err.message and err.line is not None


def test_directory(tmp_path: Path) -> None:
    assert "directory" in error_of(tmp_path).message


def test_missing_file(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nope.yaml")
    assert err.message == "no such file"
    assert str(err) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    assert "regular file" in error_of(path).message


def test_permission_denied(write, monkeypatch) -> None:
    path = write("name: x\n")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    assert error_of(path).message == "permission denied"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(write) -> None:
    path = write("name: x\n")
    path.chmod(0)
    try:
        assert error_of(path).message == "permission denied"
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


# --------------------------------------------------------------------------- API details
def test_linemap(write) -> None:
    data, lines = load_yaml(
        write("""
        name: lines
        servers:
          count: 1
          placement: list
          sites:
            - position: [0, 0]
              cpu: 1 GHz
        """)
    )
    assert data["servers"]["sites"][0]["cpu"] == "1 GHz"
    assert lines[("name",)] == 1
    assert lines[("servers", "count")] == 3
    assert lines[("servers", "sites", 0)] == 6
    assert lines[("servers", "sites", 0, "position")] == 6
    assert lines[("servers", "sites", 0, "position", 1)] == 6
    assert lines[("servers", "sites", 0, "cpu")] == 7


def test_keys_are_text(write) -> None:
    data, _ = load_yaml(write("1: a\nyes: b\nnull: c\n"))
    assert list(data) == ["1", "yes", "null"]


def test_validate_data_without_lines() -> None:
    with pytest.raises(ScenarioError) as info:
        validate_data({"vehicles": {"count": -1}})
    assert info.value.key == "vehicles.count"
    assert info.value.line is None and info.value.file is None
    assert str(info.value).startswith("vehicles.count = -1: out of range")


def test_validate_data_accepts_defaults() -> None:
    assert validate_data({}).policy.id == "greedy"


def test_overrides_replace_file_values(write) -> None:
    path = write("seed: 1\nengine:\n  horizon: 10 s\n")
    s = load_scenario(path, overrides={"seed": 5, "engine.horizon": "2 s"})
    assert (s.seed, s.engine.horizon) == (5, 2.0)


def test_override_errors_come_from_the_command_line(write) -> None:
    err = error_of(write("engine:\n  horizon: 10 s\n"), overrides={"engine.horizon": "2 x"})
    assert err.file == "command line" and err.line is None
    assert str(err).startswith("command line: engine.horizon = '2 x': unit 'x'")


def test_override_into_missing_section(write) -> None:
    s = load_scenario(write("name: x\n"), overrides={"engine.horizon": "3 s"})
    assert s.engine.horizon == 3.0


def test_error_is_one_line_and_pickles() -> None:
    err = ScenarioError(
        "bad\nthing", key="a.b", value="x\ny", allowed="1, 2", file="f.yaml", line=3
    )
    assert str(err) == "f.yaml:3: a.b = 'x\\ny': bad thing; allowed: 1, 2"
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.key, copy.value, copy.line, str(copy)) == ("a.b", "x\ny", 3, str(err))
    assert isinstance(err, SimError)
    assert pickle.loads(pickle.dumps(ScenarioError("m"))).value is NO_VALUE


def test_long_values_are_shortened() -> None:
    assert len(str(ScenarioError("m", key="k", value="x" * 10_000))) < 120


def test_key_text() -> None:
    assert key_text(("servers", "sites", 0, "position", 1)) == "servers.sites[0].position[1]"
    assert key_text(()) == ""


def test_json_schema_is_strict_json() -> None:
    def refuse(name: str) -> None:
        raise ValueError(name)

    schema = json.loads(json.dumps(scenario_json_schema()), parse_constant=refuse)
    assert "engine" in schema["properties"]


def test_quickstart_is_valid() -> None:
    path = REPO / "scenarios" / "quickstart.yaml"
    if not path.exists():
        pytest.skip("no quickstart scenario")
    assert load_scenario(path).vehicles.count >= 1

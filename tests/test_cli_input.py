"""The command line on bad input: one ``error:`` line naming the key, exit status 2, never a
traceback; and scenario loading on arbitrary input: a Scenario or a ScenarioError, nothing
else."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.cli import main
from sim.config import Scenario
from sim.errors import ScenarioError, SimError
from sim.scenario import load_scenario

REPO = Path(__file__).resolve().parent.parent
RUN_SIM = REPO / "run_sim.py"
BAD = Path(__file__).resolve().parent / "data" / "bad"
FIXTURES = sorted(BAD.glob("*.yaml"))
QUICKSTART = REPO / "scenarios" / "quickstart.yaml"


def expectation(path: Path) -> tuple[str, int]:
    """The text an error about ``path`` must contain and the line it must name, as written
    in the fixture's ``# expect:`` and ``# expect-line:`` header."""
    head = path.read_text(encoding="utf-8")
    text = re.search(r"^# expect: (.+)$", head, re.M)
    line = re.search(r"^# expect-line: (\d+)$", head, re.M)
    assert text and line, f"{path.name} lacks its expect header"
    return text.group(1), int(line.group(1))


def check_one_error_line(stderr: str, expected: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    return lines[0]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_SIM), *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


class FakeRunner:
    """Stands in for :mod:`sim.runner`: records the call and returns a fixed result."""

    def __init__(self, summary: dict | None = None, raises: BaseException | None = None):
        self.summary = (
            summary
            if summary is not None
            else {
                "n_tasks": 1234,
                "latency_mean": 0.0123,
                "latency_p95": 0.045,
                "energy_mean": 0.25,
                "deadline_miss_rate": 0.031,
            }
        )
        self.raises = raises
        self.calls: list[dict] = []

    def run_scenario(self, scenario, out_dir=None, quiet=False, source=None):
        self.calls.append(
            {"scenario": scenario, "out_dir": out_dir, "quiet": quiet, "source": source}
        )
        if self.raises is not None:
            raise self.raises
        return types.SimpleNamespace(out_dir=Path(out_dir or "results/x/now"), summary=self.summary)


@pytest.fixture
def runner(monkeypatch) -> FakeRunner:
    fake = FakeRunner()
    module = types.ModuleType("sim.runner")
    module.run_scenario = fake.run_scenario  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sim.runner", module)
    return fake


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(
        "name: good\nseed: 1\nengine: {horizon: 10 s}\n"
        "vehicles: {count: 4}\nservers: {count: 2}\npolicy: nearest\n"
    )
    return path


# --------------------------------------------------------------------------- bad files
def test_every_fixture_has_an_expectation() -> None:
    assert len(FIXTURES) >= 20
    for path in FIXTURES:
        expectation(path)


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_bad_fixture_in_process(path: Path, command: str, capsys, runner) -> None:
    expected, line = expectation(path)
    assert main([command, str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    text = check_one_error_line(err, expected)
    assert text.startswith(f"error: {path}:{line}: ")
    assert runner.calls == []


SUBPROCESS_CASES = [
    ("validate", "bad_unit.yaml"),
    ("validate", "python_tag.yaml"),
    ("run", "site_position_unit.yaml"),
    ("run", "unknown_policy.yaml"),
]


@pytest.mark.parametrize(("command", "name"), SUBPROCESS_CASES)
def test_bad_fixture_subprocess(command: str, name: str) -> None:
    path = BAD / name
    expected, line = expectation(path)
    proc = cli(command, str(path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert check_one_error_line(proc.stderr, expected).startswith(f"error: {path}:{line}: ")


@pytest.mark.parametrize("kind", ["binary", "empty", "directory", "missing", "huge"])
def test_broken_files(tmp_path: Path, kind: str, capsys) -> None:
    path = tmp_path / f"{kind}.yaml"
    if kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "huge":
        path.write_bytes(b"name: x\n" + b"# padding\n" * 200_000)
    assert main(["validate", str(path)]) == 2
    check_one_error_line(capsys.readouterr().err, str(path))


def test_broken_file_subprocess(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    proc = cli("run", str(path))
    assert proc.returncode == 2
    check_one_error_line(proc.stderr, str(path))


def test_validate_many_reports_each_broken_file(good: Path, capsys) -> None:
    bad = [BAD / "literal.yaml", BAD / "unknown_key.yaml"]
    assert main(["validate", str(good), *map(str, bad)]) == 2
    out, err = capsys.readouterr()
    assert out == f"{good}: ok (4 vehicles, 2 servers, policy nearest)\n"
    assert len(err.splitlines()) == 2


def test_validate_ok(good: Path) -> None:
    proc = cli("validate", str(good))
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == f"{good}: ok (4 vehicles, 2 servers, policy nearest)\n"


# --------------------------------------------------------------------------- the run command
def test_run_prints_a_summary(good: Path, tmp_path: Path, runner: FakeRunner, capsys) -> None:
    out_dir = tmp_path / "out"
    assert main(["run", str(good), "--out", str(out_dir)]) == 0
    call = runner.calls[0]
    assert isinstance(call["scenario"], Scenario)
    assert (call["out_dir"], call["quiet"], call["source"]) == (out_dir, False, good)
    out = capsys.readouterr().out
    assert str(out_dir) in out
    assert "1234" in out
    assert "12.3 ms" in out and "45 ms" in out
    assert "0.25 J" in out and "3.1 %" in out


def test_run_is_the_default_command(good: Path, runner: FakeRunner) -> None:
    assert main([str(good), "--quiet"]) == 0
    assert runner.calls[0]["quiet"] is True


def test_run_quiet_prints_only_the_folder(good: Path, runner: FakeRunner, capsys) -> None:
    assert main(["run", str(good), "--quiet", "--out", "somewhere"]) == 0
    assert capsys.readouterr().out == "somewhere\n"


def test_run_tolerates_a_partial_summary(good: Path, runner: FakeRunner, capsys) -> None:
    runner.summary = {"n_tasks": 3, "latency_mean": float("nan")}
    assert main(["run", str(good)]) == 0
    out = capsys.readouterr().out
    assert "n/a" in out and "nan" in out


def test_run_overrides(good: Path, runner: FakeRunner) -> None:
    assert main(["run", str(good), "--seed", "9", "--horizon", "2 s"]) == 0
    scenario = runner.calls[0]["scenario"]
    assert (scenario.seed, scenario.engine.horizon) == (9, 2.0)


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--horizon", "2 parsecs"], "engine.horizon"),
        (["--horizon", "-1 s"], "engine.horizon"),
        (["--seed", "-5"], "seed"),
    ],
)
def test_run_bad_override(good: Path, runner: FakeRunner, capsys, args, key) -> None:
    assert main(["run", str(good), *args]) == 2
    line = check_one_error_line(capsys.readouterr().err, key)
    assert line.startswith(f"error: command line: {key} = ")
    assert runner.calls == []


def test_run_default_scenario_found_from_elsewhere(
    tmp_path: Path, monkeypatch, runner: FakeRunner
) -> None:
    if not QUICKSTART.exists():
        pytest.skip("no quickstart scenario")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--quiet"]) == 0
    assert runner.calls[0]["source"] == QUICKSTART


def test_run_word_that_is_neither_command_nor_file(capsys, runner: FakeRunner) -> None:
    assert main(["frobnicate"]) == 2
    check_one_error_line(capsys.readouterr().err, "neither a command")


@pytest.mark.parametrize(
    ("raised", "status", "text"),
    [
        (SimError("engine stalled"), 2, "error: engine stalled"),
        (ScenarioError("bad", key="a.b", file="f.yaml", line=2), 2, "error: f.yaml:2: a.b: bad"),
        (KeyboardInterrupt(), 130, "error: interrupted"),
        (PermissionError(13, "Permission denied", "/results"), 1, "Permission denied"),
    ],
)
def test_run_errors_are_one_line(
    good: Path, runner: FakeRunner, capsys, raised, status, text
) -> None:
    runner.raises = raised
    assert main(["run", str(good)]) == status
    assert check_one_error_line(capsys.readouterr().err, text)


def test_run_unknown_policy_from_the_runner(good: Path, runner: FakeRunner, capsys) -> None:
    from models.policies import UnknownPolicy

    runner.raises = UnknownPolicy("nope")
    assert main(["run", str(good)]) == 2
    check_one_error_line(capsys.readouterr().err, "unknown policy 'nope'")


def test_programming_errors_are_not_hidden(good: Path, runner: FakeRunner) -> None:
    runner.raises = ZeroDivisionError("bug")
    with pytest.raises(ZeroDivisionError):
        main(["run", str(good)])


# --------------------------------------------------------------------------- usage
@pytest.mark.parametrize(
    "args", [["--bogus"], ["run", "--seed", "x"], ["validate"], ["schema", "extra"]]
)
def test_usage_errors_exit_2(args: list[str], capsys) -> None:
    assert main(args) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_in_process(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("run", "validate", "schema"))


def test_help_subprocess_imports_nothing_heavy() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(RUN_SIM), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "validate" in proc.stdout
    imported = {
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    heavy = {"numpy", "pydantic", "pandas", "scipy", "simpy", "numba", "yaml", "qiskit"}
    assert not heavy & {name.split(".")[0] for name in imported}


def test_schema_prints_json() -> None:
    proc = cli("schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert "properties" in schema and "channel" in schema["properties"]


# --------------------------------------------------------------------------- arbitrary input
FIELD_NAMES = sorted(
    {
        name
        for model in (
            Scenario,
            *(
                f.annotation
                for f in Scenario.model_fields.values()
                if isinstance(f.annotation, type)
            ),
        )
        if hasattr(model, "model_fields")
        for name in model.model_fields
    }
    | {
        "position",
        "sites",
        "params",
        "server",
        "kind",
        "low",
        "high",
        "value",
        "mean",
        "area",
        "fading",
        "priority",
    }
)
UNIT_TEXTS = [
    "10 MHz",
    "-70 dBm",
    "-40 dB",
    "2 GHz",
    "50 ms",
    "54 km/h",
    "1e6 dBm",
    "5 xx",
    "1e400 s",
    "fixed",
    "list",
    "uniform",
    "greedy",
    "density",
    "",
    ".inf",
    "nan",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(UNIT_TEXTS)
    | st.text(max_size=12)
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
structures = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)
YAML_TOKENS = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    ": ",
    "- ",
    "\n",
    "  ",
    "\t",
    "&a ",
    "*a",
    "!!str ",
    "!x ",
    "? ",
    "|",
    ">",
    "---",
    "...",
    "'",
    '"',
    "#",
    "%YAML 1.1",
    "engine",
    "horizon",
    "10 s",
    "vehicles",
    "count",
    "3",
    "-1",
    "policy",
    "fixed",
    "\x00",
    "\x07",
    "é",
    "\ufeff",
]
yaml_like = st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join)


def load_or_error(path: Path) -> None:
    try:
        result = load_scenario(path)
    except ScenarioError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(result, Scenario)


FUZZ = settings(max_examples=80, deadline=None)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """The file every generated input is written to."""
    return tmp_path_factory.mktemp("fuzz") / "s.yaml"


@FUZZ
@given(blob=st.binary(max_size=300))
def test_random_bytes(scratch: Path, blob: bytes) -> None:
    scratch.write_bytes(blob)
    load_or_error(scratch)


@FUZZ
@given(text=st.text(max_size=200) | yaml_like)
def test_random_text(scratch: Path, text: str) -> None:
    scratch.write_text(text, encoding="utf-8", errors="surrogatepass")
    load_or_error(scratch)


@FUZZ
@given(data=st.dictionaries(keys, structures, max_size=6))
def test_random_structures(scratch: Path, data: dict) -> None:
    scratch.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    load_or_error(scratch)


@FUZZ
@given(
    section=st.sampled_from(
        [
            "engine",
            "vehicles",
            "servers",
            "mobility",
            "channel",
            "tasks",
            "cost",
            "policy",
            "output",
        ]
    ),
    body=st.dictionaries(keys, structures, max_size=4),
)
def test_random_sections(scratch: Path, section: str, body: dict) -> None:
    scratch.write_text(yaml.safe_dump({section: body}, allow_unicode=True), encoding="utf-8")
    load_or_error(scratch)

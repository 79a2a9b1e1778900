"""SUMO mobility: FCD replay, in-process SUMO, network files, placement and errors."""

from __future__ import annotations

import gzip
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, CollectSink

from sim.config import Mobility, Scenario, Servers
from sim.engine import simulate
from sim.errors import ScenarioError, SimError
from sim.mobility import make_mobility
from sim.placement import junction_sites, place_servers, road_sites
from sim.scenario import load_scenario
from sim.sumo import (
    PARKED,
    SumoFileError,
    import_libsumo,
    read_fcd,
    read_network,
    read_sumocfg,
    scan_fcd,
)

EXAMPLE = REPO / "scenarios" / "sumo"

# (time, {id: (x, y, speed, angle)}) frames of a small synthetic trace: "a" drives along x
# the whole time, "b" is on the road from 1 s to 2 s, "c" only at 3 s.
FRAMES = [
    (0.0, {"a": (10.125, 5.5, 3.0, 90.0)}),
    (1.0, {"a": (13.375, 5.5, 3.25, 90.0), "b": (100.0, 50.0, 0.0, 0.0)}),
    (2.0, {"a": (16.0, 7.75, 2.5, 45.0), "b": (100.0, 61.5, 11.5, 0.0)}),
    (3.0, {"a": (16.0, 12.0, 4.25, 0.0), "c": (200.5, 0.25, 8.0, 270.0)}),
]


def fcd_text(frames=FRAMES, header: str = "") -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', header, "<fcd-export>"]
    for t, vehicles in frames:
        lines.append(f'  <timestep time="{t:.2f}">')
        for vid, (x, y, speed, angle) in vehicles.items():
            lines.append(
                f'    <vehicle id="{vid}" x="{x}" y="{y}" angle="{angle}" speed="{speed}"/>'
            )
        lines.append("  </timestep>")
    lines.append("</fcd-export>")
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def trace(path: Path, n: int = 2, start: float | None = None):
    return make_mobility(
        Mobility(model="sumo-trace", fcd=str(path), start=start), n, np.random.default_rng(0)
    )


def frame_of(t: float) -> dict:
    return next(v for ft, v in FRAMES if ft == t)


# --------------------------------------------------------------------------- reading
def test_read_fcd_gives_the_frames_and_reads_gzip(tmp_path):
    plain = write(tmp_path / "t.xml", fcd_text())
    packed = tmp_path / "t.xml.data"  # gzip is recognised by content, not by name
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, packed):
        frames = list(read_fcd(path))
        assert [f.time for f in frames] == [0.0, 1.0, 2.0, 3.0]
        for f, (_, vehicles) in zip(frames, FRAMES, strict=True):
            assert f.ids.tolist() == list(vehicles)
            np.testing.assert_array_equal(f.xy, [v[:2] for v in vehicles.values()])
            np.testing.assert_array_equal(f.speed, [v[2] for v in vehicles.values()])
            np.testing.assert_array_equal(f.angle, [v[3] for v in vehicles.values()])
    summary = scan_fcd(plain)
    assert summary.n_vehicles == 3 and (summary.first, summary.last) == (0.0, 3.0)
    assert summary.on_road.tolist() == [1, 2, 2, 2]
    assert summary.bbox == (10.125, 0.25, 200.5, 61.5)
    assert summary.max_on_road(0.0) == (2, 1.0)


def test_read_fcd_streams(tmp_path):
    """The first timesteps come out before the parser reaches a broken end of the file:
    the file is read as it is consumed, not loaded whole."""
    good = [(float(t), {"a": (float(t), 1.0, 1.0, 90.0)}) for t in range(30_000)]
    text = fcd_text(good).replace("</fcd-export>\n", "<<<\n")
    assert len(text) > 2 * 2**20  # more than the 1 MiB read at a time
    path = write(tmp_path / "long.xml", text)
    frames = read_fcd(path)
    assert next(frames).time == 0.0
    assert next(frames).time == 1.0
    with pytest.raises(SumoFileError, match="not well-formed XML"):
        list(frames)


# --------------------------------------------------------------------------- replay
def test_replay_is_exact_at_timestamps_and_linear_between(tmp_path):
    m = trace(write(tmp_path / "t.xml", fcd_text()), n=2)
    step = 0.25
    for k in range(int(3.0 / step) + 3):
        t = k * step
        assert m.time == pytest.approx(t, abs=1e-12)
        on_road = {m.slot_ids[s]: s for s in np.flatnonzero(m.present)}
        lo = next(ft for ft, _ in reversed(FRAMES) if ft <= t + 1e-9) if t <= 3 else None
        if t > 3.0:
            expected = {}
        elif abs(t - round(t)) < 1e-9:  # at a timestamp: every vehicle there, exactly
            expected = {vid: v[:2] for vid, v in frame_of(round(t)).items()}
        else:  # between: vehicles in both frames, on the chord
            a, b = frame_of(lo), frame_of(lo + 1)
            w = t - lo
            expected = {
                vid: tuple(np.add(a[vid][:2], w * np.subtract(b[vid][:2], a[vid][:2])))
                for vid in a
                if vid in b
            }
        assert set(on_road) == set(expected), t
        for vid, xy in expected.items():
            if abs(t - round(t)) < 1e-9:
                assert tuple(m.positions[on_road[vid]]) == xy  # bit for bit
            else:
                np.testing.assert_allclose(m.positions[on_road[vid]], xy, rtol=1e-14)
        absent = ~m.present
        assert (m.positions[absent] == PARKED).all()
        assert not m.velocities[absent].any()
        m.advance(step)


def test_replay_velocities_follow_the_chord_or_the_heading(tmp_path):
    m = trace(write(tmp_path / "t.xml", fcd_text()), n=2)
    m.advance(1.5)
    a = m.slot_ids.index("a")
    np.testing.assert_allclose(m.velocities[a], [16.0 - 13.375, 7.75 - 5.5])
    m.advance(1.5)  # t = 3: "a" has no later frame: speed 4.25 towards the north
    np.testing.assert_allclose(m.velocities[a], [0.0, 4.25], atol=1e-12)
    c = m.slot_ids.index("c")
    np.testing.assert_allclose(m.velocities[c], [-8.0, 0.0], atol=1e-12)


def test_vehicles_enter_and_leave_at_the_right_steps(tmp_path):
    m = trace(write(tmp_path / "t.xml", fcd_text()), n=2)
    seen = []
    for _ in range(17):
        seen.append((round(m.time, 6), sorted(v for v in m.slot_ids if v is not None)))
        m.advance(0.25)
    on_road = dict(seen)
    assert on_road[0.0] == ["a"] and on_road[0.75] == ["a"]
    assert on_road[1.0] == ["a", "b"] and on_road[2.0] == ["a", "b"]
    assert on_road[2.25] == ["a"] and on_road[2.75] == ["a"]  # b left after its last frame
    assert on_road[3.0] == ["a", "c"]  # c arrives at its only frame...
    assert on_road[3.25] == [] and on_road[4.0] == []  # ...and nothing is left after the end


def test_slots_are_reused_longest_free_first_and_capped(tmp_path):
    frames = [
        (0.0, {"p": (0, 0, 1, 0), "q": (1, 0, 1, 0), "r": (2, 0, 1, 0)}),
        (1.0, {"q": (1, 1, 1, 0), "r": (2, 1, 1, 0)}),  # p leaves: slot 0 free
        (2.0, {"r": (2, 2, 1, 0)}),  # q leaves: slot 1 free
        (3.0, {"r": (2, 3, 1, 0), "s": (5, 5, 1, 0), "t": (6, 6, 1, 0)}),
    ]
    path = write(tmp_path / "slots.xml", fcd_text(frames))
    assert scan_fcd(path).max_on_road(0.0) == (3, 0.0)
    m = trace(path, n=3)
    assert m.slot_ids == ["p", "q", "r"]
    m.advance(3.0)
    # s and t (in id order) take slot 0 (free since 1 s) then slot 1 (free since 2 s)
    assert m.slot_ids == ["s", "t", "r"]
    # with more slots than needed the assignment is the same; fewer are refused
    assert trace(path, n=5).slot_ids[:3] == ["p", "q", "r"]
    with pytest.raises(SimError, match=r"vehicles\.count"):
        trace(path, n=2)


def test_start_shifts_the_trace(tmp_path):
    path = write(tmp_path / "t.xml", fcd_text())
    m = trace(path, n=2, start=1.5)
    assert sorted(v for v in m.slot_ids if v) == ["a", "b"]
    a = m.slot_ids.index("a")
    np.testing.assert_allclose(m.positions[a], [(13.375 + 16.0) / 2, (5.5 + 7.75) / 2])
    m.advance(0.5)
    assert tuple(m.positions[a]) == (16.0, 7.75)


def trace_scenario(fcd: Path, **extra) -> Scenario:
    data = {
        "engine": {"horizon": 4.0, "epoch": 0.1},
        "mobility": {"model": "sumo-trace", "fcd": str(fcd), "step": 0.5},
        "servers": {"count": 1, "placement": "list", "sites": [{"position": [10, 5]}]},
        "tasks": {"arrival_rate": 200.0, "deadline": 1.0},
        **extra,
    }
    return load_scenario_data(data)


def load_scenario_data(data: dict) -> Scenario:
    from sim.scenario import validate_data

    return validate_data(data)


def test_absent_vehicles_generate_no_tasks(tmp_path):
    frames = [(float(t), {"a": (10.0 + t, 5.0, 1.0, 90.0)}) for t in range(5)]
    for t in (1, 2):  # b is on the road at 1 s and 2 s only
        frames[t][1]["b"] = (20.0, 5.0 + t, 1.0, 0.0)
    sc = trace_scenario(write(tmp_path / "t.xml", fcd_text(frames)))
    assert sc.vehicles.count == 2  # taken from the trace
    sink = CollectSink()
    simulate(sc, sink)
    table = sink.frame()
    b = table[table.vehicle == 1]
    # b's slot is present for the mobility steps at 1.0, 1.5 and 2.0 s: tasks arrive in
    # [1.0, 2.5) and nowhere else
    assert b.arrival.min() >= 1.0 and b.arrival.max() < 2.5
    assert 200 < len(b) < 400  # Poisson, mean 300 over 1.5 s
    a = table[table.vehicle == 0]
    assert a.arrival.min() < 0.1 and a.arrival.max() > 3.9 and 600 < len(a) < 1000


def test_world_leaves_absent_vehicles_out_of_cells_and_interference(tmp_path):
    from sim.seeds import SeedTree
    from sim.world import World

    frames = [(0.0, {"a": (10.0, 5.0, 1.0, 90.0)}), (1.0, {"a": (11.0, 5.0, 1.0, 90.0)})]
    sc = trace_scenario(
        write(tmp_path / "t.xml", fcd_text(frames)),
        vehicles={"count": 4},
        channel={"interference": {"enabled": True}},
    )
    world = World(sc, SeedTree(0))
    assert world.present.tolist() == [True, False, False, False]
    assert world.cell_size.tolist() == [1]
    assert world.channel.power_max.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert world.tasks.rates.tolist() == [10.0 * 20, 0.0, 0.0, 0.0]
    world.advance(1.5)  # past the end of the trace: nobody
    assert world.cell_size.tolist() == [0] and not world.tasks.rates.any()


# --------------------------------------------------------------------------- live SUMO
def test_libsumo_and_the_replay_of_its_fcd_agree(tmp_path):
    """SUMO run in-process writes its FCD; replaying that file gives the same vehicles in
    the same slots at the same positions (to the 1e-6 m the FCD is written with), over
    mobility steps that do and do not fall on SUMO's 1 s steps."""
    fcd = tmp_path / "live.fcd.xml"
    cfg = Mobility(model="sumo", config=str(EXAMPLE / "grid.sumocfg"), start=60.0)
    live = make_mobility(
        cfg,
        50,
        np.random.default_rng(3),
        extra_args=["--fcd-output", str(fcd), "--precision", "6", "--end", "100"],
    )
    steps = [0.2, 0.2, 0.35] * 60
    got = [(live.present, live.positions, live.velocities)]
    for dt in steps:
        live.advance(dt)
        got.append((live.present, live.positions, live.velocities))
    assert live.sumo_time > 100  # ran past SUMO's end: nobody is left
    live.close()
    replay = trace(fcd, n=50, start=60.0)
    want = [(replay.present, replay.positions, replay.velocities)]
    for dt in steps:
        replay.advance(dt)
        want.append((replay.present, replay.positions, replay.velocities))
    counts = [int(p.sum()) for p, _, _ in got]
    assert min(counts[: len(counts) // 2]) >= 15 and counts[-1] == 0
    for (p1, x1, v1), (p2, x2, v2) in zip(got, want, strict=True):
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_allclose(x1, x2, rtol=0, atol=1e-6)
        np.testing.assert_allclose(v1, v2, rtol=0, atol=1e-5)


def test_libsumo_seed_follows_the_generator():
    cfg = Mobility(model="sumo", config=str(EXAMPLE / "grid.sumocfg"), start=120.0)

    def positions(seed: int) -> np.ndarray:
        m = make_mobility(cfg, 60, np.random.default_rng(seed))
        try:
            return m.positions.copy()
        finally:
            m.close()

    np.testing.assert_array_equal(positions(1), positions(1))
    assert not np.array_equal(positions(1), positions(2))  # driver imperfection is random


def test_missing_libsumo_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "libsumo", None)
    with pytest.raises(SimError, match=r"pip install 'qvecsim\[sumo\]'"):
        import_libsumo()
    cfg = Mobility(model="sumo", config=str(EXAMPLE / "grid.sumocfg"))
    with pytest.raises(SimError, match="libsumo"):
        make_mobility(cfg, 10, np.random.default_rng(0))


# --------------------------------------------------------------------------- scenarios
def scenario_file(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_paths_are_relative_to_the_scenario_and_counts_come_from_the_files(tmp_path):
    folder = tmp_path / "scen"
    folder.mkdir()
    write(folder / "t.xml", fcd_text())
    path = scenario_file(folder, "s.yaml", {"mobility": {"model": "sumo-trace", "fcd": "t.xml"}})
    sc = load_scenario(path)
    assert sc.mobility.fcd == str(folder / "t.xml")
    assert sc.vehicles.count == 2
    # the area of a trace without its network is the bounding box of its positions
    assert (sc.mobility.area.width, sc.mobility.area.height) == (200.5, 61.5)
    # the resolved configuration loads again to the same scenario
    resolved = {k: sc.model_dump(mode="json")[k] for k in ("mobility", "vehicles", "servers")}
    again = load_scenario(scenario_file(tmp_path, "again.yaml", resolved))
    assert (again.mobility, again.vehicles, again.servers) == (sc.mobility, sc.vehicles, sc.servers)

    net = load_scenario(EXAMPLE / "grid_trace.yaml")
    assert (net.mobility.area.width, net.mobility.area.height) == (600.0, 600.0)
    assert net.vehicles.count == scan_fcd(EXAMPLE / "grid.fcd.xml.gz").max_on_road(100.0)[0]


@pytest.mark.parametrize(
    "data,key,message",
    [
        (
            {"mobility": {"model": "sumo-trace", "fcd": "nope.xml"}},
            "mobility.fcd",
            "file not found",
        ),
        ({"mobility": {"model": "sumo-trace", "fcd": "bad.xml"}}, "mobility.fcd", "well-formed"),
        ({"mobility": {"model": "sumo-trace", "fcd": "nox.xml"}}, "mobility.fcd", "no 'x'"),
        ({"mobility": {"model": "sumo-trace", "fcd": "order.xml"}}, "mobility.fcd", "after"),
        (
            {"mobility": {"model": "sumo-trace", "fcd": "text.xml"}},
            "mobility.fcd",
            "line 12: vehicle 'a' has y='north', not a number",
        ),
        ({"mobility": {"model": "sumo-trace", "fcd": "net.xml"}}, "mobility.fcd", "<net>"),
        ({"mobility": {"model": "sumo-trace"}}, "mobility.model", "needs 'fcd'"),
        (
            {"mobility": {"model": "sumo-trace", "fcd": "t.xml", "net": "t.xml"}},
            "mobility.net",
            "not a SUMO network",
        ),
        ({"mobility": {"model": "sumo", "config": "nope.sumocfg"}}, "mobility.config", "found"),
        (
            {"mobility": {"model": "sumo", "config": "lost.sumocfg"}, "vehicles": {"count": 5}},
            "mobility.config",
            "net-file 'lost.net.xml' not found",
        ),
        (
            {"mobility": {"model": "sumo", "config": str(EXAMPLE / "grid.sumocfg")}},
            "vehicles.count",
            "required",
        ),
        (
            {"mobility": {"model": "sumo-trace", "fcd": "t.xml"}, "vehicles": {"count": 1}},
            "vehicles.count",
            "fewer vehicle slots than the 2",
        ),
        (
            {
                "mobility": {
                    "model": "sumo-trace",
                    "fcd": "t.xml",
                    "area": {"width": 100, "height": 100},
                }
            },
            "mobility.area",
            "leave mobility.area out",
        ),
        (
            {"mobility": {"model": "sumo-trace", "fcd": "t.xml", "start": 7}},
            "mobility.start",
            "outside the trace",
        ),
        (
            {"servers": {"placement": "junctions"}},
            "servers.placement",
            "needs a SUMO road network",
        ),
        (
            {
                "mobility": {"model": "sumo-trace", "fcd": "t.xml"},
                "servers": {"placement": "roads", "spacing": 100},
            },
            "servers.placement",
            "set mobility.net",
        ),
        ({"mobility": {"model": "static", "fcd": "t.xml"}}, "mobility.fcd", "only read with"),
    ],
)
def test_bad_sumo_input_is_one_located_error(tmp_path, data, key, message):
    write(tmp_path / "t.xml", fcd_text())
    write(tmp_path / "bad.xml", fcd_text()[:-30])
    write(tmp_path / "nox.xml", fcd_text().replace(' x="16.0"', "", 1))
    write(tmp_path / "order.xml", fcd_text().replace('time="2.00"', 'time="0.50"'))
    write(tmp_path / "text.xml", fcd_text().replace('y="7.75"', 'y="north"'))
    write(tmp_path / "net.xml", "<net><edge id='e'/></net>\n")
    write(
        tmp_path / "lost.sumocfg",
        '<configuration><input><net-file value="lost.net.xml"/></input></configuration>\n',
    )
    path = scenario_file(tmp_path, "s.yaml", data)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert err.value.key == key
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_validate_command_reports_broken_sumo_files_without_traceback(tmp_path):
    write(tmp_path / "bad.xml", fcd_text()[:-30])
    files = [
        scenario_file(tmp_path, "a.yaml", {"mobility": {"model": "sumo-trace", "fcd": "x.xml"}}),
        scenario_file(tmp_path, "b.yaml", {"mobility": {"model": "sumo-trace", "fcd": "bad.xml"}}),
        scenario_file(
            tmp_path,
            "c.yaml",
            {"mobility": {"model": "sumo", "config": "x.sumocfg"}, "vehicles": {"count": 3}},
        ),
    ]
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_sim.py"), "validate", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert "file not found" in lines[0] and "well-formed" in lines[1] and "found" in lines[2]


def test_read_sumocfg_resolves_its_files():
    cfg = read_sumocfg(EXAMPLE / "grid.sumocfg")
    assert cfg.net == str(EXAMPLE / "grid.net.xml")
    assert cfg.routes == (str(EXAMPLE / "grid.rou.xml"),)
    assert (cfg.begin, cfg.end, cfg.step) == (0.0, 400.0, 1.0)


# --------------------------------------------------------------------------- placement
STRAIGHT_NET = """<net version="1.20">
    <location netOffset="0.00,0.00" convBoundary="0.00,0.00,1000.00,10.00"
              origBoundary="0,0,1000,10" projParameter="!"/>
    <edge id=":J1_0" function="internal"><lane id=":J1_0_0" index="0" length="1"
          shape="1000.00,5.00 1000.00,6.00"/></edge>
    <edge id="back" from="J1" to="J0"><lane id="back_0" index="0" length="1000"
          shape="1000.00,8.00 0.00,8.00"/></edge>
    <edge id="e" from="J0" to="J1"><lane id="e_0" index="0" length="1000"
          shape="0.00,5.00 1000.00,5.00"/></edge>
    <edge id="walk" from="J0" to="J2"><lane id="walk_0" index="0" length="5"
          allow="pedestrian" shape="0.00,5.00 0.00,0.00"/></edge>
    <junction id="J0" type="dead_end" x="0.00" y="5.00" incLanes="back_0" intLanes=""/>
    <junction id="J1" type="priority" x="1000.00" y="5.00" incLanes="e_0" intLanes=""/>
    <junction id="J2" type="dead_end" x="0.00" y="0.00" incLanes="walk_0" intLanes=""/>
    <junction id=":J1_0" type="internal" x="1000.00" y="5.00" incLanes="" intLanes=""/>
</net>
"""


def test_network_reading_and_road_sites_on_a_straight_road(tmp_path):
    net = read_network(write(tmp_path / "s.net.xml", STRAIGHT_NET))
    assert net.boundary == (0.0, 0.0, 1000.0, 10.0)
    assert net.junction_ids == ("J0", "J1", "J2")  # internal junction left out
    assert net.edge_ids == ("back", "e", "walk")  # internal edge left out
    assert net.edge_cars == (True, True, False)
    # the two directions count once (first by id), the footway not at all
    roads = net.roads()
    assert len(roads) == 1 and roads[0][0].tolist() == [1000.0, 8.0]
    sites = road_sites(net, 250.0)
    np.testing.assert_allclose(sites[:, 0], [1000, 750, 500, 250, 0])
    np.testing.assert_array_equal(sites[:, 1], 8.0)


def test_road_sites_are_spaced_and_cover_every_road():
    net = read_network(EXAMPLE / "grid.net.xml")
    spacing = 150.0
    sites = road_sites(net, spacing)
    d = np.hypot(*(sites[:, None, :] - sites[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert d.min() >= spacing * (1 - 1e-9)
    for line in net.roads():  # every point of every road is within one spacing of a site
        t = np.linspace(0.0, 1.0, 200)[:, None]
        for p, q in itertools.pairwise(line):
            pts = p + t * (q - p)
            near = np.hypot(*(pts[:, None, :] - sites[None, :, :]).transpose(2, 0, 1)).min(1)
            assert near.max() <= spacing * 1.26  # candidates every spacing/4
    assert road_sites(net, 150.0).tolist() == sites.tolist()  # deterministic


def test_junction_sites():
    net = read_network(EXAMPLE / "grid.net.xml")
    assert len(net.junction_ids) == 16
    inner = {(200.0, 200.0), (200.0, 400.0), (400.0, 200.0), (400.0, 400.0)}
    largest = junction_sites(net, 4, select="largest")
    assert {tuple(p) for p in largest.tolist()} == inner  # four incoming lanes each
    spread = junction_sites(net, 3)
    # nearest the centroid (an inner one, lowest id on the tie), then the farthest ones
    assert spread.tolist() == [[200.0, 200.0], [600.0, 600.0], [0.0, 600.0]]
    everything = junction_sites(net)
    assert len({tuple(p) for p in everything.tolist()}) == 16
    apart = junction_sites(net, min_spacing=350.0)
    d = np.hypot(*(apart[:, None, :] - apart[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert d.min() >= 350.0 and len(apart) >= 4
    for select in ("spread", "largest"):
        with pytest.raises(ValueError, match="only"):
            junction_sites(net, 12, min_spacing=350.0, select=select)
    cfg = Servers(count=4, placement="junctions", select="largest")
    np.testing.assert_array_equal(place_servers(cfg, None, net), largest)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a SUMO road network"):
        place_servers(cfg, None)  # type: ignore[arg-type]


def test_scenario_takes_the_server_count_from_the_roads():
    sc = load_scenario(EXAMPLE / "grid_live.yaml")
    net = read_network(EXAMPLE / "grid.net.xml")
    assert sc.servers.count == len(road_sites(net, 300.0))
    with pytest.raises(ScenarioError, match="gives 6 sites") as err:
        load_scenario(EXAMPLE / "grid_live.yaml", overrides={"servers.count": 5})
    assert err.value.key == "servers.count"


# --------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("name", ["grid_trace.yaml", "grid_live.yaml"])
def test_example_scenarios_run_and_draw_their_maps(tmp_path, name):
    from sim.runner import run_scenario
    from sim.sumo_plots import SNAPSHOT_FIGURES, plot_sumo_run

    sc = load_scenario(EXAMPLE / name, overrides={"engine.horizon": "2 s"})
    result = run_scenario(sc, out_dir=tmp_path / "run", quiet=True)
    summary = result.summary
    assert summary["n_tasks"] > 0.8 * 2.0 * 10.0 * 25  # about 30 cars on the road, 10 tasks/s
    figures = plot_sumo_run(tmp_path / "run" / "figures", sc, tmp_path / "run" / "tasks.parquet")
    names = {p.name for p in figures}
    assert names == {f"{n}{s}" for n in SNAPSHOT_FIGURES for s in (".png", ".svg")}
    assert all(p.stat().st_size > 10_000 for p in figures)

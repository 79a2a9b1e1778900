"""The scenario schema: a strict, typed description of one simulated world.

Every field carries its unit (converted to SI at load time, see :mod:`sim.units`) and its
range; unknown keys are rejected. Load a scenario with :func:`sim.scenario.load_scenario`,
which adds line numbers and "did you mean" hints to the errors raised here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from qpu.config import QPUConfig, QPUSite
from sim.fields import (
    Bits,
    Cycles,
    Hertz,
    Joules,
    Metres,
    MetresPerSecond,
    NoiseLevel,
    PerSecond,
    Ratio,
    Seconds,
    Strict,
    Watts,
)
from sim.units import parse_quantity


# --------------------------------------------------------------------------- distributions
class Distribution(Strict):
    """A scalar random quantity: ``fixed`` value, ``uniform`` in [low, high], ``exponential``
    with a mean. Values are in the unit of the field that holds the distribution."""

    kind: Literal["fixed", "uniform", "exponential"] = "uniform"
    value: float | None = Field(None, ge=0, description="the value of a fixed distribution")
    low: float | None = Field(None, ge=0, description="lower bound of a uniform distribution")
    high: float | None = Field(None, ge=0, description="upper bound of a uniform distribution")
    mean: float | None = Field(None, gt=0, description="mean of an exponential distribution")

    @model_validator(mode="after")
    def _complete(self) -> Distribution:
        need = {"fixed": ("value",), "uniform": ("low", "high"), "exponential": ("mean",)}
        for key in need[self.kind]:
            if getattr(self, key) is None:
                raise ValueError(f"a {self.kind} distribution needs '{key}'")
        for key in {"value", "low", "high", "mean"} - set(need[self.kind]):
            if getattr(self, key) is not None:
                raise ValueError(f"'{key}' does not belong to a {self.kind} distribution")
        if self.kind == "uniform" and self.high < self.low:  # type: ignore[operator]
            raise ValueError(f"uniform high ({self.high}) is below low ({self.low})")
        return self

    @property
    def expected(self) -> float:
        if self.kind == "fixed":
            return float(self.value)  # type: ignore[arg-type]
        if self.kind == "uniform":
            return 0.5 * (self.low + self.high)  # type: ignore[operator]
        return float(self.mean)  # type: ignore[arg-type]


def _distribution(dimension: str):
    """Accept ``[low, high]`` (uniform), a single quantity (fixed), or a mapping."""

    def convert(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            if len(v) != 2:
                raise ValueError("a range is written [low, high]")
            return {
                "kind": "uniform",
                "low": parse_quantity(v[0], dimension),
                "high": parse_quantity(v[1], dimension),
            }
        if isinstance(v, dict):
            out = dict(v)
            for key in ("value", "low", "high", "mean"):
                if key in out and out[key] is not None:
                    try:
                        out[key] = parse_quantity(out[key], dimension)
                    except ValueError as exc:
                        raise ValueError(f"'{key}': {exc}") from None
            return out
        return {"kind": "fixed", "value": parse_quantity(v, dimension)}

    return BeforeValidator(convert)


BitsDistribution = Annotated[Distribution, _distribution("bits")]
CyclesDistribution = Annotated[Distribution, _distribution("cycles")]


# --------------------------------------------------------------------------- sections
class Engine(Strict):
    horizon: Seconds = Field(
        10.0,
        gt=0,
        le=1e7,
        description="simulated time [s]; tasks "
        "arrive in [0, horizon), those still in flight are drained",
    )
    epoch: Seconds = Field(
        0.01, gt=0, description="decision epoch [s]: arrivals of an epoch are decided as one batch"
    )
    warmup: Seconds = Field(
        0.0,
        ge=0,
        description="tasks arriving before this time [s] are "
        "simulated and recorded but left out of the summary",
    )

    @model_validator(mode="after")
    def _order(self) -> Engine:
        if self.epoch > self.horizon:
            raise ValueError(f"epoch ({self.epoch} s) is longer than horizon ({self.horizon} s)")
        if self.warmup >= self.horizon:
            raise ValueError(f"warmup ({self.warmup} s) must end before horizon ({self.horizon} s)")
        return self


class Vehicles(Strict):
    count: int = Field(3, ge=1, le=1_000_000, description="number of vehicles N")
    cpu: Hertz = Field(1e9, gt=0, description="local CPU capacity C_i [cycles/s]")
    power_max: Watts = Field(1.0, gt=0, description="maximum transmit power P_max [W] (19g)")
    energy_coefficient: float = Field(1e-27, ge=0, description="kappa of eq. [16] [J s^2/cycle^3]")
    semantic_accuracy: float = Field(1.0, gt=0, le=1, description="sigma_i of eq. [12]")
    energy_budget: Joules | None = Field(
        None, gt=0, description="E_max per task [J] (19c); unset: no budget"
    )
    queue: Literal["fifo", "priority"] = Field("fifo", description="local CPU discipline")
    uplink_queue: Literal["fifo", "priority"] = Field("fifo", description="uplink discipline")


class ServerSpec(Strict):
    """One edge server placed by hand; unset fields take the values of ``servers``."""

    position: tuple[Metres, Metres]
    cpu: Hertz | None = Field(None, gt=0)
    cores: int | None = Field(None, ge=1, le=4096)
    bandwidth: Hertz | None = Field(None, gt=0)


class Servers(Strict):
    count: int = Field(2, ge=1, le=100_000, description="number of edge servers M")
    placement: Literal["grid", "line", "list", "junctions", "roads"] = Field(
        "grid",
        description="grid: a near-square grid over the area; line: evenly along the "
        "x axis at mid height; list: the positions given in 'sites'; junctions: at junctions "
        "of the SUMO network; roads: along the SUMO network's roads every 'spacing' metres",
    )
    sites: list[ServerSpec] = Field(default_factory=list, description="servers placed by hand")
    spacing: Metres | None = Field(
        None, gt=0, description="roads: distance between servers along the roads [m]"
    )
    min_spacing: Metres | None = Field(
        None, ge=0, description="junctions: least distance between two chosen junctions [m]"
    )
    select: Literal["spread", "largest"] | None = Field(
        None,
        description="junctions: spread (default) picks each next junction farthest from "
        "those already chosen; largest picks junctions with the most incoming lanes first",
    )
    cpu: Hertz = Field(10e9, gt=0, description="edge CPU capacity per core C_j [cycles/s]")
    cores: int = Field(1, ge=1, le=4096, description="cores per server c")
    bandwidth: Hertz = Field(10e6, gt=0, description="B_max shared by the server's vehicles")
    semantic_accuracy: float = Field(1.0, gt=0, le=1, description="sigma_j of eq. [13]")
    energy_coefficient: float = Field(
        0.0, ge=0, description="kappa of the edge CPU; 0 leaves edge energy out"
    )
    queue: Literal["fifo", "priority"] = Field("fifo", description="edge CPU discipline")

    @model_validator(mode="after")
    def _sites(self) -> Servers:
        if self.placement == "list":
            if len(self.sites) != self.count:
                raise ValueError(
                    f"placement 'list' needs one entry in 'sites' per server: "
                    f"count is {self.count}, sites has {len(self.sites)}"
                )
        elif self.sites:
            raise ValueError("'sites' is only read with placement: list")
        if self.placement == "roads" and self.spacing is None:
            raise ValueError("placement 'roads' needs 'spacing', the distance between servers")
        if self.placement != "roads" and self.spacing is not None:
            raise ValueError("'spacing' is only read with placement: roads")
        if self.placement != "junctions":
            for key in ("min_spacing", "select"):
                if getattr(self, key) is not None:
                    raise ValueError(f"'{key}' is only read with placement: junctions")
        return self


class Area(Strict):
    width: Metres = Field(1000.0, gt=0)
    height: Metres = Field(1000.0, gt=0)


SUMO_MODELS = ("sumo-trace", "sumo")
"""Mobility models driven by Eclipse SUMO; their files are resolved against the scenario's
folder (the validation context's ``base_dir``) and must exist."""


def _sumo_file(v: str | None, info: ValidationInfo) -> str | None:
    """An existing file, as an absolute path; a relative path is taken from the scenario's
    folder (``base_dir`` of the validation context) or else the working directory."""
    if v is None:
        return None
    path = Path(v).expanduser()
    if not path.is_absolute():
        base = (info.context or {}).get("base_dir") if info is not None else None
        path = Path(base or ".") / path
    path = path.resolve()
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return str(path)


class Mobility(Strict):
    model: Literal["static", "random_waypoint", "highway", "manhattan", "sumo-trace", "sumo"] = (
        "random_waypoint"
    )
    step: Seconds = Field(0.1, gt=0, description="mobility and fading update period [s]")
    area: Area = Field(default_factory=Area)
    speed: tuple[MetresPerSecond, MetresPerSecond] = Field(
        (10.0, 30.0), description="[min, max] speed [m/s]"
    )
    pause: Seconds = Field(0.0, ge=0, description="random waypoint pause at each waypoint [s]")
    lanes: int = Field(3, ge=1, le=64, description="highway lanes per direction")
    lane_width: Metres = Field(3.5, gt=0)
    bidirectional: bool = True
    block: Metres = Field(200.0, gt=0, description="Manhattan grid block length [m]")
    turn_probability: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Manhattan: chance to turn at a junction (left and right equally likely)",
    )
    fcd: str | None = Field(
        None, description="sumo-trace: SUMO floating-car-data file (.xml or .xml.gz) replayed"
    )
    net: str | None = Field(
        None,
        description="sumo-trace: the SUMO network (.net.xml) of the trace, for the area, "
        "junction and road placement and maps",
    )
    config: str | None = Field(None, description="sumo: the .sumocfg SUMO runs in-process")
    start: Seconds | None = Field(
        None,
        description="sumo, sumo-trace: SUMO time at simulated time 0 [s]; unset: the "
        "first timestep of the trace, or the begin time of the simulation",
    )

    @field_validator("speed")
    @classmethod
    def _speed(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] < 0 or v[1] < v[0]:
            raise ValueError(f"speed must be [min, max] with 0 <= min <= max, got {list(v)}")
        return v

    @field_validator("fcd", "net", "config")
    @classmethod
    def _files(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _sumo_file(v, info)

    @model_validator(mode="after")
    def _sumo_fields(self) -> Mobility:
        need = {"sumo-trace": "fcd", "sumo": "config"}.get(self.model)
        if need is not None and getattr(self, need) is None:
            raise ValueError(f"mobility model '{self.model}' needs '{need}'")
        allowed = {"sumo-trace": {"fcd", "net", "start"}, "sumo": {"config", "start"}}
        for key in ("fcd", "net", "config", "start"):
            if getattr(self, key) is not None and key not in allowed.get(self.model, ()):
                users = " or ".join(f"'{m}'" for m, keys in allowed.items() if key in keys)
                raise ValueError(f"'{key}' is only read with mobility model {users}")
        return self


class Fading(Strict):
    model: Literal["none", "rayleigh", "rician"] = "none"
    rician_k: Ratio = Field(10**0.3, ge=0, description="Rician K factor (linear or dB)")


class Interference(Strict):
    enabled: bool = False
    activity: float = Field(
        0.1,
        ge=0,
        le=1,
        description="chance that a co-channel vehicle of "
        "another cell transmits at a given moment (mean-field)",
    )


class Channel(Strict):
    path_loss_exponent: float = Field(2.0, gt=0, le=8, description="alpha of eq. [3]")
    reference_gain: Ratio = Field(1e-4, gt=0, description="g0 at the reference distance")
    reference_distance: Metres = Field(1.0, gt=0)
    min_distance: Metres = Field(1.0, gt=0, description="distances are clipped below this")
    noise: NoiseLevel = Field(1e-10, gt=0, description="N0 [W] or [W/Hz]")
    noise_kind: Literal["total", "density"] = Field(
        "total",
        description="total: noise power over the allocated band (default; -70 dBm); "
        "density: noise per hertz, multiplied by the allocated bandwidth",
    )
    semantic_efficiency: float = Field(
        1.0, ge=0, le=1, description="sigma_ij scaling transmitted bits (D sigma_ij)"
    )
    semantic_efficiency_min: float = Field(0.5, ge=0, le=1, description="sigma_min (19f)")
    fading: Fading = Field(default_factory=Fading)
    interference: Interference = Field(default_factory=Interference)

    @model_validator(mode="after")
    def _sigma(self) -> Channel:
        if self.semantic_efficiency < self.semantic_efficiency_min:
            raise ValueError(
                f"semantic_efficiency ({self.semantic_efficiency}) is below "
                f"semantic_efficiency_min ({self.semantic_efficiency_min}) (19f)"
            )
        return self


class Priority(Strict):
    phi: float = Field(1e-6, description="weight of complexity in P = phi s_c [2] [1/cycle]")
    beta: float = Field(
        -100.0,
        description="weight of slack in S = P + beta (L_D - t) [7] "
        "[1/s]; negative favours the more urgent task",
    )


class RateProfile(Strict):
    """How the true arrival rate varies in time: lambda_i(t) = arrival_rate * g(t + offset_i).

    ``constant``: g = 1. ``steps``: g = factors[k] from times[k] on (1 before the first
    time). ``sinusoid``: g = 1 + amplitude sin(2 pi t / period). ``bursts``: g =
    burst_factor for ``burst_duration`` at the start of every ``period``, 1 otherwise. With
    ``stagger``, vehicle i of N sees its periodic profile shifted by offset_i = i period / N.
    Each kind needs exactly its own keys.
    """

    kind: Literal["constant", "steps", "sinusoid", "bursts"] = "constant"
    times: list[Seconds] | None = Field(
        None, description="steps: times [s] at which the factor changes, increasing"
    )
    factors: list[float] | None = Field(
        None, description="steps: multiplier of arrival_rate from each time on"
    )
    amplitude: float | None = Field(None, ge=0, le=1, description="sinusoid: relative amplitude")
    period: Seconds | None = Field(None, gt=0, description="sinusoid and bursts: period [s]")
    burst_factor: float | None = Field(None, ge=0, description="bursts: multiplier in a burst")
    burst_duration: Seconds | None = Field(None, gt=0, description="bursts: burst length [s]")
    stagger: bool = Field(
        False, description="sinusoid and bursts: shift vehicle i's profile by i/N period"
    )

    @model_validator(mode="after")
    def _complete(self) -> RateProfile:
        need = {
            "constant": (),
            "steps": ("times", "factors"),
            "sinusoid": ("amplitude", "period"),
            "bursts": ("period", "burst_factor", "burst_duration"),
        }[self.kind]
        for key in need:
            if getattr(self, key) is None:
                raise ValueError(f"a {self.kind} rate profile needs '{key}'")
        others = {"times", "factors", "amplitude", "period", "burst_factor", "burst_duration"}
        for key in sorted(others - set(need)):
            if getattr(self, key) is not None:
                raise ValueError(f"'{key}' does not belong to a {self.kind} rate profile")
        if self.stagger and self.kind not in ("sinusoid", "bursts"):
            raise ValueError(f"'stagger' does not belong to a {self.kind} rate profile")
        if self.kind == "steps":
            if not self.times or len(self.times) != len(self.factors):
                raise ValueError(
                    f"a steps rate profile needs 'times' and 'factors' of equal, non-zero "
                    f"length; got {len(self.times)} times and {len(self.factors)} factors"
                )
            if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
                raise ValueError(f"steps 'times' must increase strictly, got {self.times}")
            if any(t < 0 for t in self.times) or any(f < 0 for f in self.factors):
                raise ValueError("steps 'times' and 'factors' must be >= 0")
        if self.kind == "bursts" and self.burst_duration > self.period:
            raise ValueError(
                f"burst_duration ({self.burst_duration} s) is longer than period ({self.period} s)"
            )
        return self


class Tasks(Strict):
    arrival_rate: PerSecond = Field(10.0, ge=0, description="Poisson rate lambda_i per vehicle")
    rate_profile: RateProfile = Field(
        default_factory=RateProfile,
        description="variation of the true rate in time (eq. [9]); constant by default",
    )
    size: BitsDistribution = Field(
        default_factory=lambda: Distribution(kind="uniform", low=1e4, high=2e4),
        description="data size D [bits]",
    )
    complexity: CyclesDistribution = Field(
        default_factory=lambda: Distribution(kind="uniform", low=1e6, high=2e6),
        description="semantic complexity s_c [cycles]",
    )
    deadline: Seconds = Field(0.05, gt=0, description="relative deadline L_D [s]")
    drop_expired: bool = Field(
        False, description="drop a task at a queue when it would start service after its deadline"
    )
    priority: Priority = Field(default_factory=Priority)


class Cost(Strict):
    latency_weight: float = Field(0.5, ge=0, le=1, description="w1 of eq. [18]")
    include_edge_energy: bool = Field(False, description="add edge CPU energy to E")


class TwinEstimator(Strict):
    """How the twin estimates each vehicle's arrival rate from the counts it received."""

    kind: Literal["window", "ewma"] = Field(
        "ewma",
        description="window: arrivals over the last 'window' seconds of reports divided by "
        "their span; ewma: exponentially weighted rate with time constant 'time_constant'",
    )
    window: Seconds = Field(1.0, gt=0, description="window: length of the sliding window [s]")
    time_constant: Seconds = Field(1.0, gt=0, description="ewma: time constant tau [s]")
    initial_rate: PerSecond | None = Field(
        None, ge=0, description="estimate before the first report [1/s]; unset: arrival_rate"
    )


class Twin(Strict):
    """The digital twin of section III-E of the Q-DDPG paper (see :mod:`sim.twin`)."""

    enabled: bool = Field(False, description="run the twin; off: policies see no twin view")
    sync_period: Seconds = Field(
        0.1, gt=0, description="time between reports [s]; a whole number of engine epochs"
    )
    delay: Seconds = Field(0.01, ge=0, description="sync channel delay of a report [s]")
    loss_probability: float = Field(
        0.0, ge=0, lt=1, description="chance that a report is lost (Bernoulli per sync)"
    )
    estimator: TwinEstimator = Field(default_factory=TwinEstimator)
    eps: PerSecond = Field(
        1.0, ge=0, description="eps_lambda of eq. [9]: the twin serves lambda_hat + eps [19i]"
    )
    sync_bits: Bits = Field(
        2000.0, ge=0, description="bits each vehicle sends per sync on its uplink"
    )
    compute_cycles: Cycles = Field(
        1e5, ge=0, description="edge CPU cycles per vehicle record per sync"
    )
    lead_time: Seconds = Field(
        0.0, ge=0, description="predictions are for the decision time plus this lead [s]"
    )
    series_vehicles: int = Field(
        8, ge=0, le=10_000, description="vehicles whose estimated and true rates are recorded"
    )
    qpu_site: QPUSite | None = Field(
        None,
        description="QPUs that run the twin's forecast as a twin_forecast circuit job per "
        "received report (FIFO, nothing else runs there); the twin's view changes when the "
        "job ends. Device, timing and shots come from the qpu: section",
    )


class Policy(Strict):
    id: str = Field("greedy", description="registered policy id")
    params: dict[str, Any] = Field(default_factory=dict, description="policy parameters")


class Output(Strict):
    task_table: bool = Field(
        True,
        description="write the per-task Parquet table; off keeps "
        "only the streaming summary (bounded memory and disk)",
    )
    plots: bool = True
    chunk_rows: int = Field(
        65_536,
        ge=1000,
        le=50_000_000,
        description="rows per row group of the task table: a full group is encoded on a "
        "background thread while the run goes on; memory is about 400 bytes per row",
    )
    table_compression: Literal["lz4", "zstd"] = Field(
        "lz4",
        description="codec of the task table: lz4 is the fastest to write and read; zstd "
        "(level 1) makes files 3-15 % smaller and is about 1.5 times slower to write and read",
    )


def _policy(v: Any) -> Any:
    return {"id": v} if isinstance(v, str) else v


class Scenario(Strict):
    """One simulated world."""

    name: str = Field("scenario", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    seed: int = Field(0, ge=0, lt=2**63, description="root seed of the run")
    engine: Engine = Field(default_factory=Engine)
    vehicles: Vehicles = Field(default_factory=Vehicles)
    servers: Servers = Field(default_factory=Servers)
    mobility: Mobility = Field(default_factory=Mobility)
    channel: Channel = Field(default_factory=Channel)
    tasks: Tasks = Field(default_factory=Tasks)
    cost: Cost = Field(default_factory=Cost)
    twin: Twin = Field(default_factory=Twin)
    qpu: QPUConfig | None = Field(
        None, description="the QPU co-processor (see qpu.config); unset: no QPUs"
    )
    policy: Annotated[Policy, BeforeValidator(_policy)] = Field(default_factory=Policy)
    output: Output = Field(default_factory=Output)

    @property
    def epochs_per_mobility_step(self) -> int:
        """Decision epochs per mobility step (a whole number, checked at validation)."""
        return max(1, round(self.mobility.step / self.engine.epoch))

    @property
    def epochs_per_sync(self) -> int:
        """Decision epochs per twin sync period (a whole number when the twin is on)."""
        return max(1, round(self.twin.sync_period / self.engine.epoch))

    @model_validator(mode="after")
    def _cross(self) -> Scenario:
        ratio = self.mobility.step / self.engine.epoch
        if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6 * ratio:
            raise ValueError(
                f"mobility.step ({self.mobility.step} s) must be a whole number "
                f"of engine.epoch ({self.engine.epoch} s): positions and the "
                f"channel are held for whole decision epochs"
            )
        n_steps = self.engine.horizon / self.mobility.step
        if n_steps > 1e8:
            raise ValueError(
                f"mobility.step ({self.mobility.step} s) gives {n_steps:.3g} "
                f"steps over the horizon; at most 1e8 are allowed"
            )
        sync = self.twin.sync_period / self.engine.epoch
        if self.twin.enabled and (sync < 1 - 1e-9 or abs(sync - round(sync)) > 1e-6 * sync):
            raise ValueError(
                f"twin.sync_period ({self.twin.sync_period} s) must be a whole number of "
                f"engine.epoch ({self.engine.epoch} s): reports are taken between epochs"
            )
        if self.twin.qpu_site is not None and self.qpu is None:
            raise ValueError(
                "twin.qpu_site is set but the scenario has no qpu: section; add one (its "
                "device or timing, shots and jobs.twin_forecast set the forecast job) or "
                "remove twin.qpu_site"
            )
        site = self.twin.qpu_site
        if site is not None and site.server is not None and site.server >= self.servers.count:
            raise ValueError(
                f"twin.qpu_site.server is {site.server} but there are {self.servers.count} "
                f"edge servers; allowed: 0..{self.servers.count - 1}"
            )
        if self.qpu is not None and self.servers.placement in ("grid", "line", "list"):
            m = self.servers.count
            for i, site in enumerate(self.qpu.sites):
                if site.server is not None and site.server >= m:
                    raise ValueError(
                        f"qpu.sites[{i}].server is {site.server} but there are {m} edge "
                        f"servers; allowed: 0..{m - 1}"
                    )
        if self.engine.horizon / self.engine.epoch > 1e8:
            raise ValueError("engine.epoch is too short for the horizon: at most 1e8 epochs")
        if self.channel.noise_kind == "density" and self.channel.noise > 1e-9:
            raise ValueError(
                f"channel.noise ({self.channel.noise} W/Hz) is implausibly large "
                f"for a noise density; did you mean noise_kind: total?"
            )
        if self.channel.noise_kind == "total" and self.channel.noise > 1e-3:
            raise ValueError(
                f"channel.noise ({self.channel.noise} W) is implausibly large "
                f"for a total noise power; did you mean noise_kind: density?"
            )
        return self

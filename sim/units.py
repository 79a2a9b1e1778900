"""Physical quantities written as people write them ("10 MHz", "-70 dBm", "50 ms").

Every value is converted to SI at load time: seconds, hertz, bits, watts, joules, cycles,
metres, metres per second. Logarithmic units (dB, dBm, dBW) are converted to linear ratios
or watts. A bare number is taken to be already in SI units.
"""

from __future__ import annotations

import math
import re

# dimension -> {unit spelling: factor to SI}
_LINEAR: dict[str, dict[str, float]] = {
    "time": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0},
    "frequency": {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9, "THz": 1e12},
    "rate": {"/s": 1.0, "1/s": 1.0, "per s": 1.0, "/ms": 1e3, "/min": 1 / 60.0, "/h": 1 / 3600.0},
    "bits": {
        "bit": 1.0,
        "bits": 1.0,
        "b": 1.0,
        "kbit": 1e3,
        "Mbit": 1e6,
        "Gbit": 1e9,
        "B": 8.0,
        "byte": 8.0,
        "bytes": 8.0,
        "kB": 8e3,
        "MB": 8e6,
        "GB": 8e9,
    },
    "cycles": {"cycle": 1.0, "cycles": 1.0, "kcycles": 1e3, "Mcycles": 1e6, "Gcycles": 1e9},
    "power": {"W": 1.0, "mW": 1e-3, "uW": 1e-6, "kW": 1e3},
    "energy": {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "kJ": 1e3},
    "length": {"m": 1.0, "km": 1e3, "cm": 1e-2},
    "speed": {"m/s": 1.0, "km/h": 1 / 3.6, "kmh": 1 / 3.6, "mph": 0.44704},
    "ratio": {"": 1.0},
}
# Logarithmic spellings: dimension -> {unit: function(value) -> SI}
_LOG: dict[str, dict[str, object]] = {
    "power": {"dBm": lambda v: 10 ** ((v - 30.0) / 10.0), "dBW": lambda v: 10 ** (v / 10.0)},
    "ratio": {"dB": lambda v: 10 ** (v / 10.0)},
    # noise density: dBm/Hz -> W/Hz
    "power_density": {
        "dBm/Hz": lambda v: 10 ** ((v - 30.0) / 10.0),
        "dBW/Hz": lambda v: 10 ** (v / 10.0),
    },
}
_LINEAR["power_density"] = {"W/Hz": 1.0}

UNITS_HELP: dict[str, str] = {
    "time": "seconds; e.g. 10 ms, 2 s, 1 min",
    "frequency": "hertz; e.g. 10 MHz, 2 GHz",
    "rate": "events per second; e.g. 10 /s",
    "bits": "bits; e.g. 1.5e4 bit, 2 kB, 1 Mbit",
    "cycles": "CPU cycles; e.g. 1e6 cycles, 1.5 Mcycles",
    "power": "watts; e.g. 1 W, 200 mW, 23 dBm",
    "energy": "joules; e.g. 0.1 J, 5 mJ",
    "length": "metres; e.g. 100 m, 1.2 km",
    "speed": "metres per second; e.g. 15 m/s, 54 km/h",
    "ratio": "a plain number or a value in dB; e.g. 0.5, -40 dB",
    "power_density": "watts per hertz; e.g. -174 dBm/Hz, 4e-21 W/Hz",
}

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUM})\s*([^\d\s].*?)?\s*$")


class UnitError(ValueError):
    """A value that is not a quantity of the expected dimension."""


def allowed_units(dimension: str) -> list[str]:
    """The unit spellings accepted for a dimension."""
    units = [u for u in _LINEAR.get(dimension, {}) if u]
    units += list(_LOG.get(dimension, {}))
    return units


def parse_quantity(value: object, dimension: str) -> float:
    """Convert ``value`` (number or string with a unit) to SI units of ``dimension``.

    Raises :class:`UnitError` with a message naming the allowed units.
    """
    if isinstance(value, bool):
        raise UnitError(f"expected a quantity in {UNITS_HELP[dimension]}, got a boolean")
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        m = _QUANTITY.match(value)
        if not m:
            raise UnitError(
                f"cannot read {value!r} as a quantity; write a number and a unit "
                f"({UNITS_HELP[dimension]})"
            )
        number = float(m.group(1))
        unit = (m.group(2) or "").strip()
        if not unit:
            out = number
        elif unit in _LINEAR.get(dimension, {}):
            out = number * _LINEAR[dimension][unit]
        elif unit in _LOG.get(dimension, {}):
            try:
                out = float(_LOG[dimension][unit](number))  # type: ignore[operator]
            except OverflowError:
                raise UnitError(f"{value!r} is too large to convert") from None
        else:
            units = ", ".join(allowed_units(dimension)) or "none (plain number)"
            raise UnitError(f"unit {unit!r} is not a unit of {dimension}; allowed units: {units}")
    else:
        raise UnitError(
            f"expected a quantity in {UNITS_HELP[dimension]}, got {type(value).__name__}"
        )
    if not math.isfinite(out):
        raise UnitError("value must be a finite number")
    return out

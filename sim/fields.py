"""Field types of the scenario schema: quantities with units, and the strict base model.

Kept apart from :mod:`sim.config` so that other sections of the schema (e.g.
:mod:`qpu.config`) can use them without importing the whole scenario.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from sim.units import UNITS_HELP, parse_quantity

__all__ = [
    "Bits",
    "Cycles",
    "Hertz",
    "Joules",
    "Metres",
    "MetresPerSecond",
    "NoiseLevel",
    "PerSecond",
    "Ratio",
    "Seconds",
    "Strict",
    "Watts",
    "WattsPerHertz",
    "parse_quantity",
]


def _quantity(dimension: str):
    def convert(v: Any) -> float:
        return parse_quantity(v, dimension)

    schema = {
        "anyOf": [{"type": "number"}, {"type": "string"}],
        "description": f"SI value or a string with a unit ({UNITS_HELP[dimension]})",
    }
    return [BeforeValidator(convert), WithJsonSchema(schema)]


Seconds = Annotated[float, *_quantity("time")]
Hertz = Annotated[float, *_quantity("frequency")]
PerSecond = Annotated[float, *_quantity("rate")]
Bits = Annotated[float, *_quantity("bits")]
Cycles = Annotated[float, *_quantity("cycles")]
Watts = Annotated[float, *_quantity("power")]
Joules = Annotated[float, *_quantity("energy")]
Metres = Annotated[float, *_quantity("length")]
MetresPerSecond = Annotated[float, *_quantity("speed")]
Ratio = Annotated[float, *_quantity("ratio")]
WattsPerHertz = Annotated[float, *_quantity("power_density")]


def _noise(v: Any) -> float:
    """Noise is a power (W, dBm) or a density (W/Hz, dBm/Hz); ``noise_kind`` says which."""
    if isinstance(v, str) and "/Hz" in v:
        return parse_quantity(v, "power_density")
    return parse_quantity(v, "power")


NoiseLevel = Annotated[
    float,
    BeforeValidator(_noise),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string"}],
            "description": "noise power (e.g. -70 dBm) or density (e.g. -174 dBm/Hz)",
        }
    ),
]


class Strict(BaseModel):
    """Base: unknown keys rejected, values validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

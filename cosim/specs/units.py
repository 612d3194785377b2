"""Parse quantities written with units ("3.35 TB/s", "80 GB", "700 W") into SI floats.

pint is used here only, at spec-load time; the rest of cosim sees plain floats in SI units
(bytes, bytes/s, FLOP/s, Hz, W, J, s, USD). Decimal prefixes are decimal: a vendor's "80 GB" is
80e9 bytes; write "80 GiB" for 80 * 2**30. FLOP/s may be written "989 TFLOPS" or "1979 TOPS".
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

# Target unit (pint syntax) for each quantity kind.
UNIT_OF_KIND: dict[str, str] = {
    "bytes": "byte",
    "bytes_per_s": "byte / second",
    "flops_per_s": "flop / second",
    "hz": "hertz",
    "w": "watt",
    "j": "joule",
    "j_per_byte": "joule / byte",
    "j_per_flop": "joule / flop",
    "s": "second",
    "m2": "meter ** 2",
    "dimensionless": "dimensionless",
    "usd": "dimensionless",
    "usd_per_hour": "dimensionless",
}

_PLAIN_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
# Link rates are written "400 Gb/s" or "100 Gbps"; pint reads "Gb" as the gilbert, so spell bits out.
_BIT_RATE = re.compile(r"(?<![A-Za-z])([kKMGTPE]?)(?:b/s|bps)\b")


@functools.lru_cache(maxsize=1)
def _registry():
    import pint

    ureg = pint.UnitRegistry()
    ureg.define("flop = [computation] = FLOP")
    ureg.define("FLOPS = flop / second")
    ureg.define("OPS = flop / second")
    ureg.define("flops = flop / second")
    return ureg


def parse_quantity(value: Any, kind: str) -> float:
    """Convert `value` (a number in SI or a string with units) to a float in the SI unit of `kind`.

    Raises ValueError with a readable message on an unknown unit or a wrong dimension.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a quantity in {UNIT_OF_KIND[kind]}, got a boolean")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a number or a string with units, got {type(value).__name__}")
    text = value.strip().replace("_", "").replace(",", "")
    if kind in ("usd", "usd_per_hour"):
        text = text.removeprefix("$").removesuffix("/hour").removesuffix("/h").removesuffix("USD").strip()
    if _PLAIN_NUMBER.match(text):
        return float(text)
    if kind in ("usd", "usd_per_hour"):
        raise ValueError(f"expected a dollar amount like 2.99, got '{value}'")
    text = _BIT_RATE.sub(lambda m: f"{m.group(1)}bit/s", text)
    ureg = _registry()
    import pint

    try:
        quantity = ureg.Quantity(text)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError) as err:
        raise ValueError(f"unknown unit in '{value}' ({err})") from None
    except Exception as err:  # pint raises assorted parse errors
        raise ValueError(f"cannot parse quantity '{value}' ({type(err).__name__})") from None
    target = UNIT_OF_KIND[kind]
    try:
        return float(quantity.to(target).magnitude)
    except pint.errors.DimensionalityError:
        raise ValueError(f"'{value}' is not convertible to {target}") from None


def _validator(kind: str):
    return BeforeValidator(lambda v: parse_quantity(v, kind))


Bytes = Annotated[float, _validator("bytes")]
BytesPerSecond = Annotated[float, _validator("bytes_per_s")]
FlopsPerSecond = Annotated[float, _validator("flops_per_s")]
Hertz = Annotated[float, _validator("hz")]
Watts = Annotated[float, _validator("w")]
Joules = Annotated[float, _validator("j")]
JoulesPerByte = Annotated[float, _validator("j_per_byte")]
JoulesPerFlop = Annotated[float, _validator("j_per_flop")]
Seconds = Annotated[float, _validator("s")]

"""A sourced figure: a value (with units in YAML, SI float after loading) plus where it came from.

Every number in a hardware spec is a `Figure`: `{value: 3.35 TB/s, source: nv_h100_ds}`. A figure
that is not read from a datasheet says `estimate: true` and explains itself in `derivation`.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from cosim.specs.units import UNIT_OF_KIND, parse_quantity


class FigureBase(BaseModel):
    """Common fields of every sourced figure; `value` is added per quantity kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    source: str = Field(min_length=1, description="key into the spec's `sources` table")
    estimate: bool = Field(default=False, description="true when not read directly from a datasheet")
    derivation: str | None = Field(default=None, description="how an estimate was derived")
    note: str | None = None

    _kind: str = "dimensionless"
    _allow_zero: bool = False

    @model_validator(mode="after")
    def _estimate_needs_derivation(self) -> FigureBase:
        if self.estimate and not self.derivation:
            raise ValueError("an estimated figure must say how it was derived ('derivation')")
        return self


@functools.cache
def figure_type(kind: str, allow_zero: bool = False) -> type[FigureBase]:
    """A Figure model whose `value` is parsed as quantity `kind` and must be > 0 (or >= 0)."""
    if kind not in UNIT_OF_KIND:
        raise KeyError(kind)

    def _parse(cls, v: Any) -> float:
        number = parse_quantity(v, kind)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        if allow_zero and number < 0:
            raise ValueError(f"must be >= 0 {UNIT_OF_KIND[kind]}, got {v!r}")
        if not allow_zero and number <= 0:
            raise ValueError(f"must be > 0 {UNIT_OF_KIND[kind]}, got {v!r}")
        return number

    name = f"Figure_{kind}{'_nonneg' if allow_zero else ''}"
    model = create_model(
        name,
        __base__=FigureBase,
        __validators__={"parse_value": field_validator("value", mode="before")(_parse)},
    )
    model._kind = kind
    model._allow_zero = allow_zero
    return model


BytesFig = figure_type("bytes")
BandwidthFig = figure_type("bytes_per_s")
FlopsFig = figure_type("flops_per_s")
HertzFig = figure_type("hz")
WattsFig = figure_type("w")
WattsNonNegFig = figure_type("w", True)
JoulesPerByteFig = figure_type("j_per_byte")
JoulesPerFlopFig = figure_type("j_per_flop")
SecondsFig = figure_type("s", True)
CountFig = figure_type("dimensionless")
RatioFig = figure_type("dimensionless", True)
UsdFig = figure_type("usd")
AreaFig = figure_type("m2")
UsdPerHourFig = figure_type("usd_per_hour")

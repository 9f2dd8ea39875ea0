"""Honest statistics: shares with their denominators, Wilson intervals, quick-count margins."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Z95 = 1.959964


class FindingsSettings(BaseModel):
    """Mission-configurable thresholds, read from `mission.settings["findings"]`."""

    model_config = ConfigDict(extra="ignore")

    small_denominator: int = Field(30, ge=1, description="Below it, shares read 'X of Y'")
    issued_allowance: int = Field(
        5, ge=0, description="Ballots issued may exceed registered voters by this (staff voting)"
    )
    turnout_max: float = Field(0.95, gt=0, description="Flag turnout (B/R) above this")
    invalid_share_max: float = Field(0.10, gt=0, description="Flag invalid/in-box above this")
    option_share_max: float = Field(0.90, gt=0, description="Flag one option's share above this")
    figure_max: int = Field(100_000, ge=1, description="A protocol figure above it is implausible")
    cluster_min_cases: int = Field(
        5, ge=1, description="Below this many cases, no claim that a problem clusters"
    )
    cluster_min_share: float = Field(
        0.5, gt=0, le=1, description="A cluster's region holds at least this share of the cases"
    )
    cluster_min_lift: float = Field(
        2.0,
        gt=1,
        description="...and at least this many times its share of the observations",
    )
    population_stations: int | None = Field(
        None, ge=1, description="Stations in the sampling frame (default: stations imported)"
    )


def read_settings(raw: Any) -> tuple[FindingsSettings, list[str]]:
    """The mission's thresholds; a bad value falls back to its default and is reported."""
    data = raw.get("findings") if isinstance(raw, dict) else None
    if not isinstance(data, dict):
        return FindingsSettings(), []
    try:
        return FindingsSettings.model_validate(data), []
    except ValidationError as exc:
        problems = [f"findings.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        kept = {k: v for k, v in data.items() if k not in bad}
        try:
            return FindingsSettings.model_validate(kept), problems
        except ValidationError:
            return FindingsSettings(), problems


def wilson(count: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a proportion (None without observations)."""
    if n <= 0:
        return None
    p = count / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def share_text(count: int, n: int, small: int) -> str:
    """'X of Y' under the small-denominator threshold, else a percentage with its base."""
    if n < small:
        return f"{count} of {n}"
    return f"{percent(Fraction(count, n))} ({count} of {n})"


Share = Fraction | Decimal | float | int


def _exact(share: Share) -> Fraction:
    """A share as an exact fraction; a float as the shortest decimal that reads back as it
    (which is how the JSON shows it)."""
    return Fraction(Decimal(repr(share))) if isinstance(share, float) else Fraction(share)


def _half_away(value: Fraction, places: int) -> Decimal:
    """`value` to `places` decimals, a half rounded away from zero, computed exactly."""
    scaled = value * 10**places
    whole, rest = divmod(abs(scaled.numerator), scaled.denominator)
    if 2 * rest >= scaled.denominator:
        whole += 1
    return Decimal(whole if scaled >= 0 else -whole).scaleb(-places)


def percent_value(share: Share) -> Decimal:
    """The one rounding rule of every percentage Pollcheck writes: the share (a count over
    its base exactly) times 100, to one decimal place, a half away from zero. 23 of 80 is
    28.75 %, written 28.8 (rounding through binary floating point had made it 28.7)."""
    return _half_away(_exact(share) * 100, 1)


def share_value(share: Share) -> float:
    """A share as the JSON gives it: four decimals, by the same rule as `percent_value`."""
    return float(_half_away(_exact(share), 4))


def ratio_value(ratio: Fraction, places: int = 2) -> float:
    """A ratio that is not a share (a problem's lift) as the JSON gives it, by the same
    rule: 33/8 is 4.13 (rounding through binary floating point had made it 4.12)."""
    return float(_half_away(ratio, places))


def percent(share: Share) -> str:
    """A share as an English percentage, a trailing ".0" dropped: "28.8%", "25%"."""
    text = f"{percent_value(share):f}".removesuffix(".0")
    return f"{text}%"


def ratio_estimate(
    n: int, big_n: int, sum_y: float, sum_x: float, syy: float, sxy: float, sxx: float
) -> tuple[float, float] | None:
    """Ratio estimator r = Σy/Σx over n sampled stations out of N, with its 95 % margin
    (finite-population correction included); None when it cannot be estimated."""
    if n < 2 or sum_x <= 0:
        return None
    r = sum_y / sum_x
    x_bar = sum_x / n
    residual_ss = max(0.0, syy - 2 * r * sxy + r * r * sxx)
    fpc = max(0.0, 1 - n / big_n) if big_n > 0 else 1.0
    variance = fpc * residual_ss / (n - 1) / (n * x_bar * x_bar)
    return r, Z95 * math.sqrt(variance)

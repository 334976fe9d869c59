"""Evaluation gate: bless a candidate model when its GAP is good enough to replace the champion.

A candidate is blessed when
    candidate_gap >= min_gap
and, if a champion exists,
    candidate_gap >= champion_gap - tolerance.

Both comparisons allow a slack of BOUNDARY_SLACK so that a GAP sitting exactly on a boundary
written in decimal (0.80 - 0.01 = 0.79) passes despite binary floating-point rounding.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BOUNDARY_SLACK = 1e-9
RATE_METRICS = ("gap", "hit_at_one", "avg_hit_at_one", "perr", "avg_perr", "map")
COUNT_METRICS = ("num_videos",)


def _describe(value: Any) -> str:
    return "null" if value is None else repr(value)


def validate_metrics(metrics: Any, source: str) -> Mapping[str, Any]:
    """metrics, checked: "gap" present; gap, hit_at_one, perr, map (and the starter's avg_ names) finite
    numbers in [0, 1] where present; num_videos a count. Raises ValueError naming `source` and the field."""
    if not isinstance(metrics, Mapping):
        raise ValueError(  # noqa: TRY004 - bad input is a ValueError for the entry points
            f"metrics {source}: expected a JSON object of metrics, got {type(metrics).__name__}")
    if "gap" not in metrics:
        raise ValueError(f"metrics {source}: no 'gap' field (fields: {sorted(metrics)})")
    for field in RATE_METRICS:
        if field not in metrics:
            continue
        value = metrics[field]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"metrics {source}: '{field}' is {_describe(value)}, not a number")  # noqa: TRY004
        if not math.isfinite(float(value)):
            raise ValueError(f"metrics {source}: '{field}' is {_describe(value)}, not a finite number")
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"metrics {source}: '{field}' is {_describe(value)}, outside [0, 1]")
    for field in COUNT_METRICS:
        value = metrics.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
            raise ValueError(f"metrics {source}: '{field}' is {_describe(value)}, not a count of videos")
    return metrics


@dataclass(frozen=True)
class GateConfig:
    """min_gap: the GAP every blessed model must reach; tolerance: how far below the champion's
    GAP a candidate may fall and still be blessed (0 means it must match or beat the champion)."""

    min_gap: float
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_gap <= 1.0:
            raise ValueError(f"min_gap must lie in [0, 1], got {self.min_gap}")
        if not 0.0 <= self.tolerance <= 1.0:
            raise ValueError(f"tolerance must lie in [0, 1], got {self.tolerance}")


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on one candidate, with the numbers it was based on."""

    blessed: bool
    reason: str
    candidate_gap: float
    champion_gap: float | None
    min_gap: float
    tolerance: float


def _at_least(value: float, bound: float) -> bool:
    return value >= bound - BOUNDARY_SLACK


def _fmt(value: float) -> str:
    """Four decimals, or scientific notation for a nonzero difference that would print as 0.0000."""
    if value != 0 and abs(value) < 5e-5:
        return f"{value:.2e}"
    return f"{value:.4f}"


def decide(candidate_gap: float, champion_gap: float | None, config: GateConfig) -> GateDecision:
    """Decide whether a candidate with `candidate_gap` may replace a champion with `champion_gap`
    (None when there is no champion yet)."""

    def verdict(blessed: bool, reason: str) -> GateDecision:
        return GateDecision(
            blessed=blessed,
            reason=reason,
            candidate_gap=candidate_gap,
            champion_gap=champion_gap,
            min_gap=config.min_gap,
            tolerance=config.tolerance,
        )

    if not math.isfinite(candidate_gap):
        return verdict(False, f"Not blessed: the candidate's GAP is {candidate_gap}, not a number.")

    if not _at_least(candidate_gap, config.min_gap):
        shortfall = config.min_gap - candidate_gap
        return verdict(
            False,
            f"Not blessed: GAP {candidate_gap:.4f} is {_fmt(shortfall)} below the required minimum "
            f"of {config.min_gap:.4f}.",
        )

    meets_minimum = f"GAP {candidate_gap:.4f} meets the minimum of {config.min_gap:.4f}"
    if champion_gap is None:
        return verdict(True, f"Blessed: {meets_minimum} and there is no champion yet.")

    margin = candidate_gap - champion_gap
    if abs(margin) <= BOUNDARY_SLACK:
        return verdict(True, f"Blessed: {meets_minimum} and matches the champion's {champion_gap:.4f}.")
    if margin > 0:
        return verdict(
            True,
            f"Blessed: {meets_minimum} and beats the champion's {champion_gap:.4f} by {_fmt(margin)}.",
        )
    if _at_least(candidate_gap, champion_gap - config.tolerance):
        return verdict(
            True,
            f"Blessed: {meets_minimum} and is {_fmt(-margin)} below the champion's "
            f"{champion_gap:.4f}, within the tolerance of {config.tolerance:.4f}.",
        )
    return verdict(
        False,
        f"Not blessed: GAP {candidate_gap:.4f} is {_fmt(-margin)} below the champion's "
        f"{champion_gap:.4f}, more than the tolerance of {config.tolerance:.4f}.",
    )

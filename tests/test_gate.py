"""Evaluation gate: threshold for the first model, tolerance against a champion."""

from __future__ import annotations

import pytest

from vidpipe.gate import GateConfig, GateDecision, decide

CONFIG = GateConfig(min_gap=0.75, tolerance=0.01)


def test_first_model_passing_the_threshold_is_blessed():
    decision = decide(0.80, None, CONFIG)
    assert decision == GateDecision(
        blessed=True,
        reason="Blessed: GAP 0.8000 meets the minimum of 0.7500 and there is no champion yet.",
        candidate_gap=0.80,
        champion_gap=None,
        min_gap=0.75,
        tolerance=0.01,
    )


def test_first_model_below_the_threshold_is_not_blessed():
    decision = decide(0.70, None, CONFIG)
    assert not decision.blessed
    assert decision.reason == "Not blessed: GAP 0.7000 is 0.0500 below the required minimum of 0.7500."


def test_better_than_champion_is_blessed():
    decision = decide(0.82, 0.80, CONFIG)
    assert decision.blessed
    assert decision.reason == (
        "Blessed: GAP 0.8200 meets the minimum of 0.7500 and beats the champion's 0.8000 by 0.0200."
    )


def test_equal_to_champion_is_blessed():
    decision = decide(0.80, 0.80, GateConfig(min_gap=0.75, tolerance=0.0))
    assert decision.blessed
    assert "matches the champion's 0.8000" in decision.reason


def test_worse_than_champion_beyond_tolerance_is_not_blessed():
    decision = decide(0.78, 0.80, CONFIG)
    assert not decision.blessed
    assert decision.reason == (
        "Not blessed: GAP 0.7800 is 0.0200 below the champion's 0.8000, more than the tolerance of 0.0100."
    )


def test_worse_than_champion_within_tolerance_is_blessed():
    decision = decide(0.795, 0.80, CONFIG)
    assert decision.blessed
    assert decision.reason == (
        "Blessed: GAP 0.7950 meets the minimum of 0.7500 and is 0.0050 below the champion's 0.8000, "
        "within the tolerance of 0.0100."
    )


@pytest.mark.parametrize(
    ("candidate", "champion", "tolerance"),
    [(0.79, 0.80, 0.01), (0.5, 0.75, 0.25), (0.7, 0.9, 0.2)],
)
def test_exactly_at_the_tolerance_boundary_is_blessed(candidate, champion, tolerance):
    config = GateConfig(min_gap=0.1, tolerance=tolerance)
    assert decide(candidate, champion, config).blessed
    assert not decide(candidate - 1e-6, champion, config).blessed


def test_exactly_at_the_threshold_is_blessed():
    assert decide(0.75, None, CONFIG).blessed
    assert decide(0.3 - 0.1 + 0.1, None, GateConfig(min_gap=0.3)).blessed
    assert not decide(0.75 - 1e-6, None, CONFIG).blessed


def test_threshold_applies_even_when_within_tolerance_of_a_weak_champion():
    decision = decide(0.74, 0.745, CONFIG)
    assert not decision.blessed
    assert "below the required minimum of 0.7500" in decision.reason


def test_tiny_shortfall_is_still_visible_in_the_reason():
    decision = decide(0.78999, 0.80, CONFIG)
    assert not decision.blessed
    assert "is 1.00e-02 below" not in decision.reason
    assert decide(0.75 - 2e-5, None, CONFIG).reason.startswith("Not blessed: GAP 0.7500 is 2.00e-05 below")


def test_not_a_number_is_not_blessed():
    decision = decide(float("nan"), None, CONFIG)
    assert not decision.blessed
    assert "not a number" in decision.reason


@pytest.mark.parametrize(("min_gap", "tolerance"), [(-0.1, 0.0), (1.5, 0.0), (0.5, -0.01)])
def test_invalid_config_is_rejected(min_gap, tolerance):
    with pytest.raises(ValueError):
        GateConfig(min_gap=min_gap, tolerance=tolerance)

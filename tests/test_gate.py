"""Evaluation gate: threshold for the first model, tolerance against a champion; the gate command on a catalog."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text

from tests.conftest import dump_catalog
from vidpipe.apps import gate_cli
from vidpipe.apps.gate_cli import gate
from vidpipe.catalog import Catalog
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


# The gate against a real catalog (SQLite file and a fresh PostgreSQL database, see conftest's `catalog`).

MIN_GAP_CONFIG = GateConfig(min_gap=0.5, tolerance=0.1)


def _metrics(gap: float) -> dict:
    return {"gap": gap, "hit_at_one": gap, "perr": gap, "map": gap, "num_videos": 50}


def test_regate_with_the_same_inputs_returns_the_recorded_decision(catalog: Catalog):
    first = gate(catalog, "run-1", "dag", "moe", "/models/run-1", _metrics(0.9), MIN_GAP_CONFIG, {"epochs": 3})
    before = dump_catalog(catalog)
    again = gate(catalog, "run-1", "retry", "moe", "/models/run-1", _metrics(0.9), MIN_GAP_CONFIG, {"epochs": 3})
    assert again == first
    assert first["blessed"] and first["gap"] == pytest.approx(0.9)
    assert dump_catalog(catalog) == before


def test_regate_with_a_different_gap_is_refused_and_the_champion_keeps_its_gap(catalog: Catalog):
    first = gate(catalog, "run-1", "dag", "moe", "/models/run-1", _metrics(0.9), MIN_GAP_CONFIG)
    before = dump_catalog(catalog)
    with pytest.raises(ValueError) as refused:
        gate(catalog, "run-1", "dag", "moe", "/models/run-1", _metrics(0.4), MIN_GAP_CONFIG)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("run 'run-1' was already gated")
    assert "metric gap (recorded 0.9, given 0.4)" in message
    assert dump_catalog(catalog) == before
    champion = catalog.champion()
    assert (champion.id, champion.gap) == (first["model_version_id"], pytest.approx(0.9))
    assert catalog.blessing(champion.id).reason.startswith("Blessed: GAP 0.9000")


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ({"model_dir": "/models/elsewhere"}, "model dir (recorded '/models/run-1', given '/models/elsewhere')"),
        ({"model_name": "dbof"}, "model name (recorded 'moe', given 'dbof')"),
        ({"config": GateConfig(min_gap=0.95, tolerance=0.1)}, "min gap (recorded 0.5, given 0.95)"),
        ({"config": GateConfig(min_gap=0.5, tolerance=0.0)}, "tolerance (recorded 0.1, given 0.0)"),
        ({"metrics": dict(_metrics(0.9), num_videos=51)}, "metric num_videos (recorded 50, given 51)"),
    ],
)
def test_regate_with_other_inputs_is_refused_naming_what_differs(catalog: Catalog, changed, expected):
    inputs = {"model_name": "moe", "model_dir": "/models/run-1", "metrics": _metrics(0.9), "config": MIN_GAP_CONFIG}
    gate(catalog, "run-1", "dag", inputs["model_name"], inputs["model_dir"], inputs["metrics"], inputs["config"])
    before = dump_catalog(catalog)
    inputs.update(changed)
    with pytest.raises(ValueError, match="run 'run-1' was already gated") as refused:
        gate(catalog, "run-1", "dag", inputs["model_name"], inputs["model_dir"], inputs["metrics"], inputs["config"])
    assert expected in str(refused.value)
    assert dump_catalog(catalog) == before


def test_decided_runs_end_blessed_or_rejected(catalog: Catalog):
    champion = gate(catalog, "run-1", "dag", "moe", "/models/run-1", _metrics(0.8), MIN_GAP_CONFIG)
    rejected = gate(catalog, "run-2", "dag", "moe", "/models/run-2", _metrics(0.6), MIN_GAP_CONFIG)
    too_low = gate(catalog, "run-3", "dag", "moe", "/models/run-3", _metrics(0.3), GateConfig(min_gap=0.5))
    assert champion["blessed"] and not rejected["blessed"] and not too_low["blessed"]
    assert rejected["champion_version_id"] == champion["model_version_id"]
    assert [catalog.run_status(run) for run in ("run-1", "run-2", "run-3")] == ["blessed", "rejected", "rejected"]
    assert {entry.run_id: entry.run_status for entry in catalog.history()} == {
        "run-1": "blessed", "run-2": "rejected", "run-3": "rejected"}


def _fail_promotions(catalog: Catalog) -> None:
    """A trigger that makes every insert into champions fail, as a full disk or a lost connection would."""
    with catalog.engine.begin() as connection:
        if catalog.dialect == "sqlite":
            connection.execute(text("CREATE TRIGGER no_push BEFORE INSERT ON champions "
                                    "BEGIN SELECT RAISE(ABORT, 'promotion failed'); END"))
        else:
            connection.execute(text("CREATE FUNCTION no_push() RETURNS trigger LANGUAGE plpgsql AS "
                                    "$$ BEGIN RAISE EXCEPTION 'promotion failed'; END $$"))
            connection.execute(text("CREATE TRIGGER no_push BEFORE INSERT ON champions "
                                    "FOR EACH ROW EXECUTE FUNCTION no_push()"))


def test_a_failure_while_promoting_leaves_no_row_of_the_gate(catalog: Catalog):
    gate(catalog, "run-1", "dag", "moe", "/models/run-1", _metrics(0.7), MIN_GAP_CONFIG)
    before = dump_catalog(catalog)
    _fail_promotions(catalog)
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="promotion failed"):
        gate(catalog, "run-2", "dag", "moe", "/models/run-2", _metrics(0.9), MIN_GAP_CONFIG)
    assert dump_catalog(catalog) == before
    assert catalog.run_status("run-2") is None
    with catalog.engine.begin() as connection:
        connection.execute(text("DROP TRIGGER no_push" + (" ON champions" if catalog.dialect == "postgresql" else "")))
    retried = gate(catalog, "run-2", "dag", "moe", "/models/run-2", _metrics(0.9), MIN_GAP_CONFIG)
    assert retried["blessed"] and retried["champion_version_id"] == retried["model_version_id"]
    assert catalog.run_status("run-2") == "blessed"


BAD_METRICS = [
    ('{"gap": 5.0}', "'gap' is 5.0, outside [0, 1]"),
    ('{"gap": -0.1}', "'gap' is -0.1, outside [0, 1]"),
    ('{"gap": null}', "'gap' is null, not a number"),
    ('{"gap": NaN}', "'gap' is nan, not a finite number"),
    ('{"gap": Infinity}', "'gap' is inf, not a finite number"),
    ('{"gap": "0.5"}', "'gap' is '0.5', not a number"),
    ('{"gap": true}', "'gap' is True, not a number"),
    ('{"hit_at_one": 0.5}', "no 'gap' field"),
    ('{"gap": 0.5, "hit_at_one": 1.5}', "'hit_at_one' is 1.5, outside [0, 1]"),
    ('{"gap": 0.5, "avg_perr": null}', "'avg_perr' is null, not a number"),
    ('{"gap": 0.5, "map": NaN}', "'map' is nan, not a finite number"),
    ('{"gap": 0.5, "num_videos": -3}', "'num_videos' is -3, not a count of videos"),
    ('[0.5]', "expected a JSON object of metrics, got list"),
    ('{"gap": 0.5', "not valid JSON"),
]


@pytest.mark.parametrize(("content", "expected"), BAD_METRICS)
def test_bad_metrics_file_is_refused_and_nothing_is_written(catalog: Catalog, tmp_path: Path, content, expected):
    gate(catalog, "run-1", "dag", "moe", "/models/run-1", _metrics(0.6), MIN_GAP_CONFIG)
    before = dump_catalog(catalog)
    metrics_path = tmp_path / "metrics.json"
    metrics_path.write_text(content)
    with pytest.raises(ValueError) as refused:
        gate_cli.main(["--run-id", "run-2", "--model-name", "moe", "--model-dir", str(tmp_path), "--metrics",
                       str(metrics_path), "--min-gap", "0.5", "--catalog-url", catalog.url])
    assert str(refused.value).startswith(f"metrics {metrics_path}: ")
    assert expected in str(refused.value) and "\n" not in str(refused.value)
    assert dump_catalog(catalog) == before


def test_bad_metrics_through_the_command_exit_2_with_one_line_and_no_catalog(tmp_path: Path):
    metrics_path = tmp_path / "metrics.json"
    metrics_path.write_text('{"gap": 5.0, "hit_at_one": 0.9}')
    catalog_path = tmp_path / "catalog.db"
    result = subprocess.run(
        [sys.executable, "-m", "vidpipe.apps.gate_cli", "--run-id", "r1", "--model-name", "moe", "--model-dir",
         str(tmp_path), "--metrics", str(metrics_path), "--catalog-url", str(catalog_path)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"vidpipe: error: metrics {metrics_path}: 'gap' is 5.0, outside [0, 1]"]
    assert result.stdout == ""
    assert not catalog_path.exists()

"""Catalog tests, run against SQLite and against a fresh PostgreSQL database per test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy
from sqlalchemy import inspect, text

from tests.conftest import CATALOG_TABLES, dump_catalog
from vidpipe.catalog import Catalog, CatalogUnavailable, load_queries, schema_statements
from vidpipe.gate import GateConfig, decide

GATE = GateConfig(min_gap=0.5, tolerance=0.01)


def _metrics(gap: float) -> dict:
    return {"gap": gap, "hit_at_one": gap + 0.1, "perr": gap + 0.05, "map": gap - 0.1, "num_videos": 200}


def _train_evaluate_gate_push(cat: Catalog, run_id: str, gap: float, model_name: str = "frame_lstm") -> int:
    """What one pipeline run writes to the catalog, in the order the DAG writes it."""
    cat.record_run(run_id, "vidpipe_train", {"epochs": 3, "model": model_name}, "running")
    version_id = cat.register_model(run_id, model_name, f"/models/{run_id}/{model_name}", {"lstm_cells": 64})
    cat.record_evaluation(version_id, "validate", _metrics(gap - 0.02))
    cat.record_evaluation(version_id, "test", _metrics(gap))
    champion = cat.champion()
    decision = decide(gap, None if champion is None else champion.gap, GATE)
    blessing = cat.record_blessing(version_id, decision, None if champion is None else champion.id)
    if blessing.blessed:
        cat.promote(version_id, run_id)
    cat.record_run(run_id, "vidpipe_train", {"epochs": 3, "model": model_name}, "success")
    return version_id


def test_schema_has_all_tables_and_is_idempotent(catalog: Catalog):
    catalog.ensure_schema()
    assert set(CATALOG_TABLES) <= set(inspect(catalog.engine).get_table_names())
    columns = {c["name"] for c in inspect(catalog.engine).get_columns("evaluations")}
    assert {"model_version_id", "split", "gap", "hit_at_one", "perr", "map", "num_videos", "metrics"} <= columns
    assert all(not rows for rows in dump_catalog(catalog).values())


def test_rerun_of_same_run_id_changes_nothing(catalog: Catalog):
    first_id = _train_evaluate_gate_push(catalog, "manual__2024-01-01", gap=0.71)
    before = dump_catalog(catalog)
    assert [len(before[t]) for t in CATALOG_TABLES] == [1, 1, 2, 1, 1]

    again_id = _train_evaluate_gate_push(catalog, "manual__2024-01-01", gap=0.71)

    assert again_id == first_id
    assert dump_catalog(catalog) == before


def test_register_model_returns_same_id_and_keeps_first_registration(catalog: Catalog):
    catalog.record_run("r1", "vidpipe_train", {}, "running")
    first = catalog.register_model("r1", "dbof", "/models/a", {"cluster_size": 64})
    again = catalog.register_model("r1", "dbof", "/models/elsewhere", {"cluster_size": 128})
    other = catalog.register_model("r1", "logistic", "/models/b", {})
    assert again == first
    assert other != first
    assert catalog.model_version(first).model_dir == "/models/a"
    with catalog.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM model_versions")).scalar_one() == 2


def test_run_status_moves_but_run_keeps_its_start_and_params(catalog: Catalog):
    catalog.record_run("r1", "vidpipe_train", {"epochs": 3}, "running")
    with catalog.engine.connect() as connection:
        started = connection.execute(text("SELECT started_at, params FROM pipeline_runs")).one()
    catalog.record_run("r1", "vidpipe_train", {"epochs": 99}, "failed")
    assert catalog.run_status("r1") == "failed"
    assert catalog.run_status("missing") is None
    with catalog.engine.connect() as connection:
        assert connection.execute(text("SELECT started_at, params FROM pipeline_runs")).one() == started


def test_register_model_for_unknown_run_is_rejected(catalog: Catalog):
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        catalog.register_model("never-recorded", "dbof", "/models/x", {})


def test_champion_is_latest_blessed_and_pushed_version(catalog: Catalog):
    assert catalog.champion() is None
    assert catalog.champion_gap() is None

    first = _train_evaluate_gate_push(catalog, "run-1", gap=0.70)
    assert catalog.champion().id == first
    assert catalog.champion_gap() == pytest.approx(0.70)
    assert catalog.champion_gap(split="validate") == pytest.approx(0.68)

    worse = _train_evaluate_gate_push(catalog, "run-2", gap=0.60)
    assert not catalog.blessing(worse).blessed
    assert catalog.blessing(worse).champion_version_id == first
    assert "0.1000 below the champion's 0.7000" in catalog.blessing(worse).reason
    with pytest.raises(ValueError, match="was not blessed"):
        catalog.promote(worse, "run-2")
    assert catalog.champion().id == first

    close = _train_evaluate_gate_push(catalog, "run-3", gap=0.695)
    assert catalog.blessing(close).blessed
    champion = catalog.champion()
    assert (champion.id, champion.run_id, champion.model_dir) == (close, "run-3", "/models/run-3/frame_lstm")
    assert champion.gap == pytest.approx(0.695)

    history = catalog.history()
    assert [entry.version_id for entry in history] == [close, worse, first]
    assert [entry.blessed for entry in history] == [True, False, True]
    assert [entry.promoted_at is not None for entry in history] == [True, False, True]
    assert all(entry.run_status == "success" for entry in history)
    assert history[0].gap == pytest.approx(0.695)


def test_promote_without_decision_is_refused(catalog: Catalog):
    catalog.record_run("r1", "vidpipe_train", {}, "running")
    version_id = catalog.register_model("r1", "dbof", "/models/a", {})
    with pytest.raises(ValueError, match="has no gate decision"):
        catalog.promote(version_id, "r1")


def test_first_blessing_decision_stands(catalog: Catalog):
    catalog.record_run("r1", "vidpipe_train", {}, "running")
    version_id = catalog.register_model("r1", "dbof", "/models/a", {})
    blessed = catalog.record_blessing(version_id, decide(0.8, None, GATE))
    rejected_later = catalog.record_blessing(version_id, decide(0.1, None, GATE))
    assert blessed.blessed and rejected_later == blessed
    assert blessed.threshold == GATE.min_gap and blessed.tolerance == GATE.tolerance
    assert blessed.candidate_gap == pytest.approx(0.8) and blessed.champion_gap is None


def test_evaluation_upsert_replaces_metrics_of_the_same_split(catalog: Catalog):
    catalog.record_run("r1", "vidpipe_train", {}, "running")
    version_id = catalog.register_model("r1", "dbof", "/models/a", {})
    catalog.record_evaluation(version_id, "test", _metrics(0.6))
    catalog.record_evaluation(
        version_id,
        "test",
        {
            "gap": np.float32(0.75),
            "avg_hit_at_one": 0.8,
            "avg_perr": 0.7,
            "map": 0.5,
            "num_videos": np.int64(321),
            "aps": np.array([0.25, 0.75], dtype=np.float32),
        },
    )
    catalog.record_evaluation(version_id, "validate", _metrics(0.55))

    with catalog.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT split, gap, hit_at_one, perr, map, num_videos FROM evaluations ORDER BY split")
        ).all()
    assert [row.split for row in rows] == ["test", "validate"]
    test_row = rows[0]
    assert (test_row.gap, test_row.hit_at_one, test_row.perr, test_row.map) == pytest.approx((0.75, 0.8, 0.7, 0.5))
    assert test_row.num_videos == 321
    assert catalog.evaluation(version_id, "test")["aps"] == [0.25, 0.75]
    assert catalog.evaluation(version_id, "train") is None
    assert catalog.model_version(version_id).gap == pytest.approx(0.75)


def test_evaluation_without_gap_is_rejected(catalog: Catalog):
    catalog.record_run("r1", "vidpipe_train", {}, "running")
    version_id = catalog.register_model("r1", "dbof", "/models/a", {})
    with pytest.raises(ValueError, match="no 'gap'"):
        catalog.record_evaluation(version_id, "test", {"hit_at_one": 0.5})
    with pytest.raises(ValueError, match="nan"):
        catalog.record_evaluation(version_id, "test", {"gap": float("nan")})


def test_catalog_from_env(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("VIDPIPE_CATALOG_URL", raising=False)
    monkeypatch.setenv("VIDPIPE_HOME", str(tmp_path / "home"))
    default = Catalog.from_env()
    assert default.url == f"sqlite:///{(tmp_path / 'home' / 'catalog.db').resolve()}"
    default.ensure_schema()
    assert (tmp_path / "home" / "catalog.db").is_file()
    default.close()

    monkeypatch.setenv("VIDPIPE_CATALOG_URL", f"sqlite:///{tmp_path / 'other.db'}")
    assert Catalog.from_env().url == f"sqlite:///{tmp_path / 'other.db'}"
    assert Catalog.open(None).url == Catalog.open("").url == f"sqlite:///{tmp_path / 'other.db'}"
    assert Catalog.open(str(tmp_path / "given.db")).url == f"sqlite:///{(tmp_path / 'given.db').resolve()}"


def test_bare_path_is_a_sqlite_catalog(tmp_path: Path):
    with Catalog(str(tmp_path / "nested" / "c.db")) as cat:
        assert cat.dialect == "sqlite"
        cat.ensure_schema()
        cat.record_run("r1", "d", {}, "running")
        assert cat.run_status("r1") == "running"


def test_schema_spells_identity_per_dialect():
    sqlite_ddl = " ".join(schema_statements("sqlite"))
    postgres_ddl = " ".join(schema_statements("postgresql"))
    assert "IDENTITY_PRIMARY_KEY" not in sqlite_ddl + postgres_ddl
    assert "INTEGER PRIMARY KEY AUTOINCREMENT" in sqlite_ddl
    assert "GENERATED BY DEFAULT AS IDENTITY" in postgres_ddl
    with pytest.raises(ValueError, match="unsupported"):
        schema_statements("mysql")


def test_query_loader_parses_named_blocks(tmp_path: Path):
    path = tmp_path / "q.sql"
    path.write_text("-- header\n-- name: one\n-- what it does\nSELECT 1;\n\n-- name: two\nSELECT :x\n")
    assert load_queries(path) == {"one": "SELECT 1", "two": "SELECT :x"}
    path.write_text("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n")
    with pytest.raises(ValueError, match="defined twice"):
        load_queries(path)


def test_evaluations_of_a_decided_version_stay(catalog: Catalog):
    version_id = _train_evaluate_gate_push(catalog, "run-1", gap=0.8)
    before = dump_catalog(catalog)
    catalog.record_evaluation(version_id, "test", _metrics(0.8))
    assert dump_catalog(catalog) == before
    with pytest.raises(ValueError, match="already has a gate decision, so its 'test' evaluation stays: "
                                         "recorded gap 0.8, given 0.4"):
        catalog.record_evaluation(version_id, "test", _metrics(0.4))
    assert dump_catalog(catalog) == before
    assert catalog.champion().gap == pytest.approx(0.8)
    catalog.record_evaluation(version_id, "train", _metrics(0.85))
    assert catalog.evaluation(version_id, "train")["gap"] == pytest.approx(0.85)


def test_metrics_outside_the_unit_interval_are_not_stored(catalog: Catalog):
    catalog.record_run("r1", "vidpipe_train", {}, "running")
    version_id = catalog.register_model("r1", "dbof", "/models/a", {})
    with pytest.raises(ValueError, match="'gap' is 5.0, outside"):
        catalog.record_evaluation(version_id, "test", {"gap": 5.0})
    with pytest.raises(ValueError, match="'gap' is null"):
        catalog.record_evaluation(version_id, "test", {"gap": None})
    assert catalog.evaluation(version_id, "test") is None
    with pytest.raises(sqlalchemy.exc.IntegrityError), catalog.engine.begin() as connection:
        connection.execute(text("INSERT INTO evaluations (model_version_id, split, gap, metrics) "
                                "VALUES (:id, 'test', 5.0, '{}')"), {"id": version_id})


def test_a_stale_decision_is_not_promoted(catalog: Catalog):
    first = _train_evaluate_gate_push(catalog, "run-1", gap=0.6)
    catalog.record_run("run-2", "vidpipe_train", {}, "running")
    late = catalog.register_model("run-2", "frame_lstm", "/models/run-2", {})
    catalog.record_evaluation(late, "test", _metrics(0.55))
    catalog.record_blessing(late, decide(0.55, 0.6, GateConfig(min_gap=0.5, tolerance=0.1)), first)
    better = _train_evaluate_gate_push(catalog, "run-3", gap=0.9)
    with pytest.raises(ValueError, match=f"decided against champion version {first}, but the champion is now "
                                         f"version {better} \\(the decision is stale\\)"):
        catalog.promote(late, "run-2")
    with pytest.raises(ValueError, match=f"that run already pushed model version {first}"):
        catalog.promote(better, "run-1")
    assert catalog.champion().id == better


UNREACHABLE_URL = "postgresql+psycopg2://postgres:secret@127.0.0.1:1/x"
UNREACHABLE_MESSAGE = ("catalog postgresql+psycopg2://postgres:***@127.0.0.1:1/x: cannot connect "
                       '(connection to server at "127.0.0.1", port 1 failed: Connection refused)')


def test_unreachable_catalog_raises_one_line_without_the_password():
    catalog = Catalog(UNREACHABLE_URL)
    for call in (catalog.ensure_schema, catalog.champion, catalog.history, lambda: catalog.run_status("r")):
        with pytest.raises(CatalogUnavailable) as unavailable:
            call()
        assert str(unavailable.value) == UNREACHABLE_MESSAGE
    assert isinstance(unavailable.value, ValueError)


def test_unusable_sqlite_path_is_one_line(tmp_path: Path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(CatalogUnavailable, match=r"catalog sqlite:///.*/a_file/catalog.db: cannot connect \("):
        Catalog(str(tmp_path / "a_file" / "catalog.db"))


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "vidpipe.apps.catalog_cli"],
        ["-m", "vidpipe.apps.cli", "catalog"],
        ["-m", "vidpipe.apps.gate_cli", "--run-id", "r1", "--model-name", "moe", "--model-dir", "."],
    ],
    ids=["catalog_cli", "vidpipe_catalog", "gate_cli"],
)
def test_unreachable_catalog_command_prints_one_line_and_exits_2(tmp_path: Path, command):
    metrics_path = tmp_path / "metrics.json"
    metrics_path.write_text('{"gap": 0.7}')
    if "vidpipe.apps.gate_cli" in command:
        command = [*command, "--metrics", str(metrics_path)]
    result = subprocess.run([sys.executable, *command], check=False, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, VIDPIPE_CATALOG_URL=UNREACHABLE_URL))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"vidpipe: error: {UNREACHABLE_MESSAGE}"]


def test_predict_champion_lookup_on_unreachable_catalog_is_one_line():
    from beam_pipelines.predict import resolve_model

    with pytest.raises(CatalogUnavailable) as unavailable:
        resolve_model(None, UNREACHABLE_URL)
    assert str(unavailable.value) == UNREACHABLE_MESSAGE

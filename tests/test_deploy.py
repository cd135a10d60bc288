"""Deployment files, checked as data (no Docker engine here): docker-compose.yml's services,
ports, health checks, volumes and environment; the Dockerfiles' user and health check; and that
no secret value is written in any of them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILES = ("Dockerfile", "Dockerfile.airflow")
SERVICES = {"postgres", "migrate", "app", "api", "airflow"}
LONG_RUNNING = SERVICES - {"migrate"}
PUBLISHED = {"app": 8501, "api": 8000, "airflow": 8080}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY($|_)|CREDENTIAL", re.IGNORECASE)
INTERPOLATION = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(:?[-?][^}]*)?\}$")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]+)@")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_deploy_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert set(services) == SERVICES
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["app"]["build"]["dockerfile"] == "Dockerfile"
    assert services["airflow"]["build"]["dockerfile"] == "Dockerfile.airflow"
    assert services["api"]["command"][:2] == ["uvicorn", "api.main:app"]
    assert services["api"]["command"][-2:] == ["--port", "8000"]
    for name in ("app", "api", "migrate"):
        assert services[name]["image"] == services["app"]["image"]


def test_deploy_compose_publishes_app_api_and_airflow_only(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        ports = [str(p) for p in service.get("ports", [])]
        if name in PUBLISHED:
            assert ports == [f"{PUBLISHED[name]}:{PUBLISHED[name]}"], name
        else:
            assert ports == [], f"{name} must not be published"


def test_deploy_compose_runs_migrations_before_anything_reads_the_database(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    assert services["migrate"]["command"] == ["python", "-m", "core.cli", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("app", "api", "airflow"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_deploy_compose_health_checks_every_long_running_service(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and check["test"] and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert {"interval", "timeout", "retries"} <= set(check), name
    probes = {name: " ".join(services[name]["healthcheck"]["test"]) for name in PUBLISHED}
    assert ":8501/_stcore/health" in probes["app"]
    assert ":8000/health" in probes["api"]
    assert ":8080/api/v2/monitor/health" in probes["airflow"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_deploy_compose_volumes_persist_data_and_share_artifacts(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    declared = set(compose["volumes"])
    used = {
        v.split(":", 1)[0]
        for s in services.values()
        for v in s.get("volumes", [])
        if not v.startswith(".")
    }
    assert used == declared
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    data = "app-data:/app/data"
    assert all(data in services[name]["volumes"] for name in ("app", "api", "airflow"))
    init = next(v for v in services["postgres"]["volumes"] if v.startswith("./"))
    folder = REPO / init.split(":", 1)[0]
    assert "CREATE DATABASE airflow" in "".join(p.read_text() for p in folder.glob("*.sql"))


def test_deploy_compose_environment_is_what_the_settings_read(compose: dict[str, Any]) -> None:
    services = _services(compose)
    fields = {name.upper() for name in Settings.model_fields}
    for name in ("migrate", "app", "api", "airflow"):
        env = _env(services[name])
        app_keys = {k for k in env if not k.startswith("AIRFLOW")}
        assert app_keys <= fields, f"{name}: {app_keys - fields} is not a setting"
        assert "@postgres:5432/experimentos" in env["DATABASE_URL"], name
        assert env["ARTIFACTS_URL"].startswith("${ARTIFACTS_URL"), name
    assert "AUTH_COOKIE_SECRET" in _env(services["app"])
    assert "AUTH_COOKIE_SECRET" not in _env(services["airflow"])
    airflow = _env(services["airflow"])
    assert airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
    assert airflow["AIRFLOW__CORE__DAGS_FOLDER"] == "/app/dags"
    assert airflow["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


def test_deploy_compose_hard_codes_no_secret(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        for key, value in _env(service).items():
            if SECRET_NAME.search(key) and key != "CREDENTIALS_FILE":
                assert INTERPOLATION.match(value), f"{name}.{key} must come from the environment"
            for password in URL_PASSWORD.findall(value):
                assert INTERPOLATION.match(password), f"{name}.{key} has a password in its URL"
    urls = [_env(_services(compose)[n])["DATABASE_URL"] for n in ("app", "api", "airflow")]
    assert all(URL_PASSWORD.findall(url) == ["${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}"]
               for url in urls)
    text = COMPOSE.read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    assert "aws_secret_access_key" not in text.lower()
    # Required secrets make compose refuse to start instead of falling back to a default.
    assert "${POSTGRES_PASSWORD:?" in text and "${AUTH_COOKIE_SECRET:?" in text


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_deploy_dockerfile_runs_as_a_user_with_a_health_check(dockerfile: str) -> None:
    lines = [ln.strip() for ln in (REPO / dockerfile).read_text().splitlines()]
    instructions = [ln.split(None, 1) for ln in lines if ln and not ln.startswith("#")]
    users = [rest for word, *rest in instructions if word == "USER"]
    assert users and users[-1][0] not in ("root", "0"), "the image must not run as root"
    assert any(word == "HEALTHCHECK" for word, *_ in instructions)
    assert instructions[0] == ["FROM", "python:3.11-slim"]
    text = "\n".join(lines)
    assert not re.search(r"(PASSWORD|SECRET)\s*=", text), "no secret baked into the image"


def test_deploy_airflow_image_uses_the_one_environment_the_tests_use() -> None:
    """Airflow shares the app's environment: the image installs requirements-airflow.txt,
    which is requirements.txt plus Airflow, and the test requirements include it."""
    text = (REPO / "Dockerfile.airflow").read_text()
    assert "pip install -r requirements-airflow.txt" in text
    assert 'CMD ["airflow", "standalone"]' in text
    assert "/api/v2/monitor/health" in text
    airflow = (REPO / "requirements-airflow.txt").read_text().split()
    assert "-r" in airflow and "requirements.txt" in airflow
    assert any(r.startswith("apache-airflow==3.") for r in airflow)
    dev = (REPO / "requirements-dev.txt").read_text().split()
    assert "requirements-airflow.txt" in dev


def test_deploy_build_context_leaves_local_secrets_out() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".env" in ignored
    assert ".streamlit/credentials.yaml" in ignored

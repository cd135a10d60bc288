"""Deployment files, checked as data (no Docker engine here): docker-compose.yml's services,
ports, health checks, volumes and environment; Airflow as separate components with a real auth
manager and its constraints file; migrations in one one-shot service; the Dockerfiles' user and
health check; the runtime requirements; and that no secret value is written in any of them."""

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
AIRFLOW = ("airflow-scheduler", "airflow-dag-processor", "airflow-api-server")
"""Airflow's long-running components, each its own service (never `airflow standalone`)."""
SERVICES = {"postgres", "migrate", "app", "api", "airflow-init", *AIRFLOW}
ONE_SHOT = {"migrate", "airflow-init"}
LONG_RUNNING = SERVICES - ONE_SHOT
PUBLISHED = {"app": 8501, "api": 8000, "airflow-api-server": 8080}
RUNS_CORE = ("migrate", "app", "api", "airflow-scheduler")
"""The services that run ExperimentOS code against its database (Airflow's tasks run in the
scheduler: LocalExecutor)."""
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY($|_)|CREDENTIAL", re.IGNORECASE)
INTERPOLATION = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(:?[-?][^}]*)?\}$")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]+)@")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _command(service: dict[str, Any]) -> str:
    command = service.get("command") or ""
    return command if isinstance(command, str) else " ".join(command)


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
    assert services["api"]["command"][:2] == ["uvicorn", "api.main:app"]
    assert services["api"]["command"][-2:] == ["--port", "8000"]
    for name in ("app", "api", "migrate"):
        assert services[name]["image"] == services["app"]["image"]
    for name in ("airflow-init", *AIRFLOW):
        assert services[name]["build"]["dockerfile"] == "Dockerfile.airflow", name
        assert services[name]["image"] == services["airflow-init"]["image"], name


def test_deploy_airflow_runs_as_separate_components_not_standalone(
    compose: dict[str, Any],
) -> None:
    """Airflow says `airflow standalone` is for development only: the scheduler, the DAG
    processor and the API server are services of their own, after a one-shot migration."""
    services = _services(compose)
    assert [services[name]["command"][:2] for name in AIRFLOW] == [
        ["airflow", "scheduler"], ["airflow", "dag-processor"], ["airflow", "api-server"]]
    assert services["airflow-init"]["command"] == ["airflow", "db", "migrate"]
    assert services["airflow-init"]["restart"] == "no"
    assert services["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in AIRFLOW:
        assert "db migrate" not in _command(services[name]), name
        condition = services[name]["depends_on"]["airflow-init"]["condition"]
        assert condition == "service_completed_successfully", name
        assert services[name]["restart"] == "unless-stopped", name
    for path in (COMPOSE, REPO / "Dockerfile.airflow"):
        lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
        assert "standalone" not in "\n".join(lines), path.name


def test_deploy_airflow_uses_a_real_auth_manager_and_one_set_of_shared_secrets(
    compose: dict[str, Any],
) -> None:
    """The FAB auth manager (users and roles; the default SimpleAuthManager is for development),
    tasks reaching the API server's execution API, and the secrets every component must share
    (JWT, API secret key, Fernet key) the same in each and taken from the environment."""
    services = _services(compose)
    fab = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    shared = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
              "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
              "AIRFLOW__CORE__AUTH_MANAGER")
    envs = [_env(services[name]) for name in ("airflow-init", *AIRFLOW)]
    for key in shared:
        assert len({env[key] for env in envs}) == 1, key
    env = envs[0]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == fab
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        "http://airflow-api-server:8080/execution/")
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
                "AIRFLOW__CORE__FERNET_KEY"):
        assert env[key].startswith("${AIRFLOW_") and ":?" in env[key], key
    assert f"AIRFLOW__CORE__AUTH_MANAGER={fab}" in (REPO / "Dockerfile.airflow").read_text()


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
    assert services["migrate"]["command"][:2] == ["sh", "-c"]
    assert services["migrate"]["command"][2].startswith("python -m core.cli migrate && ")
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("app", "api", "airflow-scheduler"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_deploy_only_the_one_shot_service_migrates_the_app_database(
    compose: dict[str, Any],
) -> None:
    """The app and the API never change the schema (they refuse an unmigrated one): neither
    their compose commands, nor the image's CMD, nor their code runs a migration."""
    services = _services(compose)
    for name, service in services.items():
        if name != "migrate":
            assert "core.cli migrate" not in _command(service), name
    for name in ("app", "api"):
        assert "migrate" not in _command(services[name]), name
    cmd = next(ln for ln in (REPO / "Dockerfile").read_text().splitlines()
               if ln.startswith("CMD"))
    assert "migrate" not in cmd and "streamlit" in cmd
    for folder in ("ui", "pages", "api"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            assert "upgrade(" not in text and "command.upgrade" not in text, path
    assert "upgrade(" not in (REPO / "Home.py").read_text()


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
    assert ":8080/api/v2/monitor/health" in probes["airflow-api-server"]
    scheduler = services["airflow-scheduler"]
    assert ":8974/health" in " ".join(scheduler["healthcheck"]["test"])
    assert _env(scheduler)["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
    assert services["airflow-dag-processor"]["healthcheck"]["test"][1:5] == [
        "airflow", "jobs", "check", "--job-type"]
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
    assert all(data in services[name]["volumes"] for name in ("app", "api", "airflow-scheduler"))
    # Task logs are written by the scheduler (LocalExecutor) and read by the API server.
    assert all("airflow-home:/opt/airflow" in services[name]["volumes"] for name in AIRFLOW)
    init = next(v for v in services["postgres"]["volumes"] if v.startswith("./"))
    folder = REPO / init.split(":", 1)[0]
    assert "CREATE DATABASE airflow" in "".join(p.read_text() for p in folder.glob("*.sql"))


def test_deploy_compose_environment_is_what_the_settings_read(compose: dict[str, Any]) -> None:
    services = _services(compose)
    fields = {name.upper() for name in Settings.model_fields}
    for name in SERVICES - {"postgres"}:
        env = _env(services[name])
        app_keys = {k for k in env if not k.startswith("AIRFLOW")}
        assert app_keys <= fields, f"{name}: {app_keys - fields} is not a setting"
        if name in RUNS_CORE:
            assert "@postgres:5432/experimentos" in env["DATABASE_URL"], name
            assert env["ARTIFACTS_URL"].startswith("${ARTIFACTS_URL"), name
        else:  # Airflow's other components never touch the app's database
            assert not app_keys, name
    assert "AUTH_COOKIE_SECRET" in _env(services["app"])
    assert "AUTH_COOKIE_SECRET" not in _env(services["airflow-scheduler"])
    for name in ("airflow-init", *AIRFLOW):
        airflow = _env(services[name])
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
    urls = [_env(_services(compose)[n])["DATABASE_URL"] for n in RUNS_CORE]
    assert all(URL_PASSWORD.findall(url) == ["${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}"]
               for url in urls)
    text = COMPOSE.read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    assert "aws_secret_access_key" not in text.lower()
    # Required secrets make compose refuse to start instead of falling back to a default.
    for required in ("POSTGRES_PASSWORD", "AUTH_COOKIE_SECRET", "AIRFLOW_JWT_SECRET",
                     "AIRFLOW_API_SECRET_KEY", "AIRFLOW_FERNET_KEY"):
        assert "${" + required + ":?" in text, required


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
    """Airflow shares the app's environment: the image installs Airflow (with the FAB provider)
    under Airflow's constraints file for the pinned version and this Python, then
    requirements-airflow.txt (requirements.txt plus Airflow) on top; the test requirements
    include it."""
    text = (REPO / "Dockerfile.airflow").read_text()
    airflow = (REPO / "requirements-airflow.txt").read_text().split()
    assert "-r" in airflow and "requirements.txt" in airflow
    (pin,) = [r for r in airflow if r.startswith("apache-airflow==3.")]
    version = pin.split("==", 1)[1]
    python = re.search(r"^FROM python:(3\.\d+)", text, re.MULTILINE)
    assert python is not None
    assert f"ARG AIRFLOW_VERSION={version}" in text
    assert f"ARG PYTHON_VERSION={python[1]}" in text
    assert ("ARG AIRFLOW_CONSTRAINTS=https://raw.githubusercontent.com/apache/airflow/"
            "constraints-${AIRFLOW_VERSION}/constraints-${PYTHON_VERSION}.txt") in text
    assert ('pip install "apache-airflow[fab]==${AIRFLOW_VERSION}" '
            '--constraint "${AIRFLOW_CONSTRAINTS}"') in text
    assert re.search(r"^ARG FAB_PROVIDER=apache-airflow-providers-fab==\d+\.\d+\.\d+$", text,
                     re.MULTILINE)
    assert 'pip install -r requirements-airflow.txt "${FAB_PROVIDER}"' in text
    assert 'CMD ["airflow", "api-server", "--port", "8080"]' in text
    assert "/api/v2/monitor/health" in text
    dev = (REPO / "requirements-dev.txt").read_text().split()
    assert "requirements-airflow.txt" in dev
    # Airflow 3 reaches a PostgreSQL metadata database through asyncpg as well as psycopg2.
    assert any(r.startswith("asyncpg==") for r in airflow)


def _pins(name: str) -> set[str]:
    lines = (REPO / name).read_text().splitlines()
    return {ln.split("==", 1)[0].split("[", 1)[0].lower() for ln in lines
            if ln and not ln.startswith(("#", "-"))}


def test_deploy_runtime_requirements_hold_only_what_runtime_code_imports() -> None:
    """statsmodels is a reference the tests and benchmarks compare against: a dev pin, and no
    runtime module imports it."""
    assert "statsmodels" not in _pins("requirements.txt")
    assert "statsmodels" in _pins("requirements-dev.txt")
    imports = re.compile(r"^\s*(import|from)\s+statsmodels\b", re.MULTILINE)
    runtime = [REPO / "Home.py", *(p for folder in ("core", "api", "db", "ui", "pages", "dags")
                                   for p in (REPO / folder).rglob("*.py"))]
    assert not [p for p in runtime if imports.search(p.read_text())]


def test_deploy_build_context_and_git_leave_local_state_out() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".env" in ignored
    assert ".streamlit/credentials.yaml" in ignored
    assert ".airflow" in ignored  # the AIRFLOW_HOME of a local run (docs/operations.md)
    assert ".airflow/" in (REPO / ".gitignore").read_text().split()

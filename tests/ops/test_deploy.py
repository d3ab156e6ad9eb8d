"""Deployment files agree with each other and with the settings: Procfile, Makefile, Dockerfile,
docker-compose.yml, systemd units, the production env example; `check --deploy` is clean with it."""

import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml
from cryptography.fernet import Fernet

from tests.stack import ROOT

PROCESSES = ("web", "worker", "beat")


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, _, command in (line.partition(":") for line in lines if line)}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_file(path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return dict(pairs)


def known_variables() -> set[str]:
    """Every variable the settings and gunicorn.conf.py read, and the ones prometheus_client reads."""
    settings_text = (ROOT / "tracker" / "settings.py").read_text()
    gunicorn_text = (ROOT / "gunicorn.conf.py").read_text()
    names = set(re.findall(r'env\.\w+\("([A-Z0-9_]+)"', settings_text))
    names |= set(re.findall(r'environ\.Env\(\)\.\w+\("([A-Z0-9_]+)"', settings_text))
    names |= set(re.findall(r'os\.environ(?:\.get)?[\[(]"([A-Z0-9_]+)"', gunicorn_text))
    return names | {"PROMETHEUS_MULTIPROC_DIR"}


def secrets_env(tmp_path) -> dict[str, str]:
    return {
        "SECRET_KEY": "x7-" + Fernet.generate_key().decode() + "-deploy-check",
        "TIKTOK_TOKEN_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
        "VAR_DIR": str(tmp_path / "var"),
        "PATH": "/usr/bin:/bin",
    }


def manage(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def check_ids(output: str) -> set[str]:
    return set(re.findall(r"\(([a-z_]+\.[EWC]\d+)\)", output))


def test_check_deploy_is_clean_with_the_documented_production_env(tmp_path):
    example = env_file(ROOT / "deploy" / "production.env.example")
    assert example["SECRET_KEY"] == "" and example["TIKTOK_TOKEN_KEYS"] == ""  # no secret is shipped
    env = {**example, **secrets_env(tmp_path)}
    deploy = manage("check", "--deploy", env=env)
    plain = manage("check", env=env)
    assert deploy.returncode == 0, deploy.stderr
    # --deploy adds nothing: no security.* warning (other apps' general warnings, if any, are theirs).
    assert check_ids(deploy.stdout + deploy.stderr) - check_ids(plain.stdout + plain.stderr) == set()
    assert "security." not in deploy.stdout + deploy.stderr


def test_without_the_flags_check_deploy_names_what_is_missing(tmp_path):
    result = manage(
        "check", "--deploy", env={"DEBUG": "0", "ALLOWED_HOSTS": "trk.example.com", **secrets_env(tmp_path)}
    )
    assert {"security.W004", "security.W008", "security.W012", "security.W016"} <= check_ids(result.stderr)


def test_processes_are_the_same_everywhere():
    commands = procfile()
    assert set(commands) == {"release", *PROCESSES}
    services = compose()["services"]
    makefile = (ROOT / "Makefile").read_text()
    for name in PROCESSES:
        assert shlex.split(services[name]["command"]) == commands[name], name
        recipe = re.search(rf"^prod-{name}: install\n\t(.+)$", makefile, re.MULTILINE).group(1)
        assert shlex.split(recipe.replace("$(BIN)/", "")) == commands[name], name
        unit = (ROOT / "deploy" / "systemd" / f"tracker-{name}.service").read_text()
        exec_start = re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE).group(1)
        assert shlex.split(exec_start.replace("/opt/tracker/.venv/bin/", "")) == commands[name], name
        assert "EnvironmentFile=/etc/tracker/tracker.env" in unit and "User=tracker" in unit
    assert shlex.split(services["migrate"]["command"]) == commands["release"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert json.loads(re.search(r"^CMD (\[.+\])$", dockerfile, re.MULTILINE).group(1)) == commands["web"]


def test_the_web_unit_serves_on_a_socket_that_systemd_holds_across_restarts():
    service = (ROOT / "deploy" / "systemd" / "tracker-web.service").read_text()
    sockets = (ROOT / "deploy" / "systemd" / "tracker-web.socket").read_text()

    assert "Requires=tracker-web.socket" in service and re.search(r"^After=tracker-web.socket", service, re.M)
    assert re.search(r"^ListenStream=\S+:8000$", sockets, re.MULTILINE)
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    assert "tracker-web.socket" in deploy and "systemctl restart tracker-worker tracker-beat tracker-web" in deploy


def test_compose_services_and_their_environment():
    config = compose()
    services = config["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "migrate"} <= set(services)
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        environment = services[name]["environment"]
        assert set(environment) <= known_variables(), set(environment) - known_variables()
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["DATABASE_URL"].endswith("@postgres:5432/tracker")
        for secret in ("SECRET_KEY", "TIKTOK_TOKEN_KEYS"):
            assert environment[secret].startswith(f"${{{secret}:?"), "required, never defaulted"
    assert services["web"]["ports"] == ["${WEB_PORT:-8000}:8000"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert services["postgres"]["image"].startswith("postgres:") and services["redis"]["image"].startswith("redis:")
    assert {"postgres-data", "redis-data", "beat-schedule"} <= set(config["volumes"])


def test_env_example_and_dockerfile():
    assert set(env_file(ROOT / "deploy" / "production.env.example")) <= known_variables()
    dockerfile = (ROOT / "Dockerfile").read_text()
    python = re.search(r'requires-python = ">=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text()).group(1)
    assert re.search(rf"^FROM python:{re.escape(python)}-slim", dockerfile, re.MULTILINE)
    assert "pip install -r requirements.txt" in dockerfile and "collectstatic --noinput" in dockerfile
    assert "USER tracker" in dockerfile and "/healthz" in dockerfile
    assert "playwright install" not in dockerfile  # only registry packages, never a browser download
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var/", ".env"} <= set(ignored)


def test_docker_compose_config(tmp_path):
    """`docker compose config` validates the file when the compose plugin is installed."""
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here (the file is checked by the tests above)")
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "s", "TIKTOK_TOKEN_KEYS": "k", "POSTGRES_PASSWORD": "p"}
    result = subprocess.run([docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_collectstatic_then_whitenoise_serves_static_files(tmp_path, client):
    static_root = tmp_path / "static"
    env = {**secrets_env(tmp_path), "STATIC_ROOT": str(static_root)}
    result = manage("collectstatic", "--noinput", env=env)
    assert result.returncode == 0, result.stderr
    assert (static_root / "landing" / "logo.svg").exists() and (static_root / "landing" / "logo.svg.gz").exists()
    assert (static_root / "admin" / "css" / "base.css").exists()

    response = client.get("/static/landing/logo.svg", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert b"".join(response.streaming_content).startswith(b"<svg")

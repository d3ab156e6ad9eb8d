"""/healthz: the database and the broker, as JSON; 503 when either is down."""

import pytest
from django.db import OperationalError, connection

from tests.stack import free_port

pytestmark = pytest.mark.django_db


def test_healthy_with_redis(client, settings):
    assert settings.REDIS_URL  # make pytest runs on the test Redis
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert {key: body["checks"]["broker"][key] for key in ("ok", "broker")} == {"ok": True, "broker": "redis"}
    assert response["Cache-Control"].startswith("max-age=0")


def test_redis_down_is_503(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.HEALTHZ_TIMEOUT_S = 0.5
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "fail",
        "checks": {
            "database": response.json()["checks"]["database"] | {"ok": True},
            "broker": {"ok": False, "broker": "redis", "error": "ConnectionError"},
        },
    }


def test_database_down_is_503(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False, "error": "OperationalError"}
    assert response.json()["checks"]["broker"]["ok"] is True


def test_filesystem_broker_folders(client, settings, tmp_path):
    folders = {
        "data_folder_in": tmp_path / "out",
        "data_folder_out": tmp_path / "out",
        "processed_folder": tmp_path / "p",
    }
    for folder in folders.values():
        folder.mkdir(exist_ok=True)
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {key: str(value) for key, value in folders.items()}
    assert client.get("/healthz").json()["checks"]["broker"] | {"latency_ms": 0} == {
        "ok": True, "broker": "filesystem", "latency_ms": 0,
    }  # fmt: skip

    (tmp_path / "p").rmdir()  # the broker could not move a processed message there
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == {"ok": False, "broker": "filesystem", "error": "FileNotFoundError: p"}


def test_probes_need_no_allowed_host(client, settings):
    """Docker and load balancers probe with the container's address as Host; Django would say 400."""
    settings.ALLOWED_HOSTS = ["trk.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/metrics", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/admin/login/", HTTP_HOST="10.1.2.3:8000").status_code == 400

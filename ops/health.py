"""/healthz checks: the database answers `SELECT 1`, the Celery broker is reachable.

Each check returns {"ok": bool, ...}; errors name the exception class only (the endpoint is public).
"""

import tempfile
import time
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def database_check() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": _elapsed_ms(started)}


def broker_check() -> dict:
    """Redis PING when REDIS_URL is set; otherwise the filesystem broker's folders must be writable."""
    started = time.perf_counter()
    if settings.REDIS_URL:
        timeout = settings.HEALTHZ_TIMEOUT_S
        try:
            client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - a bad URL, a refused connection, a timeout: all "down"
            return {"ok": False, "broker": "redis", "error": type(exc).__name__}
        return {"ok": True, "broker": "redis", "latency_ms": _elapsed_ms(started)}
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    folders = sorted(
        {options[key] for key in ("data_folder_in", "data_folder_out", "processed_folder") if key in options}
    )
    for folder in folders:
        # A real write: os.access() says yes to root even on a read-only mount.
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".healthz-"):
                pass
        except OSError as exc:
            return {"ok": False, "broker": "filesystem", "error": f"{type(exc).__name__}: {Path(folder).name}"}
    return {"ok": True, "broker": "filesystem", "latency_ms": _elapsed_ms(started)}


def health_report() -> tuple[bool, dict]:
    checks = {"database": database_check(), "broker": broker_check()}
    healthy = all(check["ok"] for check in checks.values())
    return healthy, {"status": "ok" if healthy else "fail", "checks": checks}

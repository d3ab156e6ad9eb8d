"""Request ids and structured logs: one JSON object per line, carrying the request id."""

import io
import json
import logging
import re
import sys

import pytest
from celery.signals import task_postrun, task_prerun

from ops.context import request_id_var
from ops.logs import JsonFormatter, RequestIdFilter, logging_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines():
    """Capture a logger's records through the production formatter; returns a reader of JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    loggers = [logging.getLogger(name) for name in ("ops.access", "tests.ops", "django.request")]
    for logger in loggers:
        logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    for logger in loggers:
        logger.removeHandler(handler)


def test_new_request_id_is_a_uuid4_echoed_in_the_response(client):
    response = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert client.get("/healthz")["X-Request-ID"] != response["X-Request-ID"]


def test_proxy_request_id_is_kept_unless_it_looks_wrong(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="req-7f3a.1:2")["X-Request-ID"] == "req-7f3a.1:2"
    for bad in ("two words", "x" * 129, "<script>", ""):
        assert re.fullmatch(r"[0-9a-f]{32}", client.get("/healthz", HTTP_X_REQUEST_ID=bad)["X-Request-ID"])


def test_access_log_line_is_json_with_request_id_and_no_query_string(client, settings, link, json_lines):
    settings.ACCESS_LOG = True
    response = client.get("/l/tiktok_abc123?key=secret-api-key&email=a@b.c", HTTP_X_REQUEST_ID="req-42")
    (line,) = [entry for entry in json_lines() if entry["logger"] == "ops.access"]
    assert line | {"time": "t", "duration_ms": 0, "message": "m"} == {
        "time": "t", "level": "INFO", "logger": "ops.access", "message": "m", "request_id": "req-42",
        "method": "GET", "path": "/l/tiktok_abc123", "route": "l/<str:utm_id>", "status": 200, "duration_ms": 0,
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert "secret-api-key" not in json.dumps(json_lines()) and response["X-Request-ID"] == "req-42"


def test_django_error_lines_carry_the_request_id(client, json_lines):
    """Django logs 4xx/5xx answers after the middleware chain has returned: the id must still be there."""
    client.get("/l/no_such_link?key=secret-api-key", HTTP_X_REQUEST_ID="req-404")
    (line,) = [entry for entry in json_lines() if entry["logger"] == "django.request"]
    assert (line["message"], line["request_id"], line["status_code"]) == ("Not Found: /l/no_such_link", "req-404", 404)
    assert "secret-api-key" not in json.dumps(line)  # Django's request object (full URL) is not logged


def test_access_log_is_off_by_default(client, settings, json_lines):
    settings.ACCESS_LOG = False
    client.get("/healthz")
    assert json_lines() == []


def test_json_formatter_fields_extra_and_exception(json_lines):
    token = request_id_var.set("req-x")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("tests.ops").exception("failed for %s", "pixel 7", extra={"pixel_id": 7})
    finally:
        request_id_var.reset(token)
    logging.getLogger("tests.ops").warning("outside a request")
    inside, outside = json_lines()
    assert {key: inside[key] for key in ("level", "logger", "message", "request_id", "pixel_id")} == {
        "level": "ERROR", "logger": "tests.ops", "message": "failed for pixel 7", "request_id": "req-x", "pixel_id": 7,
    }  # fmt: skip
    assert inside["exc_info"].startswith("Traceback") and "ValueError: boom" in inside["exc_info"]
    assert outside["request_id"] == "-"


def test_celery_task_id_is_the_request_id_of_its_logs():
    task_prerun.send(sender=None, task_id="5f0c-task", task=None, args=(), kwargs={})
    assert request_id_var.get() == "5f0c-task"
    task_postrun.send(sender=None, task_id="5f0c-task", task=None, args=(), kwargs={}, retval=None, state="SUCCESS")
    assert request_id_var.get() == "-"


def test_logging_config_formats():
    json_config = logging_config(log_format="json", level="INFO")
    plain_config = logging_config(log_format="plain", level="WARNING")
    assert json_config["formatters"]["main"] == {"()": "ops.logs.JsonFormatter"}
    assert "%(request_id)s" in plain_config["formatters"]["main"]["format"]
    # ACCESS_LOG, not LOG_LEVEL, decides whether request lines are written
    assert plain_config["loggers"]["ops.access"]["level"] == "INFO"
    with pytest.raises(ValueError, match="LOG_FORMAT must be json or plain"):
        logging_config(log_format="xml", level="INFO")


def test_json_logs_configured_from_the_environment(tmp_path):
    """LOG_FORMAT=json in a fresh process: Django's own loggers write JSON lines to stderr."""
    import subprocess

    script = "import logging, django; django.setup(); logging.getLogger('django.request').warning('slow %s', 1)"
    env = {"DEBUG": "1", "LOG_FORMAT": "json", "VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "tracker.settings"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert {key: line[key] for key in ("level", "logger", "message", "request_id")} == {
        "level": "WARNING", "logger": "django.request", "message": "slow 1", "request_id": "-",
    }  # fmt: skip

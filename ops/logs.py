"""Logs: one JSON object per line (LOG_FORMAT=json, for production) or plain text, both with the
request id. No Django imports: gunicorn.conf.py uses these in the master process too."""

import json
import logging
from datetime import UTC, datetime

from ops.context import NO_REQUEST, request_id_var

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged too.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id"}
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# Django attaches the request object to its django.request records; its repr holds the full URL, and
# query strings carry API keys (postbacks). The message already names the path.
_NOT_LOGGED = frozenset({"request"})


class RequestIdFilter(logging.Filter):
    """Stamps the current request id (or Celery task id) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "message", "request_id", ...extra fields, "exc_info"} on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in _NOT_LOGGED and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(*, log_format: str, level: str) -> dict:
    """The LOGGING dict: one console handler, JSON or plain, with the request id filter."""
    if log_format not in ("json", "plain"):
        raise ValueError(f"LOG_FORMAT must be json or plain, not {log_format!r}")
    formatter = {"()": "ops.logs.JsonFormatter"} if log_format == "json" else {"format": PLAIN_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "ops.logs.RequestIdFilter"}},
        "formatters": {"main": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "main", "filters": ["request_id"]}},
        "root": {"handlers": ["console"], "level": level},
        # One line per request from ops.middleware when ACCESS_LOG is on, whatever LOG_LEVEL says.
        "loggers": {"ops.access": {"level": "INFO"}},
    }


def connect_celery_task_ids() -> None:
    """In a Celery worker, the task id is the request id of the task's log lines."""
    from celery.signals import task_postrun, task_prerun

    def task_started(task_id=None, **kwargs):
        request_id_var.set(task_id or NO_REQUEST)

    def task_finished(**kwargs):
        request_id_var.set(NO_REQUEST)

    task_prerun.connect(task_started, weak=False, dispatch_uid="ops.logs.task_started")
    task_postrun.connect(task_finished, weak=False, dispatch_uid="ops.logs.task_finished")


def connect_request_end() -> None:
    """After a response is closed (Django has logged it), lines belong to no request."""
    from django.core.signals import request_finished

    def request_ended(**kwargs):
        request_id_var.set(NO_REQUEST)

    request_finished.connect(request_ended, weak=False, dispatch_uid="ops.logs.request_ended")

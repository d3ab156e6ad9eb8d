"""The request id of what is running now (a web request or a Celery task), for the logs."""

from contextvars import ContextVar

NO_REQUEST = "-"
request_id_var: ContextVar[str] = ContextVar("request_id", default=NO_REQUEST)

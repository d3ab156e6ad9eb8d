"""The first middleware: a request id for the logs, request latency for /metrics, the access log line,
and /healthz and /metrics answered before host validation (see ops.views)."""

import logging
import re
import time
import uuid

from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.utils.functional import SimpleLazyObject, empty

from ops.context import request_id_var
from ops.metrics import observe_request

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_META = "HTTP_X_REQUEST_ID"
# A proxy's id is kept when it looks like one (uuid, hex, ULID…); anything else gets a fresh uuid4.
_ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"  # 404s: one label, not one per scanned path
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

access_logger = logging.getLogger("ops.access")


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else UNMATCHED_ROUTE


class RequestIdMiddleware:
    """Sets request.request_id (from X-Request-ID or a new uuid4), echoes it in the response header,
    and makes it the request id of every log line written while the request runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from ops.views import OPS_ENDPOINTS  # the views import Django parts not needed at middleware load

        incoming = request.META.get(REQUEST_ID_META, "")  # not request.headers: that parses every header
        request_id = incoming if _ACCEPTED_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        # Not reset when this returns: Django logs 4xx/5xx answers (django.request) after the middleware
        # chain, and those lines need the id too. ops.apps resets it when the response is closed.
        request_id_var.set(request_id)
        started = time.perf_counter()
        endpoint = OPS_ENDPOINTS.get(request.path_info)
        if endpoint is not None and request.method in ("GET", "HEAD"):
            route, view = endpoint
            response = view(request)
        else:
            response = self.get_response(request)
            route = _route(request)
        duration_s = time.perf_counter() - started
        response[REQUEST_ID_HEADER] = request_id
        method = request.method if request.method in KNOWN_METHODS else "other"
        observe_request(method=method, route=route, status=response.status_code, duration_s=duration_s)
        if settings.ACCESS_LOG:
            # The path only: query strings carry API keys (postbacks) and personal data.
            access_logger.info(
                "%s %s %s %.1fms",
                method,
                request.path,
                response.status_code,
                duration_s * 1000,
                extra={
                    "method": method,
                    "path": request.path,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(duration_s * 1000, 1),
                },
            )
        return response


class LazyMessageMiddleware(MessageMiddleware):
    """Django's MessageMiddleware, with the message storage built on first use: only the admin shows
    messages, and building the storage (a cookie signer and two backends) for every click and postback was
    about 3 % of each (bench/README.md). A request that never touched its messages has nothing to store."""

    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response
        return super().process_response(request, response)

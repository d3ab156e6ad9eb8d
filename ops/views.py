"""Operations endpoints for machines: /healthz for probes and load balancers, /metrics for Prometheus.

Both are answered by ops.middleware.RequestIdMiddleware before Django's host and HTTPS checks (probes and
scrapers use the container's address as Host, which ALLOWED_HOSTS would refuse); the URL routes in
ops/urls.py name them for reverse() and serve them the same way if the middleware is not installed.
"""

import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST

from ops.health import health_report
from ops.metrics import render_metrics


@never_cache
def healthz(request):
    healthy, report = health_report()
    return JsonResponse(report, status=200 if healthy else 503)


def _metrics_token_ok(request) -> bool:
    expected = settings.METRICS_TOKEN
    if not expected:
        return True
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected.encode())


@never_cache
def metrics(request):
    if not _metrics_token_ok(request):
        response = JsonResponse(
            {"error": "unauthorized", "message": "Send the METRICS_TOKEN as 'Authorization: Bearer <token>'."},
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)


# Paths the middleware answers itself (see the module docstring).
OPS_ENDPOINTS = {"/healthz": ("healthz", healthz), "/metrics": ("metrics", metrics)}

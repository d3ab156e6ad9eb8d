"""Every API error is JSON: {"error": <code>, "message": <text>, "fields": {<field>: [<problem>]}}."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class NotFoundField(exceptions.NotFound):
    """A 404 that names the field whose value matched nothing (an unknown utm_id, click_id…)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _codes_for(exc) -> str:
    if isinstance(exc, exceptions.ValidationError):
        return "invalid"
    return getattr(exc, "default_code", "error")


def json_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"error": "body_too_large", "message": "Request body is too large.", "fields": {}},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    fields = {}
    message = ""
    if isinstance(exc, NotFoundField):
        fields = {exc.field: [str(exc.detail)]}
        message = str(exc.detail)
    elif isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            fields = {key: _flatten(value) for key, value in detail.items()}
            message = "Invalid input: " + ", ".join(fields)
        else:
            fields = {"non_field_errors": _flatten(detail)}
            message = "; ".join(fields["non_field_errors"])
    elif isinstance(exc, exceptions.NotAuthenticated):
        message = "This endpoint needs an API key: send the header Authorization: Api-Key <key>."
    else:
        message = str(getattr(exc, "detail", exc))
    response.data = {"error": _codes_for(exc), "message": message, "fields": fields}
    return response


def _flatten(value) -> list[str]:
    if isinstance(value, dict):
        return [f"{key}: {item}" for key, items in value.items() for item in _flatten(items)]
    if isinstance(value, list):
        return [item for entry in value for item in _flatten(entry)]
    return [str(value)]


def api_not_found(request, exception=None):
    return JsonResponse({"error": "not_found", "message": "No such endpoint.", "fields": {}}, status=404)


def api_server_error(request):
    return JsonResponse({"error": "server_error", "message": "Internal error.", "fields": {}}, status=500)

"""404/500 answers: JSON under /api/ and /postback (machines), HTML elsewhere (people)."""

from django.views import defaults

from conversions.errors import api_not_found, api_server_error

MACHINE_PREFIXES = ("/api/", "/postback")


def not_found(request, exception=None):
    if request.path.startswith(MACHINE_PREFIXES):
        return api_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith(MACHINE_PREFIXES):
        return api_server_error(request)
    return defaults.server_error(request)

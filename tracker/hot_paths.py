"""The hot paths (a tracking link, /click, the bot's and partners' intake) served by a Django handler of
their own, with only the middleware that acts on them.

A visitor's browser, the bot and a partner network bring nothing the admin's middleware serves: no static
file (WhiteNoise), no session, no form to protect (CSRF: the intake is API-key authenticated and exempt),
no logged-in user, no message. Those five ran on every click and conversion and did nothing but cost:
about 130,000 instructions a request, 8 % of a direct click (bench/README.md, stop 19). The handler is
Django's own WSGIHandler with the rest of settings.MIDDLEWARE, in their order: the request id, metrics and
access log, the security headers, host validation and X-Frame-Options still apply, as do Django's
exception handling, 404 logging and request signals. Every other path goes to the full application.

HOT_PATH_HANDLER=0 sends every path through the full application.
"""

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.urls import reverse

# Middleware with nothing to do on a hot path: a view that touched what they provide would fail loudly
# (request.session, request.user), and tests/test_hot_paths.py checks the answers are the same.
NOT_FOR_HOT_PATHS = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "ops.middleware.LazyMessageMiddleware",
    }
)
HOT_URL_NAMES = ("classic-click", "postback", "conversion-webhook", "conversion-batch-webhook", "track-start")


class HotPathHandler(WSGIHandler):
    """Django's WSGI handler with settings.MIDDLEWARE less NOT_FOR_HOT_PATHS."""

    def load_middleware(self, is_async=False):
        everything = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in everything if path not in NOT_FOR_HOT_PATHS]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = everything


def with_hot_path_handler(application):
    """The WSGI application that sends the hot paths to a HotPathHandler and the rest to `application`."""
    if not settings.HOT_PATH_HANDLER:
        return application
    hot = HotPathHandler()
    link_prefix = reverse("link-click", args=["x"])[:-1]  # /l/
    exact = frozenset(reverse(name) for name in HOT_URL_NAMES)

    def dispatch(environ, start_response):
        path = environ.get("PATH_INFO", "")
        handler = hot if path in exact or path.startswith(link_prefix) else application
        return handler(environ, start_response)

    return dispatch

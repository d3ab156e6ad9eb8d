"""The click paths (/l/<utm_id> and /click) served by a Django handler of their own, with only the middleware
that acts on them.

A tracking link is the tracker's hottest request and the visitor's browser brings nothing the admin's
middleware serves: no static file (WhiteNoise), no session, no form to protect (CSRF), no user, no
message. Those five ran on every click and did nothing but cost: about an eighth of a click's CPU in the
web process (bench/README.md, stop 19). The handler is Django's own WSGIHandler with the rest of
settings.MIDDLEWARE, in their order: the request id, metrics and access log, the security headers, host
validation and X-Frame-Options still apply, as do Django's exception handling, 404 logging and request
signals. Every other path goes to the full application.

CLICK_HANDLER=0 sends the click paths through the full application too.
"""

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

# Middleware with nothing to do on a click: a view that touched what they provide would fail loudly
# (request.session, request.user), and tests/landing/test_click_handler.py checks the answers are the same.
NOT_FOR_CLICKS = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "ops.middleware.LazyMessageMiddleware",
    }
)


def is_click_path(path: str) -> bool:
    return path.startswith("/l/") or path == "/click"


class ClickHandler(WSGIHandler):
    """Django's WSGI handler with settings.MIDDLEWARE less NOT_FOR_CLICKS."""

    def load_middleware(self, is_async=False):
        everything = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in everything if path not in NOT_FOR_CLICKS]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = everything


def with_click_handler(application):
    """The WSGI application that sends the click paths to a ClickHandler and the rest to `application`."""
    if not settings.CLICK_HANDLER:
        return application
    clicks = ClickHandler()

    def dispatch(environ, start_response):
        handler = clicks if is_click_path(environ.get("PATH_INFO", "")) else application
        return handler(environ, start_response)

    return dispatch

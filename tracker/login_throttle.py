"""The admin login, throttled: after ADMIN_LOGIN_MAX_FAILURES failed logins from one address within
ADMIN_LOGIN_LOCKOUT_S, further attempts from it are refused with 429 until the window passes."""

import logging

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpResponse

from landing.enrichment import client_ip

logger = logging.getLogger(__name__)


def _key(request) -> str:
    return f"throttle:admin-login:{client_ip(request.META) or 'unknown'}"


@receiver(user_login_failed)
def count_failure(sender, credentials, request=None, **kwargs):
    if request is None:
        return
    key = _key(request)
    try:
        if not cache.add(key, 1, timeout=settings.ADMIN_LOGIN_LOCKOUT_S):
            cache.incr(key)
    except ValueError:
        cache.add(key, 1, timeout=settings.ADMIN_LOGIN_LOCKOUT_S)
    except Exception:  # noqa: BLE001 - cache down: the failure is not counted, the login still works
        logger.warning("Login throttle cache unavailable")


def _failures(request) -> int:
    try:
        return cache.get(_key(request)) or 0
    except Exception:  # noqa: BLE001 - cache down: do not lock everybody out
        return 0


def throttled_login(request, extra_context=None):
    if request.method == "POST" and _failures(request) >= settings.ADMIN_LOGIN_MAX_FAILURES:
        minutes = max(1, settings.ADMIN_LOGIN_LOCKOUT_S // 60)
        response = HttpResponse(
            f"Too many failed logins from your address. Try again in {minutes} minutes.",
            status=429,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(settings.ADMIN_LOGIN_LOCKOUT_S)
        return response
    return admin.site.login(request, extra_context)

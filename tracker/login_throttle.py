"""The admin login, throttled: after ADMIN_LOGIN_MAX_FAILURES failed logins from one address within
ADMIN_LOGIN_LOCKOUT_S, further attempts from it are refused with 429 until the window passes."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpResponse

from landing.enrichment import client_ip


def _key(request) -> str:
    return f"throttle:admin-login:{client_ip(request.META) or 'unknown'}"


@receiver(user_login_failed)
def count_failure(sender, credentials, request=None, **kwargs):
    if request is None:
        return
    key = _key(request)
    if not cache.add(key, 1, timeout=settings.ADMIN_LOGIN_LOCKOUT_S):
        try:
            cache.incr(key)
        except ValueError:
            cache.add(key, 1, timeout=settings.ADMIN_LOGIN_LOCKOUT_S)


def throttled_login(request, extra_context=None):
    if request.method == "POST" and (cache.get(_key(request)) or 0) >= settings.ADMIN_LOGIN_MAX_FAILURES:
        minutes = max(1, settings.ADMIN_LOGIN_LOCKOUT_S // 60)
        response = HttpResponse(
            f"Too many failed logins from your address. Try again in {minutes} minutes.",
            status=429,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(settings.ADMIN_LOGIN_LOCKOUT_S)
        return response
    return admin.site.login(request, extra_context)

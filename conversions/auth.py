"""API keys: `Authorization: Api-Key <key>`, stored as SHA-256, compared in constant time.

A key is `<prefix>.<secret>`; the prefix finds the row, the hash of the whole key must match.
Postbacks may carry the key as `?key=` because affiliate networks cannot set headers.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from conversions.models import ApiKey
from conversions.selectors import one_or_none
from tracker.ttl_cache import cached

HEADER_KEYWORD = "Api-Key"
QUERY_PARAMS = ("key", "api_key")
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, name: str, scope: str) -> tuple[ApiKey, str]:
    """Create a key; the raw key is returned once and never stored."""
    prefix = secrets.token_hex(4)
    raw_key = f"{prefix}.{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(name=name, scope=scope, prefix=prefix, key_hash=hash_key(raw_key))
    return api_key, raw_key


# Keys by the hash of the whole key, for API_KEY_CACHE_TTL_S: a bot or a partner sends many requests a
# second with the same key, and each would otherwise read the same row.
_checked: dict[str, tuple[float, ApiKey | None]] = {}


def forget_checked_keys() -> None:
    _checked.clear()


def api_key_check(raw_key: str) -> ApiKey | None:
    """The active key this raw key is, or None. A revoked key stops working within API_KEY_CACHE_TTL_S in
    every worker (at once in the worker that revoked it)."""
    prefix, dot, _ = raw_key.partition(".")
    if not dot or len(prefix) != 8:
        return None
    key_hash = hash_key(raw_key)
    api_key = cached(
        _checked,
        key_hash,
        lambda: one_or_none(ApiKey.objects.filter(prefix=prefix, is_active=True)),
        ttl_s=settings.API_KEY_CACHE_TTL_S,
    )
    if api_key is None or not hmac.compare_digest(api_key.key_hash, key_hash):
        return None
    now = timezone.now()
    # At most one write a minute per key, so busy intake does not turn the key into a hot row.
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now  # the cached row too, or each request within the TTL would write again
    return api_key


@receiver([post_save, post_delete], sender=ApiKey)
def _key_changed(sender, **kwargs):
    forget_checked_keys()


class KeyUser:
    """The authenticated party behind an API key (DRF needs a user-like object)."""

    is_authenticated = True

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.scope = api_key.scope

    def __str__(self):
        return str(self.api_key)


def raw_api_key(request, *, allow_query_param: bool) -> str | None:
    """The key a request (Django's or DRF's) carries, or None; AuthenticationFailed for a malformed header."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        keyword, _, value = header.partition(" ")
        if keyword != HEADER_KEYWORD or not value.strip():
            raise exceptions.AuthenticationFailed('Use the header "Authorization: Api-Key <key>".')
        return value.strip()
    if allow_query_param:
        for name in QUERY_PARAMS:
            if request.GET.get(name):
                return request.GET[name]
    return None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    allow_query_param = False

    def authenticate(self, request):
        raw_key = raw_api_key(request, allow_query_param=self.allow_query_param)
        if raw_key is None:
            return None
        api_key = api_key_check(raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return KeyUser(api_key), api_key

    def authenticate_header(self, request):
        return HEADER_KEYWORD


class QueryParamApiKeyAuthentication(ApiKeyAuthentication):
    allow_query_param = True


class HasIntakeScope(permissions.BasePermission):
    """Bots and partners post clicks and conversions; management keys may too."""

    message = "This endpoint needs an API key."

    def has_permission(self, request, view):
        return isinstance(request.user, KeyUser)


class HasManagementScope(permissions.BasePermission):
    message = "This endpoint needs an API key with the management scope."

    def has_permission(self, request, view):
        return isinstance(request.user, KeyUser) and request.user.scope == ApiKey.Scope.MANAGEMENT

"""The click settings (tracking links, campaigns, pixels, landing pages) cached in each process until they
may have changed.

A viral link is read thousands of times a second and changes a few times a day. On PostgreSQL a worker
keeps what it read until the click settings' version moves: one row, raised by a trigger on every
statement that writes one of those tables (conversions/migrations/0007), read at most once every
LINK_CACHE_TTL_S. When it moved, every cache registered here is forgotten. So pausing a link takes effect
within LINK_CACHE_TTL_S on every worker, and many live links stay cached: with a plain expiry, 1,000 links
at a few hundred clicks a second missed the cache on nearly every click (bench/README.md, stop 22).
LINK_CACHE_MAX_AGE_S bounds an entry's life all the same (a write with triggers disabled, a restored
database). Elsewhere (SQLite) every cache is forgotten every LINK_CACHE_TTL_S. LINK_CACHE_TTL_S=0: no cache.
"""

import time

from django.conf import settings
from django.db import connection

from tracker.db.statements import fetch_one
from tracker.ttl_cache import cached

_VERSION_SQL = 'SELECT "version" FROM click_settings_version'
_version_seen = {"next_look_at": 0.0, "version": None}
_caches: list[dict] = []


def settings_cache() -> dict:
    """A new cache of click settings, forgotten with the others."""
    cache: dict = {}
    _caches.append(cache)
    return cache


def cached_setting(cache: dict, key, load):
    """load()'s value for key, from `cache` while the click settings have not changed."""
    interval_s = settings.LINK_CACHE_TTL_S
    if interval_s <= 0:
        return load()
    if _may_have_changed(interval_s):
        forget_cached_settings()
    return cached(cache, key, load, ttl_s=max(settings.LINK_CACHE_MAX_AGE_S, interval_s))


def _may_have_changed(interval_s: float) -> bool:
    """Whether a cached setting may be out of date, looked at once per interval_s in this process."""
    now = time.monotonic()
    if now < _version_seen["next_look_at"]:
        return False
    _version_seen["next_look_at"] = now + interval_s
    version = fetch_one(_VERSION_SQL, [])[0] if connection.vendor == "postgresql" else None
    changed = version is None or version != _version_seen["version"]
    _version_seen["version"] = version
    return changed


def forget_cached_settings() -> None:
    for cache in _caches:
        cache.clear()


def forget_settings_version() -> None:
    """The next cached read looks at the version again (and, the first time, forgets everything)."""
    _version_seen.update(next_look_at=0.0, version=None)

"""Per-key request limits for the intake endpoints: a fixed one-minute window counted with an atomic
increment: in Redis when REDIS_URL is set (all web workers share it; one round trip), else in the cache."""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from tracker.redis_client import redis_client

WINDOW_S = 60
logger = logging.getLogger(__name__)


def _count(key: str) -> int:
    if settings.REDIS_URL:
        pipe = redis_client(settings.REDIS_URL).pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, WINDOW_S * 2)
        return pipe.execute()[0]
    if cache.add(key, 1, timeout=WINDOW_S * 2):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=WINDOW_S * 2)
        return 1


class ApiKeyRateThrottle(BaseThrottle):
    """At most INTAKE_REQUESTS_PER_MINUTE requests per API key and minute; 429 with Retry-After beyond."""

    def allow_request(self, request, view):
        limit = settings.INTAKE_REQUESTS_PER_MINUTE
        api_key = getattr(request.user, "api_key", None)
        if not limit or api_key is None:
            return True
        window = int(time.time() // WINDOW_S)
        self._wait_s = WINDOW_S - time.time() % WINDOW_S
        try:
            count = _count(f"throttle:intake:{api_key.prefix}:{window}")
        except Exception:  # noqa: BLE001 - the cache (Redis) is down: never refuse a conversion for that
            logger.warning("Rate-limit cache unavailable; intake is not throttled meanwhile")
            return True
        return count <= limit

    def wait(self):
        return getattr(self, "_wait_s", WINDOW_S)

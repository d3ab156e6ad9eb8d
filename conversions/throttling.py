"""Per-key request limits for the intake endpoints: a fixed one-minute window counted with an atomic
increment, in Redis when REDIS_URL is set (all web workers share it), else in the cache.

A worker does not go to Redis for every request: it reserves a few requests of the window at once
(`reservation_size`, a thousandth of the limit, at most 100) and spends them locally. The limit is
never exceeded; near it, a key may be refused up to (workers - 1) x reservation requests early, while
other workers still hold part of their reservation. At 60,000 a minute that is 60 requests a worker, and
one Redis round trip per 60 conversions instead of one per conversion (bench/README.md).
"""

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from tracker.redis_client import redis_client

WINDOW_S = 60
MAX_RESERVATION = 100
logger = logging.getLogger(__name__)

# (counter key) -> [reserved, used] in this process, for the current window only.
_reserved: dict[str, list[int]] = {}
_reserved_window = [0]
_lock = threading.Lock()


def reservation_size(limit: int) -> int:
    return max(1, min(MAX_RESERVATION, limit // 1000))


def _add(key: str, amount: int) -> int:
    """Add `amount` to the window's shared counter; its new total."""
    if settings.REDIS_URL:
        pipe = redis_client(settings.REDIS_URL).pipeline(transaction=False)
        pipe.incrby(key, amount)
        pipe.expire(key, WINDOW_S * 2)
        return pipe.execute()[0]
    if cache.add(key, amount, timeout=WINDOW_S * 2):
        return amount
    try:
        return cache.incr(key, amount)
    except ValueError:  # expired between add and incr
        cache.add(key, amount, timeout=WINDOW_S * 2)
        return amount


def _spend_reserved(key: str, window: int) -> bool:
    with _lock:
        if _reserved_window[0] != window:
            _reserved.clear()
            _reserved_window[0] = window
        slot = _reserved.get(key)
        if slot is not None and slot[1] < slot[0]:
            slot[1] += 1
            return True
    return False


def _reserve_and_spend(key: str, limit: int) -> bool:
    size = reservation_size(limit)
    total = _add(key, size)
    granted = min(size, limit - (total - size))  # what of this reservation still fits under the limit
    if granted <= 0:
        return False
    with _lock:
        slot = _reserved.setdefault(key, [0, 0])
        slot[0] += granted
        slot[1] += 1
    return True


def _spend_directly(key: str, limit: int, cost: int) -> bool:
    """Spend `cost` units of the shared window at once (a batch): all of them fit under the limit, or none
    is spent."""
    if _add(key, cost) <= limit:
        return True
    _add(key, -cost)
    return False


def forget_reservations() -> None:
    with _lock:
        _reserved.clear()


def intake_spend(api_key, cost: int = 1) -> bool:
    """Spend `cost` requests of this key's window: False when they do not fit under
    INTAKE_REQUESTS_PER_MINUTE (then nothing is spent, except what a reservation took)."""
    limit = settings.INTAKE_REQUESTS_PER_MINUTE
    if not limit:
        return True
    window = int(time.time() // WINDOW_S)
    key = f"throttle:intake:{api_key.prefix}:{window}"
    if cost == 1 and _spend_reserved(key, window):
        return True
    try:
        return _reserve_and_spend(key, limit) if cost == 1 else _spend_directly(key, limit, cost)
    except Exception:  # noqa: BLE001 - the cache (Redis) is down: never refuse a conversion for that
        logger.warning("Rate-limit cache unavailable; intake is not throttled meanwhile")
        return True


class ApiKeyRateThrottle(BaseThrottle):
    """At most INTAKE_REQUESTS_PER_MINUTE requests per API key and minute; 429 with Retry-After beyond. A view
    with `throttle_cost(request)` (the batch webhook: one per conversion) spends that many at once."""

    def allow_request(self, request, view):
        api_key = getattr(request.user, "api_key", None)
        if api_key is None:
            return True
        self._wait_s = WINDOW_S - time.time() % WINDOW_S
        return intake_spend(api_key, view.throttle_cost(request) if hasattr(view, "throttle_cost") else 1)

    def wait(self):
        return getattr(self, "_wait_s", WINDOW_S)

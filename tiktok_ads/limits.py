"""The shared request limiter and daily quota: in Redis when REDIS_URL is set (all workers share
them), otherwise in this process and the database (the embedded single-worker default)."""

import threading
import time
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from tiktok_ads.models import TikTokEvent


class LocalRateLimiter:
    """At most `rate` acquisitions per `period_s` in this process (sliding window log)."""

    def __init__(self, rate: int, period_s: float = 1.0):
        self.rate = rate
        self.period_s = period_s
        self._stamps: list[float] = []
        self._lock = threading.Lock()

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                now = time.monotonic()
                self._stamps = [stamp for stamp in self._stamps if now - stamp < self.period_s]
                if len(self._stamps) < self.rate:
                    self._stamps.append(now)
                    return True
                wait_s = self.period_s - (now - self._stamps[0])
            if time.monotonic() + wait_s > deadline:
                return False
            time.sleep(max(wait_s, 0.001))


def utc_day(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Start and end of the current UTC day: the day the daily quota counts (dispatch uses UTC dates)."""
    start = datetime.combine((now or timezone.now()).astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


class DatabaseDailyQuota:
    """Daily quota counted from the outbox itself: events sent or being sent today."""

    def reserve(self, pixel_code: str, n: int, limit: int, today: date) -> int:
        # ranges, so the sent and claimed indexes serve the count
        start, end = utc_day(datetime.combine(today, datetime.min.time(), tzinfo=UTC))
        used = (
            TikTokEvent.objects.filter(pixel__pixel_code=pixel_code)
            .filter(Q(sent_at__gte=start, sent_at__lt=end)
                    | Q(status=TikTokEvent.Status.SENDING, claimed_at__gte=start, claimed_at__lt=end))
            .count()
        )  # fmt: skip
        # The rows being reserved are already SENDING and counted in `used`.
        return max(0, min(n, limit - used + n))

    def release(self, pixel_code: str, n: int, today: date) -> None:
        """Nothing to give back: released rows leave SENDING and stop counting by themselves."""


_shared: dict = {}
# The window is a little longer than a second: requests leave at a counted moment but reach TikTok
# after a varying delay, and two of them 1.0 s apart here can arrive 0.98 s apart there.
WINDOW_S = 1.1


def _redis_client():
    import redis

    if "redis" not in _shared:
        _shared["redis"] = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    return _shared["redis"]


def request_limiter():
    if settings.REDIS_URL:
        from tiktok_ads.ratelimit import RedisRateLimiter

        return RedisRateLimiter(_redis_client(), "tiktok:requests", settings.TIKTOK_MAX_REQUESTS_PER_S, WINDOW_S)
    key = ("local_limiter", settings.TIKTOK_MAX_REQUESTS_PER_S)
    if key not in _shared:
        _shared[key] = LocalRateLimiter(settings.TIKTOK_MAX_REQUESTS_PER_S, WINDOW_S)
    return _shared[key]


def daily_quota():
    if settings.REDIS_URL:
        from tiktok_ads.ratelimit import DailyQuota

        return DailyQuota(_redis_client())
    return DatabaseDailyQuota()

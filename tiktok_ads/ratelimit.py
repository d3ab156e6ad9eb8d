"""Limits shared by every Celery worker, kept in Redis.

RedisRateLimiter caps the requests per second that all workers together send to TikTok
(the seed: 10 requests/s); DailyQuota caps the events per pixel per day (the seed: 50,000).
Both are Lua scripts, so each check-and-take is one atomic step in Redis.
"""

import datetime
import time
import uuid

# Sliding-window log: one sorted-set member per admitted request, scored by its time in
# microseconds. The clock is Redis's own TIME, so workers with skewed clocks still agree.
# Returns 0 when a slot was taken, else the microseconds until the oldest entry expires.
_SLIDING_WINDOW_ACQUIRE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.ceil(tonumber(oldest[2]) + window - now))
"""

# Grants min(n, what is left today); the counter lives two days so it outlasts the day.
_QUOTA_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local granted = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if granted <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], granted)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return granted
"""

# Gives back at most what was used; never below zero, keeps the key's expiry.
_QUOTA_RELEASE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local back = math.min(tonumber(ARGV[1]), used)
if back > 0 then redis.call('DECRBY', KEYS[1], back) end
return used - back
"""

# Short naps: when a slot frees up, other workers race for it too.
MAX_SLEEP_S = 0.05


class RedisRateLimiter:
    def __init__(self, redis_client, key: str, rate: int, period_s: float = 1.0):
        if rate < 1 or period_s <= 0:
            raise ValueError("rate must be >= 1 and period_s > 0")
        self.redis = redis_client
        self.key = key
        self.rate = rate
        self.period_s = period_s
        self._acquire_script = redis_client.register_script(_SLIDING_WINDOW_ACQUIRE)

    def try_acquire(self) -> bool:
        return self._wait_needed_s() == 0

    def acquire(self, timeout: float) -> bool:
        """Take a slot, waiting up to `timeout` seconds for one; False if none came."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            wait_s = self._wait_needed_s()
            if wait_s == 0:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(wait_s, remaining, MAX_SLEEP_S))

    def _wait_needed_s(self) -> float:
        window_us = int(self.period_s * 1_000_000)
        member = uuid.uuid4().hex
        wait_us = self._acquire_script(keys=[self.key], args=[window_us, self.rate, member])
        return int(wait_us) / 1_000_000


class DailyQuota:
    TTL_S = 2 * 24 * 3600

    def __init__(self, redis_client, key_prefix: str = "tiktok:daily-quota"):
        self.redis = redis_client
        self.key_prefix = key_prefix
        self._reserve_script = redis_client.register_script(_QUOTA_RESERVE)
        self._release_script = redis_client.register_script(_QUOTA_RELEASE)

    def key(self, pixel_code: str, today: datetime.date | str) -> str:
        day = today.isoformat() if isinstance(today, datetime.date) else str(today)
        return f"{self.key_prefix}:{pixel_code}:{day}"

    def reserve(self, pixel_code: str, n: int, limit: int, today: datetime.date | str) -> int:
        """Reserve up to `n` of today's remaining quota; returns how many were granted."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if n == 0:
            return 0
        granted = self._reserve_script(keys=[self.key(pixel_code, today)], args=[n, limit, self.TTL_S])
        return int(granted)

    def release(self, pixel_code: str, n: int, today: datetime.date | str) -> None:
        """Give back `n` reserved but unsent (e.g. after a failed request)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if n:
            self._release_script(keys=[self.key(pixel_code, today)], args=[n])

    def used(self, pixel_code: str, today: datetime.date | str) -> int:
        return int(self.redis.get(self.key(pixel_code, today)) or 0)

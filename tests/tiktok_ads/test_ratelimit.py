"""Against the real Redis at 127.0.0.1:6379, db 15; every test uses its own keys."""

import datetime
import threading
import uuid

import pytest
import redis

from tiktok_ads.ratelimit import DailyQuota, RedisRateLimiter

TODAY = datetime.date(2025, 1, 15)


@pytest.fixture
def redis_client():
    client = redis.Redis(host="127.0.0.1", port=6379, db=15)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client):
    """A unique key prefix; the keys under it are deleted afterwards (never FLUSHALL)."""
    key_prefix = f"test:tiktok:{uuid.uuid4().hex}"
    yield key_prefix
    for key in redis_client.scan_iter(match=f"{key_prefix}*"):
        redis_client.delete(key)


# --- RedisRateLimiter ---------------------------------------------------------------


def test_rate_slots_then_refusal(redis_client, prefix):
    limiter = RedisRateLimiter(redis_client, f"{prefix}:rate", rate=5, period_s=1.0)
    assert [limiter.acquire(timeout=0) for _ in range(5)] == [True] * 5
    assert limiter.acquire(timeout=0) is False
    assert limiter.try_acquire() is False


def test_acquire_waits_for_a_slot_to_free(redis_client, prefix):
    limiter = RedisRateLimiter(redis_client, f"{prefix}:rate", rate=2, period_s=0.2)
    assert limiter.acquire(timeout=0) and limiter.acquire(timeout=0)
    assert limiter.acquire(timeout=5) is True


def test_refused_attempts_take_no_slot(redis_client, prefix):
    key = f"{prefix}:rate"
    limiter = RedisRateLimiter(redis_client, key, rate=3, period_s=60)
    for _ in range(10):
        limiter.try_acquire()
    assert redis_client.zcard(key) == 3


def test_keys_are_independent_and_expire(redis_client, prefix):
    first = RedisRateLimiter(redis_client, f"{prefix}:a", rate=1, period_s=60)
    second = RedisRateLimiter(redis_client, f"{prefix}:b", rate=1, period_s=60)
    assert first.try_acquire() and second.try_acquire()
    assert not first.try_acquire()
    assert 0 < redis_client.pttl(f"{prefix}:a") <= 61_000


def test_limiter_shared_by_threads_never_exceeds_the_rate(redis_client, prefix):
    key = f"{prefix}:rate"
    granted = []

    def worker():
        # Each thread has its own limiter object, as each Celery worker would.
        limiter = RedisRateLimiter(redis_client, key, rate=10, period_s=60)
        granted.extend(limiter.try_acquire() for _ in range(5))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 10
    assert len(granted) == 40


def test_limiter_rejects_nonsense_settings(redis_client, prefix):
    with pytest.raises(ValueError):
        RedisRateLimiter(redis_client, f"{prefix}:rate", rate=0)


# --- DailyQuota ---------------------------------------------------------------------


def test_reserve_and_release_arithmetic(redis_client, prefix):
    quota = DailyQuota(redis_client, key_prefix=prefix)
    assert quota.reserve("P1", 30, limit=100, today=TODAY) == 30
    assert quota.reserve("P1", 80, limit=100, today=TODAY) == 70
    assert quota.reserve("P1", 1, limit=100, today=TODAY) == 0
    assert quota.used("P1", TODAY) == 100

    quota.release("P1", 20, TODAY)
    assert quota.used("P1", TODAY) == 80
    assert quota.reserve("P1", 50, limit=100, today=TODAY) == 20

    quota.release("P1", 500, TODAY)
    assert quota.used("P1", TODAY) == 0


def test_quota_is_per_pixel_and_per_day(redis_client, prefix):
    quota = DailyQuota(redis_client, key_prefix=prefix)
    assert quota.reserve("P1", 10, limit=10, today=TODAY) == 10
    assert quota.reserve("P2", 10, limit=10, today=TODAY) == 10
    assert quota.reserve("P1", 10, limit=10, today=TODAY + datetime.timedelta(days=1)) == 10
    assert quota.reserve("P1", 1, limit=10, today="2025-01-15") == 0  # the same day as a string


def test_quota_key_expires_after_two_days(redis_client, prefix):
    quota = DailyQuota(redis_client, key_prefix=prefix)
    quota.reserve("P1", 1, limit=10, today=TODAY)
    ttl = redis_client.ttl(quota.key("P1", TODAY))
    assert 2 * 24 * 3600 - 60 < ttl <= 2 * 24 * 3600


def test_quota_edge_arguments(redis_client, prefix):
    quota = DailyQuota(redis_client, key_prefix=prefix)
    assert quota.reserve("P1", 0, limit=10, today=TODAY) == 0
    assert quota.reserve("P1", 5, limit=0, today=TODAY) == 0
    with pytest.raises(ValueError):
        quota.reserve("P1", -1, limit=10, today=TODAY)
    with pytest.raises(ValueError):
        quota.release("P1", -1, TODAY)
    quota.release("P1", 3, TODAY)  # nothing reserved: stays at zero
    assert quota.used("P1", TODAY) == 0


def test_concurrent_reserves_never_exceed_the_limit(redis_client, prefix):
    granted = []
    lock = threading.Lock()

    def worker():
        quota = DailyQuota(redis_client, key_prefix=prefix)
        for _ in range(5):
            got = quota.reserve("P1", 7, limit=100, today=TODAY)
            with lock:
                granted.append(got)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 100
    assert DailyQuota(redis_client, key_prefix=prefix).used("P1", TODAY) == 100

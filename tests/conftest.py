import contextlib

import pytest
from rest_framework.test import APIClient

from conversions.auth import api_key_create
from conversions.models import ApiKey
from tests.factories import CampaignFactory, LandingPageFactory, TrafficSourceFactory

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
DESKTOP_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
)


@pytest.fixture
def intake_key(db) -> str:
    return api_key_create(name="bot", scope=ApiKey.Scope.INTAKE)[1]


@pytest.fixture
def management_key(db) -> str:
    return api_key_create(name="admin api", scope=ApiKey.Scope.MANAGEMENT)[1]


@pytest.fixture
def bot_api(intake_key) -> APIClient:
    """The Telegram bot's HTTP client: an intake-scope key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {intake_key}")
    return client


@pytest.fixture
def management_api(management_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {management_key}")
    return client


@pytest.fixture
def campaign(db):
    return CampaignFactory()


@pytest.fixture
def link(db, campaign):
    return TrafficSourceFactory(
        campaign=campaign,
        utm_id="tiktok_abc123",
        utm_source="tiktok",
        utm_campaign="football_jan_2025",
        utm_content="video_messi_goal",
        landing_page=LandingPageFactory(),
        telegram_bot="demo_tracker_bot",
    )


@pytest.fixture
def visit(client):
    """Open a tracking link as a visitor's browser would; returns the response."""

    def open_link(
        path: str, *, user_agent: str = IPHONE_SAFARI, ip: str = "95.123.45.67", method: str = "get", **extra
    ):
        headers = {"HTTP_USER_AGENT": user_agent, "HTTP_X_FORWARDED_FOR": ip, **extra}
        return getattr(client, method)(path, **headers)

    return open_link


@pytest.fixture(autouse=True)
def fresh_api_key_cache():
    """Each worker trusts a checked API key for a few seconds; tests must not see each other's."""
    from conversions.auth import forget_checked_keys

    forget_checked_keys()
    yield
    forget_checked_keys()


@pytest.fixture(autouse=True)
def fresh_default_pixel_cache():
    """The default pixel is cached per process for a few seconds; tests must not see each other's."""
    from tiktok_ads.funnel import forget_default_pixel

    forget_default_pixel()
    yield
    forget_default_pixel()


@pytest.fixture(autouse=True)
def links_read_fresh(settings):
    """Tests change links and expect the next click to see it: no link cache unless a test asks."""
    from conversions.click_settings import forget_cached_settings, forget_settings_version

    settings.LINK_CACHE_TTL_S = 0
    forget_cached_settings()
    forget_settings_version()
    yield
    forget_cached_settings()
    forget_settings_version()


@pytest.fixture
def settings_clock(monkeypatch, settings):
    """The click settings cached (conversions/click_settings.py: a look at their version every 2 s, an entry
    kept 300 s at most) on a monotonic clock moved by hand: settings_clock(seconds)."""
    import types

    from conversions.click_settings import forget_cached_settings, forget_settings_version

    settings.LINK_CACHE_TTL_S = 2
    settings.LINK_CACHE_MAX_AGE_S = 300
    now = {"s": 1_000.0}
    fake = types.SimpleNamespace(monotonic=lambda: now["s"])
    monkeypatch.setattr("conversions.click_settings.time", fake)
    monkeypatch.setattr("tracker.ttl_cache.time", fake)
    forget_cached_settings()
    forget_settings_version()

    def advance(seconds: float) -> None:
        now["s"] += seconds

    return advance


@pytest.fixture(scope="session", autouse=True)
def empty_test_redis():
    """Throttle counters live in Redis: each run starts from an empty test Redis database."""
    import os

    import redis

    url = os.environ.get("REDIS_URL", "")
    if url and url == os.environ.get("TEST_REDIS_URL"):  # only ever the test database `make pytest` names
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(url, socket_connect_timeout=1).flushdb()
    yield


@pytest.fixture(autouse=True)
def empty_cache():
    """Throttle counters (and each worker's reservations of them) start empty in every test."""
    from django.core.cache import cache

    from conversions.throttling import forget_reservations

    cache.clear()
    forget_reservations()

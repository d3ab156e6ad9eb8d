import pytest

from tests.factories import CampaignFactory, LandingPageFactory, TrafficSourceFactory
from tiktok_ads.fake_server import FakeTikTok
from tiktok_ads.pixels import pixel_connect

PIXEL_CODE = "CPIXEL123"
ACCESS_TOKEN = "tok-live-abcdef123456"


@pytest.fixture
def fake_tiktok(settings):
    """The project's fake TikTok Business API on loopback; the client is pointed at it."""
    with FakeTikTok(port=0) as fake:
        settings.TIKTOK_API_BASE_URL = fake.url
        settings.TIKTOK_HTTP_TIMEOUT = 10.0
        yield fake


@pytest.fixture
def local_limits(settings):
    """In-process limiter and database quota, so tests share no Redis counters."""
    settings.REDIS_URL = ""
    settings.TIKTOK_RETRY_BASE_S = 0.01
    settings.TIKTOK_RETRY_MAX_S = 0.05


@pytest.fixture
def pixel(db):
    return pixel_connect(pixel_code=PIXEL_CODE, access_token=ACCESS_TOKEN, advertiser_id="7001", name="Main")[0]


@pytest.fixture
def pixel_link(db, pixel):
    """A tracking link whose campaign sends to the pixel."""
    campaign = CampaignFactory(pixel=pixel)
    return TrafficSourceFactory(
        campaign=campaign,
        utm_id="tiktok_abc123",
        utm_campaign="football_jan_2025",
        utm_content="video_messi_goal",
        landing_page=LandingPageFactory(),
    )

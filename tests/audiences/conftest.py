import hashlib

import pytest

from conversions.models import Conversion
from conversions.services import conversion_record
from tests.factories import CampaignFactory, LandingPageFactory, TrafficSourceFactory
from tests.tiktok_ads.conftest import fake_tiktok, local_limits, pixel  # noqa: F401 - shared fixtures
from tracker.celery import app as celery_app


def email_sha(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def phone_sha(e164: str) -> str:
    return hashlib.sha256(e164.encode()).hexdigest()


@pytest.fixture(autouse=True)
def fast_retries(settings):
    settings.AUDIENCE_SYNC_RETRY_BASE_S = 0.01
    settings.AUDIENCE_SYNC_RETRY_MAX_S = 0.05


@pytest.fixture
def tiktok(fake_tiktok, local_limits):  # noqa: F811
    """The fake TikTok on loopback and the in-process request limiter."""
    return fake_tiktok


@pytest.fixture
def eager_celery():
    """Tasks run in the calling process (the beat job's chain, end to end, without a broker)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def shop_link(db, pixel):  # noqa: F811
    """A tracking link whose campaign sends to the pixel: where the bot's purchases land."""
    return TrafficSourceFactory(
        campaign=CampaignFactory(pixel=pixel), utm_id="tiktok_shop", landing_page=LandingPageFactory()
    )


@pytest.fixture
def buy(shop_link):
    """Record a purchase as the bot's webhook does: buy("ana@example.com", 5000, tx="order-1")."""

    def record(email: str = "", amount_minor: int = 5000, *, tx: str, phone: str = "", status: str = "approved",
               goal: str = "purchase", link=None, customer_id: str = "") -> Conversion:  # fmt: skip
        return conversion_record(
            source=Conversion.Source.WEBHOOK,
            token=(link or shop_link).utm_id,
            customer_id=customer_id,
            amount_minor=amount_minor,
            currency="USD",
            status=status,
            goal=goal,
            transaction_id=tx,
            email_sha256=email_sha(email) if email else "",
            phone_sha256=phone_sha(phone) if phone else "",
        ).conversion

    return record

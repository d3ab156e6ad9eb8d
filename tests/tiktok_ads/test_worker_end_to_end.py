"""The whole path on the production-like stack: gunicorn, a real Celery worker and beat on Redis,
PostgreSQL, and the fake TikTok on loopback. Visitor → bot start → purchase → three events at TikTok."""

import hashlib
import re
from contextlib import ExitStack

import pytest
import requests

from conversions.auth import api_key_create
from conversions.models import Click
from tests.conftest import IPHONE_SAFARI
from tests.factories import CampaignFactory, LandingPageFactory, TrafficSourceFactory
from tests.stack import RedisServer, celery_worker, stack_available, stack_env, wait_until, web_server
from tiktok_ads.fake_server import FakeTikTok
from tiktok_ads.models import TikTokEvent
from tiktok_ads.pixels import pixel_connect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stack(tmp_path):
    reason = stack_available()
    if reason:
        pytest.skip(reason)
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    with FakeTikTok(port=0) as fake:
        env = stack_env(REDIS_URL=redis_server.url, TIKTOK_API_BASE_URL=fake.url)
        with web_server(env, tmp_path) as web_url, celery_worker(env, tmp_path) as worker:
            yield {"web": web_url, "fake": fake, "redis": redis_server, "logs": tmp_path, "worker": worker,
                   "env": env}  # fmt: skip
    redis_server.stop()


@pytest.fixture
def funnel_setup(db):
    pixel, _ = pixel_connect(pixel_code="CPIXELE2E", access_token="tok-e2e-1234567890", advertiser_id="7001")
    TrafficSourceFactory(
        campaign=CampaignFactory(pixel=pixel), utm_id="tiktok_abc123", landing_page=LandingPageFactory()
    )
    return api_key_create(name="bot", scope="intake")[1]


def test_funnel_events_reach_tiktok_once_each(stack, funnel_setup):
    web, fake = stack["web"], stack["fake"]
    bot = requests.Session()
    bot.headers["Authorization"] = f"Api-Key {funnel_setup}"

    page = requests.get(f"{web}/l/tiktok_abc123?ttclid=E.C.P.e2e&_ttp=ttp-e2e", timeout=10,
                        headers={"User-Agent": IPHONE_SAFARI, "X-Forwarded-For": "95.123.45.67"})  # fmt: skip
    token = re.search(r"start=([A-Za-z0-9_-]+)", page.text).group(1)
    assert bot.post(f"{web}/api/v1/utm/track/click", json={"utm_id": token, "user_id": 123456789},
                    timeout=10).status_code == 201  # fmt: skip
    purchase = bot.post(f"{web}/api/v1/utm/webhook/conversion", timeout=10, json={
        "utm_id": "tiktok_abc123", "customer_id": "telegram_123456789", "amount": 5000, "currency": "USD",
        "product_name": "Gold Lootbox", "transaction_id": "order-e2e"})  # fmt: skip
    assert purchase.status_code == 201

    events = wait_until(lambda: len(fake.accepted_events()) >= 3 and fake.accepted_events(), timeout=60,
                        what="three events at the fake TikTok")  # fmt: skip
    by_name = {event["event"]: event for event in events}
    assert sorted(by_name) == ["CompletePayment", "CompleteRegistration", "ViewContent"]
    external_id = hashlib.sha256(b"telegram_123456789").hexdigest()
    for event in events:
        assert event["pixel_code"] == "CPIXELE2E"
        assert event["user"]["ttclid"] == "E.C.P.e2e" and event["user"]["ttp"] == "ttp-e2e"
        assert event["user"]["ip"] == "95.123.45.67" and event["user"]["user_agent"] == IPHONE_SAFARI
    assert by_name["CompleteRegistration"]["user"]["external_id"] == external_id
    payment = by_name["CompletePayment"]
    assert payment["user"]["external_id"] == external_id
    assert payment["event_id"] == f"purchase_{purchase.json()['conversion_id']}"
    assert (payment["properties"]["value"], payment["properties"]["currency"]) == (50.0, "USD")
    assert by_name["ViewContent"]["event_id"] == f"view_{token}"
    wait_until(lambda: TikTokEvent.objects.filter(status="sent").count() == 3, timeout=10, what="rows marked sent")
    ids = [event["event_id"] for event in fake.accepted_events()]
    assert len(ids) == len(set(ids)) == 3


def test_clicks_starts_and_conversions_while_redis_is_down_are_kept_and_sent_when_it_returns(stack, funnel_setup):
    web, fake, redis_server = stack["web"], stack["fake"], stack["redis"]
    bot = requests.Session()
    bot.headers["Authorization"] = f"Api-Key {funnel_setup}"

    redis_server.stop()
    tokens = []
    for n in range(3):
        page = requests.get(f"{web}/l/tiktok_abc123", timeout=10,
                            headers={"User-Agent": IPHONE_SAFARI, "X-Forwarded-For": f"95.123.45.{n + 1}"})  # fmt: skip
        assert page.status_code == 200
        tokens.append(re.search(r"start=([A-Za-z0-9_-]+)", page.text).group(1))
    starts = [bot.post(f"{web}/api/v1/utm/track/click", json={"utm_id": token, "user_id": 1000 + n},
                       timeout=10).status_code for n, token in enumerate(tokens)]  # fmt: skip
    conversions = [
        bot.post(
            f"{web}/api/v1/utm/webhook/conversion",
            timeout=10,
            json={"utm_id": token, "amount": 1000 + n, "transaction_id": f"down-{n}"},
        ).status_code  # fmt: skip
        for n, token in enumerate(tokens)
    ]
    assert (starts, conversions) == ([201] * 3, [201] * 3)
    assert Click.objects.filter(click_id__in=tokens, is_unique=True).count() == 3  # the database answered instead
    assert TikTokEvent.objects.filter(status="queued").count() == 9
    redis_server.start()

    with ExitStack() as supervisor:
        if stack["worker"].poll() is not None:
            # Celery's worker can exit when the broker goes away while it acknowledges a task (kombu's
            # "Unrecoverable error: 'NoneType' object has no attribute 'hostname'"); in production the
            # supervisor starts it again (docker-compose.yml: restart: unless-stopped), as here.
            supervisor.enter_context(celery_worker(stack["env"], stack["logs"], name="celery-restarted"))
        wait_until(lambda: len(fake.accepted_events()) >= 9, timeout=90, interval=0.5,
                   what="events after Redis is back")  # fmt: skip
        wait_until(lambda: TikTokEvent.objects.filter(status="sent").count() == 9, timeout=10,
                   what="rows marked sent")  # fmt: skip
    ids = [event["event_id"] for event in fake.accepted_events()]
    assert len(ids) == len(set(ids)) == 9

"""Funnel steps write their TikTok events into the outbox, in the same transaction, exactly once."""

import hashlib
from datetime import timedelta

import pytest

from conversions.models import BotStart, Click, Conversion
from tests.conftest import IPHONE_SAFARI
from tiktok_ads.models import TikTokEvent

pytestmark = pytest.mark.django_db

START = "/api/v1/utm/track/click"
WEBHOOK = "/api/v1/utm/webhook/conversion"
TELEGRAM_EXTERNAL_ID = hashlib.sha256(b"telegram_123456789").hexdigest()


@pytest.fixture(params=["read fresh", "settings cached"])
def funnel(request, settings, visit, bot_api, pixel_link):
    # The same events whether the click path and the intake read their links, campaigns and pixels each time
    # or from the click settings' cache (conversions/click_settings.py).
    settings.LINK_CACHE_TTL_S = 0 if request.param == "read fresh" else 60
    visit("/l/tiktok_abc123?ttclid=E.C.P.abc&_ttp=ttp-1", HTTP_REFERER="https://www.tiktok.com/")
    click = Click.objects.get()
    bot_api.post(START, {"utm_id": click.click_id, "user_id": 123456789, "username": "john_doe"}, format="json")
    return click


def test_landing_view_becomes_view_content(funnel):
    event = TikTokEvent.objects.get(event="ViewContent")

    assert event.event_id == f"view_{funnel.click_id}"
    assert event.status == "queued" and event.source == "landing_view"
    assert event.payload == {
        "event": "ViewContent",
        "event_time": int(funnel.created_at.timestamp()),
        "event_id": f"view_{funnel.click_id}",
        "user": {"ttclid": "E.C.P.abc", "ttp": "ttp-1", "ip": "95.123.45.67", "user_agent": IPHONE_SAFARI},
        "page": {"url": funnel.landing_url, "referrer": "https://www.tiktok.com/"},
    }


def test_bot_start_becomes_complete_registration_with_hashed_external_id(funnel):
    event = TikTokEvent.objects.get(event="CompleteRegistration")

    start = BotStart.objects.get()
    assert event.event_id == f"registration_{start.pk}"
    assert event.payload["user"] == {"ttclid": "E.C.P.abc", "ttp": "ttp-1", "ip": "95.123.45.67",
                                     "user_agent": IPHONE_SAFARI, "external_id": TELEGRAM_EXTERNAL_ID}  # fmt: skip
    assert event.payload["event_time"] == int(start.created_at.timestamp())


def test_approved_conversion_becomes_complete_payment(funnel, bot_api):
    bot_api.post(WEBHOOK, {"utm_id": "tiktok_abc123", "customer_id": "telegram_123456789", "amount": 5000,
                           "currency": "EUR", "product_name": "Gold Lootbox", "product_id": "gold-1",
                           "transaction_id": "order-1"}, format="json")  # fmt: skip

    conversion = Conversion.objects.get()
    event = TikTokEvent.objects.get(event="CompletePayment")
    assert event.event_id == f"purchase_{conversion.public_id}"
    assert event.payload == {
        "event": "CompletePayment",
        "event_time": int(conversion.created_at.timestamp()),
        "event_id": f"purchase_{conversion.public_id}",
        "user": {
            "ttclid": "E.C.P.abc",
            "ttp": "ttp-1",
            "ip": "95.123.45.67",
            "user_agent": IPHONE_SAFARI,
            "external_id": TELEGRAM_EXTERNAL_ID,
        },  # fmt: skip
        "properties": {
            "value": 50.0,
            "currency": "EUR",
            "content_type": "product",
            "contents": [{"content_id": "gold-1", "content_name": "Gold Lootbox", "price": 50.0, "quantity": 1}],
            "order_id": "order-1",
        },
        "page": {"url": funnel.landing_url, "referrer": "https://www.tiktok.com/"},
    }


def test_each_event_is_queued_once_however_often_its_cause_repeats(funnel, bot_api, visit):
    body = {"utm_id": "tiktok_abc123", "customer_id": "telegram_123456789", "amount": 5000, "transaction_id": "t1"}
    bot_api.post(WEBHOOK, body, format="json")
    bot_api.post(WEBHOOK, body, format="json")
    bot_api.post(START, {"utm_id": funnel.click_id, "user_id": 123456789}, format="json")

    assert sorted(TikTokEvent.objects.values_list("event", flat=True)) == [
        "CompletePayment", "CompleteRegistration", "ViewContent"]  # fmt: skip


def test_bot_hits_and_direct_redirects_send_nothing(visit, pixel_link):
    visit("/l/tiktok_abc123", user_agent="TelegramBot (like TwitterBot)")
    visit("/l/tiktok_abc123", method="head")

    assert TikTokEvent.objects.count() == 0


def test_rejected_and_pending_conversions_send_nothing_until_approved(funnel, bot_api):
    body = {"utm_id": "tiktok_abc123", "amount": 5000, "transaction_id": "t1"}
    bot_api.post(WEBHOOK, {**body, "status": "pending"}, format="json")
    assert not TikTokEvent.objects.filter(event="CompletePayment").exists()

    bot_api.post(WEBHOOK, {**body, "status": "approved"}, format="json")
    assert TikTokEvent.objects.get(event="CompletePayment").status == "queued"

    bot_api.post(WEBHOOK, {**body, "status": "refunded"}, format="json")
    event = TikTokEvent.objects.get(event="CompletePayment")
    assert event.status == "skipped" and event.last_message == "conversion rejected"


def test_conversion_outside_the_28_day_window_is_skipped(funnel, bot_api):
    Click.objects.filter(pk=funnel.pk).update(created_at=funnel.created_at - timedelta(days=29))

    bot_api.post(WEBHOOK, {"utm_id": funnel.click_id, "amount": 100}, format="json")

    event = TikTokEvent.objects.get(event="CompletePayment")
    assert event.status == "skipped" and event.last_message == "outside_attribution_window"


def test_consent_required_skips_users_without_consent(settings, visit, bot_api, pixel_link):
    settings.TIKTOK_CONSENT_REQUIRED = True
    visit("/l/tiktok_abc123")
    click = Click.objects.get()
    bot_api.post(START, {"utm_id": click.click_id, "user_id": 1}, format="json")
    bot_api.post(START, {"utm_id": "tiktok_abc123", "user_id": 2, "consent": True}, format="json")

    statuses = dict(TikTokEvent.objects.values_list("event_id", "status"))
    assert statuses[f"view_{click.click_id}"] == "skipped"
    registrations = TikTokEvent.objects.filter(event="CompleteRegistration").order_by("id")
    assert [event.status for event in registrations] == ["skipped", "queued"]
    assert registrations[0].last_message == "no_consent"


def test_campaign_without_pixel_uses_the_default_pixel(visit, pixel, db):
    from tests.factories import TrafficSourceFactory

    TrafficSourceFactory(utm_id="plain1")  # its campaign names no pixel

    visit("/l/plain1")

    assert TikTokEvent.objects.get().pixel == pixel


def test_disabled_event_is_not_queued(visit, bot_api, pixel_link, pixel):
    pixel.enabled_events = ["CompletePayment"]
    pixel.save()

    visit("/l/tiktok_abc123")

    assert TikTokEvent.objects.count() == 0


def test_test_mode_stamps_the_test_event_code(visit, pixel_link, pixel):
    pixel.test_mode = True
    pixel.test_event_code = "TEST123"
    pixel.save()

    visit("/l/tiktok_abc123")

    assert TikTokEvent.objects.get().test_event_code == "TEST123"

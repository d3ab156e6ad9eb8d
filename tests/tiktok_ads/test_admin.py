"""The marketers' TikTok pages: the write-only token, the monitoring numbers, test events, resend."""

import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tiktok_ads import admin as tiktok_admin
from tiktok_ads.crypto import decrypt_token
from tiktok_ads.fake_server import FakeTikTok
from tiktok_ads.models import DeliveryAttempt, Pixel, TikTokEvent
from tiktok_ads.pixels import pixel_connect

pytestmark = pytest.mark.django_db

PIXELS = "/admin/tiktok_ads/pixel/"
EVENTS = "/admin/tiktok_ads/tiktokevent/"
ATTEMPTS = "/admin/tiktok_ads/deliveryattempt/"
TOKEN = "tok-live-abcdef123456"
NEW_TOKEN = "tok-live-rotated-987654"


@pytest.fixture
def tracked_pixel(db):
    return pixel_connect(pixel_code="CPIXEL123", access_token=TOKEN, advertiser_id="7001", name="Main")[0]


@pytest.fixture
def fake(settings):
    """The in-process fake TikTok; the in-process limiter and the database quota (no Redis)."""
    settings.REDIS_URL = ""
    with FakeTikTok(port=0) as fake:
        settings.TIKTOK_API_BASE_URL = fake.url
        settings.TIKTOK_HTTP_TIMEOUT = 2.0
        yield fake


@pytest.fixture
def flushes_scheduled(monkeypatch):
    """The pixel ids a Celery flush was asked for (no broker in these tests)."""
    pixel_ids = []
    monkeypatch.setattr(tiktok_admin, "schedule_flush", pixel_ids.append)
    return pixel_ids


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def run_action(admin_client, changelist: str, action: str, rows):
    return admin_client.post(changelist, {"action": action, "_selected_action": [row.pk for row in rows]})


def raw_encrypted_token(pixel_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT access_token_encrypted FROM {Pixel._meta.db_table} WHERE id = %s", [pixel_id])
        return cursor.fetchone()[0]


def pixel_form(**overrides) -> dict:
    return {
        "name": "Main", "pixel_code": "CNEW123", "advertiser_id": "7001", "access_token": TOKEN, "is_active": "on",
        "test_event_code": "", "enabled_events": '["ViewContent", "CompletePayment"]',
        "goal_events": '{"purchase": "CompletePayment"}', "daily_quota": "50000", **overrides,
    }  # fmt: skip


def test_a_pixel_added_in_the_admin_stores_its_token_encrypted_and_never_shows_it(admin_client):
    response = admin_client.post(f"{PIXELS}add/", pixel_form())

    assert response.status_code == 302
    pixel = Pixel.objects.get(pixel_code="CNEW123")
    ciphertext = raw_encrypted_token(pixel.pk)
    assert TOKEN not in ciphertext and decrypt_token(ciphertext) == TOKEN
    assert (pixel.token_hint, pixel.is_default) == ("…3456", True)
    assert pixel.enabled_events == ["ViewContent", "CompletePayment"]
    html = admin_client.get(f"{PIXELS}{pixel.pk}/change/").content.decode()
    assert TOKEN not in html and ciphertext not in html
    assert "…3456" in html and 'type="password"' in html


def test_the_token_is_required_on_add_and_not_echoed_after_a_failed_submit(admin_client):
    missing_token = admin_client.post(f"{PIXELS}add/", pixel_form(access_token=""))
    bad_quota = admin_client.post(f"{PIXELS}add/", pixel_form(daily_quota="many"))

    assert missing_token.status_code == 200 and "access_token" in missing_token.context["adminform"].form.errors
    assert bad_quota.status_code == 200 and TOKEN not in bad_quota.content.decode()
    assert not Pixel.objects.exists()


def test_an_empty_token_on_change_keeps_it_and_a_new_one_replaces_it_and_clears_the_flag(
    admin_client, tracked_pixel, flushes_scheduled
):
    Pixel.objects.filter(pk=tracked_pixel.pk).update(token_invalid=True)
    before = raw_encrypted_token(tracked_pixel.pk)

    change = f"{PIXELS}{tracked_pixel.pk}/change/"
    kept = admin_client.post(change, pixel_form(pixel_code="CPIXEL123", access_token="", name="Renamed"))
    assert kept.status_code == 302
    tracked_pixel.refresh_from_db()
    assert (tracked_pixel.name, raw_encrypted_token(tracked_pixel.pk), tracked_pixel.token_invalid) == (
        "Renamed", before, True)  # fmt: skip

    replaced = admin_client.post(change, pixel_form(pixel_code="CPIXEL123", access_token=NEW_TOKEN))
    assert replaced.status_code == 302
    tracked_pixel.refresh_from_db()
    assert decrypt_token(raw_encrypted_token(tracked_pixel.pk)) == NEW_TOKEN
    assert (tracked_pixel.token_hint, tracked_pixel.token_invalid) == ("…7654", False)
    assert flushes_scheduled == [tracked_pixel.pk]


def test_the_pixel_pages_show_todays_numbers(admin_client, tracked_pixel, settings):
    settings.REDIS_URL = ""
    now = timezone.now()
    Pixel.objects.filter(pk=tracked_pixel.pk).update(daily_quota=100)
    for number, status in enumerate(["sent", "sent", "queued", "failed"]):
        TikTokEvent.objects.create(pixel=tracked_pixel, event_id=f"evt_{number}", event="ViewContent", event_time=now,
                                   payload={}, source="api", status=status, next_attempt_at=now,
                                   sent_at=now if status == "sent" else None,
                                   last_code=40002 if status == "failed" else None)  # fmt: skip
    DeliveryAttempt.objects.create(pixel=tracked_pixel, event_count=1, http_status=200, code=40002,
                                   message="Invalid parameters", request_id="REQ-40002", duration_ms=87)  # fmt: skip

    changelist = admin_client.get(PIXELS)
    [row] = changelist.context["cl"].result_list
    html = admin_client.get(f"{PIXELS}{tracked_pixel.pk}/change/").content.decode()

    assert (row.sent_today, row.queued_now, row.failed_total, row.quota_used_today) == (2, 1, 1, 2)
    assert '<td class="field-quota_left">98</td>' in changelist.content.decode()
    assert "2 sent · daily quota 100 · 98 left" in html
    assert "1 waiting · 1 failed (all time)" in html
    assert "40002: 1" in html
    assert "REQ-40002" in html and "87 ms" in html


def test_send_a_test_event_reaches_tiktok_test_events(admin_client, tracked_pixel, fake):
    Pixel.objects.filter(pk=tracked_pixel.pk).update(test_event_code="TEST54321")

    response = run_action(admin_client, PIXELS, "send_test_event", [tracked_pixel])

    assert response.status_code == 302
    row = TikTokEvent.objects.get(source="admin_test")
    assert re.fullmatch(rf"test_{tracked_pixel.pk}_\d{{10}}", row.event_id)
    assert (row.status, row.event, row.test_event_code) == ("sent", "ViewContent", "TEST54321")
    [accepted] = fake.accepted_events()
    assert (accepted["event"], accepted["event_id"], accepted["test_event_code"], accepted["pixel_code"]) == (
        "ViewContent", row.event_id, "TEST54321", "CPIXEL123")  # fmt: skip
    assert messages_of(response) == [
        f"Main: test event {row.event_id} (test_event_code TEST54321) sent, TikTok request_id {row.request_id}."
    ]


def test_a_rejected_test_event_shows_tiktoks_code(admin_client, tracked_pixel, fake):
    fake.fail_next(1, "code:40002")

    response = run_action(admin_client, PIXELS, "send_test_event", [tracked_pixel])

    row = TikTokEvent.objects.get(source="admin_test")
    assert (row.status, row.last_code, row.test_event_code) == ("failed", 40002, f"TEST{tracked_pixel.pk}")
    assert fake.accepted_events() == []
    [message] = messages_of(response)
    assert message.startswith(f"Main: test event {row.event_id} (test_event_code TEST{tracked_pixel.pk}) failed: "
                              "TikTok code 40002: Injected fault")  # fmt: skip


def test_no_test_event_for_a_pixel_whose_token_was_rejected(admin_client, tracked_pixel, fake):
    Pixel.objects.filter(pk=tracked_pixel.pk).update(token_invalid=True)

    response = run_action(admin_client, PIXELS, "send_test_event", [tracked_pixel])

    assert not TikTokEvent.objects.exists() and fake.requests == []
    assert "token is flagged invalid" in messages_of(response)[0]


def test_resend_puts_a_failed_event_back_in_the_queue_with_its_event_id(admin_client, tracked_pixel,
                                                                          flushes_scheduled):  # fmt: skip
    now = timezone.now()
    failed = TikTokEvent.objects.create(pixel=tracked_pixel, event_id="purchase_abc", event="CompletePayment",
                                        event_time=now, payload={}, source="conversion", status="failed", attempts=12,
                                        next_attempt_at=now - timedelta(hours=1), last_code=50002)  # fmt: skip
    sent = TikTokEvent.objects.create(pixel=tracked_pixel, event_id="view_1", event="ViewContent", event_time=now,
                                      payload={}, source="landing_view", status="sent", sent_at=now,
                                      next_attempt_at=now)  # fmt: skip

    response = run_action(admin_client, EVENTS, "resend", [failed, sent])

    failed.refresh_from_db()
    sent.refresh_from_db()
    assert (failed.status, failed.attempts, failed.event_id) == ("queued", 0, "purchase_abc")
    assert failed.next_attempt_at >= now and sent.status == "sent"
    assert flushes_scheduled == [tracked_pixel.pk]
    assert messages_of(response)[0].startswith("Requeued 1 event(s)")


def test_make_default_and_clear_the_invalid_token_flag(admin_client, tracked_pixel, flushes_scheduled):
    second = pixel_connect(pixel_code="CPIXEL456", access_token=NEW_TOKEN, name="Second")[0]
    Pixel.objects.filter(pk=second.pk).update(token_invalid=True)

    run_action(admin_client, PIXELS, "make_default", [second])
    refused = run_action(admin_client, PIXELS, "make_default", [tracked_pixel, second])
    run_action(admin_client, PIXELS, "clear_token_invalid", [tracked_pixel, second])

    assert list(Pixel.objects.filter(is_default=True).values_list("pixel_code", flat=True)) == ["CPIXEL456"]
    assert messages_of(refused)[-1] == "Select exactly one pixel to make it the default."  # earlier ones not shown yet
    assert not Pixel.objects.filter(token_invalid=True).exists()
    assert flushes_scheduled == [second.pk]


@pytest.fixture
def one_of_each(tracked_pixel):
    now = timezone.now()
    event = TikTokEvent.objects.create(pixel=tracked_pixel, event_id="view_1", event="ViewContent", event_time=now,
                                       payload={"event": "ViewContent", "user": {"external_id": "ab" * 32}},
                                       source="landing_view", status="failed", last_code=40002,
                                       last_message="Invalid parameters: data[0].event_time",
                                       next_attempt_at=now)  # fmt: skip
    attempt = DeliveryAttempt.objects.create(pixel=tracked_pixel, event_count=1, http_status=200, code=40002,
                                             message="Invalid parameters", request_id="REQ1",
                                             response_text='{"code": 40002, "message": "Invalid"}')  # fmt: skip
    return {"pixel": tracked_pixel, "tiktokevent": event, "deliveryattempt": attempt}


@pytest.mark.parametrize("model", ["pixel", "tiktokevent", "deliveryattempt"])
def test_every_tiktok_page_opens(admin_client, one_of_each, model):
    row = one_of_each[model]
    changelist = f"/admin/tiktok_ads/{model}/"

    assert admin_client.get(changelist).status_code == 200
    assert admin_client.get(f"{changelist}{row.pk}/change/").status_code == 200
    filtered = admin_client.get(changelist, {"created_at__year": timezone.now().year, "q": "REQ1"})
    assert filtered.status_code == 200


def test_the_add_page_and_the_filters_open(admin_client, one_of_each):
    assert admin_client.get(f"{PIXELS}add/").status_code == 200
    by_code = admin_client.get(EVENTS, {"last_code": "40002", "source": "landing_view", "event": "ViewContent"})
    assert list(by_code.context["cl"].result_list) == [one_of_each["tiktokevent"]]
    assert list(admin_client.get(EVENTS, {"last_code": "none"}).context["cl"].result_list) == []
    assert admin_client.get(ATTEMPTS, {"code": "40002", "http_status": "200", "ok": "0"}).status_code == 200


def test_the_event_list_asks_no_date_range_of_the_whole_outbox_and_filters_by_date(admin_client, one_of_each):
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(EVENTS)
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    past_week = {"created_at__gte": str(today - timedelta(days=7)), "created_at__lt": str(today + timedelta(days=1))}
    before = {"created_at__gte": str(today - timedelta(days=30)), "created_at__lt": str(today - timedelta(days=7))}

    assert page.status_code == 200
    whole_outbox = [
        query["sql"]
        for query in queries
        if 'MAX("tiktok_ads_tiktokevent"."created_at")' in query["sql"] and "WHERE" not in query["sql"]
    ]
    assert whole_outbox == []
    assert list(admin_client.get(EVENTS, past_week).context["cl"].result_list) == [one_of_each["tiktokevent"]]
    assert list(admin_client.get(EVENTS, before).context["cl"].result_list) == []


def test_the_event_page_shows_the_payload_and_tiktoks_answer(admin_client, one_of_each):
    event = one_of_each["tiktokevent"]

    html = admin_client.get(f"{EVENTS}{event.pk}/change/").content.decode()

    assert "&quot;external_id&quot;: &quot;" + "ab" * 32 in html  # pretty-printed JSON
    assert "code 40002: Invalid parameters: data[0].event_time" in html

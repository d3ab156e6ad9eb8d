"""Sending the outbox to the fake TikTok over real HTTP: batches, retries, splits, limits, quota."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from tests.tiktok_ads.conftest import PIXEL_CODE
from tiktok_ads.dispatch import flush_pixel, requeue_stale_claims
from tiktok_ads.limits import DatabaseDailyQuota
from tiktok_ads.models import DeliveryAttempt, Pixel, TikTokEvent
from tiktok_ads.outbox import event_queue
from tiktok_ads.selectors import utc_day

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_limits")]


def queue_events(pixel, count: int, *, start: int = 0, **overrides):
    now = timezone.now()
    for number in range(start, start + count):
        event_id = f"evt_{number}"
        payload = {"event": "CompletePayment", "event_time": int(now.timestamp()), "event_id": event_id,
                   "user": {"external_id": "a" * 64}, "properties": {"value": 1.5, "currency": "USD"}}  # fmt: skip
        payload.update(overrides)
        event_queue(pixel=pixel, event_id=event_id, event="CompletePayment", event_time=now, payload=payload,
                    source="api")  # fmt: skip


def make_due():
    TikTokEvent.objects.filter(status="retrying").update(next_attempt_at=timezone.now())


def accepted_ids(fake) -> list[str]:
    return [event["event_id"] for event in fake.accepted_events()]


def test_queued_events_are_sent_in_batches_of_1000(fake_tiktok, pixel):
    queue_events(pixel, 1200)

    report = flush_pixel(pixel_id=pixel.pk)

    assert (report.sent, report.requests) == (1200, 2)
    assert sorted(accepted_ids(fake_tiktok)) == sorted(f"evt_{n}" for n in range(1200))
    bodies = [request["body"] for request in fake_tiktok.requests]
    assert [len(body["data"]) for body in bodies] == [1000, 200]
    assert {(body["event_source"], body["event_source_id"]) for body in bodies} == {("web", "CPIXEL123")}
    assert {request["headers"].get("Access-Token") for request in fake_tiktok.requests} == {"tok-live-abcdef123456"}
    assert TikTokEvent.objects.filter(status="sent").count() == 1200
    assert all(event.request_id for event in TikTokEvent.objects.all()[:10])
    assert DeliveryAttempt.objects.filter(ok=True).count() == 2


def test_a_short_batch_ends_the_run_and_what_arrives_meanwhile_goes_in_the_next_one(fake_tiktok, pixel, monkeypatch):
    """A busy pixel's stream goes in one batch per wake-up, not one request per tenth of a second: the events
    that arrive while a short batch is being sent wait for the flush their own arrival schedules."""
    from tiktok_ads import dispatch

    queue_events(pixel, 3)
    mark_sent = dispatch._mark_sent

    def arrive_while_sending(rows, response):
        mark_sent(rows, response)
        if len(fake_tiktok.requests) == 1:
            queue_events(pixel, 2, start=3)

    monkeypatch.setattr(dispatch, "_mark_sent", arrive_while_sending)

    report = flush_pixel(pixel_id=pixel.pk)

    assert (report.sent, report.requests, report.more_due) == (3, 1, False)
    assert TikTokEvent.objects.filter(status="queued").count() == 2
    report = flush_pixel(pixel_id=pixel.pk)
    assert (report.sent, report.requests) == (2, 1)
    assert [len(request["body"]["data"]) for request in fake_tiktok.requests] == [3, 2]
    assert sorted(accepted_ids(fake_tiktok)) == [f"evt_{n}" for n in range(5)]


def test_a_full_batch_is_followed_by_the_next_in_the_same_run(fake_tiktok, pixel, settings):
    settings.TIKTOK_BATCH_SIZE = 4
    queue_events(pixel, 10)

    report = flush_pixel(pixel_id=pixel.pk)

    assert (report.sent, report.requests, report.more_due) == (10, 3, False)
    assert [len(request["body"]["data"]) for request in fake_tiktok.requests] == [4, 4, 2]


def test_the_stored_payload_is_what_tiktok_receives(fake_tiktok, pixel):
    contents = [{"content_id": "gold", "quantity": 2}]
    payload = {"event": "CompletePayment", "event_time": int(timezone.now().timestamp()), "event_id": "evt_ü",
               "user": {"external_id": "a" * 64, "user_agent": "Mozilla/5.0 \"quoted\" ☃"},
               "properties": {"value": 12.5, "currency": "EUR", "contents": contents}}  # fmt: skip
    event_queue(pixel=pixel, event_id="evt_ü", event="CompletePayment", event_time=timezone.now(), payload=payload,
                source="api")  # fmt: skip
    queue_events(pixel, 2)

    assert flush_pixel(pixel_id=pixel.pk).sent == 3

    (request,) = fake_tiktok.requests
    assert request["body"]["data"][0] == payload
    assert [item["event_id"] for item in request["body"]["data"]] == ["evt_ü", "evt_0", "evt_1"]


def retry_later(settings):
    """A retry's wait longer than any flush: only make_due() brings the events back (with the fixture's 10 ms, a
    slow machine's flush found them due again and sent them within the same call)."""
    settings.TIKTOK_RETRY_BASE_S = settings.TIKTOK_RETRY_MAX_S = 60


def test_http_500_then_ok_ends_sent_and_never_twice(fake_tiktok, pixel, settings):
    retry_later(settings)
    queue_events(pixel, 5)
    fake_tiktok.fail_next(1, "http500")

    first = flush_pixel(pixel_id=pixel.pk)
    assert first.retrying == 5
    assert set(TikTokEvent.objects.values_list("status", "attempts")) == {("retrying", 1)}
    make_due()
    second = flush_pixel(pixel_id=pixel.pk)
    assert second.sent == 5, second

    assert TikTokEvent.objects.filter(status="sent").count() == 5
    assert sorted(accepted_ids(fake_tiktok)) == sorted(f"evt_{n}" for n in range(5))
    assert list(DeliveryAttempt.objects.order_by("id").values_list("http_status", "ok")) == [(500, False), (200, True)]


@pytest.mark.parametrize("fault", ["code:40100", "code:50002", "malformed", "http429", "http503"])
def test_retryable_answers_back_off_then_send(fake_tiktok, pixel, fault):
    queue_events(pixel, 3)
    fake_tiktok.fail_next(3, fault)

    for _ in range(4):
        flush_pixel(pixel_id=pixel.pk)
        make_due()

    assert TikTokEvent.objects.filter(status="sent").count() == 3
    assert sorted(accepted_ids(fake_tiktok)) == ["evt_0", "evt_1", "evt_2"]


def test_timeouts_retry(fake_tiktok, pixel, settings):
    retry_later(settings)
    settings.TIKTOK_HTTP_TIMEOUT = 0.3
    fake_tiktok.timeout_delay = 1.0
    queue_events(pixel, 2)
    fake_tiktok.fail_next(1, "timeout")

    flush_pixel(pixel_id=pixel.pk)
    event = TikTokEvent.objects.first()
    assert event.status == "retrying" and "timeout" in event.last_message
    settings.TIKTOK_HTTP_TIMEOUT = 10.0  # a loaded machine must not turn the good answer into a timeout too
    make_due()
    flush_pixel(pixel_id=pixel.pk)

    assert TikTokEvent.objects.filter(status="sent").count() == 2


def test_validation_error_fails_with_tiktoks_message(fake_tiktok, pixel):
    queue_events(pixel, 1)
    fake_tiktok.fail_next(1, "code:40002")

    report = flush_pixel(pixel_id=pixel.pk)

    event = TikTokEvent.objects.get()
    assert (event.status, event.last_code, report.failed) == ("failed", 40002, 1)
    assert "Injected fault" in event.last_message


def test_one_bad_item_does_not_fail_its_batch(fake_tiktok, pixel):
    queue_events(pixel, 9)
    queue_events(pixel, 1, start=9, event_time=int(timezone.now().timestamp() * 1000))  # milliseconds: invalid

    flush_pixel(pixel_id=pixel.pk)

    assert TikTokEvent.objects.filter(status="sent").count() == 9
    bad = TikTokEvent.objects.get(event_id="evt_9")
    assert bad.status == "failed" and bad.last_code == 40002
    assert "event_time" in bad.last_message
    assert sorted(accepted_ids(fake_tiktok)) == sorted(f"evt_{n}" for n in range(9))


def test_giving_up_after_max_attempts(fake_tiktok, pixel, settings):
    settings.TIKTOK_MAX_ATTEMPTS = 2
    queue_events(pixel, 1)
    fake_tiktok.fail_next(5, "http500")

    flush_pixel(pixel_id=pixel.pk)
    make_due()
    flush_pixel(pixel_id=pixel.pk)

    event = TikTokEvent.objects.get()
    assert (event.status, event.attempts) == ("failed", 2)
    assert event.last_message.startswith("gave up after 2 attempts")


def test_invalid_token_pauses_the_pixel_and_keeps_the_events(fake_tiktok, pixel):
    queue_events(pixel, 3)
    fake_tiktok.fail_next(1, "code:40105")

    flush_pixel(pixel_id=pixel.pk)

    assert Pixel.objects.get().token_invalid is True
    assert set(TikTokEvent.objects.values_list("status", flat=True)) == {"queued"}
    assert flush_pixel(pixel_id=pixel.pk).requests == 0  # paused until the token is replaced


def test_daily_quota_defers_the_excess_to_the_next_day(fake_tiktok, pixel):
    Pixel.objects.filter(pk=pixel.pk).update(daily_quota=5)
    queue_events(pixel, 8)

    report = flush_pixel(pixel_id=pixel.pk)

    assert (report.sent, report.deferred) == (5, 3)
    waiting = TikTokEvent.objects.filter(status="queued")
    assert waiting.count() == 3
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    assert {event.next_attempt_at.date() for event in waiting} == {tomorrow}
    assert waiting.first().last_message == "daily quota reached: waits for the next UTC day"


def test_the_database_quota_counts_the_utc_day_whatever_the_time_zone(pixel, settings):
    settings.TIME_ZONE = "Pacific/Kiritimati"  # UTC+14: its dates run ahead of UTC's
    queue_events(pixel, 3)
    start, _ = utc_day()
    for event, minutes in zip(TikTokEvent.objects.order_by("id"), (1, 2, -1), strict=True):
        TikTokEvent.objects.filter(pk=event.pk).update(status="sent", sent_at=start + timedelta(minutes=minutes))

    # Two sent today against a limit of 1: of 5 rows being reserved, 4 may go (counting the wrong day gave 5).
    assert DatabaseDailyQuota().reserve(PIXEL_CODE, 5, 1, start.date()) == 4


def test_test_mode_sends_the_test_event_code(fake_tiktok, pixel):
    Pixel.objects.filter(pk=pixel.pk).update(test_mode=True, test_event_code="TEST42")
    queue_events(Pixel.objects.get(pk=pixel.pk), 1)

    flush_pixel(pixel_id=pixel.pk)

    assert fake_tiktok.requests[0]["body"]["test_event_code"] == "TEST42"


def test_events_older_than_tiktok_accepts_fail_without_a_request(fake_tiktok, pixel):
    queue_events(pixel, 1)
    TikTokEvent.objects.update(event_time=timezone.now() - timedelta(days=8))

    report = flush_pixel(pixel_id=pixel.pk)

    assert report.requests == 0 and TikTokEvent.objects.get().status == "failed"


def test_stale_claims_of_a_dead_worker_are_queued_again(pixel):
    queue_events(pixel, 2)
    TikTokEvent.objects.update(status="sending", claimed_at=timezone.now() - timedelta(minutes=10))

    assert requeue_stale_claims() == 2
    assert set(TikTokEvent.objects.values_list("status", flat=True)) == {"queued"}


def test_the_fake_rate_limit_is_never_hit_by_our_limiter(fake_tiktok, pixel, settings):
    settings.TIKTOK_BATCH_SIZE = 10
    queue_events(pixel, 150)  # 15 requests: more than the fake's 10 a second

    flush_pixel(pixel_id=pixel.pk)

    assert {request["code"] for request in fake_tiktok.requests} == {0}
    assert TikTokEvent.objects.filter(status="sent").count() == 150


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_the_same_row(fake_tiktok, pixel, settings):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    settings.TIKTOK_BATCH_SIZE = 50
    settings.TIKTOK_MAX_REQUESTS_PER_S = 100
    fake_tiktok.rate_limit = 0
    queue_events(pixel, 1000)
    reports = []

    def worker():
        try:
            reports.append(flush_pixel(pixel_id=pixel.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ids = accepted_ids(fake_tiktok)
    assert len(ids) == 1000 and len(set(ids)) == 1000
    assert sum(report.sent for report in reports) == 1000
    assert TikTokEvent.objects.filter(status="sent").count() == 1000

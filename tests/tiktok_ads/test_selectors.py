"""The monitoring numbers against rows written here: today's sends, the quota, the queue, the failures."""

import os
import uuid
from datetime import UTC, timedelta

import pytest
import redis
from django.utils import timezone

from tiktok_ads import limits, selectors
from tiktok_ads.models import DeliveryAttempt, TikTokEvent
from tiktok_ads.pixels import pixel_connect
from tiktok_ads.ratelimit import DailyQuota

pytestmark = pytest.mark.django_db


@pytest.fixture
def db_quota(settings):
    """No REDIS_URL: the quota is counted from the outbox."""
    settings.REDIS_URL = ""


def connect(pixel_code: str, daily_quota: int = 10):
    pixel = pixel_connect(pixel_code=pixel_code, access_token="tok-live-abcdef123456", name=pixel_code)[0]
    pixel.daily_quota = daily_quota
    pixel.save(update_fields=["daily_quota"])
    return pixel


def make_event(pixel, event_id: str, status: str = "queued", *, created_ago=timedelta(0), **fields):
    now = timezone.now()
    row = TikTokEvent.objects.create(pixel=pixel, event_id=event_id, event="ViewContent", event_time=now,
                                     payload={"event": "ViewContent"}, source="api", status=status,
                                     next_attempt_at=now, **fields)  # fmt: skip
    TikTokEvent.objects.filter(pk=row.pk).update(created_at=now - created_ago)
    return row


def make_attempt(pixel, *, code=None, http_status=200, ok=False, ago=timedelta(0)):
    attempt = DeliveryAttempt.objects.create(pixel=pixel, event_count=1, http_status=http_status, code=code, ok=ok,
                                             message="OK" if ok else "failed", request_id=uuid.uuid4().hex)  # fmt: skip
    DeliveryAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - ago)
    return attempt


def test_monitoring_counts_today_the_quota_the_queue_and_failures_by_code(db_quota):
    pixel, other = connect("CPIXEL_A", daily_quota=10), connect("CPIXEL_B")
    now = timezone.now()
    for number in range(3):
        make_event(pixel, f"sent_{number}", "sent", sent_at=now - timedelta(seconds=number))
    make_event(pixel, "sent_before", "sent", sent_at=now - timedelta(days=2), created_ago=timedelta(days=2))
    make_event(pixel, "in_flight", "sending", claimed_at=now)  # holds quota, not sent yet
    make_event(pixel, "queued_old", created_ago=timedelta(minutes=30))
    make_event(pixel, "queued_new")
    make_event(pixel, "retrying", "retrying", attempts=2, last_code=50002)
    make_event(pixel, "failed_1", "failed", last_code=40002)
    make_event(pixel, "failed_2", "failed", last_code=None)
    make_event(pixel, "skipped", "skipped", last_message="no_consent")
    make_event(other, "other_sent", "sent", sent_at=now)
    make_event(other, "other_queued", created_ago=timedelta(hours=5))
    for _ in range(3):
        make_attempt(pixel, code=40002)
    make_attempt(pixel, code=None, http_status=None)
    make_attempt(pixel, code=None, http_status=None)
    make_attempt(pixel, code=None, http_status=503)
    make_attempt(pixel, code=40002, ago=timedelta(hours=25))  # before the 24 h window
    make_attempt(pixel, code=0, ok=True)
    make_attempt(other, code=40105)

    numbers = selectors.pixel_monitoring(pixel)

    assert numbers["sent_today"] == 3 == selectors.sent_today(pixel)
    assert (numbers["daily_quota"], numbers["quota_used"], numbers["quota_left"]) == (10, 4, 6)
    assert numbers["queued_now"] == 3  # queued + retrying
    assert numbers["failed_total"] == 2
    assert numbers["failures_by_code"] == {"40002": 3, "None(timeout)": 2, "None(HTTP 503)": 1}
    assert list(numbers["failures_by_code"]) == ["40002", "None(timeout)", "None(HTTP 503)"]
    assert 1790 <= numbers["oldest_queued_age_s"] <= 1860
    assert numbers["last_sent_at"] == TikTokEvent.objects.get(event_id="sent_0").sent_at
    assert [a.code for a in numbers["recent_attempts"]][:2] == [0, 40002]
    assert len(numbers["recent_attempts"]) == 8


def test_failures_by_code_since_a_moment(db_quota):
    pixel = connect("CPIXEL_A")
    make_attempt(pixel, code=40002, ago=timedelta(hours=2))
    make_attempt(pixel, code=40105, ago=timedelta(minutes=5))
    make_attempt(pixel, code=None, http_status=200)

    since = timezone.now() - timedelta(hours=1)

    assert selectors.failures_by_code(pixel, since) == {"40105": 1, "None(malformed)": 1}


def test_list_numbers_are_annotated_for_every_pixel_in_one_query(db_quota, django_assert_num_queries):
    pixel, idle = connect("CPIXEL_A", daily_quota=5), connect("CPIXEL_B")
    now = timezone.now()
    make_event(pixel, "sent", "sent", sent_at=now)
    make_event(pixel, "queued")
    make_event(pixel, "failed", "failed", last_code=40002)

    with django_assert_num_queries(1):
        rows = {row.pixel_code: row for row in selectors.pixels_with_numbers()}

    assert (rows["CPIXEL_A"].sent_today, rows["CPIXEL_A"].queued_now, rows["CPIXEL_A"].failed_total) == (1, 1, 1)
    assert rows["CPIXEL_A"].last_sent_at == TikTokEvent.objects.get(event_id="sent").sent_at
    assert (rows["CPIXEL_B"].sent_today, rows["CPIXEL_B"].queued_now, rows["CPIXEL_B"].failed_total) == (0, 0, 0)
    assert rows["CPIXEL_B"].last_sent_at is None and rows["CPIXEL_B"].oldest_queued_at is None
    assert selectors.quota_used_today([pixel, idle]) == {pixel.pk: 1, idle.pk: 0}


def test_only_the_last_20_attempts_are_listed_newest_first(db_quota):
    pixel = connect("CPIXEL_A")
    attempts = [make_attempt(pixel, code=0, ok=True) for _ in range(25)]

    listed = selectors.recent_attempts(pixel)

    assert [a.pk for a in listed] == [a.pk for a in reversed(attempts)][:20]


def test_sent_today_is_the_utc_day():
    start, end = selectors.utc_day(timezone.now())

    assert start.tzinfo == UTC and (start.hour, start.minute, start.second) == (0, 0, 0)
    assert end - start == timedelta(days=1)


@pytest.fixture
def redis_quota(settings, monkeypatch):
    url = os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("Redis is not running")
    settings.REDIS_URL = url
    monkeypatch.setattr(limits, "_shared", {})  # a client for this URL, not one cached by another test
    pixel = connect(f"CPIXEL_{uuid.uuid4().hex[:12]}", daily_quota=100)
    quota = DailyQuota(client)
    yield pixel, quota
    client.delete(quota.key(pixel.pixel_code, timezone.now().astimezone(UTC).date()))
    client.close()


def test_with_redis_the_quota_is_the_limiters_counter(redis_quota):
    pixel, quota = redis_quota
    quota.reserve(pixel.pixel_code, 7, pixel.daily_quota, timezone.now().astimezone(UTC).date())

    numbers = selectors.pixel_monitoring(pixel)

    assert (numbers["quota_used"], numbers["quota_left"], numbers["sent_today"]) == (7, 93, 0)


def test_when_redis_does_not_answer_the_quota_is_counted_from_the_outbox(settings, monkeypatch):
    pixel = connect("CPIXEL_A")
    make_event(pixel, "sent", "sent", sent_at=timezone.now())
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    monkeypatch.setattr(limits, "_shared", {})

    assert selectors.quota_used_today([pixel]) == {pixel.pk: 1}

"""/metrics: business totals read from the database at scrape time, outbox depth and age, latency."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from conversions.models import BotStart, Click
from conversions.rollups import rollup_refresh
from tiktok_ads.models import Pixel, TikTokEvent

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_business_numbers_are_cumulative_totals(client, visit, link, bot_api):
    visit("/l/tiktok_abc123")
    visit("/l/tiktok_abc123", user_agent="TelegramBot (like TwitterBot)")
    page = visit("/l/tiktok_abc123", ip="95.123.45.68")
    token = page.content.decode().split("start=")[1].split('"')[0]
    assert bot_api.post("/api/v1/utm/track/click", {"utm_id": token, "user_id": 42}, format="json").status_code == 201
    for number, status in enumerate(["approved", "approved", "pending"]):
        body = {"customer_id": "telegram_42", "amount": 5000, "transaction_id": f"o{number}", "status": status}
        assert bot_api.post("/api/v1/utm/webhook/conversion", body, format="json").status_code == 201

    minute_ago = timezone.now() - timedelta(minutes=1)
    Click.objects.update(created_at=minute_ago)
    BotStart.objects.update(created_at=minute_ago)
    before_rollup = scrape(client)
    assert rollup_refresh() == {"clicks": 3, "starts": 1}  # rows move into DailyStats; totals stay
    after_rollup = scrape(client)

    for samples in (before_rollup, after_rollup):
        assert samples[("tracker_database_up", ())] == 1
        assert samples[("tracker_clicks_total", ())] == 2
        assert samples[("tracker_unique_clicks_total", ())] == 2
        assert samples[("tracker_bot_hits_total", ())] == 1
        assert samples[("tracker_landing_views_total", ())] == 2
        assert samples[("tracker_bot_starts_total", ())] == 1
        assert samples[("tracker_conversions_total", ())] == 3
        assert samples[("tracker_conversions_by_status", (("status", "approved"),))] == 2
        assert samples[("tracker_conversions_by_status", (("status", "pending"),))] == 1
        assert samples[("tracker_conversions_by_status", (("status", "rejected"),))] == 0
        assert samples[("tracker_revenue_minor", (("currency", "USD"),))] == 10000


def test_tiktok_events_by_status_and_outbox_depth_and_age(client):
    pixel = Pixel.objects.create(pixel_code="CPIX", access_token_encrypted="x")
    now = timezone.now()
    statuses = ["queued", "queued", "retrying", "sending", "sent", "sent", "sent", "failed", "skipped"]
    for number, status in enumerate(statuses):
        TikTokEvent.objects.create(pixel=pixel, event_id=f"e{number}", event="ViewContent", event_time=now,
                                   payload={}, source="api", status=status, next_attempt_at=now)  # fmt: skip
    oldest = now - timedelta(minutes=10)
    TikTokEvent.objects.filter(event_id="e2").update(created_at=oldest)  # the retrying one waits longest
    TikTokEvent.objects.filter(event_id="e4").update(created_at=now - timedelta(days=3))  # sent: not waiting

    samples = scrape(client)

    by_status = {labels[0][1]: value for (name, labels), value in samples.items() if name == "tracker_tiktok_events"}
    assert by_status == {"queued": 2, "retrying": 1, "sending": 1, "sent": 3, "failed": 1, "skipped": 1}
    assert samples[("tracker_tiktok_outbox_depth", ())] == 4
    assert 600 <= samples[("tracker_tiktok_outbox_oldest_age_seconds", ())] < 660


def test_empty_outbox_has_age_zero(client):
    samples = scrape(client)
    assert samples[("tracker_tiktok_outbox_depth", ())] == 0
    assert samples[("tracker_tiktok_outbox_oldest_age_seconds", ())] == 0


def test_request_latency_histogram_by_route(client, visit, link):
    def count(samples, route, status):
        labels = (("method", "GET"), ("route", route), ("status", status))
        return samples.get(("tracker_http_request_duration_seconds_count", labels), 0)

    before = scrape(client)
    visit("/l/tiktok_abc123")
    visit("/l/no_such_link")
    client.get("/nowhere/at/all")
    after = scrape(client)

    assert count(after, "l/<str:utm_id>", "200") - count(before, "l/<str:utm_id>", "200") == 1
    assert count(after, "l/<str:utm_id>", "404") - count(before, "l/<str:utm_id>", "404") == 1
    assert count(after, "<unmatched>", "404") - count(before, "<unmatched>", "404") == 1
    assert count(after, "metrics", "200") - count(before, "metrics", "200") == 1  # the first scrape


def test_metrics_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"' and missing.json()["error"] == "unauthorized"
    assert ("tracker_database_up", ()) in scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")


def test_unreadable_database_gives_database_up_zero(client, monkeypatch):
    from django.db import OperationalError

    from ops import selectors

    def refuse():
        raise OperationalError("gone")

    monkeypatch.setattr(selectors, "tracker_totals", refuse)
    samples = scrape(client)
    assert samples[("tracker_database_up", ())] == 0 and ("tracker_clicks_total", ()) not in samples

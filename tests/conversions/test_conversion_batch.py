"""POST /api/v1/utm/webhook/conversions: many conversions in one request, all recorded or none."""

from datetime import timedelta

import pytest

from conversions.models import Click, Conversion, ConversionStatusChange
from tiktok_ads.models import TikTokEvent

pytestmark = pytest.mark.django_db

BATCH = "/api/v1/utm/webhook/conversions"


@pytest.fixture
def clicks(visit, bot_api, pixel_link):
    """Two visitors of a link whose campaign sends to a pixel; the first pressed /start as user 777."""
    visit("/l/tiktok_abc123")
    visit("/l/tiktok_abc123", ip="81.2.69.160")
    first, second = Click.objects.order_by("id")
    Click.objects.update(created_at=first.created_at - timedelta(hours=1))
    bot_api.post("/api/v1/utm/track/click", {"utm_id": first.click_id, "user_id": 777}, format="json")
    return first, second


@pytest.fixture
def pixel_link(db):
    from tests.factories import CampaignFactory, LandingPageFactory, TrafficSourceFactory
    from tiktok_ads.pixels import pixel_connect

    pixel, _ = pixel_connect(pixel_code="CBATCH1", access_token="tok-batch-123456")
    return TrafficSourceFactory(campaign=CampaignFactory(pixel=pixel), utm_id="tiktok_abc123",
                                landing_page=LandingPageFactory())  # fmt: skip


def batch(clicks) -> list[dict]:
    first, second = clicks
    return [
        {"transaction_id": "pay-3", "utm_id": second.click_id, "amount": 990, "currency": "eur"},
        {"transaction_id": "pay-1", "customer_id": "telegram_777", "amount": 5000, "product_name": "Gold Lootbox"},
        {"transaction_id": "pay-2", "utm_id": first.click_id, "amount": 100, "status": "pending", "event": "deposit"},
    ]


def test_a_batch_records_every_conversion_against_its_click(bot_api, clicks):
    first, second = clicks
    events_before = set(TikTokEvent.objects.values_list("id", flat=True))  # the visits' and the /start's

    response = bot_api.post(BATCH, {"conversions": batch(clicks)}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (3, 0, 0)
    stored = {conversion.transaction_id: conversion for conversion in Conversion.objects.all()}
    assert [answer["conversion_id"] for answer in body["conversions"]] == [
        stored["pay-3"].public_id,
        stored["pay-1"].public_id,
        stored["pay-2"].public_id,
    ]  # the order sent
    assert body["conversions"][0] == {
        "outcome": "created", "conversion_id": stored["pay-3"].public_id, "status": "approved", "goal": "purchase",
        "amount": 990, "currency": "EUR", "utm_id": "tiktok_abc123", "click_id": second.click_id,
        "time_to_conversion": stored["pay-3"].time_to_conversion_s,
    }  # fmt: skip
    assert stored["pay-1"].click == first and stored["pay-1"].lead.telegram_user_id == 777  # through the /start
    assert stored["pay-1"].product_name == "Gold Lootbox" and stored["pay-1"].source == "webhook"
    assert (stored["pay-2"].status, stored["pay-2"].goal, stored["pay-2"].click) == ("pending", "deposit", first)
    assert ConversionStatusChange.objects.filter(old_status="").count() == 3
    # Each approved purchase queues its CompletePayment for the pixel; the pending deposit queues nothing.
    assert sorted(TikTokEvent.objects.exclude(id__in=events_before).values_list("event", flat=True)) == [
        "CompletePayment", "CompletePayment"]  # fmt: skip


def test_a_batch_sent_again_counts_nothing_twice_and_applies_changes(bot_api, clicks):
    bot_api.post(BATCH, {"conversions": batch(clicks)}, format="json")
    again = batch(clicks)
    again[2]["status"] = "approved"  # the deposit went through

    response = bot_api.post(BATCH, {"conversions": again}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (0, 1, 2)
    assert [answer["outcome"] for answer in body["conversions"]] == ["unchanged", "unchanged", "updated"]
    assert Conversion.objects.count() == 3
    assert Conversion.objects.get(transaction_id="pay-2").status == "approved"
    assert ConversionStatusChange.objects.filter(old_status="pending", new_status="approved").count() == 1


def test_a_transaction_id_twice_in_one_batch_is_one_conversion(bot_api, clicks):
    first, _ = clicks
    same = {"transaction_id": "pay-9", "utm_id": first.click_id, "amount": 700}

    response = bot_api.post(BATCH, {"conversions": [same, {**same, "amount": 800}]}, format="json")

    assert [answer["outcome"] for answer in response.json()["conversions"]] == ["created", "updated"]
    assert list(Conversion.objects.values_list("transaction_id", "amount_minor")) == [("pay-9", 800)]


def test_bad_fields_are_named_by_their_place_and_nothing_is_written(bot_api, clicks):
    conversions = batch(clicks)
    conversions[1]["amount"] = "50.00"
    del conversions[2]["transaction_id"]

    response = bot_api.post(BATCH, {"conversions": conversions}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert set(body["fields"]) == {"conversions[1].amount", "conversions[2].transaction_id"}
    assert body["fields"]["conversions[2].transaction_id"] == ["This field is required."]
    assert not Conversion.objects.exists()


def test_an_unknown_click_rejects_the_whole_batch(bot_api, clicks):
    events_before = TikTokEvent.objects.count()
    conversions = batch(clicks)
    conversions[2]["utm_id"] = "no_such_click"

    response = bot_api.post(BATCH, {"conversions": conversions}, format="json")

    assert response.status_code == 404
    assert response.json()["fields"] == {"conversions[2].utm_id": [response.json()["message"]]}
    assert not Conversion.objects.exists() and not ConversionStatusChange.objects.exists()
    assert TikTokEvent.objects.count() == events_before  # those written before the failure: rolled back


@pytest.mark.parametrize(
    "body, field",
    [({}, "conversions"), ({"conversions": []}, "conversions"), ({"conversions": "pay-1"}, "conversions"),
     ({"conversions": [{"transaction_id": f"t{n}", "utm_id": "x", "amount": 1} for n in range(501)]}, "conversions")],
)  # fmt: skip
def test_a_missing_empty_or_oversized_list_is_a_400(bot_api, db, body, field):
    response = bot_api.post(BATCH, body, format="json")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert not Conversion.objects.exists()


def test_a_batch_needs_an_api_key(db):
    from rest_framework.test import APIClient

    response = APIClient().post(BATCH, {"conversions": []}, format="json")

    assert response.status_code == 401 and response.json()["error"] == "not_authenticated"


def test_a_batch_reads_its_clicks_in_one_statement(bot_api, clicks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first, second = clicks
    conversions = [{"transaction_id": f"pay-{n}", "utm_id": click.click_id, "amount": 100}
                   for n, click in enumerate([first, second, first, second])]  # fmt: skip
    conversions.append({"transaction_id": "pay-link", "utm_id": "tiktok_abc123", "amount": 100})  # the link's utm_id

    with CaptureQueriesContext(connection) as queries:
        response = bot_api.post(BATCH, {"conversions": conversions}, format="json")

    assert response.status_code == 200
    click_reads = [
        query["sql"] for query in queries.captured_queries if 'SELECT * FROM "conversions_click"' in query["sql"]
    ]
    assert len(click_reads) == 2  # the batch's clicks at once, then the link's utm_id tried as a click id
    stored = dict(Conversion.objects.values_list("transaction_id", "click__click_id"))
    assert stored == {
        "pay-0": first.click_id,
        "pay-1": second.click_id,
        "pay-2": first.click_id,
        "pay-3": second.click_id,
        "pay-link": None,
    }  # pay-link named the link only: no click

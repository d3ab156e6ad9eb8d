"""A new conversion is one statement (conversions.conversion_store): its row, its first status change and
its TikTok event together or not at all; a repeat writes nothing."""

import secrets

import pytest
from django.db import DataError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversions.conversion_store import conversion_insert
from conversions.models import Click, Conversion, ConversionStatusChange
from tiktok_ads.models import TikTokEvent
from tiktok_ads.outbox import outbox_row

pytestmark = pytest.mark.django_db

WEBHOOK = "/api/v1/utm/webhook/conversion"
WRITES = ("INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "SAVEPOINT", "COMMIT")


def test_a_new_approved_conversion_is_one_write(visit, bot_api, pixel_link):
    visit("/l/tiktok_abc123")
    click = Click.objects.get()
    body = {"utm_id": click.click_id, "amount": 5000, "transaction_id": "one-write"}

    # (the key's first use also stamps its last_used_at: not the conversion's write)
    with CaptureQueriesContext(connection) as queries:
        response = bot_api.post(WEBHOOK, body, format="json")

    assert response.status_code == 201
    statements = [query["sql"] for query in queries.captured_queries if "conversions_apikey" not in query["sql"]]
    writes = [sql for sql in statements if sql.lstrip().upper().startswith(WRITES)]
    assert len(writes) == 1 and writes[0].startswith("WITH conversion AS")
    conversion = Conversion.objects.get()
    change = ConversionStatusChange.objects.get()
    assert (change.conversion_id, change.old_status, change.new_status, change.old_amount_minor,
            change.new_amount_minor) == (conversion.pk, "", "approved", None, 5000)  # fmt: skip
    event = TikTokEvent.objects.get(event="CompletePayment")
    assert (event.event_id, event.status, event.source) == (f"purchase_{conversion.public_id}", "queued", "conversion")


def test_a_repeat_writes_nothing_and_a_pending_conversion_no_event(visit, bot_api, pixel_link):
    visit("/l/tiktok_abc123")
    click = Click.objects.get()
    body = {"utm_id": click.click_id, "amount": 5000, "transaction_id": "p-1", "status": "pending"}

    first = bot_api.post(WEBHOOK, body, format="json")
    again = bot_api.post(WEBHOOK, body, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert (Conversion.objects.count(), ConversionStatusChange.objects.count()) == (1, 1)
    assert not TikTokEvent.objects.filter(event="CompletePayment").exists()


def new_conversion(link, dedup_key: str) -> Conversion:
    now = timezone.now()
    return Conversion(public_id=secrets.token_urlsafe(12), dedup_key=dedup_key, source="webhook",
                      campaign=link.campaign, link=link, amount_minor=700, currency="USD", created_at=now,
                      updated_at=now, params={"a": "b"})  # fmt: skip


def test_conversion_insert_returns_false_on_a_taken_dedup_key(pixel_link):
    first, repeat = new_conversion(pixel_link, "tx:same"), new_conversion(pixel_link, "tx:same")

    assert conversion_insert(first) is True
    assert conversion_insert(repeat) is False
    assert repeat.pk is None and Conversion.objects.get().pk == first.pk
    assert ConversionStatusChange.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_when_the_event_cannot_be_written_neither_is_the_conversion(pixel_link, pixel):
    conversion = new_conversion(pixel_link, "tx:doomed")
    event = outbox_row(pixel=pixel, event_id="purchase_doomed", event="CompletePayment", source="conversion",
                       event_time=conversion.created_at, payload={"event": "CompletePayment"})  # fmt: skip
    event["event"] = "E" * 65  # longer than the event column: the event's INSERT fails

    with pytest.raises(DataError):
        conversion_insert(conversion, event=event)

    assert (Conversion.objects.count(), ConversionStatusChange.objects.count(), TikTokEvent.objects.count()) == (
        0, 0, 0)  # fmt: skip

"""An event is written three times (queued, claimed, sent). The outbox's pages are kept half empty, so the
claim and the send write the row's new version on the row's own page: PostgreSQL then logs the changed bytes
only, not the whole row with its payload. (The send finds room on the page once the claim has committed:
PostgreSQL then prunes the row's first version.)"""

import pytest
from django.db import connection

from tiktok_ads.dispatch import _mark_sent, claim_batch
from tiktok_ads.models import TikTokEvent
from tiktok_ads.outbox import event_queue


def pages() -> dict[int, int]:
    """{event id: the heap page its live version is on}."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, (ctid::text::point)[0]::int FROM tiktok_ads_tiktokevent")
        return dict(cursor.fetchall())


class Answer:
    code, message, request_id = 0, "OK", "req-1"


@pytest.mark.django_db(transaction=True)
def test_the_claim_and_the_send_leave_each_event_on_its_page(pixel):
    for number in range(120):  # about 500 bytes each: several pages
        event_queue(pixel=pixel, event_id=f"evt_{number}", event="ViewContent", event_time=pixel.created_at,
                    payload={"event": "ViewContent", "event_id": f"evt_{number}", "user": {"ua": "x" * 300}},
                    source="landing_view")  # fmt: skip
    inserted = pages()
    assert len(set(inserted.values())) > 2

    rows = claim_batch(pixel, 1000)
    claimed = pages()
    _mark_sent(rows, Answer())

    assert len(rows) == 120
    assert TikTokEvent.objects.filter(status="sent").count() == 120
    assert claimed == inserted
    assert pages() == inserted


@pytest.mark.django_db
def test_the_outbox_table_keeps_half_its_pages_free():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = 'tiktok_ads_tiktokevent'::regclass")
        assert cursor.fetchone()[0] == ["fillfactor=50"]

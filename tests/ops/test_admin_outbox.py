"""The admin's TikTok events list shows the outbox depth and its oldest queued event."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ops.models import TikTokAccountLink
from tiktok_ads.models import Pixel, TikTokEvent

pytestmark = pytest.mark.django_db


def test_outbox_line_on_the_events_list(admin_client):
    pixel = Pixel.objects.create(pixel_code="CPIX", access_token_encrypted="x")
    now = timezone.now()
    for number, status in enumerate(["queued", "retrying", "sending", "sent", "failed"]):
        TikTokEvent.objects.create(pixel=pixel, event_id=f"e{number}", event="ViewContent", event_time=now,
                                   payload={}, source="api", status=status, next_attempt_at=now)  # fmt: skip
    TikTokEvent.objects.filter(event_id="e0").update(created_at=now - timedelta(hours=2))

    page = admin_client.get("/admin/tiktok_ads/tiktokevent/").content.decode()

    line = page.split('<p id="outbox-summary">')[1].split("</p>")[0]
    assert line.startswith("Outbox: <strong>3</strong> waiting (1 queued, 1 retrying, 1 sending); oldest queued")
    assert "2\xa0hours ago" in line
    assert "e0" in page  # the list itself is still there


def test_empty_outbox_line(admin_client):
    page = admin_client.get("/admin/tiktok_ads/tiktokevent/").content.decode()
    assert "Outbox: <strong>0</strong> waiting (0 queued, 0 retrying, 0 sending); nothing queued." in page


def test_tiktok_account_links_are_listed_read_only(admin_client):
    TikTokAccountLink.objects.create(telegram_user_id=5, open_id="oid", display_name="Ana", linked_at=timezone.now())
    listing = admin_client.get("/admin/ops/tiktokaccountlink/")
    assert listing.status_code == 200 and "Ana" in listing.content.decode()
    assert admin_client.get("/admin/ops/tiktokaccountlink/add/").status_code == 403

"""Privacy: IP anonymisation before storage, retention, erasure of one person, tokens encrypted at rest."""

import hashlib
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from conversions import rollups
from conversions.models import BotStart, Click, Conversion, Lead
from conversions.selectors import totals_for
from tiktok_ads.models import TikTokEvent

pytestmark = pytest.mark.django_db


def test_truncated_ip_is_stored_but_geoip_used_the_full_address(visit, link, settings):
    settings.IP_ANONYMIZATION = "truncate"

    visit("/l/tiktok_abc123")
    visit("/l/tiktok_abc123", ip="2001:db8:1234:5678:9abc:def0:1234:5678")

    v4, v6 = Click.objects.order_by("id")
    assert (v4.ip, v4.country, v4.city) == ("95.123.45.0", "ES", "Sant Pere de Ribes")
    assert v6.ip == "2001:db8:1234::"
    assert v4.visitor_hash == hashlib.sha256(f"95.123.45.0|{v4.user_agent}".encode()).hexdigest()


def test_the_full_ip_is_stored_by_default(visit, link):
    visit("/l/tiktok_abc123")

    assert Click.objects.get().ip == "95.123.45.67"


def age(clicks, days: int):
    Click.objects.filter(pk__in=[click.pk for click in clicks]).update(
        created_at=clicks[0].created_at - timedelta(days=days)
    )


def test_purge_deletes_old_clicks_and_strips_those_a_conversion_needs(visit, bot_api, link):
    for _ in range(3):
        visit("/l/tiktok_abc123?sub1=secret")
    converted, unreferenced, recent = Click.objects.order_by("id")
    bot_api.post("/api/v1/utm/webhook/conversion", {"utm_id": converted.click_id, "amount": 700}, format="json")
    age([converted, unreferenced], days=100)
    rollups.rollup_refresh()
    clicks_before = totals_for(link=link).clicks

    call_command("purge_clicks", "--older-than", "90d")

    assert not Click.objects.filter(pk=unreferenced.pk).exists()
    kept = Click.objects.get(pk=converted.pk)
    assert (kept.ip, kept.user_agent, kept.sub1, kept.visitor_hash) == (None, "", "", "")
    assert kept.country == "ES"  # aggregates survive
    assert Click.objects.get(pk=recent.pk).ip == "95.123.45.67"
    assert Conversion.objects.get().amount_minor == 700
    assert totals_for(link=link).clicks == clicks_before == 3


def test_purge_leaves_clicks_the_rollup_has_not_counted(visit, link):
    visit("/l/tiktok_abc123")
    age(list(Click.objects.all()), days=100)  # old, but no rollup ran: its count lives only in the row

    call_command("purge_clicks", "--older-than", "90")

    assert Click.objects.count() == 1


@pytest.fixture
def person(visit, bot_api, pixel_link):
    visit("/l/tiktok_abc123?ttclid=abc")
    click = Click.objects.get()
    bot_api.post("/api/v1/utm/track/click", {"utm_id": click.click_id, "user_id": 555, "username": "gdpr_user",
                 "email": "gdpr@example.com"}, format="json")  # fmt: skip
    bot_api.post("/api/v1/utm/webhook/conversion", {"customer_id": "telegram_555", "amount": 4200,
                 "transaction_id": "t-gdpr"}, format="json")  # fmt: skip
    return click


@pytest.fixture
def pixel_link(db):
    from tests.factories import CampaignFactory, LandingPageFactory, TrafficSourceFactory
    from tiktok_ads.pixels import pixel_connect

    pixel, _ = pixel_connect(pixel_code="CPRIV1", access_token="tok-private-123456")
    return TrafficSourceFactory(campaign=CampaignFactory(pixel=pixel), utm_id="tiktok_abc123",
                                landing_page=LandingPageFactory())  # fmt: skip


def test_erasure_removes_the_person_and_keeps_the_money(management_api, person):
    TikTokEvent.objects.filter(event="ViewContent").update(status="sent")  # already left: stays as it was

    response = management_api.post("/api/v1/privacy/erase", {"telegram_user_id": 555}, format="json")

    assert response.status_code == 200
    assert response.json() == {"leads": 1, "conversions": 1, "clicks": 1, "tiktok_events": 2,
                               "audience_members": response.json()["audience_members"]}  # fmt: skip
    assert not Lead.objects.exists() and not BotStart.objects.exists()
    conversion = Conversion.objects.get()
    assert (conversion.customer_id, conversion.email_sha256, conversion.amount_minor) == ("erased", "", 4200)
    click = Click.objects.get(pk=person.pk)
    assert (click.ip, click.user_agent, click.ttclid) == (None, "", "")
    unsent = TikTokEvent.objects.exclude(event="ViewContent")
    assert {(event.status, event.last_message) for event in unsent} == {("skipped", "erased")}
    assert all(event.payload == {} for event in unsent)
    assert TikTokEvent.objects.get(event="ViewContent").status == "sent"


def test_erasure_by_customer_id_from_the_command(person, capsys):
    call_command("erase_person", "--customer-id", "telegram_555")

    assert "1 Telegram user, 1 conversions" in capsys.readouterr().out
    assert not Lead.objects.exists()


def test_erasure_needs_an_identifier_and_a_management_key(management_api, bot_api, person):
    assert management_api.post("/api/v1/privacy/erase", {}, format="json").status_code == 400
    assert bot_api.post("/api/v1/privacy/erase", {"telegram_user_id": 555}, format="json").status_code == 403
    assert Lead.objects.exists()


def test_access_tokens_are_encrypted_in_the_raw_column(db):
    from tiktok_ads.crypto import decrypt_token
    from tiktok_ads.pixels import pixel_connect

    pixel_connect(pixel_code="CRAW1", access_token="tok-raw-secret-987654")
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token_encrypted, token_hint FROM tiktok_ads_pixel WHERE pixel_code = 'CRAW1'")
        stored, hint = cursor.fetchone()

    assert "tok-raw-secret" not in stored and hint == "…7654"
    assert decrypt_token(stored) == "tok-raw-secret-987654"

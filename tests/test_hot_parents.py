"""The parents every row of a hot table shares (a viral link, its campaign, the pixel) carry no database
constraint from those rows: PostgreSQL checks a foreign key by locking the parent row, so every click,
start and conversion wrote a lock into the same few rows. The ORM still protects them."""

import psycopg
import pytest
from django.db import connection, transaction
from django.db.models import ProtectedError

from conversions.models import BotStart, Click, Conversion, Lead
from conversions.services import lead_start, webhook_conversion_record
from landing.services import Visit, click_record
from tests.conftest import IPHONE_SAFARI
from tiktok_ads.models import TikTokEvent
from tiktok_ads.pixels import pixel_connect

HOT_PARENTS = {
    Click: ("campaign", "link"),
    Lead: ("campaign", "link"),
    BotStart: ("campaign", "link"),
    Conversion: ("campaign", "link"),
    TikTokEvent: ("pixel",),
}


def constrained_columns(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT a.attname FROM pg_constraint c
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
               WHERE c.conrelid = %s::regclass AND c.contype = 'f'""",
            [table],
        )
        return {column for (column,) in cursor.fetchall()}


@pytest.mark.django_db
@pytest.mark.parametrize("model", HOT_PARENTS, ids=lambda model: model.__name__)
def test_no_database_constraint_to_a_hot_parent(model):
    hot = {model._meta.get_field(name).column for name in HOT_PARENTS[model]}
    every_fk = {field.column for field in model._meta.concrete_fields if field.is_relation}

    constrained = constrained_columns(model._meta.db_table)

    assert not hot & constrained
    assert constrained == every_fk - hot  # the other foreign keys keep theirs (a conversion's click, lead…)


def rows_a_second_session_cannot_lock(settings, rows: dict[str, int]) -> list[str]:
    """The tables whose row `rows[table]` another session finds locked (FOR UPDATE NOWAIT fails)."""
    url = settings.DATABASES["default"]
    locked = []
    with psycopg.connect(host=url["HOST"], port=url["PORT"] or 5432, user=url["USER"], dbname=url["NAME"],
                         password=url["PASSWORD"] or None, autocommit=True) as other:  # fmt: skip
        for table, pk in rows.items():
            try:
                with other.transaction():
                    other.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE NOWAIT", [pk])
            except psycopg.errors.LockNotAvailable:
                locked.append(table)
    return locked


@pytest.mark.django_db(transaction=True)
def test_a_click_a_start_and_a_conversion_leave_the_link_campaign_and_pixel_unlocked(settings, link):
    pixel, _ = pixel_connect(pixel_code="CHOTROW1", access_token="tok-hot-row-1234567890")
    link.campaign.pixel = pixel
    link.campaign.save()
    parents = {"conversions_trafficsource": link.pk, "conversions_campaign": link.campaign_id,
               "tiktok_ads_pixel": pixel.pk}  # fmt: skip
    visit = Visit(ip="95.123.45.67", user_agent=IPHONE_SAFARI, referrer="", landing_url="https://t.example/l/x",
                  method="GET")  # fmt: skip

    with transaction.atomic():
        connection.cursor().execute("SET CONSTRAINTS ALL IMMEDIATE")  # a constraint's lock is taken now
        click = click_record(campaign=link.campaign, link=link, visit=visit, shows_landing=True)
        assert TikTokEvent.objects.filter(pixel=pixel).count() == 1  # its ViewContent

        assert rows_a_second_session_cannot_lock(settings, parents) == []

    with transaction.atomic():
        connection.cursor().execute("SET CONSTRAINTS ALL IMMEDIATE")
        lead_start(token=click.click_id, telegram_user_id=123456789)
        webhook_conversion_record({"utm_id": click.click_id, "amount": 500, "currency": "USD"})
        assert (BotStart.objects.count(), Conversion.objects.count(), TikTokEvent.objects.count()) == (1, 1, 3)

        assert rows_a_second_session_cannot_lock(settings, parents) == []
        # the click, a parent with a constraint, is locked until the commit: what the others were
        assert rows_a_second_session_cannot_lock(settings, {"conversions_click": click.pk}) == ["conversions_click"]


@pytest.mark.django_db
def test_the_orm_still_protects_and_cascades(link, visit):
    pixel, _ = pixel_connect(pixel_code="CHOTROW2", access_token="tok-hot-row-2345678901")
    link.campaign.pixel = pixel
    link.campaign.save()
    visit("/l/tiktok_abc123")
    assert Click.objects.count() == 1 and TikTokEvent.objects.filter(pixel=pixel).count() == 1

    with pytest.raises(ProtectedError):
        link.delete()
    with pytest.raises(ProtectedError):
        link.campaign.delete()
    pixel.delete()

    assert TikTokEvent.objects.count() == 0

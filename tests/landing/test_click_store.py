"""The click INSERT (landing.click_store): every field written as the ORM would, prepared once per
connection, unique decided by the database; and the backend's health check without a round trip."""

import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from conversions.models import Click
from landing.click_store import click_insert
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

VISITOR = "a" * 64


def full_click(on_link, **changes) -> Click:
    """A click with every field set to something other than its default."""
    values = {
        "click_id": "store-1", "campaign": on_link.campaign, "link": on_link,
        "created_at": timezone.now().replace(microsecond=123456), "ip": "95.123.45.0",
        "user_agent": "UA", "referrer": "https://www.tiktok.com/", "landing_url": "https://t.example/l/x?a=1",
        "device_type": "mobile", "os": "iOS", "browser": "Mobile Safari", "country": "ES", "city": "Ribes",
        "is_bot": False, "bot_reason": "", "is_unique": True, "served_landing": True, "visitor_hash": VISITOR,
        "utm_source": "tiktok", "utm_medium": "bio", "utm_campaign": "c", "utm_content": "v", "utm_term": "t",
        "subid": "s", "sub1": "1", "sub2": "2", "sub3": "3", "sub4": "4", "sub5": "5", "ttclid": "E.C.P",
        "ttp": "ttp", "extra_params": {"foo": "bar", "quote": 'it\'s "x"'},
    }  # fmt: skip
    values.update(changes)
    return Click(**values)


def test_every_field_is_stored_as_given(link):
    click = full_click(link)

    click_insert(click)

    stored = Click.objects.get()
    assert stored.pk == click.pk and not click._state.adding
    for field in Click._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(click, field.attname), field.name


def test_the_insert_is_prepared_once_on_the_connection(link):
    for number in range(3):
        click_insert(full_click(link, click_id=f"prep-{number}"))

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s",
                       ['INSERT INTO "conversions_click"%'])  # fmt: skip
        prepared = [row[0] for row in cursor.fetchall()]
    assert len(prepared) == 1
    assert Click.objects.count() == 3


def test_unique_is_the_visitors_first_click_on_the_link_within_the_window(link, settings):
    settings.UNIQUE_CLICK_WINDOW_HOURS = 24
    now = timezone.now()
    click_insert(full_click(link, click_id="old", created_at=now - timedelta(hours=27)))  # before the window
    first = full_click(link, click_id="first", created_at=now - timedelta(hours=2))
    again = full_click(link, click_id="again", created_at=now)
    bot = full_click(link, click_id="bot", created_at=now, visitor_hash="b" * 64, is_bot=True, is_unique=False)
    after_bot = full_click(link, click_id="after-bot", created_at=now, visitor_hash="b" * 64)
    for click in (first, again, bot, after_bot):
        click_insert(click)

    assert (first.is_unique, again.is_unique, bot.is_unique, after_bot.is_unique) == (True, False, False, True)
    assert dict(Click.objects.values_list("click_id", "is_unique")) == {
        "old": True, "first": True, "again": False, "bot": False, "after-bot": True}  # fmt: skip


def test_the_window_counts_from_the_unique_click_not_the_last_one(link, settings):
    """As a key set once with the window as its lifetime: repeats inside it do not extend it."""
    settings.UNIQUE_CLICK_WINDOW_HOURS = 24
    now = timezone.now()
    click_insert(full_click(link, click_id="u", created_at=now - timedelta(hours=30)))
    repeat = full_click(link, click_id="r", created_at=now - timedelta(hours=10), is_unique=True)
    click_insert(repeat)  # 20 h after the unique one: not unique
    later = full_click(link, click_id="l", created_at=now)  # 30 h after it: unique again
    click_insert(later)

    assert (repeat.is_unique, later.is_unique) == (False, True)


def test_clicks_without_a_link_are_unique_per_campaign(link):
    other = CampaignFactory()
    on_link = full_click(link, click_id="on-link")
    classic = full_click(link, click_id="classic", link=None)
    classic_again = full_click(link, click_id="classic-again", link=None)
    other_campaign = full_click(link, click_id="other", link=None, campaign=other)
    for click in (on_link, classic, classic_again, other_campaign):
        click_insert(click)

    assert [c.is_unique for c in (on_link, classic, classic_again, other_campaign)] == [True, True, False, True]


def terminate_from_the_server(settings) -> None:
    """Close this test's database connection from the server side (as a restart would), and wait until its
    socket shows it."""
    url = settings.DATABASES["default"]
    with psycopg.connect(host=url["HOST"], port=url["PORT"] or 5432, user=url["USER"], dbname=url["NAME"],
                         password=url["PASSWORD"] or None, autocommit=True) as admin:  # fmt: skip
        admin.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_health_check_sees_a_connection_the_server_closed_without_asking_it(settings):
    connection.ensure_connection()
    assert connection.is_usable()
    pid = connection.connection.info.backend_pid

    terminate_from_the_server(settings)

    assert not connection.is_usable()
    connection.close()
    connection.ensure_connection()  # what the next request does: a new connection
    assert connection.is_usable() and connection.connection.info.backend_pid != pid


def event_for(click, pixel_id: int) -> dict:
    from tiktok_ads.models import Pixel
    from tiktok_ads.outbox import outbox_row

    payload = {"event": "ViewContent", "event_id": f"view_{click.click_id}"}
    return outbox_row(pixel=Pixel(pk=pixel_id), event_id=f"view_{click.click_id}", event="ViewContent",
                      event_time=click.created_at, payload=payload, source="landing_view")  # fmt: skip


def test_a_click_and_its_event_are_one_statement(link):
    from tiktok_ads.models import TikTokEvent
    from tiktok_ads.pixels import pixel_connect

    pixel, _ = pixel_connect(pixel_code="CSTORE1", access_token="tok-store-1234567890")
    click = full_click(link, click_id="with-event")

    click_insert(click, event=event_for(click, pixel.pk))

    event = TikTokEvent.objects.get()
    assert Click.objects.get().pk == click.pk
    assert (event.pixel_id, event.event_id, event.status, event.source) == (
        pixel.pk, "view_with-event", "queued", "landing_view")  # fmt: skip
    assert event.payload == {"event": "ViewContent", "event_id": "view_with-event"}


@pytest.mark.django_db(transaction=True)
def test_when_the_event_cannot_be_written_the_click_is_not_either(link):
    from django.db import DataError

    from tiktok_ads.models import TikTokEvent

    click = full_click(link, click_id="doomed")
    event = event_for(click, pixel_id=987654) | {"event": "E" * 65}  # longer than the event column
    with pytest.raises(DataError):
        click_insert(click, event=event)

    assert Click.objects.count() == 0 and TikTokEvent.objects.count() == 0


@pytest.mark.parametrize("analyzed", [False, True])
@pytest.mark.parametrize("place", ["link", "campaign"])
def test_the_unique_check_finds_the_visitor_through_the_visitor_index(link, place, analyzed):
    """Whatever the statistics say (none yet on a new install), the check must not walk a time range."""
    from landing.click_store import EARLIER_UNIQUE_SQL

    now = timezone.now()
    Click.objects.bulk_create(
        full_click(
            link,
            click_id=f"plan-{n}",
            visitor_hash=f"{n:064x}",
            created_at=now - timedelta(minutes=n),
            link=link if n % 2 else None,
        )  # fmt: skip
        for n in range(500)
    )
    numbered = EARLIER_UNIQUE_SQL[place]
    for number in (1, 2, 3):
        numbered = numbered.replace("%s", f"${number}", 1)
    with connection.cursor() as cursor:
        if analyzed:
            cursor.execute("ANALYZE conversions_click")
        cursor.execute(f"PREPARE unique_check(bigint, varchar, timestamptz) AS {numbered}")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        place_id = link.pk if place == "link" else link.campaign_id
        cursor.execute("EXPLAIN EXECUTE unique_check(%s, %s, %s)", [place_id, VISITOR, now - timedelta(hours=24)])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE unique_check")
    assert "click_visitor_idx" in plan, plan


def test_statements_run_on_one_cursor_for_as_long_as_the_connection_lasts(link):
    click_insert(full_click(link, click_id="cursor-1"))
    first = connection._statement_cursor
    click_insert(full_click(link, click_id="cursor-2", visitor_hash="b" * 64))

    assert connection._statement_cursor is first and first.connection is connection.connection
    assert Click.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_click_on_a_connection_the_server_closed_is_written_on_a_new_one(settings):
    from django.db import close_old_connections

    from tests.factories import TrafficSourceFactory

    link = TrafficSourceFactory()
    click_insert(full_click(link, click_id="before"))
    pid, cursor = connection.connection.info.backend_pid, connection._statement_cursor
    terminate_from_the_server(settings)

    close_old_connections()  # what the next request does first (request_started)
    click_insert(full_click(link, click_id="after", visitor_hash="b" * 64))

    assert connection.connection.info.backend_pid != pid and connection._statement_cursor is not cursor
    assert sorted(Click.objects.values_list("click_id", flat=True)) == ["after", "before"]

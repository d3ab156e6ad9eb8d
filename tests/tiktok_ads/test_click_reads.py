"""conversions.click_reads: the click a conversion names, with its link, campaign and pixel, as the ORM
would build them, in one query."""

import pytest
from django.utils import timezone

from conversions.click_reads import click_with_campaign
from conversions.models import Click
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def same_fields(read, orm) -> None:
    assert type(read) is type(orm)
    for field in orm._meta.concrete_fields:
        assert getattr(read, field.attname) == getattr(orm, field.attname), field.name


def test_a_click_comes_with_its_link_campaign_and_pixel_in_one_query(pixel_link, pixel, django_assert_num_queries):
    pixel.goal_events = {"purchase": "CompletePayment", "deposit": "AddPaymentInfo"}
    pixel.save()
    click = Click.objects.create(click_id="read-1", campaign=pixel_link.campaign, link=pixel_link,
                                 created_at=timezone.now(), ip="95.123.45.0", extra_params={"foo": "bar"})  # fmt: skip

    with django_assert_num_queries(1):
        read = click_with_campaign("read-1")
        related = (read.link, read.campaign, read.campaign.pixel, read.link.campaign)

    same_fields(read, click)
    same_fields(related[0], pixel_link)
    same_fields(related[1], pixel_link.campaign)
    same_fields(related[2], pixel)
    assert related[3] is related[1]
    assert read.extra_params == {"foo": "bar"} and related[2].goal_events["deposit"] == "AddPaymentInfo"
    unrecorded = click_with_campaign("read-1")  # outside the recording: the same query, not through the test
    same_fields(unrecorded, click)
    same_fields(unrecorded.campaign.pixel, pixel)


def test_a_click_without_link_or_pixel(django_assert_num_queries):
    campaign = CampaignFactory()
    click = Click.objects.create(click_id="read-2", campaign=campaign, created_at=timezone.now())

    with django_assert_num_queries(1):
        read = click_with_campaign("read-2")
        assert read.link is None and read.campaign.pixel is None

    same_fields(read, click)
    same_fields(read.campaign, campaign)


def test_with_the_settings_cached_a_click_is_read_alone_and_its_link_campaign_and_pixel_once(
    pixel_link, pixel, settings_clock, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    pixel.goal_events = {"purchase": "CompletePayment", "deposit": "AddPaymentInfo"}
    pixel.save()
    now = timezone.now()
    clicks = [Click.objects.create(click_id=f"cached-{n}", campaign=pixel_link.campaign, link=pixel_link,
                                   created_at=now, extra_params={"n": n}) for n in (1, 2)]  # fmt: skip

    with CaptureQueriesContext(connection) as first_queries:
        first = click_with_campaign("cached-1")
    with django_assert_num_queries(1):  # the click alone: its link, campaign and pixel are cached
        second = click_with_campaign("cached-2")

    click_read, version_look, link_read = (query["sql"] for query in first_queries.captured_queries)
    assert click_read.startswith('SELECT c."id"') and "conversions_trafficsource" not in click_read
    assert "click_settings_version" in version_look and link_read.endswith(f'WHERE l."id" = {pixel_link.pk}')
    for read, click in zip((first, second), clicks, strict=True):
        same_fields(read, click)
        same_fields(read.link, pixel_link)
        same_fields(read.campaign, pixel_link.campaign)
        same_fields(read.campaign.pixel, pixel)
        assert read.link.campaign is read.campaign
    assert second.campaign.pixel.goal_events["deposit"] == "AddPaymentInfo" and second.extra_params == {"n": 2}


def test_with_the_settings_cached_a_click_without_link_and_its_latest_lead(settings_clock, django_assert_num_queries):
    from conversions.click_reads import latest_lead
    from conversions.models import Lead

    campaign = CampaignFactory()
    now = timezone.now()
    click = Click.objects.create(click_id="cached-3", campaign=campaign, created_at=now)
    lead = Lead.objects.create(telegram_user_id=7, click=click, attributed_at=now, username="seven")
    click_with_campaign("cached-3")

    with django_assert_num_queries(1):
        read = click_with_campaign("cached-3", with_latest_lead=True)
        assert read.link is None and read.campaign.pixel is None
        same_fields(latest_lead(read), lead)
    same_fields(read.campaign, campaign)


def test_with_the_settings_cached_a_pixel_change_reaches_the_intake_after_the_interval(
    pixel_link, pixel, settings_clock
):
    from tiktok_ads.models import Pixel

    Click.objects.create(click_id="cached-4", campaign=pixel_link.campaign, link=pixel_link, created_at=timezone.now())
    assert click_with_campaign("cached-4").campaign.pixel.test_mode is False
    Pixel.objects.filter(pk=pixel.pk).update(test_mode=True)  # no model signal: the trigger sees it

    settings_clock(1)
    assert click_with_campaign("cached-4").campaign.pixel.test_mode is False  # within the interval
    settings_clock(1.5)
    assert click_with_campaign("cached-4").campaign.pixel.test_mode is True


def test_with_the_settings_cached_a_click_whose_campaign_is_gone_is_none(settings_clock):
    from django.db import connection

    campaign = CampaignFactory()
    Click.objects.create(click_id="cached-5", campaign=campaign, created_at=timezone.now())
    with connection.cursor() as cursor:  # clicks keep no constraint to their campaign (tracker.db.HOT_PARENT)
        cursor.execute("DELETE FROM conversions_campaign WHERE id = %s", [campaign.pk])

    assert click_with_campaign("cached-5") is None


def test_an_unknown_click_id_is_none():
    assert click_with_campaign("nope") is None


def test_the_latest_lead_read_with_the_click(django_assert_num_queries):
    from datetime import timedelta

    from conversions.click_reads import latest_lead
    from conversions.models import Lead

    campaign = CampaignFactory()
    now = timezone.now()
    click = Click.objects.create(click_id="read-5", campaign=campaign, created_at=now)
    Lead.objects.create(telegram_user_id=1, click=click, attributed_at=now - timedelta(hours=1))
    newest = Lead.objects.create(telegram_user_id=2, click=click, attributed_at=now, username="newest")
    alone = Click.objects.create(click_id="read-6", campaign=campaign, created_at=now)

    with django_assert_num_queries(1):
        read = click_with_campaign("read-5", with_latest_lead=True)
        lead = latest_lead(read)
    same_fields(read, click)
    same_fields(lead, newest)
    with django_assert_num_queries(1):
        assert latest_lead(click_with_campaign(alone.click_id, with_latest_lead=True)) is None


def test_the_latest_lead_of_a_click():
    from datetime import timedelta

    from conversions.click_reads import latest_lead
    from conversions.models import Lead

    campaign = CampaignFactory()
    now = timezone.now()
    click = Click.objects.create(click_id="read-3", campaign=campaign, created_at=now)
    other = Click.objects.create(click_id="read-4", campaign=campaign, created_at=now)
    assert latest_lead(click) is None
    Lead.objects.create(telegram_user_id=1, click=click, attributed_at=now - timedelta(hours=1))
    newest = Lead.objects.create(telegram_user_id=2, click=click, attributed_at=now, username="newest")
    Lead.objects.create(telegram_user_id=3, click=other, attributed_at=now + timedelta(hours=1))

    read = latest_lead(click)

    same_fields(read, newest)
    assert read.username == "newest" and read.customer_id == "telegram_2"


@pytest.mark.parametrize("analyzed", [False, True])
@pytest.mark.parametrize("statement", ["CLICK_SQL", "CLICK_WITH_LEAD_SQL"])
def test_the_click_is_found_through_its_unique_index_whatever_the_statistics(analyzed, statement):
    from django.db import connection

    from conversions import click_reads
    from conversions.models import Lead

    campaign = CampaignFactory()
    now = timezone.now()
    clicks = Click.objects.bulk_create(
        Click(click_id=f"plan-{n}", campaign=campaign, created_at=now) for n in range(2000)
    )
    Lead.objects.bulk_create(Lead(telegram_user_id=n, click=clicks[n], attributed_at=now) for n in range(1, 2000))
    with connection.cursor() as cursor:
        if analyzed:
            cursor.execute("ANALYZE conversions_click")
            cursor.execute("ANALYZE conversions_lead")
        cursor.execute("PREPARE click_lookup(varchar) AS " + getattr(click_reads, statement).replace("%s", "$1"))
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("EXPLAIN EXECUTE click_lookup('plan-7')")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE click_lookup")
    clicks_scans = [line for line in plan.splitlines() if "on conversions_click" in line]
    assert len(clicks_scans) == 1 and "click_click_id_uniq" in clicks_scans[0], plan
    lead_scans = [line for line in plan.splitlines() if "on conversions_lead" in line]
    if statement == "CLICK_WITH_LEAD_SQL":
        assert "conversions_lead_click_id" in plan, plan
        assert all("conversions_lead_click_id" in line or "Bitmap Heap Scan" in line for line in lead_scans), plan
    else:
        assert lead_scans == [], plan


@pytest.mark.parametrize("analyzed", [False, True])
def test_the_latest_lead_is_found_through_the_click_index_whatever_the_statistics(analyzed):
    from django.db import connection

    from conversions.click_reads import LATEST_LEAD_SQL
    from conversions.models import Lead

    campaign = CampaignFactory()
    click = Click.objects.create(click_id="lead-plan", campaign=campaign, created_at=timezone.now())
    Lead.objects.bulk_create(Lead(telegram_user_id=n, click=click if n % 100 == 0 else None) for n in range(1, 2001))
    with connection.cursor() as cursor:
        if analyzed:
            cursor.execute("ANALYZE conversions_lead")
        cursor.execute("PREPARE lead_lookup(bigint) AS " + LATEST_LEAD_SQL.replace("%s", "$1"))
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("EXPLAIN EXECUTE lead_lookup(%s)", [click.pk])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE lead_lookup")
    assert "conversions_lead_click_id" in plan and "Seq Scan" not in plan, plan

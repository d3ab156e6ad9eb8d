"""landing.selectors.active_link: the link a click opens, with its campaign, pixel and landing page, read by
one prepared statement into the instances the ORM would build."""

import pytest

from conversions.models import Campaign, TrafficSource
from landing.selectors import ACTIVE_LINK_SQL, active_link
from tests.factories import CampaignFactory, LandingPageFactory, TrafficSourceFactory
from tiktok_ads.pixels import pixel_connect

pytestmark = pytest.mark.django_db


def same_fields(read, orm) -> None:
    assert type(read) is type(orm)
    for field in orm._meta.concrete_fields:
        assert getattr(read, field.attname) == getattr(orm, field.attname), field.name


def test_the_link_comes_with_its_campaign_pixel_and_page_in_one_query(django_assert_num_queries):
    pixel, _ = pixel_connect(pixel_code="READ0LINK000000001", access_token="token-read-link", name="Main")
    pixel.goal_events = {"purchase": "CompletePayment"}
    pixel.save()
    link = TrafficSourceFactory(utm_id="read_link", campaign=CampaignFactory(pixel=pixel),
                                landing_page=LandingPageFactory(redirect_delay_s=5))  # fmt: skip
    orm = TrafficSource.objects.select_related("campaign__pixel", "landing_page").get(pk=link.pk)

    with django_assert_num_queries(1):
        read = active_link("read_link")
        related = (read.campaign, read.campaign.pixel, read.landing_page)

    same_fields(read, orm)
    same_fields(related[0], orm.campaign)
    same_fields(related[1], orm.campaign.pixel)
    same_fields(related[2], orm.landing_page)
    assert related[1].goal_events == {"purchase": "CompletePayment"} and related[2].redirect_delay_s == 5


def test_a_link_without_pixel_or_page(django_assert_num_queries):
    TrafficSourceFactory(utm_id="bare_link", landing_page=None)

    with django_assert_num_queries(1):
        read = active_link("bare_link")
        assert read.campaign.pixel is None and read.landing_page is None


def test_paused_links_and_links_of_paused_campaigns_are_not_active():
    TrafficSourceFactory(utm_id="paused_link", is_active=False)
    TrafficSourceFactory(utm_id="paused_campaign", campaign=CampaignFactory(status=Campaign.Status.PAUSED))

    assert active_link("paused_link") is None
    assert active_link("paused_campaign") is None
    assert active_link("no_such_link") is None


@pytest.mark.parametrize("analyzed", [False, True])
def test_the_link_is_found_through_its_unique_index_whatever_the_statistics(analyzed):
    from django.db import connection

    campaign = CampaignFactory()
    TrafficSource.objects.bulk_create(
        TrafficSource(utm_id=f"plan_{n}", campaign=campaign, telegram_bot="demo_bot") for n in range(2000)
    )
    with connection.cursor() as cursor:
        if analyzed:
            cursor.execute("ANALYZE conversions_trafficsource")
        statement = ACTIVE_LINK_SQL.replace("%s", "$1", 1).replace("%s", "$2", 1)
        cursor.execute("PREPARE link_lookup(varchar, varchar) AS " + statement)
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("EXPLAIN EXECUTE link_lookup('plan_7', 'active')")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE link_lookup")
    link_scans = [line for line in plan.splitlines() if "on conversions_trafficsource" in line]
    assert len(link_scans) == 1 and "utm_id" in link_scans[0] and "Seq Scan" not in link_scans[0], plan

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


def test_an_unknown_click_id_is_none():
    assert click_with_campaign("nope") is None


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

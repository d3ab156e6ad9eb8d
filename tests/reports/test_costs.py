"""Costs: daily spend and cost per click, the most specific winning; profit and ROI from them."""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from conversions.models import Click
from reports.models import CostEntry, CostPerClick
from reports.rollups import report_rollup_refresh
from reports.selectors import ReportQuery, report_rows
from tests.factories import TrafficSourceFactory
from tests.reports.conftest import add_conversion, settle_and_roll_up

pytestmark = pytest.mark.django_db
DAY = date(2025, 3, 10)
UTC_ZONE = ZoneInfo("UTC")


def clicks_on(link, day, count, *, campaign=None, country="ES", hour=12):
    moment = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)
    prefix = f"{link.utm_id}-{day}-{hour}-{country}"
    return Click.objects.bulk_create(
        Click(click_id=f"{prefix}-{n}", campaign=campaign or link.campaign, link=link, created_at=moment,
              country=country)
        for n in range(count)
    )  # fmt: skip


@pytest.fixture
def costed(campaign):
    first = TrafficSourceFactory(campaign=campaign, utm_id="first", creative="video_a")
    second = TrafficSourceFactory(campaign=campaign, utm_id="second", creative="video_b")
    clicks_on(first, DAY, 2, country="ES")
    clicks_on(first, DAY, 1, country="UA")
    clicks_on(second, DAY, 1)
    clicks_on(first, DAY + timedelta(days=1), 2)
    CostEntry.objects.create(campaign=campaign, link=first, day=DAY, amount_minor=1200)  # 4.00 a click
    CostPerClick.objects.create(campaign=campaign, link=second, cost_per_click=Decimal("0.5"), starts_on=DAY)
    CostEntry.objects.create(campaign=campaign, day=DAY, amount_minor=1000)  # no click of its own to carry it
    CostPerClick.objects.create(campaign=campaign, cost_per_click=Decimal("0.10"), starts_on=DAY)
    first_click = Click.objects.filter(link=first).order_by("id").first()
    add_conversion(click=first_click, created_at=datetime(2025, 3, 10, 13, tzinfo=UTC), amount_minor=2500)
    settle_and_roll_up()
    return first, second


def report(dimensions, **kwargs):
    query = ReportQuery.for_days(date_from=DAY, date_to=DAY + timedelta(days=1), tz=UTC_ZONE, dimensions=dimensions,
                                 **kwargs)  # fmt: skip
    return report_rows(query)


def test_the_most_specific_cost_wins(costed):
    first, second = costed

    rows = {row.key: row.cost_minor for row in report(("link", "day")).rows}

    assert rows == {
        (first.pk, DAY): pytest.approx(1200),  # the link's spend
        (second.pk, DAY): pytest.approx(50),  # the link's cost per click
        (None, DAY): pytest.approx(1000),  # the campaign's spend: no click without a cost of its own carries it
        (first.pk, DAY + timedelta(days=1)): pytest.approx(20),  # the campaign's cost per click, 2 × 0.10
    }


def test_spend_is_spread_over_clicks_for_other_dimensions(costed):
    rows = {row.key[0]: row for row in report(("country",)).rows}

    assert rows["UA"].cost_minor == pytest.approx(400)  # 1 of the first link's 3 clicks that day
    assert rows["ES"].cost_minor == pytest.approx(800 + 50 + 20)
    assert rows[""].cost_minor == pytest.approx(1000)
    assert sum(row.cost_minor for row in rows.values()) == pytest.approx(2270)


def test_profit_roi_and_epc(costed):
    first, _ = costed

    totals = report((), link_ids=(first.pk,)).totals

    assert totals.cost_minor == pytest.approx(1220)
    assert totals.revenue_minor == 2500
    assert totals.profit_minor == pytest.approx(1280)
    assert totals.roi == pytest.approx(100 * 1280 / 1220)
    assert totals.epc_minor == pytest.approx(2500 / 5)
    assert totals.clicks == 5


def test_a_link_filter_gets_its_share_of_campaign_spend(campaign):
    first = TrafficSourceFactory(campaign=campaign, utm_id="first")
    second = TrafficSourceFactory(campaign=campaign, utm_id="second")
    clicks_on(first, DAY, 3)
    clicks_on(second, DAY, 1)
    CostEntry.objects.create(campaign=campaign, day=DAY, amount_minor=800)
    report_rollup_refresh()

    assert report((), link_ids=(second.pk,)).totals.cost_minor == pytest.approx(200)
    assert report((), campaign_ids=(campaign.pk,)).totals.cost_minor == pytest.approx(800)


def test_no_costs_means_no_roi(ledger):
    totals = report_rows(
        ReportQuery(start=datetime(2025, 3, 1, tzinfo=UTC), end=datetime(2025, 3, 5, tzinfo=UTC))
    ).totals

    assert totals.cost_minor == 0 and totals.roi is None and totals.profit_minor == totals.revenue_minor


def test_hourly_and_daily_paths_price_alike(costed):
    first, second = costed
    by_day = {row.key[0]: row.cost_minor for row in report(("link",)).rows}
    by_hour = defaultdict(float)
    for row in report(("link", "hour")).rows:  # the hourly tables, priced by the database
        by_hour[row.key[0]] += row.cost_minor

    assert by_hour == pytest.approx(by_day)
    assert by_day == pytest.approx({first.pk: 1220, second.pk: 50, None: 1000})
    by_creative = {row.key[0]: row.cost_minor for row in report(("creative",)).rows}
    assert by_creative == pytest.approx({"video_a": 1220, "video_b": 50, "": 1000})


def test_rates_of_hourly_priced_rows_are_numbers(costed, admin_client):
    totals = report(("country", "hour")).totals

    assert isinstance(totals.clicks, int) and totals.cr == pytest.approx(100 * 1 / 6)
    params = {"date_from": str(DAY), "date_to": str(DAY + timedelta(days=1)), "tz": "Europe/Kyiv",
              "group_1": "country", "group_2": "hour"}  # fmt: skip
    page = admin_client.get("/admin/reports/", params)
    assert page.status_code == 200 and "22.70" in page.content.decode()  # the total cost

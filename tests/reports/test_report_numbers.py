"""The report's numbers equal those counted from the raw rows of a generated ledger."""

import os
import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conversions.models import Click, Conversion
from reports.rollups import report_rollup_reconcile, report_rollup_refresh
from reports.selectors import ReportQuery, report_rows, report_table
from tests.reports.conftest import add_conversion, settle_and_roll_up

pytestmark = pytest.mark.django_db


def dimension_of(name, *, moment, click, link, campaign_id, tz):
    local = moment.astimezone(tz)
    if name == "campaign":
        return campaign_id
    if name == "link":
        return link.pk if link else None
    if name == "creative":
        return link.creative if link else ""
    if name == "day":
        return local.date()
    if name == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    if name == "hour_of_day":
        return local.hour
    if name == "utm_content":
        return (click.utm_content if click else "") or (link.utm_content if link else "")
    column = {"device": "device_type"}.get(name, name)
    return getattr(click, column) if click else ""


def counted_from_raw(ledger, dimensions, *, start, end, tz):
    groups = defaultdict(lambda: defaultdict(int))
    ttc = defaultdict(list)

    def key(moment, click, link, campaign_id):
        return tuple(dimension_of(name, moment=moment, click=click, link=link, campaign_id=campaign_id, tz=tz)
                     for name in dimensions)  # fmt: skip

    for click in ledger.clicks:
        if start <= click.created_at < end:
            numbers = groups[key(click.created_at, click, click.link, click.campaign_id)]
            numbers["clicks"] += not click.is_bot
            numbers["unique_clicks"] += not click.is_bot and click.is_unique
            numbers["bot_hits"] += click.is_bot
            numbers["landing_views"] += click.served_landing
    for bot_start in ledger.starts:
        if start <= bot_start.created_at < end:
            groups[key(bot_start.created_at, bot_start.click, bot_start.link, bot_start.campaign_id)]["starts"] += 1
    for conversion in Conversion.objects.select_related("click", "link"):
        if not start <= conversion.created_at < end:
            continue
        group_key = key(conversion.created_at, conversion.click, conversion.link, conversion.campaign_id)
        numbers = groups[group_key]
        if conversion.status == "approved":
            numbers["conversions"] += 1
            numbers["revenue_minor"] += conversion.amount_minor
            numbers[f"goal:{conversion.goal}"] += 1
            if conversion.time_to_conversion_s is not None:
                ttc[group_key].append(conversion.time_to_conversion_s)
        else:
            numbers[conversion.status] += 1
    return groups, ttc


def assert_report_equals_raw(ledger, dimensions, *, start, end, tz):
    expected, ttc = counted_from_raw(ledger, dimensions, start=start, end=end, tz=tz)
    result = report_rows(ReportQuery(start=start, end=end, dimensions=tuple(dimensions), tz=tz))

    got = {row.key: row for row in result.rows}
    assert set(got) == set(expected)
    for key, numbers in expected.items():
        row = got[key]
        for name in ("clicks", "unique_clicks", "bot_hits", "landing_views", "starts", "conversions", "pending",
                     "rejected", "revenue_minor"):  # fmt: skip
            assert getattr(row, name) == numbers.get(name, 0), (key, name)
        assert row.goals == {name[5:]: n for name, n in numbers.items() if name.startswith("goal:")}
        if ttc[key]:
            assert row.avg_ttc_s == pytest.approx(statistics.mean(ttc[key]))
            assert row.median_ttc_s == pytest.approx(statistics.median(ttc[key]))
        else:
            assert row.avg_ttc_s is None and row.median_ttc_s is None
    assert result.totals.clicks == sum(numbers.get("clicks", 0) for numbers in expected.values())


@pytest.mark.parametrize(
    "dimensions",
    [
        ["campaign", "day"],
        ["link"],
        ["creative", "utm_content"],
        ["subid", "country", "city"],
        ["device", "os", "browser"],
        ["hour"],
        ["hour_of_day", "campaign"],
        [],
    ],
)
def test_report_equals_raw_counts(ledger, dimensions):
    start = datetime(2025, 3, 1, tzinfo=UTC)
    assert_report_equals_raw(ledger, dimensions, start=start, end=start + timedelta(days=4), tz=ZoneInfo("UTC"))


@pytest.mark.parametrize("zone", ["Europe/Kyiv", "America/New_York", "Asia/Tokyo"])
def test_days_of_the_marketers_time_zone(ledger, zone):
    tz = ZoneInfo(zone)
    query = ReportQuery.for_days(date_from=date(2025, 3, 1), date_to=date(2025, 3, 2), tz=tz, dimensions=("day",))

    assert query.start == datetime(2025, 3, 1, tzinfo=tz).astimezone(UTC)
    assert_report_equals_raw(ledger, ["day", "country"], start=query.start, end=query.end, tz=tz)
    assert {row.key[0] for row in report_rows(query).rows} <= {date(2025, 3, 1), date(2025, 3, 2)}


def test_a_click_one_second_before_local_midnight_counts_on_the_day_before(campaign, link):
    kyiv = ZoneInfo("Europe/Kyiv")  # UTC+2 in winter
    Click.objects.create(click_id="late", campaign=campaign, link=link,
                         created_at=datetime(2025, 1, 10, 23, 59, 59, tzinfo=kyiv))  # fmt: skip
    Click.objects.create(click_id="early", campaign=campaign, link=link,
                         created_at=datetime(2025, 1, 11, 0, 0, 0, tzinfo=kyiv))  # fmt: skip
    report_rollup_refresh()

    def by_day(tz):
        query = ReportQuery.for_days(date_from=date(2025, 1, 10), date_to=date(2025, 1, 11), tz=tz,
                                     dimensions=("day",))  # fmt: skip
        return {row.key[0]: row.clicks for row in report_rows(query).rows}

    assert by_day(kyiv) == {date(2025, 1, 10): 1, date(2025, 1, 11): 1}
    assert by_day(ZoneInfo("UTC")) == {date(2025, 1, 10): 2}  # 21:59:59 and 22:00 UTC


def test_an_empty_range_is_an_empty_report(ledger):
    query = ReportQuery.for_days(date_from=date(2024, 1, 1), date_to=date(2024, 1, 31), tz=ZoneInfo("UTC"),
                                 dimensions=("campaign", "day"))  # fmt: skip

    result = report_rows(query)
    table = report_table(result)

    assert result.rows == [] and table.rows == [] and table.total_rows == 0
    assert table.totals[0] == "Total" and table.totals[2] == "0"
    assert result.totals.cr is None and result.totals.roi is None and result.totals.median_ttc_s is None


def test_a_status_change_moves_the_numbers(ledger):
    start = datetime(2025, 3, 1, tzinfo=UTC)
    conversion = Conversion.objects.filter(status="approved", click__isnull=False).first()
    before = report_rows(ReportQuery(start=start, end=start + timedelta(days=5))).totals

    Conversion.objects.filter(pk=conversion.pk).update(status="rejected")
    from conversions.models import ConversionStatusChange

    ConversionStatusChange.objects.create(conversion=conversion, old_status="approved", new_status="rejected",
                                          new_amount_minor=conversion.amount_minor)  # fmt: skip
    settle_and_roll_up()

    after = report_rows(ReportQuery(start=start, end=start + timedelta(days=5))).totals
    assert after.conversions == before.conversions - 1
    assert after.rejected == before.rejected + 1
    assert after.revenue_minor == before.revenue_minor - conversion.amount_minor


def test_refresh_counts_each_row_once_and_reconcile_repairs_drift(ledger):
    from reports.models import TrafficDay, TrafficDetailHour, TrafficHour

    start = datetime(2025, 3, 1, tzinfo=UTC)
    before = report_rows(ReportQuery(start=start, end=start + timedelta(days=5), dimensions=("country",)))
    assert report_rollup_refresh() == {"clicks": 0, "starts": 0, "conversions": 0}
    TrafficHour.objects.filter(hour__date=date(2025, 3, 2)).update(clicks=999)
    TrafficDay.objects.filter(day=date(2025, 3, 2)).update(clicks=5)
    TrafficDetailHour.objects.filter(hour__date=date(2025, 3, 2)).delete()

    report_rollup_reconcile(day=date(2025, 3, 2))

    after = report_rows(ReportQuery(start=start, end=start + timedelta(days=5), dimensions=("country",)))
    assert {row.key: row.clicks for row in after.rows} == {row.key: row.clicks for row in before.rows}
    assert assert_report_equals_raw(ledger, ["campaign", "day"], start=start, end=start + timedelta(days=5),
                                    tz=ZoneInfo("UTC")) is None  # fmt: skip


def test_new_clicks_are_added_to_existing_rows(ledger, campaign, link):
    moment = datetime(2025, 3, 1, 5, 30, tzinfo=UTC)
    for number in range(3):
        Click.objects.create(click_id=f"more{number}", campaign=campaign, link=link, created_at=moment, country="ES")
    add_conversion(click=Click.objects.get(click_id="more0"), created_at=moment + timedelta(minutes=5))

    assert settle_and_roll_up() == {"clicks": 3, "starts": 0, "conversions": 1}
    report_rollup_refresh()

    query = ReportQuery(start=moment.replace(minute=0), end=moment + timedelta(hours=1), dimensions=("link",),
                        link_ids=(link.pk,))  # fmt: skip
    (row,) = report_rows(query).rows
    assert (row.clicks, row.conversions, row.median_ttc_s) == (3, 1, 300)


@pytest.mark.django_db(transaction=True)
def test_a_refresh_steps_aside_while_another_one_holds_the_cursor(campaign, link):
    import threading

    from django.db import connections, transaction
    from django.utils import timezone

    from conversions.models import RollupCursor

    def click(name):
        Click.objects.create(click_id=name, campaign=campaign, link=link,
                             created_at=timezone.now() - timedelta(seconds=10))  # fmt: skip

    click("first")
    assert report_rollup_refresh()["clicks"] == 1
    click("second")
    locked, release = threading.Event(), threading.Event()

    def other_refresh():
        try:
            with transaction.atomic():
                RollupCursor.objects.select_for_update().get(name="report_clicks")
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_refresh)
    thread.start()
    try:
        assert locked.wait(10)
        assert report_rollup_refresh()["clicks"] == 0  # does not wait for the lock
    finally:
        release.set()
        thread.join()
    assert report_rollup_refresh()["clicks"] == 1


def test_day_tables_of_another_report_time_zone_and_a_zone_change(db, settings):
    from django.core.management import call_command

    from reports import selectors
    from reports.models import DayZone
    from tests.reports.conftest import generate

    settings.REPORT_TIME_ZONE = "Europe/Kyiv"
    start = datetime(2025, 3, 1, tzinfo=UTC)
    ledger = generate(clicks=600, start=start, hours=72)
    settle_and_roll_up()
    kyiv = ZoneInfo("Europe/Kyiv")
    query = ReportQuery.for_days(date_from=date(2025, 3, 1), date_to=date(2025, 3, 3), tz=kyiv,
                                 dimensions=("campaign", "day"))  # fmt: skip

    assert DayZone.objects.get().tz == "Europe/Kyiv" and selectors._day_tables_serve(query)
    assert_report_equals_raw(ledger, ["campaign", "day"], start=query.start, end=query.end, tz=kyiv)
    assert_report_equals_raw(ledger, ["creative"], start=query.start, end=query.end, tz=kyiv)

    settings.REPORT_TIME_ZONE = "Asia/Tokyo"  # the day tables hold Kyiv's days: reports read the hours
    tokyo = ReportQuery.for_days(date_from=date(2025, 3, 1), date_to=date(2025, 3, 3), tz=ZoneInfo("Asia/Tokyo"),
                                 dimensions=("day",))  # fmt: skip
    assert not selectors._day_tables_serve(tokyo)
    assert_report_equals_raw(ledger, ["day"], start=tokyo.start, end=tokyo.end, tz=ZoneInfo("Asia/Tokyo"))

    call_command("report_rollup_rebuild", stdout=open(os.devnull, "w"))  # noqa: SIM115

    assert DayZone.objects.get().tz == "Asia/Tokyo" and selectors._day_tables_serve(tokyo)
    assert_report_equals_raw(ledger, ["day", "link"], start=tokyo.start, end=tokyo.end, tz=ZoneInfo("Asia/Tokyo"))


def test_a_daylight_saving_day_has_23_hours(campaign, link):
    kyiv = ZoneInfo("Europe/Kyiv")  # 2025-03-30: 03:00 local becomes 04:00 (UTC+2 → UTC+3)
    moments = {
        "before": datetime(2025, 3, 29, 21, 59, tzinfo=UTC),  # 23:59 on the 29th
        "first": datetime(2025, 3, 29, 22, 0, tzinfo=UTC),  # 00:00 on the 30th
        "last": datetime(2025, 3, 30, 20, 59, tzinfo=UTC),  # 23:59 on the 30th, now UTC+3
        "after": datetime(2025, 3, 30, 21, 0, tzinfo=UTC),  # 00:00 on the 31st
    }
    for name, moment in moments.items():
        Click.objects.create(click_id=name, campaign=campaign, link=link, created_at=moment)
    report_rollup_refresh()
    query = ReportQuery.for_days(date_from=date(2025, 3, 29), date_to=date(2025, 3, 31), tz=kyiv,
                                 dimensions=("day",))  # fmt: skip

    assert {row.key[0]: row.clicks for row in report_rows(query).rows} == {
        date(2025, 3, 29): 1, date(2025, 3, 30): 2, date(2025, 3, 31): 1,
    }  # fmt: skip
    hours = ReportQuery.for_days(date_from=date(2025, 3, 30), date_to=date(2025, 3, 30), tz=kyiv)
    assert (hours.end - hours.start) == timedelta(hours=23)


def test_the_task_steps_through_a_backlog_and_stops_when_a_step_is_not_full(campaign, link, monkeypatch):
    from django.utils import timezone

    from reports import rollups, tasks
    from reports.models import TrafficHour

    monkeypatch.setattr(rollups, "MAX_ROWS_PER_REFRESH", 2)
    steps = []
    real_refresh = rollups.report_rollup_refresh
    monkeypatch.setattr(rollups, "report_rollup_refresh", lambda: steps.append(real_refresh()) or steps[-1])
    Click.objects.bulk_create(
        Click(click_id=f"backlog{n}", campaign=campaign, link=link, created_at=timezone.now() - timedelta(seconds=10))
        for n in range(5)
    )

    tasks.report_rollup_refresh()

    assert [step["clicks"] for step in steps] == [2, 2, 1]  # a step of 1 < 2: up to date, no fourth step
    assert sum(TrafficHour.objects.values_list("clicks", flat=True)) == 5
    steps.clear()
    tasks.report_rollup_refresh()
    assert steps == [{"clicks": 0, "starts": 0, "conversions": 0}]

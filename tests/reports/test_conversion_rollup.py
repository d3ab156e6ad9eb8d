"""The conversion report tables follow the status-change log: each refresh adds what changed (the
conversion leaves its old status's row and joins the new one's), never recounts an hour or a day."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from conversions.models import Click, Conversion
from conversions.services import conversion_record
from reports.models import ConversionDay, ConversionDetailHour, ConversionHour, TimeToConversionDay
from reports.rollups import report_rollup_rebuild_days, report_rollup_reconcile
from reports.selectors import ReportQuery, report_rows
from tests.reports.conftest import settle_and_roll_up

pytestmark = pytest.mark.django_db


@pytest.fixture
def click(campaign, link):
    return Click.objects.create(click_id="rollup-click", campaign=campaign, link=link, country="ES", city="Madrid",
                                created_at=timezone.now() - timedelta(hours=1))  # fmt: skip


def postback(click, transaction_id, status, amount_minor):
    """A partner's postback, through the service the API calls: a repeat updates and logs the change."""
    return conversion_record(source=Conversion.Source.POSTBACK, click=click, transaction_id=transaction_id,
                             status=status, amount_minor=amount_minor, currency="USD")  # fmt: skip


def rows(model) -> dict:
    return {(row.goal, row.status): (row.conversions, row.revenue_minor, row.ttc_count) for row in model.objects.all()}


def today_query() -> ReportQuery:
    now = timezone.now()
    return ReportQuery(start=now - timedelta(days=1), end=now + timedelta(days=1))


def test_status_and_amount_changes_move_conversions_between_rows(click):
    for transaction_id, status, amount in (("A", "approved", 5000), ("B", "approved", 3000), ("C", "pending", 1000)):
        postback(click, transaction_id, status, amount)
    settle_and_roll_up()
    assert rows(ConversionHour) == {("purchase", "approved"): (2, 8000, 2), ("purchase", "pending"): (1, 1000, 1)}

    assert postback(click, "A", "rejected", 5000).outcome == "updated"  # a refund
    assert postback(click, "B", "approved", 3500).outcome == "updated"  # the amount corrected
    assert postback(click, "C", "approved", 1000).outcome == "updated"  # confirmed
    settle_and_roll_up()

    expected = {("purchase", "approved"): (2, 4500, 2), ("purchase", "rejected"): (1, 5000, 1)}
    assert rows(ConversionHour) == expected  # the pending row, now empty, is gone
    assert rows(ConversionDay) == expected
    assert rows(ConversionDetailHour) == expected
    assert {(row.country, row.city) for row in ConversionDetailHour.objects.all()} == {("ES", "Madrid")}
    totals = report_rows(today_query()).totals
    assert (totals.conversions, totals.rejected, totals.pending, totals.revenue_minor) == (2, 1, 0, 4500)
    ttc = {conversion.transaction_id: conversion.time_to_conversion_s for conversion in Conversion.objects.all()}
    assert totals.median_ttc_s == (ttc["B"] + ttc["C"]) / 2  # A's time left the approved ones


def test_a_refresh_adds_the_changes_and_does_not_recount(click):
    postback(click, "A", "approved", 5000)
    settle_and_roll_up()
    # Changed behind the log's back: a recount would see it, the log does not.
    Conversion.objects.update(amount_minor=1)

    postback(click, "B", "approved", 700)
    settle_and_roll_up()

    assert rows(ConversionHour) == {("purchase", "approved"): (2, 5700, 2)}
    assert report_rows(today_query()).totals.revenue_minor == 5700


def test_reconcile_and_rebuild_replay_the_log_into_the_same_rows(click, settings):
    for transaction_id, status, amount in (("A", "approved", 5000), ("B", "pending", 3000)):
        postback(click, transaction_id, status, amount)
    settle_and_roll_up()
    postback(click, "A", "rejected", 5000)
    postback(click, "B", "approved", 3000)
    postback(click, "A", "approved", 4000)
    settle_and_roll_up()
    hours, days = rows(ConversionHour), rows(ConversionDay)
    assert hours == days == {("purchase", "approved"): (2, 7000, 2)}
    assert TimeToConversionDay.objects.count() == 2  # a chunk per refresh

    report_rollup_reconcile(day=timezone.now().date())

    assert rows(ConversionHour) == hours and rows(ConversionDay) == days and rows(ConversionDetailHour) == hours
    (folded,) = TimeToConversionDay.objects.all()
    assert (
        sorted(map(int, folded.values_s.split(",")))
        == sorted(Conversion.objects.values_list("time_to_conversion_s", flat=True))
        and folded.removed_s == ""
    )

    settings.REPORT_TIME_ZONE = "Europe/Madrid"
    report_rollup_rebuild_days()
    assert rows(ConversionDay) == days
    today = timezone.now().date()
    query = ReportQuery.for_days(date_from=today - timedelta(days=1), date_to=today + timedelta(days=1),
                                 tz=ZoneInfo("Europe/Madrid"))  # fmt: skip
    assert report_rows(query).totals.revenue_minor == 7000


@pytest.mark.parametrize("detail", [False, True])
def test_a_refresh_reaches_conversions_and_clicks_through_their_primary_keys(click, detail):
    """On tables without statistics PostgreSQL read whole tables for a few changes; the refresh's joins go
    through the primary keys, so its cost follows the changes, not the tables."""
    from django.db import connection, transaction

    from conversions.models import ConversionStatusChange
    from reports.rollups import _change_deltas, _lookups_by_index

    Click.objects.bulk_create(
        Click(click_id=f"many-{n}", campaign=click.campaign, link=click.link, created_at=click.created_at)
        for n in range(3000)
    )
    for number in range(50):
        postback(click, f"T{number}", "approved", 100)
    last = ConversionStatusChange.objects.order_by("-id")[0].id
    changes = ConversionStatusChange.objects.filter(id__gt=last - 10, id__lte=last)  # a refresh's step
    sql, params = _change_deltas(changes, entering=True, detail=detail).query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        _lookups_by_index()
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "Seq Scan" not in plan and "Materialize" not in plan, plan
    assert "Index Cond: (id = conversions_conversionstatuschange.conversion_id)" in plan, plan
    if detail:
        assert "Index Cond: (id = conversions_conversion.click_id)" in plan, plan


def test_the_reconcile_gathers_the_statistics_postgresql_lacks(campaign, link):
    """Without statistics (a new install, autovacuum off) the planner joined a day's changes, conversions and
    clicks by a nested loop over all the clicks: quadratic. The reconcile analyzes those tables first."""
    from django.db import connection

    from conversions.models import BotStart, ConversionStatusChange
    from reports.rollups import RECONCILED_MODELS

    tables = [model._meta.db_table for model in RECONCILED_MODELS]
    assert tables == [table._meta.db_table for table in (Click, BotStart, Conversion, ConversionStatusChange)]
    with connection.cursor() as cursor:
        # A new install's tables: TRUNCATE gives each a new file PostgreSQL knows nothing about (rolled back).
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        statistics = "SELECT relname, reltuples FROM pg_class WHERE oid = ANY(%s::regclass[]) ORDER BY relname"
        cursor.execute(statistics, [tables])
        assert {reltuples for _, reltuples in cursor.fetchall()} == {-1}
    click = Click.objects.create(click_id="stats-click", campaign=campaign, link=link,
                                 created_at=timezone.now() - timedelta(hours=1))  # fmt: skip
    for number in range(3):
        postback(click, f"S{number}", "approved", 100)
    settle_and_roll_up()

    report_rollup_reconcile(day=timezone.now().date())

    with connection.cursor() as cursor:
        cursor.execute(statistics, [tables])
        analyzed = dict(cursor.fetchall())
    assert analyzed == {"conversions_botstart": 0, "conversions_click": 1, "conversions_conversion": 3,
                        "conversions_conversionstatuschange": 3}  # fmt: skip
    assert rows(ConversionHour) == {("purchase", "approved"): (3, 300, 3)}

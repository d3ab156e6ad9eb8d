from datetime import timedelta

import pytest

from conversions import rollups
from conversions.models import Click, DailyStats
from conversions.selectors import totals_for
from tests.conftest import DESKTOP_CHROME

pytestmark = pytest.mark.django_db


def make_traffic(visit, bot_api):
    visit("/l/tiktok_abc123")
    visit("/l/tiktok_abc123")  # same visitor again: a click, not a unique one
    visit("/l/tiktok_abc123", user_agent=DESKTOP_CHROME)
    visit("/l/tiktok_abc123", user_agent="TelegramBot (like TwitterBot)")
    bot_api.post("/api/v1/utm/track/click", {"utm_id": "tiktok_abc123", "user_id": 1}, format="json")


def settle_all_rows():
    """Make every row older than the rollup's settle delay, as it would be a few seconds later."""
    Click.objects.update(created_at=Click.objects.order_by("created_at").first().created_at - timedelta(seconds=10))
    from conversions.models import BotStart

    start = BotStart.objects.first()
    if start is not None:
        BotStart.objects.update(created_at=start.created_at - timedelta(seconds=10))


def test_totals_are_exact_before_the_rollup_has_run(visit, bot_api, link):
    make_traffic(visit, bot_api)

    totals = totals_for(link=link)

    assert (totals.clicks, totals.unique_clicks, totals.bot_hits, totals.landing_views, totals.starts) == (
        3,
        2,
        1,
        3,
        1,
    )
    assert DailyStats.objects.count() == 0


def test_rollup_moves_counts_into_daily_stats_and_totals_do_not_change(visit, bot_api, link):
    make_traffic(visit, bot_api)
    settle_all_rows()

    counted = rollups.rollup_refresh()

    assert counted == {"clicks": 4, "starts": 1}
    stats = DailyStats.objects.get()
    assert (stats.clicks, stats.unique_clicks, stats.bot_hits, stats.landing_views, stats.starts) == (3, 2, 1, 3, 1)
    totals = totals_for(link=link)
    assert (totals.clicks, totals.unique_clicks, totals.bot_hits, totals.starts) == (3, 2, 1, 1)
    assert rollups.rollup_refresh() == {"clicks": 0, "starts": 0}  # nothing counted twice
    visit("/l/tiktok_abc123", ip="81.2.69.160")
    assert totals_for(link=link).clicks == 4  # the newest click shows before the next refresh


def test_rows_younger_than_the_settle_delay_wait_for_the_next_refresh(visit, link):
    visit("/l/tiktok_abc123")

    assert rollups.rollup_refresh() == {"clicks": 0, "starts": 0}
    assert totals_for(link=link).clicks == 1


def test_reconcile_recounts_a_day_from_raw_rows(visit, bot_api, link):
    make_traffic(visit, bot_api)
    settle_all_rows()
    rollups.rollup_refresh()
    day = DailyStats.objects.get().day
    DailyStats.objects.update(clicks=999, starts=7)  # drift, e.g. a crashed refresh

    rollups.rollup_reconcile(day=day)

    stats = DailyStats.objects.get()
    assert (stats.clicks, stats.unique_clicks, stats.bot_hits, stats.starts) == (3, 2, 1, 1)


def test_clicks_do_not_update_any_shared_row(visit, link, django_assert_max_num_queries):
    """The click path inserts; it never UPDATEs a counter (no hot row under a viral link)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        visit("/l/tiktok_abc123")
    statements = [query["sql"].split()[0].upper() for query in queries.captured_queries]
    assert "UPDATE" not in statements
    assert statements.count("INSERT") == 1


def test_a_gap_in_the_ids_wider_than_a_step_does_not_stall_the_rollup(link, monkeypatch):
    from django.utils import timezone

    monkeypatch.setattr(rollups, "MAX_ROWS_PER_REFRESH", 3)
    earlier = timezone.now() - timedelta(seconds=10)
    last = Click.objects.order_by("-id").values_list("id", flat=True).first() or 0
    # Rolled-back inserts leave holes in the sequence; here one far wider than a step.
    ids = [last + 1, last + 2, last + 10_000, last + 10_001]
    Click.objects.bulk_create(
        Click(id=pk, click_id=f"gap{pk}", campaign=link.campaign, link=link, created_at=earlier) for pk in ids
    )

    assert rollups.rollup_refresh()["clicks"] == 3
    assert rollups.rollup_refresh()["clicks"] == 1
    assert rollups.rollup_refresh()["clicks"] == 0
    assert DailyStats.objects.get(link=link).clicks == 4


def test_a_campaigns_clicks_without_a_link_add_up_in_one_row_a_day(campaign, visit):
    """/click visits have no link: the day's row is found by the campaign alone (NULL is not equal to NULL
    in a plain unique key, so each refresh could otherwise start a row of its own)."""
    visit(f"/click?campaign_id={campaign.pk}")
    settle_all_rows()
    rollups.rollup_refresh()
    visit(f"/click?campaign_id={campaign.pk}", ip="81.2.69.160")
    visit(f"/click?campaign_id={campaign.pk}", user_agent="TelegramBot (like TwitterBot)")
    settle_all_rows()

    assert rollups.rollup_refresh() == {"clicks": 2, "starts": 0}

    stats = DailyStats.objects.get(campaign=campaign)
    assert (stats.link_id, stats.clicks, stats.unique_clicks, stats.bot_hits) == (None, 2, 2, 1)
    assert totals_for(campaign_id=campaign.pk).clicks == 2


def test_a_refresh_adds_every_links_counts_in_one_statement(campaign, link):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from tests.factories import TrafficSourceFactory

    links = [link, *TrafficSourceFactory.create_batch(29, campaign=campaign)]
    earlier = timezone.now() - timedelta(seconds=10)

    def clicks(per_link: int, tag: str):
        Click.objects.bulk_create(
            Click(click_id=f"{tag}{each.pk}-{n}", campaign=campaign, link=each, created_at=earlier, is_unique=n == 0)
            for each in links
            for n in range(per_link)
        )

    clicks(2, "a")
    rollups.rollup_refresh()
    clicks(3, "b")

    with CaptureQueriesContext(connection) as queries:
        assert rollups.rollup_refresh() == {"clicks": 90, "starts": 0}

    writes = [query["sql"] for query in queries.captured_queries if "conversions_dailystats" in query["sql"]]
    assert len(writes) == 1 and writes[0].startswith('INSERT INTO "conversions_dailystats"')
    totals = {row.link_id: (row.clicks, row.unique_clicks) for row in DailyStats.objects.all()}
    assert totals == {each.pk: (5, 2) for each in links}

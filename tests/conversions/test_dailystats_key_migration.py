from datetime import date

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("conversions", "0007_click_settings_version")]
AFTER = [("conversions", "0008_dailystats_key_with_classic_clicks")]


def test_the_daily_key_merges_a_campaigns_rows_without_a_link_that_the_old_key_let_in():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(BEFORE)
        old = executor.loader.project_state(BEFORE).apps
        campaign = old.get_model("conversions", "Campaign").objects.create(
            name="Classic", offer_url="https://a.example"
        )
        daily = old.get_model("conversions", "DailyStats")
        counters = ("clicks", "unique_clicks", "bot_hits", "landing_views", "starts")
        for values in ((2, 1, 0, 0, 1), (3, 2, 1, 0, 0)):
            daily.objects.create(
                campaign_id=campaign.pk, link=None, day=date(2026, 12, 1), **dict(zip(counters, values, strict=True))
            )
        daily.objects.create(campaign_id=campaign.pk, link=None, day=date(2026, 12, 2), clicks=7, unique_clicks=7,
                             bot_hits=0, landing_views=0, starts=0)  # fmt: skip

        MigrationExecutor(connection).migrate(AFTER)
    finally:
        MigrationExecutor(connection).migrate(latest)

    from conversions.models import DailyStats

    rows = {row.day: tuple(getattr(row, name) for name in counters) for row in DailyStats.objects.all()}
    assert rows == {date(2026, 12, 1): (5, 3, 1, 0, 1), date(2026, 12, 2): (7, 7, 0, 0, 0)}

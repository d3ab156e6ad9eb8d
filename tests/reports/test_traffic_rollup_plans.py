"""The traffic rollup's refresh reads a step's rows and reaches their clicks through primary keys, whatever
statistics PostgreSQL has (a new install, or autovacuum off, has none)."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from conversions.models import BotStart, Click, Lead
from reports.rollups import _lookups_by_index, _start_counts

pytestmark = pytest.mark.django_db


def _plan(queryset) -> list[dict]:
    """Every node of the queryset's plan under the refresh's planner settings."""
    sql, params = queryset.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        _lookups_by_index()
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        root = cursor.fetchone()[0][0]["Plan"]
    nodes, todo = [], [root]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


@pytest.mark.parametrize("detail", [False, True])
def test_a_refresh_of_starts_reads_each_click_by_its_primary_key(link, detail):
    """In the soak (autovacuum off) the detailed starts step read every click for every start: 17 million
    rows filtered for 300 starts among 63,000 clicks, 11 s, growing with the clicks, until the task hit its
    time limit. Each start's click is now read by its primary key."""
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL plan")
    now = timezone.now()
    clicks = Click.objects.bulk_create(
        Click(click_id=f"plan-{n}", campaign=link.campaign, link=link, created_at=now - timedelta(minutes=5))
        for n in range(3000)
    )
    leads = Lead.objects.bulk_create(Lead(telegram_user_id=50_000 + n, click=clicks[n], link=link) for n in range(30))
    starts = BotStart.objects.bulk_create(
        BotStart(lead=lead, campaign=link.campaign, link=link, click=lead.click, token=lead.click.click_id,
                 created_at=now)
        for lead in leads
    )  # fmt: skip
    step = BotStart.objects.filter(id__gt=starts[0].id - 1, id__lte=starts[-1].id)

    click_scans = [node for node in _plan(_start_counts(step, detail=detail))
                   if node.get("Relation Name") == Click._meta.db_table]  # fmt: skip

    assert bool(click_scans) == detail  # the totals need no click; the detail needs the click's dimensions
    for scan in click_scans:
        assert scan["Node Type"] == "Index Scan" and scan["Index Name"] == "conversions_click_pkey", scan
        assert scan["Index Cond"].startswith("(id = "), scan

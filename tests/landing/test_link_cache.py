"""The click path's link cache: kept while the click settings' version stays, forgotten when it moves."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversions.models import Campaign, Click, LandingPage, TrafficSource
from tests.factories import TrafficSourceFactory
from tiktok_ads.models import Pixel

pytestmark = pytest.mark.django_db


def version() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version FROM click_settings_version")
        return cursor.fetchone()[0]


def statements(visit, path: str) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        status = visit(path).status_code
    return status, [query["sql"] for query in queries.captured_queries]


def reads_the_link(sqls: list[str]) -> bool:
    return any('FROM "conversions_trafficsource"' in sql for sql in sqls)


def test_a_link_stays_cached_past_the_interval_while_nothing_changes(visit, link, settings_clock):
    status, first = statements(visit, "/l/tiktok_abc123")
    assert status == 200 and reads_the_link(first)

    settings_clock(0.5)  # within the interval: not even the version is read
    status, within = statements(visit, "/l/tiktok_abc123")
    assert status == 200 and len(within) == 1 and 'INSERT INTO "conversions_click"' in within[0]

    settings_clock(60)  # past the interval: one look at the version, the link still cached
    status, after = statements(visit, "/l/tiktok_abc123")
    assert status == 200 and not reads_the_link(after)
    assert after[0] == 'SELECT "version" FROM click_settings_version' and len(after) == 2
    assert Click.objects.count() == 3


def test_a_pause_by_update_applies_within_the_interval(visit, link, settings_clock):
    assert visit("/l/tiktok_abc123").status_code == 200
    TrafficSource.objects.filter(pk=link.pk).update(is_active=False)  # no model signal: the trigger sees it

    settings_clock(1)
    assert visit("/l/tiktok_abc123").status_code == 200  # the interval has not passed: still cached
    settings_clock(1.5)
    assert visit("/l/tiktok_abc123").status_code == 404
    assert Click.objects.count() == 2


def test_a_campaign_pause_and_a_landing_page_edit_are_seen_after_the_interval(visit, link, settings_clock):
    assert "Football Insider" in visit("/l/tiktok_abc123").content.decode()
    LandingPage.objects.filter(pk=link.landing_page_id).update(title="Basketball Insider")
    settings_clock(3)
    assert "Basketball Insider" in visit("/l/tiktok_abc123").content.decode()

    Campaign.objects.filter(pk=link.campaign_id).update(status=Campaign.Status.PAUSED)
    settings_clock(3)
    assert visit("/l/tiktok_abc123").status_code == 404


def test_a_link_is_read_again_after_the_maximum_age(visit, link, settings_clock):
    visit("/l/tiktok_abc123")
    settings_clock(299)
    _, before = statements(visit, "/l/tiktok_abc123")
    settings_clock(2)
    _, after = statements(visit, "/l/tiktok_abc123")

    assert not reads_the_link(before) and reads_the_link(after)


def test_with_no_interval_every_click_reads_its_link(visit, link, settings):
    settings.LINK_CACHE_TTL_S = 0
    visit("/l/tiktok_abc123")
    _, sqls = statements(visit, "/l/tiktok_abc123")
    assert reads_the_link(sqls) and not any("click_settings_version" in sql for sql in sqls)


def test_every_statement_that_writes_a_cached_table_raises_the_version(link):
    writes = [
        lambda: TrafficSourceFactory(campaign=link.campaign, utm_id="tiktok_other"),
        lambda: TrafficSource.objects.filter(utm_id="tiktok_other").update(name="renamed"),
        lambda: TrafficSource.objects.filter(utm_id="tiktok_other").delete(),
        lambda: Campaign.objects.filter(pk=link.campaign_id).update(notes="x"),
        lambda: LandingPage.objects.filter(pk=link.landing_page_id).update(title="y"),
        lambda: Pixel.objects.update(token_invalid=True),
    ]
    seen = [version()]
    for write in writes:
        write()
        seen.append(version())

    assert all(later > earlier for earlier, later in zip(seen, seen[1:], strict=False))
    Click.objects.count()  # reads of other tables leave it alone
    assert version() == seen[-1]

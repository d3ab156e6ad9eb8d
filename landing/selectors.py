"""Reads on the click path, cached in the process until the click settings change
(conversions/click_settings.py). A miss reads the link by one prepared statement rather than the ORM's
select_related, which cost about as much CPU as the rest of the click (bench/README.md).
"""

from django.db import connection

from conversions.click_reads import LINK_TABLES
from conversions.click_settings import cached_setting, settings_cache
from conversions.models import Campaign, LandingPage, TrafficSource
from tracker.db.statements import Joined, fetch_one, instances_from_row, joined_select

_links: dict[str, tuple[float, TrafficSource | None]] = settings_cache()
_campaigns: dict[int, tuple[float, Campaign | None]] = settings_cache()


_LINK_TABLES = (*LINK_TABLES, Joined(LandingPage, "lp", 'LEFT JOIN {table} lp ON lp."id" = l."landing_page_id"'))
ACTIVE_LINK_SQL = joined_select(_LINK_TABLES, 'l."utm_id" = %s AND l."is_active" AND cp."status" = %s')


def _read_active_link(utm_id: str) -> TrafficSource | None:
    if connection.vendor != "postgresql":
        return (
            TrafficSource.objects.select_related("campaign__pixel", "landing_page")
            .filter(utm_id=utm_id, is_active=True, campaign__status=Campaign.Status.ACTIVE)
            .first()
        )
    row = fetch_one(ACTIVE_LINK_SQL, [utm_id, Campaign.Status.ACTIVE.value])
    if row is None:
        return None
    (link, campaign, pixel, page), _ = instances_from_row(_LINK_TABLES, row)
    campaign.pixel = pixel
    link.campaign = campaign
    link.landing_page = page
    return link


def active_link(utm_id: str) -> TrafficSource | None:
    """The active link of an active campaign with its campaign, pixel and landing page, or None."""
    return cached_setting(_links, utm_id, lambda: _read_active_link(utm_id))


def active_campaign(campaign_id: int) -> Campaign | None:
    return cached_setting(
        _campaigns,
        campaign_id,
        lambda: Campaign.objects.select_related("pixel").filter(pk=campaign_id, status=Campaign.Status.ACTIVE).first(),
    )

"""Reads on the click path, cached in the process for LINK_CACHE_TTL_S seconds.

A viral link is read thousands of times a second and changes a few times a day: a short in-process
cache removes a query from every click. Pausing a link takes effect within the TTL on every worker.
When many links are live each worker misses the cache often (1,000 links at a few hundred clicks a
second: nearly every click), so the link is read by one prepared statement rather than the ORM's
select_related, which cost about as much CPU as the rest of the click (bench/README.md).
"""

from django.conf import settings
from django.db import connection

from conversions.models import Campaign, LandingPage, TrafficSource
from tiktok_ads.models import Pixel
from tracker.db.statements import Joined, fetch_one, instances_from_row, joined_clauses, joined_columns
from tracker.ttl_cache import cached

_links: dict[str, tuple[float, TrafficSource | None]] = {}
_campaigns: dict[int, tuple[float, Campaign | None]] = {}


def _cached(cache: dict, key, load):
    return cached(cache, key, load, ttl_s=settings.LINK_CACHE_TTL_S)


_LINK_TABLES = (
    Joined(TrafficSource, "l"),
    Joined(Campaign, "cp", 'JOIN {table} cp ON cp."id" = l."campaign_id"'),
    Joined(Pixel, "p", 'LEFT JOIN {table} p ON p."id" = cp."pixel_id"'),
    Joined(LandingPage, "lp", 'LEFT JOIN {table} lp ON lp."id" = l."landing_page_id"'),
)
ACTIVE_LINK_SQL = (
    f"SELECT {joined_columns(_LINK_TABLES)} FROM {connection.ops.quote_name(TrafficSource._meta.db_table)} l "
    f'{joined_clauses(_LINK_TABLES)} WHERE l."utm_id" = %s AND l."is_active" AND cp."status" = %s'
)


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
    return _cached(_links, utm_id, lambda: _read_active_link(utm_id))


def active_campaign(campaign_id: int) -> Campaign | None:
    return _cached(
        _campaigns,
        campaign_id,
        lambda: Campaign.objects.select_related("pixel").filter(pk=campaign_id, status=Campaign.Status.ACTIVE).first(),
    )


def forget_cached_links() -> None:
    _links.clear()
    _campaigns.clear()

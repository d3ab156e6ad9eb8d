"""Reads on the click path, cached in the process.

A viral link is read thousands of times a second and changes a few times a day: an in-process cache
removes a query from every click. On PostgreSQL a worker keeps its links until one of them may have
changed: every LINK_CACHE_TTL_S it reads the click settings' version (one row, raised by a trigger on
every write to links, campaigns, pixels and landing pages: conversions/migrations/0007), and forgets
them all when the number moved. So pausing a link takes effect within LINK_CACHE_TTL_S on every worker,
and many live links stay cached: with a plain expiry, 1,000 links at a few hundred clicks a second
missed the cache on nearly every click. LINK_CACHE_MAX_AGE_S bounds an entry's life all the same (a
write with triggers disabled, a restored database). Elsewhere (SQLite) the cache is forgotten every
LINK_CACHE_TTL_S. A miss reads the link by one prepared statement rather than the ORM's select_related,
which cost about as much CPU as the rest of the click (bench/README.md).
"""

import time

from django.conf import settings
from django.db import connection

from conversions.models import Campaign, LandingPage, TrafficSource
from tiktok_ads.models import Pixel
from tracker.db.statements import Joined, fetch_one, instances_from_row, joined_clauses, joined_columns
from tracker.ttl_cache import cached

_links: dict[str, tuple[float, TrafficSource | None]] = {}
_campaigns: dict[int, tuple[float, Campaign | None]] = {}


_SETTINGS_VERSION_SQL = 'SELECT "version" FROM click_settings_version'
_version_seen = {"next_look_at": 0.0, "version": None}


def _settings_may_have_changed(interval_s: float) -> bool:
    """Whether a cached link may be out of date, looked at once per interval_s in this process."""
    now = time.monotonic()
    if now < _version_seen["next_look_at"]:
        return False
    _version_seen["next_look_at"] = now + interval_s
    version = fetch_one(_SETTINGS_VERSION_SQL, [])[0] if connection.vendor == "postgresql" else None
    changed = version is None or version != _version_seen["version"]
    _version_seen["version"] = version
    return changed


def _cached(cache: dict, key, load):
    interval_s = settings.LINK_CACHE_TTL_S
    if interval_s <= 0:
        return load()
    if _settings_may_have_changed(interval_s):
        forget_cached_links()
    return cached(cache, key, load, ttl_s=max(settings.LINK_CACHE_MAX_AGE_S, interval_s))


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


def forget_settings_version() -> None:
    """The next cached read looks at the click settings' version again (and forgets every link the first time)."""
    _version_seen.update(next_look_at=0.0, version=None)

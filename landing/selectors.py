"""Reads on the click path, cached in the process for LINK_CACHE_TTL_S seconds.

A viral link is read thousands of times a second and changes a few times a day: a short in-process
cache removes a query from every click. Pausing a link takes effect within the TTL on every worker.
"""

from django.conf import settings

from conversions.models import Campaign, TrafficSource
from tracker.ttl_cache import cached

_links: dict[str, tuple[float, TrafficSource | None]] = {}
_campaigns: dict[int, tuple[float, Campaign | None]] = {}


def _cached(cache: dict, key, load):
    return cached(cache, key, load, ttl_s=settings.LINK_CACHE_TTL_S)


def active_link(utm_id: str) -> TrafficSource | None:
    """The active link of an active campaign with its campaign, pixel and landing page, or None."""
    return _cached(
        _links,
        utm_id,
        lambda: (
            TrafficSource.objects.select_related("campaign__pixel", "landing_page")
            .filter(utm_id=utm_id, is_active=True, campaign__status=Campaign.Status.ACTIVE)
            .first()
        ),
    )


def active_campaign(campaign_id: int) -> Campaign | None:
    return _cached(
        _campaigns,
        campaign_id,
        lambda: Campaign.objects.select_related("pixel").filter(pk=campaign_id, status=Campaign.Status.ACTIVE).first(),
    )


def forget_cached_links() -> None:
    _links.clear()
    _campaigns.clear()

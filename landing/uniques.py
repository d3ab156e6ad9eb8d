"""Is this the visitor's first click on the link within the unique window?

With Redis, one SET NX with the window as TTL answers it in a round trip and serialises nothing; the
key is the link and sha256(ip + user agent). Without Redis (or when it does not answer) the click table
is asked instead, through its (link, visitor_hash, created_at) index.
"""

import logging
from datetime import timedelta
from functools import lru_cache

from django.conf import settings

from conversions.models import Click

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.2)


def first_click(*, campaign_id: int, link_id: int | None, visitor_hash: str, now) -> bool:
    window = timedelta(hours=settings.UNIQUE_CLICK_WINDOW_HOURS)
    if settings.REDIS_URL:
        try:
            key = f"uniq:{link_id or f'c{campaign_id}'}:{visitor_hash}"
            return bool(_redis(settings.REDIS_URL).set(key, 1, nx=True, ex=int(window.total_seconds())))
        except Exception:  # noqa: BLE001 - Redis down: the database still answers
            logger.warning("Redis did not answer the unique-click check; asking the database")
    return not Click.objects.filter(
        link_id=link_id, campaign_id=campaign_id, visitor_hash=visitor_hash, created_at__gte=now - window, is_bot=False
    ).exists()

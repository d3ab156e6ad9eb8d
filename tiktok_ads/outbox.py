"""Writing to the TikTok event outbox, and waking a sender when the row is committed."""

import logging
import time
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tiktok_ads.models import Pixel, TikTokEvent

logger = logging.getLogger(__name__)
FLUSH_DEBOUNCE_MS = 500


def event_queue(
    *,
    pixel: Pixel,
    event_id: str,
    event: str,
    event_time: datetime,
    payload: dict,
    source: str,
    skip_reason: str = "",
    test_event_code: str | None = None,
) -> tuple[TikTokEvent, bool]:
    """Put one event in the outbox, once: (pixel, event_id) is unique, a repeat returns the existing row.

    Call it inside the transaction that records what caused the event (the outbox pattern): the event
    exists if and only if its cause was committed. A sender is woken after the commit.
    """
    if test_event_code is None:
        test_event_code = pixel.test_event_code if pixel.test_mode else ""
    defaults = {
        "event": event,
        "event_time": event_time,
        "payload": payload,
        "source": source,
        "next_attempt_at": timezone.now(),
        "test_event_code": test_event_code,
    }
    if skip_reason:
        defaults.update(status=TikTokEvent.Status.SKIPPED, last_message=skip_reason)
    with transaction.atomic():
        row, created = TikTokEvent.objects.get_or_create(pixel=pixel, event_id=event_id, defaults=defaults)
    if created and not skip_reason:
        transaction.on_commit(lambda: schedule_flush(pixel.pk))
    return row, created


def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)


_last_wake_up: dict[int, float] = {}


def _woken_recently(pixel_id: int) -> bool:
    now = time.monotonic()
    if now - _last_wake_up.get(pixel_id, 0.0) < FLUSH_DEBOUNCE_MS / 1000:
        return True
    _last_wake_up[pixel_id] = now
    return False


def schedule_flush(pixel_id: int) -> None:
    """Ask a worker to send this pixel's queue. Never raises: the periodic sweep is the safety net.

    One wake-up per pixel per half second is enough however many events arrive, so a burst of clicks
    does not become a burst of broker messages: debounced in this process, and across processes in
    Redis when there is one. The wake-up runs at the end of its half second, so it sees every event
    committed during it.
    """
    from tiktok_ads.tasks import flush_pixel

    if _woken_recently(pixel_id):
        return
    try:
        if settings.REDIS_URL:
            first = _redis().set(f"tiktok:flush-scheduled:{pixel_id}", 1, nx=True, px=FLUSH_DEBOUNCE_MS)
            if not first:
                return
        flush_pixel.apply_async(args=[pixel_id], countdown=FLUSH_DEBOUNCE_MS / 1000, retry=False)
    except Exception:  # noqa: BLE001 - the broker may be down; the row is safe in PostgreSQL
        logger.warning("Could not schedule a TikTok flush for pixel %s; the sweep will send it", pixel_id)

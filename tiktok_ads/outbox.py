"""Writing to the TikTok event outbox, and waking a sender when the row is committed."""

import json
import logging
import time
from datetime import datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from tiktok_ads.models import Pixel, TikTokEvent
from tracker.redis_client import redis_client

logger = logging.getLogger(__name__)
FLUSH_DEBOUNCE_MS = 500


def event_queue(*, pixel: Pixel, **event) -> tuple[TikTokEvent, bool]:
    """Put one event in the outbox, once: (pixel, event_id) is unique, a repeat returns the existing row.
    `event`: the other arguments of outbox_row.

    Call it inside the transaction that records what caused the event (the outbox pattern): the event
    exists if and only if its cause was committed. A sender is woken after the commit.
    """
    return row_queue(pixel=pixel, row=outbox_row(pixel=pixel, **event))


def row_queue(*, pixel: Pixel, row: dict) -> tuple[TikTokEvent, bool]:
    """event_queue for a row made by outbox_row."""
    created_row, created = _insert_once(pixel=pixel, row=row)
    if created:
        row_committed(row)
    return created_row, created


# The outbox row's columns, in the order of OUTBOX_INSERT_SQL's values (one INSERT … ON CONFLICT DO NOTHING).
OUTBOX_COLUMNS = (
    "pixel_id",
    "event_id",
    "event",
    "event_time",
    "payload",
    "source",
    "status",
    "attempts",
    "next_attempt_at",
    "last_message",
    "request_id",
    "test_event_code",
    "created_at",
    "updated_at",
)
_OUTBOX_VALUES = ", ".join("%s::jsonb" if column == "payload" else "%s" for column in OUTBOX_COLUMNS)
OUTBOX_INSERT_SQL = (
    f"INSERT INTO tiktok_ads_tiktokevent ({', '.join(OUTBOX_COLUMNS)}) VALUES ({_OUTBOX_VALUES}) "
    "ON CONFLICT (pixel_id, event_id) DO NOTHING"
)


def outbox_insert_sql_after(source: str) -> str:
    """The outbox INSERT written only when the statement's `source` (a WITH query) returned a row."""
    return (
        f"INSERT INTO tiktok_ads_tiktokevent ({', '.join(OUTBOX_COLUMNS)}) SELECT {_OUTBOX_VALUES} FROM {source} "
        "ON CONFLICT (pixel_id, event_id) DO NOTHING"
    )


def outbox_row(
    *,
    pixel: Pixel,
    event_id: str,
    event: str,
    event_time: datetime,
    payload: dict,
    source: str,
    skip_reason: str = "",
    test_event_code: str | None = None,
) -> dict:
    """The outbox row of one event, column by column: queued, or skipped with its reason."""
    if test_event_code is None:
        test_event_code = pixel.test_event_code if pixel.test_mode else ""
    now = timezone.now()
    return {
        "pixel_id": pixel.pk,
        "event_id": event_id,
        "event": event,
        "event_time": event_time,
        "payload": payload,
        "source": source,
        "status": TikTokEvent.Status.SKIPPED if skip_reason else TikTokEvent.Status.QUEUED,
        "attempts": 0,
        "next_attempt_at": now,
        "last_message": skip_reason,
        "request_id": "",
        "test_event_code": test_event_code,
        "created_at": now,
        "updated_at": now,
    }


def outbox_params(row: dict) -> list:
    """The row's values in OUTBOX_COLUMNS order, the payload as JSON text."""
    return [json.dumps(row[column], cls=DjangoJSONEncoder) if column == "payload" else row[column]
            for column in OUTBOX_COLUMNS]  # fmt: skip


def row_committed(row: dict) -> None:
    """Call once a new outbox row is written in the current transaction: a sender is woken after the commit."""
    if row["status"] == TikTokEvent.Status.QUEUED:
        pixel_id = row["pixel_id"]
        transaction.on_commit(lambda: schedule_flush(pixel_id))


def _insert_once(*, pixel: Pixel, row: dict) -> tuple[TikTokEvent, bool]:
    """On PostgreSQL one INSERT … ON CONFLICT DO NOTHING (no savepoint, no read first); elsewhere
    get_or_create."""
    fields = {key: value for key, value in row.items() if key not in ("pixel_id", "event_id")}
    if connection.vendor != "postgresql":
        with transaction.atomic():
            return TikTokEvent.objects.get_or_create(pixel=pixel, event_id=row["event_id"], defaults=fields)
    with connection.cursor() as cursor:
        cursor.execute(OUTBOX_INSERT_SQL + " RETURNING id", outbox_params(row))
        inserted = cursor.fetchone()
    if inserted is None:
        return TikTokEvent.objects.get(pixel=pixel, event_id=row["event_id"]), False
    return TikTokEvent(id=inserted[0], pixel=pixel, event_id=row["event_id"], **fields), True


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
            key = f"tiktok:flush-scheduled:{pixel_id}"
            first = redis_client(settings.REDIS_URL).set(key, 1, nx=True, px=FLUSH_DEBOUNCE_MS)
            if not first:
                return
        flush_pixel.apply_async(args=[pixel_id], countdown=FLUSH_DEBOUNCE_MS / 1000, retry=False)
    except Exception:  # noqa: BLE001 - the broker may be down; the row is safe in PostgreSQL
        logger.warning("Could not schedule a TikTok flush for pixel %s; the sweep will send it", pixel_id)

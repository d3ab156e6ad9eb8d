"""Sending the outbox to TikTok: claim due rows, respect the limits, send, record every answer.

Guarantees:
- Two workers never send the same row: rows are claimed with SELECT … FOR UPDATE SKIP LOCKED and
  marked SENDING in the same transaction, so Celery's at-least-once redelivery is harmless.
- Nothing queued is lost: a row is SENT, FAILED (with TikTok's code and message), SKIPPED (with a
  reason), or still pending. A worker that dies mid-request leaves SENDING rows that the sweep
  queues again after TIKTOK_STALE_CLAIM_S; the resend carries the same event_id, which TikTok
  deduplicates.
- At most TIKTOK_MAX_REQUESTS_PER_S requests a second across workers; each pixel's daily quota is
  kept, and what exceeds it waits for the next UTC day instead of being dropped.
"""

import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from tiktok_ads.client import TikTokClient, TikTokError
from tiktok_ads.crypto import decrypt_token
from tiktok_ads.funnel import too_old
from tiktok_ads.limits import daily_quota, request_limiter, utc_day
from tiktok_ads.models import DeliveryAttempt, Pixel, TikTokEvent

logger = logging.getLogger(__name__)
Status = TikTokEvent.Status
PENDING = (Status.QUEUED, Status.RETRYING)
# 40002 (one item failed validation) rejects the whole batch (TIKTOK.md "Response"): split the batch
# to find the bad item instead of failing its neighbours.
SPLIT_ON_CODES = frozenset({40002, 40003})
TOKEN_INVALID_CODE = 40105  # TIKTOK.md: access token invalid or revoked; flag the pixel
LIMITER_WAIT_S = 5.0


@dataclass
class FlushReport:
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    deferred: int = 0
    requests: int = 0
    more_due: bool = False  # the run stopped with events still due (a backlog, a limit): chain another
    codes: dict = field(default_factory=dict)


def _now():
    return timezone.now()


def _backoff_s(attempts: int) -> float:
    """Exponential backoff with jitter: base · 2^(n-1), capped, times a random factor in [0.5, 1]."""
    delay = min(settings.TIKTOK_RETRY_MAX_S, settings.TIKTOK_RETRY_BASE_S * 2 ** max(attempts - 1, 0))
    return delay * random.uniform(0.5, 1.0)


def due_events(pixel: Pixel):
    return TikTokEvent.objects.filter(pixel=pixel, status__in=PENDING, next_attempt_at__lte=_now())


CLAIM_SQL = """
    UPDATE tiktok_ads_tiktokevent SET status = 'sending', claimed_at = %(now)s
    WHERE id IN (
        SELECT id FROM tiktok_ads_tiktokevent
        WHERE pixel_id = %(pixel_id)s AND status IN ('queued', 'retrying') AND next_attempt_at <= %(now)s
        ORDER BY next_attempt_at, id
        LIMIT %(size)s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, event_id, event_time, payload, test_event_code, attempts
"""


@dataclass(eq=False)
class ClaimedEvent:
    """A row the sender holds: what it sends and records, the payload as the JSON text that is stored."""

    pk: int
    event_id: str
    event_time: datetime
    payload_json: str
    test_event_code: str
    attempts: int


def claim_batch(pixel: Pixel, size: int) -> list[ClaimedEvent]:
    """Lock up to `size` due rows that no other worker holds, and mark them SENDING.

    On PostgreSQL it is one statement that walks the due-rows index in order and returns only the
    columns the sender needs, the payload as text (no model instance, no JSON decoded to be encoded
    again). Elsewhere (SQLite, one writer at a time) a SELECT and an UPDATE.
    """
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(CLAIM_SQL, {"now": _now(), "pixel_id": pixel.pk, "size": size})
            rows = [ClaimedEvent(*row) for row in cursor.fetchall()]  # Django reads jsonb as text
        return sorted(rows, key=lambda row: row.pk)
    with transaction.atomic():
        rows = list(due_events(pixel).order_by("next_attempt_at", "id").select_for_update(skip_locked=True)[:size])
        if rows:
            TikTokEvent.objects.filter(pk__in=[row.pk for row in rows]).update(status=Status.SENDING, claimed_at=_now())
    return [ClaimedEvent(row.pk, row.event_id, row.event_time, json.dumps(row.payload), row.test_event_code,
                         row.attempts) for row in rows]  # fmt: skip


def _release(rows: list[ClaimedEvent], *, next_attempt_at: datetime, message: str) -> None:
    """Give claimed rows back to the queue without counting an attempt."""
    TikTokEvent.objects.filter(pk__in=[row.pk for row in rows], status=Status.SENDING).update(
        status=Status.QUEUED, next_attempt_at=next_attempt_at, claimed_at=None, last_message=message[:500]
    )


def _record_attempt(pixel, rows, started, *, response=None, error: TikTokError | None = None) -> DeliveryAttempt:
    source = response if response is not None else error
    return DeliveryAttempt.objects.create(
        pixel=pixel,
        event_count=len(rows),
        http_status=getattr(source, "http_status", None),
        code=getattr(source, "code", None),
        message=(getattr(source, "message", "") or "")[:500],
        request_id=getattr(source, "request_id", None) or "",
        response_text=(getattr(source, "response_text", "") or "")[:2000],
        duration_ms=int((time.monotonic() - started) * 1000),
        ok=response is not None,
    )


# The ids as one array parameter: through the ORM, `pk__in` wrote 1,000 placeholders into each batch's
# UPDATE, and building and converting that statement was about 40 % of the sender's CPU.
MARK_SENT_SQL = """
    UPDATE tiktok_ads_tiktokevent SET status = 'sent', sent_at = %s, attempts = 1, last_code = %s, last_message = %s,
        request_id = %s, claimed_at = NULL
    WHERE id = ANY(%s) AND status = 'sending'
"""


def _mark_sent(rows, response) -> None:
    values = [_now(), response.code, (response.message or "OK")[:500], response.request_id or ""]
    ids = [row.pk for row in rows]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(MARK_SENT_SQL, [*values, ids])
        return
    sent_at, code, message, request_id = values
    TikTokEvent.objects.filter(pk__in=ids, status=Status.SENDING).update(
        status=Status.SENT, sent_at=sent_at, attempts=1, last_code=code, last_message=message,
        request_id=request_id, claimed_at=None,
    )  # fmt: skip


def _mark_failed(rows, *, code, message) -> None:
    TikTokEvent.objects.filter(pk__in=[row.pk for row in rows], status=Status.SENDING).update(
        status=Status.FAILED, last_code=code, last_message=message[:500], claimed_at=None
    )


def _mark_retrying(rows, error: TikTokError, report: FlushReport) -> None:
    for row in rows:
        attempts = row.attempts + 1
        gives_up = attempts >= settings.TIKTOK_MAX_ATTEMPTS
        TikTokEvent.objects.filter(pk=row.pk, status=Status.SENDING).update(
            status=Status.FAILED if gives_up else Status.RETRYING,
            attempts=attempts,
            next_attempt_at=_now() + timedelta(seconds=_backoff_s(attempts)),
            last_code=error.code,
            last_message=(f"gave up after {attempts} attempts: " if gives_up else "") + str(error)[:400],
            claimed_at=None,
        )
        if gives_up:
            report.failed += 1
        else:
            report.retrying += 1


class PixelSender:
    """Sends one pixel's claimed rows, splitting batches that TikTok rejects for one bad item."""

    def __init__(self, pixel: Pixel, *, client: TikTokClient | None = None, limiter=None):
        self.pixel = pixel
        self.client = client or TikTokClient(
            settings.TIKTOK_API_BASE_URL, decrypt_token(pixel.access_token_encrypted), settings.TIKTOK_HTTP_TIMEOUT
        )
        self.limiter = limiter or request_limiter()
        self.report = FlushReport()

    def send(self, rows: list[ClaimedEvent]) -> bool:
        """Send rows sharing one test_event_code. Returns False when the pixel must stop for now."""
        if not self.limiter.acquire(timeout=LIMITER_WAIT_S):
            _release(rows, next_attempt_at=_now(), message="waiting for the request rate limit")
            return False
        started = time.monotonic()
        self.report.requests += 1
        try:
            response = self.client.track_event_texts(
                pixel_code=self.pixel.pixel_code,
                event_texts=[row.payload_json for row in rows],
                test_event_code=rows[0].test_event_code or None,
                partner_name=settings.TIKTOK_PARTNER_NAME or None,
            )
        except TikTokError as error:
            _record_attempt(self.pixel, rows, started, error=error)
            self.report.codes[error.code] = self.report.codes.get(error.code, 0) + len(rows)
            return self._on_error(rows, error)
        _record_attempt(self.pixel, rows, started, response=response)
        _mark_sent(rows, response)
        self.report.sent += len(rows)
        self.report.codes[0] = self.report.codes.get(0, 0) + len(rows)
        return True

    def _on_error(self, rows, error: TikTokError) -> bool:
        if error.code == TOKEN_INVALID_CODE:
            Pixel.objects.filter(pk=self.pixel.pk).update(token_invalid=True)
            _release(rows, next_attempt_at=_now(), message=f"paused: {error}")
            logger.error("TikTok rejected the access token of pixel %s; sending paused", self.pixel.pixel_code)
            return False
        if error.retryable:
            _mark_retrying(rows, error, self.report)
            return error.code != 40100  # rate limited: stop this round, the backoff spaces the retry
        if error.code in SPLIT_ON_CODES and len(rows) > 1:
            middle = len(rows) // 2
            if not self.send(rows[:middle]):
                _release(rows[middle:], next_attempt_at=_now(), message="waiting for the next round")
                return False
            return self.send(rows[middle:])
        _mark_failed(rows, code=error.code, message=str(error))
        self.report.failed += len(rows)
        return True


def flush_pixel(*, pixel_id: int, time_budget_s: float = 45.0, client=None, limiter=None, quota=None) -> FlushReport:
    """Send a pixel's due events in batches of up to TIKTOK_BATCH_SIZE until none are due or time is up."""
    pixel = Pixel.objects.filter(pk=pixel_id).first()
    if pixel is None or not pixel.is_active or pixel.token_invalid:
        return FlushReport()
    sender = PixelSender(pixel, client=client, limiter=limiter)
    quota = quota or daily_quota()
    deadline = time.monotonic() + time_budget_s
    drained, keep_going = False, True  # drained: the last claim took every event that was due
    while time.monotonic() < deadline:
        rows = claim_batch(pixel, settings.TIKTOK_BATCH_SIZE)
        drained = len(rows) < settings.TIKTOK_BATCH_SIZE
        if not rows:
            break
        stale = [row for row in rows if too_old(row.event_time)]
        if stale:
            _mark_failed(stale, code=None, message=f"older than {settings.TIKTOK_MAX_EVENT_AGE_DAYS} days: TikTok "
                                                   "would reject it")  # fmt: skip
            sender.report.failed += len(stale)
            rows = [row for row in rows if row not in stale]
        today = _now().astimezone(UTC).date()
        granted = quota.reserve(pixel.pixel_code, len(rows), pixel.daily_quota, today)
        if granted < len(rows):
            _release(rows[granted:], next_attempt_at=utc_day(_now())[1],
                     message="daily quota reached: waits for the next UTC day")  # fmt: skip
            sender.report.deferred += len(rows) - granted
            rows = rows[:granted]
        keep_going = True
        for group in _by_test_code(rows):
            if not keep_going:
                _release(group, next_attempt_at=_now(), message="waiting for the next round")
                quota.release(pixel.pixel_code, len(group), today)
                continue
            sent_before = sender.report.sent
            keep_going = sender.send(group)
            unsent = len(group) - (sender.report.sent - sent_before)
            if unsent:
                quota.release(pixel.pixel_code, unsent, today)
        if not keep_going or granted == 0 or drained:
            break
    # A short batch took every event due: what arrives meanwhile wakes a flush of its own within
    # outbox.FLUSH_DEBOUNCE_MS, which sends it in one batch. Claiming it at once instead sent a busy pixel's
    # stream in batches of a tenth of a second, ten requests a second (bench/README.md, stop 23).
    sender.report.more_due = not (drained and keep_going) and due_events(pixel).exists()
    return sender.report


def _by_test_code(rows: list[ClaimedEvent]) -> list[list[ClaimedEvent]]:
    groups: dict[str, list[ClaimedEvent]] = {}
    for row in rows:
        groups.setdefault(row.test_event_code, []).append(row)
    return list(groups.values())


def requeue_stale_claims() -> int:
    """SENDING rows whose worker died (claimed long ago) go back to the queue."""
    cutoff = _now() - timedelta(seconds=settings.TIKTOK_STALE_CLAIM_S)
    return TikTokEvent.objects.filter(status=Status.SENDING, claimed_at__lt=cutoff).update(
        status=Status.QUEUED, claimed_at=None, last_message="requeued: the sending worker stopped"
    )


def pixels_with_due_events() -> list[int]:
    return list(
        TikTokEvent.objects.filter(status__in=PENDING, next_attempt_at__lte=_now())
        .filter(Q(pixel__is_active=True) & Q(pixel__token_invalid=False))
        .values_list("pixel_id", flat=True)
        .distinct()
        .order_by()
    )


def event_resend(*, event_ids: list[int]) -> int:
    """Admin action: failed (or skipped) events go back to the queue, keeping their event_id."""
    return TikTokEvent.objects.filter(pk__in=event_ids, status__in=[Status.FAILED, Status.SKIPPED]).update(
        status=Status.QUEUED, attempts=0, next_attempt_at=_now(), claimed_at=None
    )

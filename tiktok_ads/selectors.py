"""Reads for the TikTok monitoring in the admin: what each pixel sent today, what waits, what failed.

Every number is an aggregate query (or one correlated subquery per pixel row) that an outbox index
serves: (pixel, sent_at) for what was sent, the partial index on pending rows for what waits, and
DeliveryAttempt.created_at for recent failures. Nothing here loops over events in Python.
"""

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from tiktok_ads.limits import daily_quota, utc_day
from tiktok_ads.models import DeliveryAttempt, Pixel, TikTokEvent

logger = logging.getLogger(__name__)
Status = TikTokEvent.Status
PENDING = (Status.QUEUED, Status.RETRYING)  # as in dispatch: rows a sender will still pick up
RECENT_ATTEMPTS = 20


def _count(events: QuerySet) -> Coalesce:
    counted = events.order_by().values("pixel").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def pixels_with_numbers(pixels: QuerySet | None = None) -> QuerySet:
    """Pixels annotated with sent_today, queued_now (queued + retrying), failed_total (all time),
    last_sent_at and oldest_queued_at; each is a subquery on one pixel's rows, so a page of pixels
    costs one query whatever the size of the outbox."""
    start, end = utc_day()
    events = TikTokEvent.objects.filter(pixel=OuterRef("pk"))
    pending = events.filter(status__in=PENDING)
    return (pixels if pixels is not None else Pixel.objects.all()).annotate(
        sent_today=_count(events.filter(sent_at__gte=start, sent_at__lt=end)),
        queued_now=_count(pending),
        failed_total=_count(events.filter(status=Status.FAILED)),
        last_sent_at=Subquery(events.filter(sent_at__isnull=False).order_by("-sent_at").values("sent_at")[:1]),
        oldest_queued_at=Subquery(pending.order_by("created_at").values("created_at")[:1]),
    )


def sent_today(pixel: Pixel) -> int:
    start, end = utc_day()
    return TikTokEvent.objects.filter(pixel=pixel, sent_at__gte=start, sent_at__lt=end).count()


def quota_used_today(pixels: list[Pixel]) -> dict[int, int]:
    """Today's quota use per pixel id, as the limiter that grants it counts it.

    With REDIS_URL the limiter's counter lives in Redis (one MGET for all the pixels); without it, or
    when Redis does not answer, it is the outbox's count: events sent today plus those being sent.
    """
    if not pixels:
        return {}
    if settings.REDIS_URL:
        quota = daily_quota()
        today = timezone.now().astimezone(UTC).date()
        try:
            values = quota.redis.mget([quota.key(pixel.pixel_code, today) for pixel in pixels])
        except Exception:  # noqa: BLE001 - a monitoring page must open while Redis is down
            logger.warning("Redis did not answer; the quota shown is counted from the outbox")
        else:
            return {pixel.pk: int(value or 0) for pixel, value in zip(pixels, values, strict=True)}
    start, end = utc_day()
    used = (
        TikTokEvent.objects.filter(pixel__in=pixels)
        .filter(Q(sent_at__gte=start, sent_at__lt=end) | Q(status=Status.SENDING, claimed_at__gte=start))
        .order_by()
        .values("pixel")
        .annotate(n=Count("pk"))
    )
    counts = {row["pixel"]: row["n"] for row in used}
    return {pixel.pk: counts.get(pixel.pk, 0) for pixel in pixels}


def failure_label(code: int | None, http_status: int | None) -> str:
    """TikTok's code when it answered with one; otherwise what went wrong on the way."""
    if code is not None:
        return str(code)
    if http_status is None:
        return "None(timeout)"  # no HTTP answer at all: a timeout or a refused/reset connection
    if http_status == 200:
        return "None(malformed)"
    return f"None(HTTP {http_status})"


def failures_by_code(pixel: Pixel, since: datetime) -> dict[str, int]:
    """Failed requests to TikTok since `since`, by code, most frequent first: {"40002": 3, "None(timeout)": 2}.

    Requests, not events: a batch that failed counts once (and a batch split to find a bad item
    counts once per request it took).
    """
    grouped = (
        DeliveryAttempt.objects.filter(pixel=pixel, ok=False, created_at__gte=since)
        .order_by()
        .values("code", "http_status")
        .annotate(n=Count("pk"))
    )
    by_label: dict[str, int] = {}
    for row in grouped:  # one row per (code, HTTP status): a handful
        label = failure_label(row["code"], row["http_status"])
        by_label[label] = by_label.get(label, 0) + row["n"]
    return dict(sorted(by_label.items(), key=lambda item: (-item[1], item[0])))


def recent_attempts(pixel: Pixel, limit: int = RECENT_ATTEMPTS) -> list[DeliveryAttempt]:
    return list(DeliveryAttempt.objects.filter(pixel=pixel).defer("response_text").order_by("-id")[:limit])


def pixel_monitoring(pixel: Pixel) -> dict:
    """Everything the pixel's admin page shows under "Monitoring", read in a handful of queries."""
    now = timezone.now()
    numbers = (
        pixels_with_numbers(Pixel.objects.filter(pk=pixel.pk))
        .values("sent_today", "queued_now", "failed_total", "last_sent_at", "oldest_queued_at")
        .get()
    )
    quota_used = quota_used_today([pixel])[pixel.pk]
    oldest = numbers["oldest_queued_at"]
    return {
        **numbers,
        "daily_quota": pixel.daily_quota,
        "quota_used": quota_used,
        "quota_left": max(0, pixel.daily_quota - quota_used),
        "oldest_queued_age_s": int((now - oldest).total_seconds()) if oldest else None,
        "failures_by_code": failures_by_code(pixel, since=now - timedelta(hours=24)),
        "recent_attempts": recent_attempts(pixel),
    }

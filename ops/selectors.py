"""Reads for /metrics and the admin's outbox line: whole-tracker totals, the outbox by status.

Every number is an aggregate query. Totals use the same rollup as the link totals (DailyStats plus the
few rows above the rollup cursor), so they are exact and cumulative whichever gunicorn worker answers.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min, Sum
from django.utils import timezone

from conversions.models import BotStart, Click, Conversion, DailyStats
from conversions.rollups import click_counts, unrolled_since
from conversions.selectors import CLICK_COUNTERS
from tiktok_ads.models import TikTokEvent

Status = TikTokEvent.Status
# Not sent yet and not given up: what "outbox depth" counts.
WAITING = (Status.QUEUED, Status.RETRYING, Status.SENDING)
# What the oldest-event age looks at: rows a sender will still pick up (as tiktok_ads.selectors.PENDING).
PENDING = (Status.QUEUED, Status.RETRYING)


def tracker_totals() -> dict[str, int]:
    """clicks, unique_clicks, bot_hits, landing_views and starts of every link and campaign, ever."""
    counters = (*CLICK_COUNTERS, "starts")
    rolled = DailyStats.objects.aggregate(**{name: Sum(name) for name in counters})
    totals = {name: rolled[name] or 0 for name in counters}
    # The tail above the cursor is only what arrived since the last rollup (seconds of traffic).
    for row in click_counts(Click.objects.filter(id__gt=unrolled_since("clicks"))):
        for name in CLICK_COUNTERS:
            totals[name] += row[name]
    totals["starts"] += BotStart.objects.filter(id__gt=unrolled_since("starts")).count()
    return totals


@dataclass(frozen=True)
class ConversionNumbers:
    total: int
    by_status: dict[str, int]
    approved_revenue_minor: dict[str, int]  # by currency


def conversion_numbers() -> ConversionNumbers:
    rows = (
        Conversion.objects.order_by().values("status", "currency").annotate(n=Count("pk"), revenue=Sum("amount_minor"))
    )
    by_status = dict.fromkeys(Conversion.Status.values, 0)
    revenue: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        if row["status"] == Conversion.Status.APPROVED:
            revenue[row["currency"]] = revenue.get(row["currency"], 0) + (row["revenue"] or 0)
    return ConversionNumbers(total=sum(by_status.values()), by_status=by_status, approved_revenue_minor=revenue)


def tiktok_events_by_status() -> dict[str, int]:
    """Outbox rows by status, every status present (0 when none)."""
    counts = dict.fromkeys(Status.values, 0)
    for row in TikTokEvent.objects.order_by().values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


@dataclass(frozen=True)
class OutboxSummary:
    queued: int
    retrying: int
    sending: int
    oldest_pending_at: datetime | None

    @property
    def depth(self) -> int:
        return self.queued + self.retrying + self.sending

    @property
    def oldest_pending_age_s(self) -> float:
        return max(0.0, (timezone.now() - self.oldest_pending_at).total_seconds()) if self.oldest_pending_at else 0.0


def outbox_summary(by_status: dict[str, int] | None = None) -> OutboxSummary:
    """Depth of the outbox and its oldest event still waiting to be sent (queued or retrying).

    Pending rows are few (the partial index on them stays small however many were sent).
    """
    if by_status is None:
        by_status = dict(
            TikTokEvent.objects.filter(status__in=WAITING).order_by().values_list("status").annotate(n=Count("pk"))
        )
    oldest = TikTokEvent.objects.filter(status__in=PENDING).aggregate(oldest=Min("created_at"))["oldest"]
    return OutboxSummary(
        queued=by_status.get(Status.QUEUED, 0),
        retrying=by_status.get(Status.RETRYING, 0),
        sending=by_status.get(Status.SENDING, 0),
        oldest_pending_at=oldest,
    )

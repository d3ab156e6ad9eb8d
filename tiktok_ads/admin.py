"""The marketers' TikTok monitoring: pixels with today's numbers, the event outbox, the requests sent."""

import json

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db import IntegrityError, transaction
from django.db.models import Subquery
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.timesince import timesince

from tiktok_ads import selectors
from tiktok_ads.crypto import encrypt_token, mask_token
from tiktok_ads.dispatch import event_resend, flush_pixel
from tiktok_ads.forms import PixelForm
from tiktok_ads.funnel import forget_default_pixel
from tiktok_ads.models import DeliveryAttempt, Pixel, TikTokEvent
from tiktok_ads.outbox import event_queue, schedule_flush
from tracker.admin_base import ViewOnlyAdmin

Status = TikTokEvent.Status
# Long enough for one request to TikTok, short enough for a browser waiting on the action.
TEST_EVENT_TIME_BUDGET_S = 5.0
STATUS_COLOURS = {
    Status.QUEUED: "#666",
    Status.SENDING: "#1f6fb2",
    Status.RETRYING: "#c27c0e",
    Status.SENT: "#2e7d32",
    Status.FAILED: "#c62828",
    Status.SKIPPED: "#999",
}


def when(moment) -> str:
    return date_format(timezone.localtime(moment), "Y-m-d H:i:s") if moment else "-"


def pretty_json(value) -> str:
    return format_html(
        '<pre style="white-space:pre-wrap;max-width:60rem">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, default=str),
    )


def pixel_send_test_event(*, pixel: Pixel, time_budget_s: float = TEST_EVENT_TIME_BUDGET_S) -> tuple[TikTokEvent, bool]:
    """Queue one ViewContent with a test_event_code (it lands in TikTok's Test Events, not in the ads'
    numbers) and send the pixel's queue now. Returns the row as it is after the send, and whether it was
    new (the event_id has one-second resolution: a second click in the same second reuses the row)."""
    now = timezone.now()
    event_id = f"test_{pixel.pk}_{int(now.timestamp())}"
    payload = {
        "event": "ViewContent",
        "event_time": int(now.timestamp()),
        "event_id": event_id,
        "properties": {"description": "Test event sent from the tracker admin"},
    }
    row, created = event_queue(
        pixel=pixel,
        event_id=event_id,
        event="ViewContent",
        event_time=now,
        payload=payload,
        source="admin_test",
        test_event_code=pixel.test_event_code or f"TEST{pixel.pk}",
    )
    # A worker woken by the queueing may claim the row first; SKIP LOCKED keeps it sent once either way.
    flush_pixel(pixel_id=pixel.pk, time_budget_s=time_budget_s)
    row.refresh_from_db()
    return row, created


def pixel_make_default(*, pixel: Pixel) -> None:
    """The default pixel is unique (a partial unique constraint): unset the old one first."""
    with transaction.atomic():
        Pixel.objects.filter(is_default=True).exclude(pk=pixel.pk).update(is_default=False)
        Pixel.objects.filter(pk=pixel.pk).update(is_default=True)
    forget_default_pixel()


class PixelChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # One read of the quota counters for the whole page (one Redis MGET), not one per row.
        pixels = list(self.result_list)
        used = selectors.quota_used_today(pixels)
        for pixel in pixels:
            pixel.quota_used_today = used[pixel.pk]


@admin.register(Pixel)
class PixelAdmin(admin.ModelAdmin):
    form = PixelForm
    list_display = [
        "display_name", "pixel_code", "advertiser_id", "is_default", "is_active", "test_mode", "token",
        "sent_today", "quota_left", "queued_now", "failed_total", "last_sent_at",
    ]  # fmt: skip
    list_filter = ["is_active", "is_default", "test_mode", "token_invalid"]
    search_fields = ["name", "pixel_code", "advertiser_id"]
    readonly_fields = [
        "token_hint", "token_invalid", "is_default", "created_at",
        "usage_today", "queued_summary", "oldest_queued", "failures_24h", "recent_attempts_table",
    ]  # fmt: skip
    actions = ["send_test_event", "make_default", "clear_token_invalid"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ["name", "pixel_code", "advertiser_id", "access_token", "token_hint", "token_invalid",
                               "is_active", "is_default"]}),
            ("Test events", {"fields": ["test_mode", "test_event_code"]}),
            ("What is sent", {"fields": ["enabled_events", "goal_events", "daily_quota"]}),
        ]  # fmt: skip
        if obj is not None:
            fieldsets.append(
                (
                    "Monitoring",
                    {"fields": ["usage_today", "queued_summary", "oldest_queued", "failures_24h",
                                "recent_attempts_table", "created_at"]},
                )
            )  # fmt: skip
        return fieldsets

    def get_queryset(self, request):
        return selectors.pixels_with_numbers(super().get_queryset(request))

    def get_changelist(self, request, **kwargs):
        return PixelChangeList

    def save_model(self, request, obj, form, change):
        access_token = form.cleaned_data.get("access_token")
        if access_token:
            obj.access_token_encrypted = encrypt_token(access_token)
            obj.token_hint = mask_token(access_token)
            obj.token_invalid = False
        if not change and not Pixel.objects.filter(is_default=True).exists():
            obj.is_default = True  # as pixel_connect does: the first pixel is the default
        super().save_model(request, obj, form, change)
        forget_default_pixel()
        if change and access_token:
            schedule_flush(obj.pk)  # events paused by a rejected token can go now

    # --- list columns (annotated by selectors.pixels_with_numbers) ---

    @admin.display(description="Name", ordering="name")
    def display_name(self, pixel):
        return pixel.name or pixel.pixel_code

    @admin.display(description="Token")
    def token(self, pixel):
        if pixel.token_invalid:
            return format_html('<strong style="color:#c62828">invalid</strong> {}', pixel.token_hint)
        return pixel.token_hint

    @admin.display(description="Sent today", ordering="sent_today")
    def sent_today(self, pixel):
        return pixel.sent_today

    @admin.display(description="Quota left today")
    def quota_left(self, pixel):
        used = getattr(pixel, "quota_used_today", None)
        if used is None:
            used = selectors.quota_used_today([pixel])[pixel.pk]
        return max(0, pixel.daily_quota - used)

    @admin.display(description="Queued now", ordering="queued_now")
    def queued_now(self, pixel):
        return pixel.queued_now

    @admin.display(description="Failed (all time)", ordering="failed_total")
    def failed_total(self, pixel):
        return pixel.failed_total

    @admin.display(description="Last sent at", ordering="last_sent_at")
    def last_sent_at(self, pixel):
        return when(pixel.last_sent_at)

    # --- the change page's Monitoring block ---

    def _monitoring(self, pixel) -> dict:
        if not hasattr(pixel, "_monitoring"):
            pixel._monitoring = selectors.pixel_monitoring(pixel)
        return pixel._monitoring

    @admin.display(description="Today (UTC)")
    def usage_today(self, pixel):
        numbers = self._monitoring(pixel)
        return (
            f"{numbers['sent_today']:,} sent · daily quota {numbers['daily_quota']:,} · "
            f"{numbers['quota_left']:,} left ({numbers['quota_used']:,} used by the limiter)"
        )

    @admin.display(description="Queued now")
    def queued_summary(self, pixel):
        numbers = self._monitoring(pixel)
        return f"{numbers['queued_now']:,} waiting · {numbers['failed_total']:,} failed (all time)"

    @admin.display(description="Oldest queued event")
    def oldest_queued(self, pixel):
        oldest = self._monitoring(pixel)["oldest_queued_at"]
        if oldest is None:
            return "nothing queued"
        return f"queued {timesince(oldest)} ago ({when(oldest)})"

    @admin.display(description="Failed requests by code (24 h)")
    def failures_24h(self, pixel):
        failures = self._monitoring(pixel)["failures_by_code"]
        return ", ".join(f"{label}: {count}" for label, count in failures.items()) or "none"

    @admin.display(description=f"Last {selectors.RECENT_ATTEMPTS} requests to TikTok")
    def recent_attempts_table(self, pixel):
        attempts = self._monitoring(pixel)["recent_attempts"]
        if not attempts:
            return "none yet"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td></tr>",
            (
                (when(a.created_at), a.event_count, a.http_status or "-", "-" if a.code is None else a.code,
                 Truncator(a.message).chars(80), a.request_id or "-", a.duration_ms)
                for a in attempts
            ),
        )  # fmt: skip
        return format_html(
            "<table><thead><tr><th>Time</th><th>Events</th><th>HTTP</th><th>Code</th><th>Message</th>"
            "<th>request_id</th><th>Duration</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    # --- actions ---

    @admin.action(description="Send a test event (ViewContent, to TikTok's Test Events)")
    def send_test_event(self, request, queryset):
        for pixel in queryset:
            if not pixel.is_active or pixel.token_invalid:
                why = "it is inactive" if not pixel.is_active else "its token is flagged invalid: replace it first"
                messages.error(request, f"{pixel}: no test event sent, {why}.")
                continue
            row, created = pixel_send_test_event(pixel=pixel)
            self._report_test_event(request, pixel, row, created)

    def _report_test_event(self, request, pixel, row, created):
        said = f"code {row.last_code}: {row.last_message}"
        prefix = f"{pixel}: test event {row.event_id} (test_event_code {row.test_event_code})"
        if not created:
            prefix += " was already sent this second;"
        if row.status == Status.SENT:
            messages.success(request, f"{prefix} sent, TikTok request_id {row.request_id or '-'}.")
        elif row.status == Status.FAILED:
            messages.error(request, f"{prefix} failed: TikTok {said}")
        elif row.status == Status.RETRYING:
            messages.warning(request, f"{prefix} not sent yet, will retry: {said}")
        else:
            reason = row.last_message or "a worker is sending it or the queue ahead of it"
            messages.warning(request, f"{prefix} is {row.status}: {reason}.")

    @admin.action(description="Make the selected pixel the default")
    def make_default(self, request, queryset):
        pixels = list(queryset[:2])
        if len(pixels) != 1:
            messages.error(request, "Select exactly one pixel to make it the default.")
            return
        pixel = pixels[0]
        if not pixel.is_active:
            messages.error(request, f"{pixel} is inactive: activate it before making it the default.")
            return
        try:
            pixel_make_default(pixel=pixel)
        except IntegrityError:  # another admin changed the default at the same moment
            messages.error(request, "The default pixel changed meanwhile; try again.")
            return
        messages.success(request, f"{pixel} is now the default pixel.")

    @admin.action(description="Clear the invalid-token flag (resume sending)")
    def clear_token_invalid(self, request, queryset):
        pixel_ids = list(queryset.filter(token_invalid=True).values_list("pk", flat=True))
        Pixel.objects.filter(pk__in=pixel_ids).update(token_invalid=False)
        for pixel_id in pixel_ids:
            schedule_flush(pixel_id)
        messages.success(
            request,
            f"Sending resumed for {len(pixel_ids)} pixel(s). If TikTok rejects the token again (40105) the flag "
            "comes back: then enter a new access token on the pixel's page.",
        )


class DispatcherRowsAdmin(ViewOnlyAdmin):
    """Outbox and attempt rows are written by the dispatcher only."""

    show_full_result_count = False  # no COUNT(*) of the whole table on every filtered page


def recent_values_filter(field_name: str, title: str, recent_rows: int = 10_000):
    """A filter offering the values seen in the latest rows: a DISTINCT over the whole table (what
    list_filter = [field] does) is a full scan on every page load once the table is big."""

    class RecentValuesFilter(admin.SimpleListFilter):
        parameter_name = field_name
        none_value = "none"

        def lookups(self, request, model_admin):
            model = model_admin.model
            latest = model.objects.order_by("-pk").values("pk")[:recent_rows]
            seen = (
                model.objects.filter(pk__in=Subquery(latest))
                .order_by(field_name)
                .values_list(field_name, flat=True)
                .distinct()
            )
            options = [(self.none_value if value is None else str(value), value) for value in seen]
            chosen = self.value()
            if chosen and chosen not in {option for option, _ in options}:
                options.append((chosen, chosen))
            return [(option, "(none)" if label is None else label) for option, label in options]

        def queryset(self, request, queryset):
            chosen = self.value()
            if chosen is None:
                return queryset
            if chosen == self.none_value:
                return queryset.filter(**{f"{field_name}__isnull": True})
            return queryset.filter(**{field_name: chosen})

    RecentValuesFilter.title = title
    return RecentValuesFilter


@admin.register(TikTokEvent)
class TikTokEventAdmin(DispatcherRowsAdmin):
    list_display = [
        "event", "event_id", "pixel", "coloured_status", "attempts", "last_code", "short_message", "source",
        "created_at", "sent_at",
    ]  # fmt: skip
    list_filter = [
        "status",
        # Ranges (today, the past 7 days, this month…), which created_at's BRIN index serves. A date_hierarchy
        # would first ask the MIN and MAX of created_at over the whole outbox: a full scan without a B-tree.
        ("created_at", admin.DateFieldListFilter),
        recent_values_filter("event", "event"),
        "pixel",
        recent_values_filter("source", "source"),
        recent_values_filter("last_code", "last code"),
    ]
    search_fields = ["=event_id", "=request_id"]
    list_select_related = ["pixel"]
    fieldsets = [
        (None, {"fields": ["event", "event_id", "pixel", "source", "coloured_status", "attempts", "test_event_code"]}),
        ("TikTok's last answer", {"fields": ["last_answer", "sent_at", "next_attempt_at", "claimed_at"]}),
        ("Payload as sent (PII already hashed)", {"fields": ["payload_pretty"]}),
        (None, {"fields": ["event_time", "created_at", "updated_at"]}),
    ]  # fmt: skip
    readonly_fields = ["coloured_status", "last_answer", "payload_pretty"]
    actions = ["resend"]

    @admin.display(description="Status", ordering="status")
    def coloured_status(self, event):
        colour = STATUS_COLOURS.get(event.status, "inherit")
        return format_html('<strong style="color:{}">{}</strong>', colour, event.get_status_display())

    @admin.display(description="Last message")
    def short_message(self, event):
        return format_html('<span title="{}">{}</span>', event.last_message, Truncator(event.last_message).chars(60))

    @admin.display(description="Last answer")
    def last_answer(self, event):
        if event.last_code is None and not event.last_message:
            return "no answer yet"
        code = "no code" if event.last_code is None else f"code {event.last_code}"
        return f"{code}: {event.last_message or '-'} (request_id {event.request_id or '-'})"

    @admin.display(description="Payload")
    def payload_pretty(self, event):
        return pretty_json(event.payload)

    @admin.action(description="Resend (failed or skipped events go back to the queue, same event_id)")
    def resend(self, request, queryset):
        resendable = queryset.filter(status__in=[Status.FAILED, Status.SKIPPED])
        event_ids = list(resendable.values_list("pk", flat=True))
        pixel_ids = set(resendable.values_list("pixel_id", flat=True).order_by().distinct())
        requeued = event_resend(event_ids=event_ids)
        for pixel_id in sorted(pixel_ids):
            schedule_flush(pixel_id)
        messages.success(request, f"Requeued {requeued} event(s); only failed or skipped events are resent.")
        paused = Pixel.objects.filter(pk__in=pixel_ids, token_invalid=True)
        if paused.exists():
            names = ", ".join(str(pixel) for pixel in paused)
            messages.warning(request, f"Paused until the invalid token is replaced: {names}.")


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(DispatcherRowsAdmin):
    list_display = [
        "pixel", "created_at", "event_count", "http_status", "code", "short_message", "request_id", "duration_ms",
        "ok",
    ]  # fmt: skip
    list_filter = [
        "ok",
        "pixel",
        recent_values_filter("code", "code"),
        recent_values_filter("http_status", "HTTP status"),
    ]
    search_fields = ["=request_id"]
    list_select_related = ["pixel"]
    date_hierarchy = "created_at"
    fields = [
        "pixel", "created_at", "ok", "event_count", "http_status", "code", "message", "request_id", "duration_ms",
        "response",
    ]  # fmt: skip
    readonly_fields = ["response"]

    @admin.display(description="Message")
    def short_message(self, attempt):
        return format_html('<span title="{}">{}</span>', attempt.message, Truncator(attempt.message).chars(60))

    @admin.display(description="Response (truncated to 2,000 characters)")
    def response(self, attempt):
        try:
            return pretty_json(json.loads(attempt.response_text))
        except ValueError:
            return format_html('<pre style="white-space:pre-wrap">{}</pre>', attempt.response_text or "-")

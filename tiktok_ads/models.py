"""TikTok pixels (connections) and the outbound event outbox with its delivery attempts."""

from django.db import models
from django.db.models import Q

from tracker.db import HOT_PARENT

STANDARD_EVENTS = (
    "AddPaymentInfo", "AddToCart", "AddToWishlist", "ClickButton", "CompletePayment", "CompleteRegistration",
    "Contact", "Download", "InitiateCheckout", "PlaceAnOrder", "Search", "SubmitForm", "Subscribe",
    "ViewContent", "PageView", "Purchase", "Lead",
)  # fmt: skip  # TIKTOK.md "Standard events"; custom names are allowed too


def default_enabled_events() -> list[str]:
    return ["ViewContent", "CompleteRegistration", "CompletePayment", "AddToCart", "InitiateCheckout"]


def default_goal_events() -> dict[str, str]:
    """Conversion goal → TikTok event. Goals not listed send nothing."""
    return {"purchase": "CompletePayment", "sale": "CompletePayment", "deposit": "CompletePayment",
            "registration": "CompleteRegistration"}  # fmt: skip


def default_daily_quota() -> int:
    from django.conf import settings

    return settings.TIKTOK_DAILY_QUOTA


class Pixel(models.Model):
    """A TikTok pixel the tracker sends events to (the seed's "connection")."""

    name = models.CharField(max_length=200, blank=True)
    pixel_code = models.CharField(max_length=64, unique=True, help_text="The pixel id (event_source_id).")
    advertiser_id = models.CharField(max_length=64, blank=True)
    access_token_encrypted = models.TextField(editable=False)
    token_hint = models.CharField(max_length=8, blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, help_text="Used by campaigns that name no pixel.")
    test_mode = models.BooleanField(default=False, help_text="Send test_event_code so events land in Test Events.")
    test_event_code = models.CharField(max_length=64, blank=True)
    enabled_events = models.JSONField(default=default_enabled_events, blank=True)
    goal_events = models.JSONField(
        default=default_goal_events, blank=True, help_text="Conversion goal → event name, e.g. purchase → Purchase."
    )
    daily_quota = models.PositiveIntegerField(
        default=default_daily_quota, help_text="Events per UTC day; the excess waits for the next day."
    )
    token_invalid = models.BooleanField(
        default=False, help_text="TikTok said the token is invalid (40105): sending is paused until it is replaced."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="pixel_one_default")
        ]

    def __str__(self):
        return self.name or self.pixel_code

    def sends(self, event_name: str) -> bool:
        return self.is_active and event_name in (self.enabled_events or [])


class TikTokEvent(models.Model):
    """One event for one pixel: the outbox row, written in the transaction that caused it.

    (pixel, event_id) is unique, so the same event is never queued, and so never sent, twice.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Retrying"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    # No index of its own: the (pixel, event_id) constraint and the indexes below all start with pixel.
    pixel = models.ForeignKey(Pixel, on_delete=models.CASCADE, related_name="events", db_index=False, **HOT_PARENT)
    event_id = models.CharField(max_length=128)
    event = models.CharField(max_length=64)
    event_time = models.DateTimeField()
    # The v1.3 `data` item as it will be sent, PII already hashed.
    payload = models.JSONField()
    source = models.CharField(max_length=32, help_text="landing_view, bot_start, conversion, api")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_code = models.IntegerField(null=True, blank=True)
    last_message = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    test_event_code = models.CharField(max_length=64, blank=True)
    # On PostgreSQL a BRIN index (migration 0005): rows arrive in created_at order, and a B-tree entry would
    # be written again by each of the row's two updates (claimed, sent).
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "TikTok event"
        constraints = [models.UniqueConstraint(fields=["pixel", "event_id"], name="tiktokevent_once_per_pixel")]
        indexes = [
            # Only pending rows are in this index: it stays small however many events were sent.
            models.Index(
                fields=["pixel", "next_attempt_at", "id"],  # the claim's ORDER BY, so no sort of the queue
                name="tiktokevent_due_idx",
                condition=Q(status__in=["queued", "retrying"]),
            ),
            # Each holds only the rows it is asked about, so an event's insert and claim write no entry in
            # the first, and its insert and send none in the second.
            models.Index(fields=["pixel", "sent_at"], name="tiktokevent_sent_idx", condition=Q(sent_at__isnull=False)),
            models.Index(fields=["claimed_at"], name="tiktokevent_claimed_idx", condition=Q(status="sending")),
        ]

    def __str__(self):
        return f"{self.event} {self.event_id}"


class DeliveryAttempt(models.Model):
    """One request to TikTok: how many events, what it answered."""

    pixel = models.ForeignKey(Pixel, on_delete=models.CASCADE, related_name="attempts")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    event_count = models.PositiveIntegerField()
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    code = models.IntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    response_text = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    ok = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.pixel_id} {self.created_at:%Y-%m-%d %H:%M:%S} code={self.code}"

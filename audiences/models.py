"""TikTok audiences: who is in them (per hashed id, with its sync state), their syncs and file imports.

Only SHA-256 hashes are stored, never a raw email or phone: `AudienceMember.id_hash` is checked to be
64 lowercase hex digits by the database itself.
"""

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Func, Q, Value
from django.db.models.functions import Length
from django.db.models.lookups import Exact

HASH_REGEX = r"^[0-9a-f]{64}$"
HEX_DIGITS = "0123456789abcdef"


class Audience(models.Model):
    """One TikTok audience of an advertiser (reached through a pixel's advertiser id and access token)."""

    class Kind(models.TextChoices):
        CUSTOMER_FILE = "customer_file", "Customer file"
        RULE = "rule", "Rule (from the tracker's conversions)"
        LOOKALIKE = "lookalike", "Lookalike"

    class Status(models.TextChoices):
        NEW = "new", "Not at TikTok yet"
        READY = "ready", "At TikTok"
        FAILED = "failed", "TikTok refused to create it"

    class LookalikeSize(models.TextChoices):
        NARROW = "NARROW", "Narrow"
        BALANCED = "BALANCED", "Balanced"
        BROAD = "BROAD", "Broad"

    pixel = models.ForeignKey(
        "tiktok_ads.Pixel",
        on_delete=models.PROTECT,
        related_name="audiences",
        help_text="Its advertiser id and access token are used to manage the audience at TikTok.",
    )
    name = models.CharField(max_length=128, help_text="custom_audience_name at TikTok (at most 128 characters).")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    is_exclusion = models.BooleanField(
        default=False,
        verbose_name="exclusion list",
        help_text="Meant to be excluded in ad groups (e.g. existing buyers left out of prospecting).",
    )
    auto_sync = models.BooleanField(
        default=True, help_text="The beat job refreshes its rule and sends its changes to TikTok on its own."
    )

    # Rule audiences: people with approved conversions matching all of these.
    rule_event = models.CharField(
        max_length=64,
        blank=True,
        default="CompletePayment",
        help_text="TikTok event: conversions whose goal the pixel maps to it (CompleteRegistration also counts "
        "bot starts). Empty: any goal.",
    )
    rule_goal = models.CharField(max_length=64, blank=True, help_text="Only conversions of this goal, e.g. deposit.")
    rule_min_purchases = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="At least this many matching conversions per person."
    )
    rule_min_value_minor = models.BigIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Total value of a person's matching conversions at least this, in minor units (5000 = 50.00).",
    )
    rule_campaign = models.ForeignKey(
        "conversions.Campaign",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audiences",
        help_text="Only conversions of this campaign.",
    )
    rule_within_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Only conversions of the last N days."
    )

    # Lookalike audiences.
    lookalike_source = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="lookalikes"
    )
    lookalike_size = models.CharField(max_length=8, choices=LookalikeSize.choices, blank=True)
    lookalike_location_ids = models.JSONField(
        default=list, blank=True, help_text='TikTok location ids, e.g. ["6252001"] (United States).'
    )
    lookalike_include_source = models.BooleanField(default=False)

    tiktok_audience_id = models.CharField(max_length=64, blank=True, editable=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.NEW, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    last_synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="lookalike") | (Q(lookalike_source__isnull=False) & ~Q(lookalike_size="")),
                name="audience_lookalike_has_source",
            ),
            models.CheckConstraint(condition=Q(rule_min_purchases__gte=1), name="audience_rule_min_purchases"),
            models.CheckConstraint(
                condition=Q(rule_min_value_minor__isnull=True) | Q(rule_min_value_minor__gte=0),
                name="audience_rule_min_value_not_negative",
            ),
        ]

    def __str__(self):
        return self.name


class AudienceMember(models.Model):
    """One hashed id in one audience, and where it stands with TikTok.

    pending_add ──sync──▶ added ──(leaves the rule, REMOVE, REPLACE)──▶ pending_remove ──sync──▶ removed
    A removed or pending_remove member that comes back (matches again, is uploaded again) is pending_add.
    """

    class IdType(models.TextChoices):
        EMAIL_SHA256 = "EMAIL_SHA256", "Email (SHA-256)"
        PHONE_SHA256 = "PHONE_SHA256", "Phone (SHA-256)"

    class State(models.TextChoices):
        PENDING_ADD = "pending_add", "Pending add"
        ADDED = "added", "Added"
        PENDING_REMOVE = "pending_remove", "Pending remove"
        REMOVED = "removed", "Removed"

    # No separate index: the unique constraint below starts with audience_id.
    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="members", db_index=False)
    id_type = models.CharField(max_length=16, choices=IdType.choices)
    id_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING_ADD)
    changed_at = models.DateTimeField()

    class Meta:
        # No index on `state`, on purpose: the sync marks every member it sends (a million after a large file),
        # and with `state` in no index and half-empty pages (fillfactor 50, migration 0002) those UPDATEs are
        # HOT, about 7x cheaper than rewriting every index entry. Pending members are found along the unique
        # index instead (audiences.membership.pending_batch).
        constraints = [
            models.UniqueConstraint(fields=["audience", "id_type", "id_hash"], name="audiencemember_once"),
            # 64 lowercase hex digits: only hashes, never a raw email or phone. LTRIM with a character set
            # costs next to nothing per row; a regular expression here doubled the insert time of a large file.
            models.CheckConstraint(
                condition=Exact(Length("id_hash"), 64)
                & Exact(Func(F("id_hash"), Value(HEX_DIGITS), function="LTRIM"), Value("")),
                name="audiencemember_hash_only",
            ),
        ]

    def __str__(self):
        return f"{self.id_type} {self.id_hash[:12]}… {self.state}"


class AudienceSync(models.Model):
    """One run of the sync for one audience: what changed, what was sent, what TikTok answered."""

    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="syncs")
    trigger = models.CharField(max_length=16, help_text="beat, api, admin, import, create")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at_tiktok = models.BooleanField(default=False, help_text="The audience was created at TikTok in this run.")
    rule_added = models.PositiveIntegerField(default=0, help_text="Rule refresh: members that became pending_add.")
    rule_removed = models.PositiveIntegerField(default=0, help_text="Rule refresh: members that left the rule.")
    added = models.PositiveIntegerField(default=0, help_text="Members sent with action add and accepted.")
    removed = models.PositiveIntegerField(default=0, help_text="Members sent with action delete and accepted.")
    requests = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0)
    ok = models.BooleanField(default=False)
    more_pending = models.BooleanField(default=False, help_text="Changes left for the next run.")
    code = models.IntegerField(null=True, blank=True, help_text="TikTok's code of the last answer.")
    message = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    response_text = models.TextField(blank=True, help_text="TikTok's last answer, truncated.")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["audience", "-id"], name="audiencesync_recent_idx")]

    def __str__(self):
        return f"{self.audience_id} {self.started_at:%Y-%m-%d %H:%M:%S} {'ok' if self.ok else 'failed'}"


class CustomerFileImport(models.Model):
    """One uploaded CSV: how many rows, how many ids it gave, and the first problems by line."""

    class Mode(models.TextChoices):
        APPEND = "append", "Append: add these people"
        REPLACE = "replace", "Replace: these people, and nobody else"
        REMOVE = "remove", "Remove: take these people out"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="imports")
    filename = models.CharField(max_length=255)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.APPEND)
    default_region = models.CharField(max_length=2, blank=True, help_text="For phones without a country code.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    columns = models.JSONField(default=dict, blank=True, help_text="Header column → what it was read as.")
    rows_total = models.PositiveIntegerField(default=0)
    rows_ok = models.PositiveIntegerField(default=0, help_text="Rows that gave at least one id.")
    rows_bad = models.PositiveIntegerField(default=0, help_text="Rows that gave no id (every value bad or empty).")
    ids_total = models.PositiveIntegerField(default=0, help_text="Valid ids read (emails and phones).")
    ids_changed = models.PositiveIntegerField(
        default=0, help_text="Members that became pending_add (append, replace) or pending_remove (remove)."
    )
    ids_removed = models.PositiveIntegerField(default=0, help_text="Replace: members not in the file any more.")
    duplicates = models.PositiveIntegerField(
        default=0, help_text="Ids repeated in the file or already in that state in the audience."
    )
    errors_total = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="The first 1,000 problems: line, column, error.")
    message = models.CharField(max_length=500, blank=True)
    # Only while a large upload waits for the worker; the file is deleted after the import.
    stored_path = models.CharField(max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.filename} ({self.status})"

"""The ledger: campaigns, tracking links, clicks, Telegram leads, conversions, rollups, API keys.

Clicks, bot starts and conversions are rows that are appended (conversions change status);
totals come from `DailyStats`, refreshed in the background, never from a counter that every
click would have to UPDATE.
"""

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from tracker.db import HOT_PARENT

# Telegram's `start` parameter: at most 64 characters of A-Z a-z 0-9 _ -
# (https://core.telegram.org/bots/features#deep-linking). utm_ids and click ids both fit it.
TOKEN_REGEX = r"^[A-Za-z0-9_-]{1,64}$"
token_validator = RegexValidator(TOKEN_REGEX, "Use 1-64 characters of A-Z a-z 0-9 _ -")
bot_username_validator = RegexValidator(
    r"^[A-Za-z][A-Za-z0-9_]{4,31}$", "A Telegram bot username: 5-32 letters, digits or _ (without @)"
)


class Campaign(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    offer_url = models.URLField(
        max_length=2000,
        blank=True,
        help_text="Where classic /click?campaign_id=… links send visitors. Macros: {click_id} {subid} "
        "{utm_id} {country} {campaign_id} {sub1}…{sub5} {ttclid}",
    )
    pixel = models.ForeignKey(
        "tiktok_ads.Pixel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="campaigns",
        help_text="The TikTok pixel its funnel events go to. Empty: the default pixel, if any.",
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class LandingPage(models.Model):
    """What a visitor sees for a few seconds before the Telegram redirect."""

    name = models.CharField(max_length=200)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    logo_url = models.CharField(
        max_length=500, blank=True, help_text="An absolute URL or a path under /static/. Empty: the default logo."
    )
    redirect_text = models.CharField(max_length=200, default="Redirecting to Telegram…")
    button_text = models.CharField(max_length=100, default="Open in Telegram")
    redirect_delay_s = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Seconds before the redirect; empty uses LANDING_REDIRECT_DELAY_S."
    )

    def __str__(self):
        return self.name


class TrafficSource(models.Model):
    """A tracking link: /l/<utm_id>, placed in a TikTok bio, video or ad."""

    class Destination(models.TextChoices):
        TELEGRAM = "telegram", "Telegram bot"
        URL = "url", "URL"

    class RedirectMode(models.TextChoices):
        PAGE = "page", "Landing page, then redirect"
        DIRECT = "direct", "Direct 302 redirect"

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="links")
    utm_id = models.CharField(max_length=64, unique=True, validators=[token_validator])
    name = models.CharField(max_length=200, blank=True)
    utm_source = models.CharField(max_length=100, blank=True, default="tiktok")
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=200, blank=True)
    utm_content = models.CharField(max_length=200, blank=True)
    utm_term = models.CharField(max_length=200, blank=True)
    creative = models.CharField(max_length=200, blank=True, help_text="The video or ad this link sits under.")
    landing_page = models.ForeignKey(LandingPage, null=True, blank=True, on_delete=models.SET_NULL)
    destination = models.CharField(max_length=10, choices=Destination.choices, default=Destination.TELEGRAM)
    telegram_bot = models.CharField(max_length=32, blank=True, validators=[bot_username_validator])
    destination_url = models.URLField(
        max_length=2000, blank=True, help_text="For URL destinations. Macros as on the campaign's offer URL."
    )
    redirect_mode = models.CharField(max_length=10, choices=RedirectMode.choices, default=RedirectMode.PAGE)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "tracking link"
        constraints = [
            models.CheckConstraint(
                condition=~Q(destination="telegram") | ~Q(telegram_bot=""), name="link_telegram_needs_bot"
            ),
            models.CheckConstraint(condition=~Q(destination="url") | ~Q(destination_url=""), name="link_url_needs_url"),
        ]

    def __str__(self):
        return self.utm_id


class Click(models.Model):
    """One visit of a tracking link (or a bot hit on it). Append-only."""

    # Every index is paid by every click: no single-column index on campaign or link (the composite
    # indexes below start with them) and click_id unique by a constraint, without Django's LIKE index.
    click_id = models.CharField(max_length=64)
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="clicks", db_index=False, **HOT_PARENT
    )
    link = models.ForeignKey(
        TrafficSource,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="clicks",
        db_index=False,
        **HOT_PARENT,
    )
    created_at = models.DateTimeField(db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    referrer = models.CharField(max_length=1000, blank=True)
    landing_url = models.CharField(max_length=2000, blank=True)
    device_type = models.CharField(max_length=16, blank=True)
    os = models.CharField(max_length=64, blank=True)
    browser = models.CharField(max_length=64, blank=True)
    country = models.CharField(max_length=2, blank=True)
    city = models.CharField(max_length=128, blank=True)
    is_bot = models.BooleanField(default=False)
    bot_reason = models.CharField(max_length=64, blank=True)
    is_unique = models.BooleanField(default=True)
    # The landing page was shown (page-mode link, not a bot): a landing view in the funnel.
    served_landing = models.BooleanField(default=False)
    # sha256(ip + user agent): finds the same visitor within the unique window without a scan.
    visitor_hash = models.CharField(max_length=64, blank=True)
    utm_source = models.CharField(max_length=200, blank=True)
    utm_medium = models.CharField(max_length=200, blank=True)
    utm_campaign = models.CharField(max_length=200, blank=True)
    utm_content = models.CharField(max_length=200, blank=True)
    utm_term = models.CharField(max_length=200, blank=True)
    subid = models.CharField(max_length=200, blank=True)
    sub1 = models.CharField(max_length=200, blank=True)
    sub2 = models.CharField(max_length=200, blank=True)
    sub3 = models.CharField(max_length=200, blank=True)
    sub4 = models.CharField(max_length=200, blank=True)
    sub5 = models.CharField(max_length=200, blank=True)
    ttclid = models.CharField(max_length=500, blank=True)
    ttp = models.CharField(max_length=200, blank=True)
    extra_params = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["link", "visitor_hash", "created_at"], name="click_visitor_idx"),
            models.Index(fields=["campaign", "created_at"], name="click_campaign_time_idx"),
        ]
        constraints = [models.UniqueConstraint(fields=["click_id"], name="click_click_id_uniq")]

    def __str__(self):
        return self.click_id


class Lead(models.Model):
    """A Telegram user who pressed /start, attributed to the last click or link that brought them."""

    telegram_user_id = models.BigIntegerField(unique=True)
    username = models.CharField(max_length=64, blank=True)
    first_name = models.CharField(max_length=200, blank=True)
    language_code = models.CharField(max_length=16, blank=True)
    # Consent to send this user's events to TikTok: None = not asked, which counts as no when
    # TIKTOK_CONSENT_REQUIRED is on.
    tracking_consent = models.BooleanField(null=True, blank=True)
    # Only SHA-256 hashes (TikTok's normalisation), never the raw values: for audiences and matching.
    email_sha256 = models.CharField(max_length=64, blank=True)
    phone_sha256 = models.CharField(max_length=64, blank=True)
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads", **HOT_PARENT
    )
    link = models.ForeignKey(
        TrafficSource, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads", **HOT_PARENT
    )
    click = models.ForeignKey(Click, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads")
    attributed_at = models.DateTimeField(null=True, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"@{self.username}" if self.username else str(self.telegram_user_id)

    @property
    def customer_id(self) -> str:
        return f"telegram_{self.telegram_user_id}"


class BotStart(models.Model):
    """One /start of a lead through a token. A repeat of the same token is the same row."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="starts")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="starts", **HOT_PARENT)
    link = models.ForeignKey(TrafficSource, on_delete=models.PROTECT, related_name="starts", **HOT_PARENT)
    click = models.ForeignKey(Click, null=True, blank=True, on_delete=models.PROTECT, related_name="starts")
    token = models.CharField(max_length=64)
    referrer = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["lead", "token"], name="botstart_once_per_token")]

    def __str__(self):
        return f"{self.lead_id} via {self.token}"


class Conversion(models.Model):
    class Status(models.TextChoices):
        APPROVED = "approved", "Approved"
        PENDING = "pending", "Pending"
        REJECTED = "rejected", "Rejected"

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "Bot webhook"
        POSTBACK = "postback", "Partner postback"

    # Every index is paid by every conversion: public_id and dedup_key are unique by constraints, without
    # Django's LIKE copies of their indexes; link's own index is the (link, status) one below.
    public_id = models.CharField(max_length=32)
    # What makes a repeat the same conversion: "tx:<transaction id>", "click:<click id>:<goal>" or
    # "key:<Idempotency-Key>". Unique, so two identical requests at the same moment make one row.
    dedup_key = models.CharField(max_length=300)
    source = models.CharField(max_length=10, choices=Source.choices)
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="conversions", **HOT_PARENT)
    link = models.ForeignKey(
        TrafficSource,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="conversions",
        db_index=False,
        **HOT_PARENT,
    )
    click = models.ForeignKey(Click, null=True, blank=True, on_delete=models.PROTECT, related_name="conversions")
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversions")
    customer_id = models.CharField(max_length=200, blank=True)
    email_sha256 = models.CharField(max_length=64, blank=True)
    phone_sha256 = models.CharField(max_length=64, blank=True)
    transaction_id = models.CharField(max_length=200, blank=True)
    goal = models.CharField(max_length=64, default="purchase")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.APPROVED)
    amount_minor = models.BigIntegerField(validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3)
    product_id = models.CharField(max_length=200, blank=True)
    product_name = models.CharField(max_length=200, blank=True)
    time_to_conversion_s = models.BigIntegerField(null=True, blank=True)
    in_attribution_window = models.BooleanField(default=True)
    params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gte=0), name="conversion_amount_not_negative"),
            models.CheckConstraint(condition=Q(time_to_conversion_s__gte=0), name="conversion_ttc_not_negative"),
            models.UniqueConstraint(fields=["public_id"], name="conversion_public_id_uniq"),
            models.UniqueConstraint(fields=["dedup_key"], name="conversion_dedup_key_uniq"),
        ]
        indexes = [models.Index(fields=["link", "status"], name="conversion_link_status_idx")]

    def __str__(self):
        return self.public_id


class ConversionStatusChange(models.Model):
    """Every status change of a conversion, so a partner's reversal can be audited."""

    conversion = models.ForeignKey(Conversion, on_delete=models.CASCADE, related_name="status_changes")
    old_status = models.CharField(max_length=10, blank=True)
    new_status = models.CharField(max_length=10)
    old_amount_minor = models.BigIntegerField(null=True)
    new_amount_minor = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.old_status or '-'} → {self.new_status}"


class DailyStats(models.Model):
    """Rollup of clicks and starts per link (or per campaign for classic links) and day (UTC)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="daily_stats")
    link = models.ForeignKey(TrafficSource, null=True, blank=True, on_delete=models.CASCADE, related_name="daily_stats")
    day = models.DateField()
    clicks = models.BigIntegerField(default=0)
    unique_clicks = models.BigIntegerField(default=0)
    bot_hits = models.BigIntegerField(default=0)
    landing_views = models.BigIntegerField(default=0)
    starts = models.BigIntegerField(default=0)

    class Meta:
        # One row per campaign, link and day, a campaign's clicks without a link included (NULL is not equal
        # to NULL in a plain unique constraint): the rollup adds to it with INSERT … ON CONFLICT.
        constraints = [
            models.UniqueConstraint(F("campaign"), Coalesce(F("link"), Value(0)), F("day"), name="dailystats_key")
        ]
        verbose_name_plural = "daily stats"

    def __str__(self):
        return f"{self.day} {self.link_id or self.campaign_id}"


class RollupCursor(models.Model):
    """How far the rollup has read each append-only table (by primary key)."""

    name = models.CharField(max_length=32, unique=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.name}: {self.last_id}"


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        INTAKE = "intake", "Bot / partner intake"
        MANAGEMENT = "management", "Management"

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scope = models.CharField(max_length=12, choices=Scope.choices, default=Scope.INTAKE)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

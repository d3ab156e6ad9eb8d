"""Report rollups, costs and automation rules.

The rollups hold the ledger's numbers at hour grain in UTC, so a report in any time zone with
whole-hour offsets groups hours into its own days exactly. Two widths of each: a narrow table
(campaign, link) that campaign / link / creative / day reports read, and a detailed one that adds
the visitor's dimensions (utm_content, sub-id, country, city, device, OS, browser), read only when
a report asks for one of them. Reports never read the raw click table.
"""

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from conversions.models import Campaign, TrafficSource

# The visitor's dimensions of the detailed tables (the same names as on Click, where they come from).
DETAIL_DIMENSIONS = ("utm_content", "subid", "country", "city", "device_type", "os", "browser")


class TrafficCounters(models.Model):
    """Clicks (humans), unique clicks, bot hits, landing views and bot starts of one hour or day."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    link = models.ForeignKey(TrafficSource, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    clicks = models.BigIntegerField(default=0)
    unique_clicks = models.BigIntegerField(default=0)
    bot_hits = models.BigIntegerField(default=0)
    landing_views = models.BigIntegerField(default=0)
    starts = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class TrafficHour(TrafficCounters):
    hour = models.DateTimeField()

    class Meta:
        constraints = [
            # Classic /click clicks have no link: COALESCE makes them one key, so the rollup's
            # INSERT … ON CONFLICT adds to the row instead of creating a new one each refresh.
            models.UniqueConstraint(F("hour"), F("campaign"), Coalesce(F("link"), Value(0)), name="traffichour_key")
        ]
        indexes = [models.Index(fields=["hour", "campaign"], name="traffichour_time_idx")]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}h {self.link_id or self.campaign_id}"


class DetailDimensions(models.Model):
    """The visitor's dimensions of the detail tables (DETAIL_DIMENSIONS), empty without a click."""

    utm_content = models.CharField(max_length=200, blank=True)
    subid = models.CharField(max_length=200, blank=True)
    country = models.CharField(max_length=2, blank=True)
    city = models.CharField(max_length=128, blank=True)
    device_type = models.CharField(max_length=16, blank=True)
    os = models.CharField(max_length=64, blank=True)
    browser = models.CharField(max_length=64, blank=True)

    class Meta:
        abstract = True


class TrafficDetailHour(TrafficCounters, DetailDimensions):
    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                F("hour"),
                F("campaign"),
                Coalesce(F("link"), Value(0)),
                *(F(name) for name in DETAIL_DIMENSIONS),
                name="trafficdetailhour_key",
            )  # fmt: skip
        ]
        indexes = [models.Index(fields=["hour", "campaign"], name="trafficdetail_time_idx")]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}h {self.link_id or self.campaign_id} {self.country}"


class ConversionCounters(models.Model):
    """Conversions of one UTC hour or day (when they happened), by goal and status.

    Kept up to date from the status-change log: each change takes the conversion out of its old
    status's row and adds it to the new one's, so a status change moves the numbers and a refresh
    costs what changed, not what the hour or day holds. Time to conversion: the sum and the count of
    the known values, for the average.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    link = models.ForeignKey(TrafficSource, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    goal = models.CharField(max_length=64)
    status = models.CharField(max_length=10)
    conversions = models.BigIntegerField(default=0)
    revenue_minor = models.BigIntegerField(default=0)
    ttc_sum_s = models.BigIntegerField(default=0)
    ttc_count = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class ConversionHour(ConversionCounters):
    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                F("hour"),
                F("campaign"),
                Coalesce(F("link"), Value(0)),
                F("goal"),
                F("status"),
                name="conversionhour_key",
            )  # fmt: skip
        ]
        indexes = [models.Index(fields=["hour", "campaign"], name="conversionhour_time_idx")]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}h {self.link_id or self.campaign_id} {self.goal}"


class ConversionDetailHour(ConversionCounters, DetailDimensions):
    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                F("hour"),
                F("campaign"),
                Coalesce(F("link"), Value(0)),
                *(F(name) for name in DETAIL_DIMENSIONS),
                F("goal"),
                F("status"),
                name="conversiondetailhour_key",
            )  # fmt: skip
        ]
        indexes = [models.Index(fields=["hour", "campaign"], name="conversiondetail_time_idx")]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}h {self.link_id or self.campaign_id} {self.goal}"


class TrafficDay(TrafficCounters):
    """TrafficHour by days of REPORT_TIME_ZONE (see DayZone): what a campaign / link / creative report by
    day reads in that zone, 24 times fewer rows than the hours."""

    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(F("day"), F("campaign"), Coalesce(F("link"), Value(0)), name="trafficday_key")
        ]
        indexes = [models.Index(fields=["day", "campaign"], name="trafficday_time_idx")]

    def __str__(self):
        return f"{self.day} {self.link_id or self.campaign_id}"


class ConversionDay(ConversionCounters):
    """ConversionHour by days of REPORT_TIME_ZONE."""

    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                F("day"),
                F("campaign"),
                Coalesce(F("link"), Value(0)),
                F("goal"),
                F("status"),
                name="conversionday_key",
            )  # fmt: skip
        ]
        indexes = [models.Index(fields=["day", "campaign"], name="conversionday_time_idx")]

    def __str__(self):
        return f"{self.day} {self.link_id or self.campaign_id} {self.goal} {self.status}"


class TimeToConversionDay(models.Model):
    """The times to conversion of the approved conversions of a day (REPORT_TIME_ZONE), campaign and
    link: the raw values, so any group of days, links and campaigns has an exact median. One integer
    per conversion, as comma-separated text (read back faster than JSON).

    A key may have several rows: each rollup refresh appends one with the values that became approved
    (values_s) and those that stopped being approved (removed_s), so a refresh never rewrites a day's
    list; the reader takes the removed values out, and the hourly reconcile folds a day into one row.
    """

    day = models.DateField()
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    link = models.ForeignKey(TrafficSource, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    values_s = models.TextField(blank=True)
    removed_s = models.TextField(blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["day", "campaign"], name="ttcday_time_idx")]

    def __str__(self):
        return f"{self.day} {self.link_id or self.campaign_id}"


class DayZone(models.Model):
    """The time zone whose days TrafficDay and ConversionDay hold (one row). When REPORT_TIME_ZONE
    changes, reports use the hourly tables until `manage.py report_rollup_rebuild` has run."""

    tz = models.CharField(max_length=64)

    def __str__(self):
        return self.tz


# --- costs ---------------------------------------------------------------------------------------


class CostScoped(models.Model):
    """A cost belongs to a campaign (all its links) or to one tracking link."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    link = models.ForeignKey(
        TrafficSource,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Empty: the whole campaign (its links that have no cost of their own).",
    )
    currency = models.CharField(max_length=3, default="USD")

    class Meta:
        abstract = True

    def clean(self):
        if self.link_id and self.campaign_id and self.link.campaign_id != self.campaign_id:
            raise ValidationError({"link": "This link belongs to another campaign."})


class CostPerClick(CostScoped):
    """What one click costs from a day on (CPC buying): the cost of a day is its clicks × this."""

    cost_per_click = models.DecimalField(
        max_digits=12, decimal_places=6, validators=[MinValueValidator(0)], help_text="In major units, e.g. 0.035"
    )
    starts_on = models.DateField(help_text="The first day (REPORT_TIME_ZONE) it applies to; a newer row replaces it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_on", "-id"]
        verbose_name = "cost per click"
        verbose_name_plural = "costs per click"
        constraints = [
            models.UniqueConstraint(
                F("campaign"), Coalesce(F("link"), Value(0)), F("starts_on"), name="costperclick_once_per_day"
            ),
            models.CheckConstraint(condition=Q(cost_per_click__gte=0), name="costperclick_not_negative"),
        ]

    def __str__(self):
        return f"{self.link or self.campaign}: {self.cost_per_click} {self.currency} from {self.starts_on}"


class CostEntry(CostScoped):
    """The spend of one day (REPORT_TIME_ZONE), typed in or imported from the ad account's CSV.

    It replaces the cost per click of that day and scope, and is spread over the day's clicks.
    """

    class Source(models.TextChoices):
        MANUAL = "manual", "Typed in"
        CSV = "csv", "CSV import"

    day = models.DateField()
    amount_minor = models.BigIntegerField(validators=[MinValueValidator(0)], help_text="In minor units: 1250 = 12.50")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "-id"]
        verbose_name = "daily spend"
        verbose_name_plural = "daily spend"
        constraints = [
            models.UniqueConstraint(F("campaign"), Coalesce(F("link"), Value(0)), F("day"), name="costentry_once"),
            models.CheckConstraint(condition=Q(amount_minor__gte=0), name="costentry_not_negative"),
        ]

    def __str__(self):
        return f"{self.day} {self.link or self.campaign}: {self.amount_minor / 100:.2f} {self.currency}"


# --- automation rules ----------------------------------------------------------------------------


class Rule(models.Model):
    """When the numbers of a campaign or link over the last hours meet a condition, do something."""

    class Metric(models.TextChoices):
        CLICKS = "clicks", "Clicks"
        UNIQUE_CLICKS = "unique_clicks", "Unique clicks"
        BOT_HITS = "bot_hits", "Bot hits"
        LANDING_VIEWS = "landing_views", "Landing views"
        STARTS = "starts", "Bot starts"
        CONVERSIONS = "conversions", "Conversions (approved)"
        REVENUE = "revenue", "Revenue (major units)"
        COST = "cost", "Cost (major units)"
        PROFIT = "profit", "Profit (major units)"
        ROI = "roi", "ROI %"
        CR = "cr", "CR %"
        EPC = "epc", "EPC (major units)"
        BOT_RATE = "bot_rate", "Bot hits % of visits"

    class Operator(models.TextChoices):
        GTE = ">=", "≥"
        GT = ">", ">"
        LTE = "<=", "≤"
        LT = "<", "<"
        EQ = "=", "="
        NE = "!=", "≠"

    class Action(models.TextChoices):
        PAUSE_LINK = "pause_link", "Pause the link(s)"
        PAUSE_CAMPAIGN = "pause_campaign", "Pause the campaign"
        BLACKLIST_SUBID = "blacklist_subid", "Blacklist the sub-id(s)"
        WHITELIST_SUBID = "whitelist_subid", "Whitelist the sub-id(s)"
        NOTIFY_EMAIL = "notify_email", "Send an email"
        NOTIFY_WEBHOOK = "notify_webhook", "POST to a webhook"

    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="rules")
    link = models.ForeignKey(
        TrafficSource,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="rules",
        help_text="Empty: the whole campaign. Pause-link and sub-id actions then look at each link / sub-id.",
    )
    metric = models.CharField(max_length=20, choices=Metric.choices)
    operator = models.CharField(max_length=2, choices=Operator.choices)
    threshold = models.DecimalField(max_digits=14, decimal_places=2)
    metric_2 = models.CharField(max_length=20, choices=Metric.choices, blank=True, help_text="Optional: AND …")
    operator_2 = models.CharField(max_length=2, choices=Operator.choices, blank=True)
    threshold_2 = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    window_hours = models.PositiveIntegerField(default=24, validators=[MinValueValidator(1)])
    action = models.CharField(max_length=20, choices=Action.choices)
    notify_email = models.CharField(max_length=500, blank=True, help_text="Comma-separated addresses")
    webhook_url = models.URLField(max_length=1000, blank=True)
    cooldown_hours = models.PositiveIntegerField(default=24, help_text="The same target fires at most once per this.")
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.link_id and self.campaign_id and self.link.campaign_id != self.campaign_id:
            errors["link"] = "This link belongs to another campaign."
        if self.metric_2 and (not self.operator_2 or self.threshold_2 is None):
            errors["threshold_2"] = "A second condition needs a metric, an operator and a threshold."
        if self.action == self.Action.NOTIFY_EMAIL and not self.notify_email:
            errors["notify_email"] = "Where should the email go?"
        if self.action == self.Action.NOTIFY_WEBHOOK and not self.webhook_url:
            errors["webhook_url"] = "Where should the webhook go?"
        if errors:
            raise ValidationError(errors)


class RuleFiring(models.Model):
    """One firing of a rule on one target (a campaign, a link or a sub-id), with what was done."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="firings")
    target = models.CharField(max_length=300, help_text="campaign:<id>, link:<utm_id> or subid:<value>")
    fired_at = models.DateTimeField()
    metrics = models.JSONField(default=dict)
    action = models.CharField(max_length=20, choices=Rule.Action.choices)
    ok = models.BooleanField(default=True)
    result = models.TextField(blank=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        indexes = [models.Index(fields=["rule", "target", "fired_at"], name="rulefiring_cooldown_idx")]

    def __str__(self):
        return f"{self.rule} → {self.target} at {self.fired_at:%Y-%m-%d %H:%M}"


class SourceList(models.Model):
    """A sub-id (traffic source) marked black- or whitelisted in a campaign, by hand or by a rule.

    A marker for the marketer (shown in reports and here); the click path does not block on it.
    """

    class Kind(models.TextChoices):
        BLACKLIST = "blacklist", "Blacklisted"
        WHITELIST = "whitelist", "Whitelisted"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="source_lists")
    subid = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "kind", "subid"]
        verbose_name = "black/whitelisted sub-id"
        verbose_name_plural = "black/whitelisted sub-ids"
        constraints = [models.UniqueConstraint(fields=["campaign", "subid"], name="sourcelist_once")]

    def __str__(self):
        return f"{self.subid} ({self.get_kind_display()})"

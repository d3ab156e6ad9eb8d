"""The marketers' UI: campaigns, tracking links with their numbers, clicks, leads, conversions, keys."""

import json

from django.contrib import admin, messages
from django.db import models
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from conversions import selectors
from conversions.auth import api_key_create
from conversions.links_api import tracking_url
from conversions.models import (
    ApiKey,
    BotStart,
    Campaign,
    Click,
    Conversion,
    ConversionStatusChange,
    DailyStats,
    LandingPage,
    Lead,
    TrafficSource,
)
from tracker.admin_base import ReadOnlyAdmin


def money(amount_minor: int, currency: str = "") -> str:
    return f"{amount_minor / 100:,.2f} {currency}".strip()


def journey_block(journey: dict) -> str:
    return format_html(
        '<pre style="white-space:pre-wrap;max-width:60rem">{}</pre>', json.dumps(journey, indent=2, default=str)
    )


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # an offer URL typed without one
    list_display = ["name", "status", "clicks", "starts", "conversions", "revenue", "created_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    actions = ["pause", "activate"]

    def _totals(self, campaign):
        return selectors.totals_for(campaign_id=campaign.pk)

    @admin.display(description="Clicks")
    def clicks(self, campaign):
        return self._totals(campaign).clicks

    @admin.display(description="Bot starts")
    def starts(self, campaign):
        return self._totals(campaign).starts

    @admin.display(description="Conversions")
    def conversions(self, campaign):
        return self._totals(campaign).conversions

    @admin.display(description="Revenue")
    def revenue(self, campaign):
        return money(self._totals(campaign).revenue_minor)

    @admin.action(description="Pause the selected campaigns")
    def pause(self, request, queryset):
        queryset.update(status=Campaign.Status.PAUSED)

    @admin.action(description="Activate the selected campaigns")
    def activate(self, request, queryset):
        queryset.update(status=Campaign.Status.ACTIVE)


@admin.register(LandingPage)
class LandingPageAdmin(admin.ModelAdmin):
    list_display = ["name", "title", "redirect_delay_s"]


@admin.register(TrafficSource)
class TrafficSourceAdmin(admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = [
        "utm_id", "campaign", "creative", "utm_content", "copy_url", "is_active",
        "clicks", "unique_clicks", "bot_hits", "starts", "conversions", "revenue",
    ]  # fmt: skip
    list_filter = ["campaign", "is_active", "destination", "redirect_mode", "utm_source"]
    search_fields = ["utm_id", "name", "creative", "utm_campaign", "utm_content"]
    readonly_fields = ["copy_url", "totals_table", "journey", "created_at"]
    list_select_related = ["campaign"]
    fieldsets = [
        (None, {"fields": ["campaign", "utm_id", "name", "is_active", "copy_url"]}),
        ("UTM and creative", {"fields": ["utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term",
                                         "creative"]}),
        ("Where it goes", {"fields": ["redirect_mode", "landing_page", "destination", "telegram_bot",
                                      "destination_url"]}),
        ("Numbers", {"fields": ["totals_table", "journey", "created_at"]}),
    ]  # fmt: skip
    actions = ["pause", "activate"]

    def get_queryset(self, request):
        self._totals_cache = {}
        return super().get_queryset(request)

    def _totals(self, link):
        cache = getattr(self, "_totals_cache", {})
        if link.pk not in cache:
            cache[link.pk] = selectors.totals_for(link=link)
        return cache[link.pk]

    @admin.display(description="Tracking URL")
    def copy_url(self, link):
        if not link.pk:
            return "Saved links get their URL here."
        url = tracking_url(link)
        return format_html(
            '<input type="text" value="{}" readonly size="40" onclick="this.select()" '
            'style="font-family:monospace"> <button type="button" '
            "onclick=\"navigator.clipboard.writeText('{}')\">Copy</button>",
            url,
            url,
        )

    @admin.display(description="Clicks")
    def clicks(self, link):
        return self._totals(link).clicks

    @admin.display(description="Uniques")
    def unique_clicks(self, link):
        return self._totals(link).unique_clicks

    @admin.display(description="Bot hits")
    def bot_hits(self, link):
        return self._totals(link).bot_hits

    @admin.display(description="Bot starts")
    def starts(self, link):
        return self._totals(link).starts

    @admin.display(description="Conv.")
    def conversions(self, link):
        return self._totals(link).conversions

    @admin.display(description="Revenue")
    def revenue(self, link):
        return money(self._totals(link).revenue_minor)

    @admin.display(description="Totals")
    def totals_table(self, link):
        if not link.pk:
            return "-"
        totals = selectors.totals_for(link=link).as_dict()
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", totals.items())
        return format_html("<table>{}</table>", rows)

    @admin.display(description="Journey (as the API returns it)")
    def journey(self, link):
        if not link.pk:
            return "-"
        return journey_block(selectors.journey_for_link(link))

    @admin.action(description="Pause the selected links")
    def pause(self, request, queryset):
        queryset.update(is_active=False)

    @admin.action(description="Activate the selected links")
    def activate(self, request, queryset):
        queryset.update(is_active=True)


@admin.register(Click)
class ClickAdmin(ReadOnlyAdmin):
    list_display = [
        "click_id", "created_at", "link", "country", "city", "device_type", "os", "browser", "ip", "is_bot",
        "is_unique",
    ]  # fmt: skip
    list_filter = ["is_bot", "is_unique", "device_type", "country", "campaign"]
    search_fields = ["click_id", "ip", "ttclid", "subid"]
    list_select_related = ["link"]
    date_hierarchy = "created_at"
    readonly_fields = ["journey"]
    show_full_result_count = False

    def get_fields(self, request, obj=None):
        return ["journey", *[f.name for f in Click._meta.fields]]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description="Journey")
    def journey(self, click):
        return journey_block(selectors.journey_for_click(click))


@admin.register(Lead)
class LeadAdmin(ReadOnlyAdmin):
    list_display = ["telegram_user_id", "username", "first_name", "language_code", "link", "click", "attributed_at",
                    "journey_link"]  # fmt: skip
    search_fields = ["telegram_user_id", "username"]
    list_select_related = ["link", "click"]

    @admin.display(description="Journey")
    def journey_link(self, lead):
        return format_html('<a href="{}">timeline</a>', reverse("reports:journey-lead", args=[lead.pk]))


@admin.register(BotStart)
class BotStartAdmin(ReadOnlyAdmin):
    list_display = ["lead", "link", "click", "token", "referrer", "created_at"]
    list_select_related = ["lead", "link", "click"]
    list_filter = ["campaign"]


class StatusChangeInline(admin.TabularInline):
    model = ConversionStatusChange
    extra = 0
    can_delete = False
    readonly_fields = ["old_status", "new_status", "old_amount_minor", "new_amount_minor", "created_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversion)
class ConversionAdmin(ReadOnlyAdmin):
    list_display = [
        "public_id", "created_at", "link", "customer_id", "goal", "status", "amount", "product_name",
        "time_to_conversion_s", "source", "journey_link",
    ]  # fmt: skip
    list_filter = ["status", "goal", "source", "campaign"]
    search_fields = ["public_id", "transaction_id", "customer_id", "click__click_id"]
    list_select_related = ["link"]
    inlines = [StatusChangeInline]
    readonly_fields = ["journey_link", "journey"]

    @admin.display(description="Journey")
    def journey_link(self, conversion):
        url = reverse("reports:journey-conversion", args=[conversion.public_id])
        return format_html('<a href="{}">timeline</a>', url)

    @admin.display(description="Amount")
    def amount(self, conversion):
        return money(conversion.amount_minor, conversion.currency)

    @admin.display(description="Journey of its click")
    def journey(self, conversion):
        if conversion.click_id is None:
            return "-"
        return journey_block(selectors.journey_for_click(conversion.click))


@admin.register(DailyStats)
class DailyStatsAdmin(ReadOnlyAdmin):
    list_display = ["day", "campaign", "link", "clicks", "unique_clicks", "bot_hits", "landing_views", "starts"]
    list_filter = ["campaign", "day"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "scope", "is_active", "created_at", "last_used_at"]
    list_filter = ["scope", "is_active"]
    fields = ["name", "scope", "is_active", "prefix", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        created, raw_key = api_key_create(name=obj.name, scope=obj.scope)
        obj.pk = created.pk
        obj.prefix = created.prefix
        obj.key_hash = created.key_hash
        obj.created_at = created.created_at
        messages.warning(request, f"The new key (shown only now, copy it): {raw_key}")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        queryset.update(is_active=False)

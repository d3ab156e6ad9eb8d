"""Costs, automation rules, their firings and the black/whitelisted sub-ids, in the admin."""

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.html import format_html

from reports.models import CostEntry, CostPerClick, Rule, RuleFiring, SourceList
from reports.services import cost_import_csv, rule_evaluate
from tracker.admin_base import ReadOnlyAdmin

MAX_CSV_BYTES = 5 * 1024 * 1024


class CostImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header: day, campaign (name or id), utm_id (optional), spend, "
                                     "currency (optional). Spend in major units, e.g. 12.50.")  # fmt: skip


@admin.register(CostEntry)
class CostEntryAdmin(admin.ModelAdmin):
    list_display = ["day", "campaign", "link", "amount", "currency", "source", "note", "updated_at"]
    list_filter = ["campaign", "source"]
    date_hierarchy = "day"
    list_select_related = ["campaign", "link"]
    change_list_template = "reports/costentry_change_list.html"

    @admin.display(description="Spend", ordering="amount_minor")
    def amount(self, entry):
        return f"{entry.amount_minor / 100:,.2f}"

    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.import_csv), name="reports_costentry_import"),
                *super().get_urls()]  # fmt: skip

    def import_csv(self, request):
        if not self.has_add_permission(request):
            return redirect("admin:reports_costentry_changelist")
        form = CostImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > MAX_CSV_BYTES:
                form.add_error("file", "The file is larger than 5 MB.")
            else:
                try:
                    text = upload.read().decode("utf-8-sig")
                except UnicodeDecodeError:
                    form.add_error("file", "The file is not UTF-8 text.")
                else:
                    result = cost_import_csv(text=text)
                    if not result.errors:
                        messages.success(request, f"Imported daily spend: {result.created} new, "
                                                  f"{result.updated} replaced.")  # fmt: skip
                        return redirect("admin:reports_costentry_changelist")
                    for error in result.errors[:20]:
                        form.add_error("file", error)
        context = {**self.admin_site.each_context(request), "title": "Import daily spend from a CSV", "form": form,
                   "opts": self.model._meta}  # fmt: skip
        return render(request, "reports/cost_import.html", context)


@admin.register(CostPerClick)
class CostPerClickAdmin(admin.ModelAdmin):
    list_display = ["campaign", "link", "cost_per_click", "currency", "starts_on", "created_at"]
    list_filter = ["campaign"]
    list_select_related = ["campaign", "link"]


class RuleFiringInline(admin.TabularInline):
    model = RuleFiring
    extra = 0
    can_delete = False
    fields = ["fired_at", "target", "action", "ok", "result", "metrics"]
    readonly_fields = fields
    ordering = ["-fired_at"]
    max_num = 0


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "campaign", "link", "condition", "window_hours", "action", "cooldown_hours",
                    "last_fired", "last_evaluated_at"]  # fmt: skip
    list_filter = ["enabled", "action", "campaign"]
    list_select_related = ["campaign", "link"]
    readonly_fields = ["last_evaluated_at"]
    inlines = [RuleFiringInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ["evaluate_now", "enable", "disable"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "campaign", "link"]}),
        ("Condition over the last hours", {"fields": [("metric", "operator", "threshold"),
                                                      ("metric_2", "operator_2", "threshold_2"), "window_hours"]}),
        ("Action", {"fields": ["action", "notify_email", "webhook_url", "cooldown_hours", "last_evaluated_at"]}),
    ]  # fmt: skip

    @admin.display(description="Condition")
    def condition(self, rule):
        text = f"{rule.metric} {rule.operator} {rule.threshold}"
        if rule.metric_2:
            text += f" and {rule.metric_2} {rule.operator_2} {rule.threshold_2}"
        return text

    @admin.display(description="Last fired")
    def last_fired(self, rule):
        firing = rule.firings.order_by("-fired_at").first()
        if firing is None:
            return "–"
        url = reverse("admin:reports_rulefiring_changelist") + f"?rule__id__exact={rule.pk}"
        return format_html('<a href="{}">{}</a> {}', url, f"{firing.fired_at:%Y-%m-%d %H:%M}", firing.target)

    @admin.action(description="Evaluate the selected rules now")
    def evaluate_now(self, request, queryset):
        fired = sum(len(rule_evaluate(rule_id=rule.pk)) for rule in queryset.filter(enabled=True))
        messages.info(request, f"{fired} firing(s).")

    @admin.action(description="Enable the selected rules")
    def enable(self, request, queryset):
        queryset.update(enabled=True)

    @admin.action(description="Disable the selected rules")
    def disable(self, request, queryset):
        queryset.update(enabled=False)


@admin.register(RuleFiring)
class RuleFiringAdmin(ReadOnlyAdmin):
    list_display = ["fired_at", "rule", "target", "action", "ok", "result"]
    list_filter = ["ok", "action", "rule"]
    search_fields = ["target", "result"]
    list_select_related = ["rule"]
    readonly_fields = ["rule", "target", "fired_at", "metrics", "action", "ok", "result"]


@admin.register(SourceList)
class SourceListAdmin(admin.ModelAdmin):
    list_display = ["subid", "kind", "campaign", "rule", "note", "created_at", "report"]
    list_filter = ["kind", "campaign"]
    search_fields = ["subid"]
    list_select_related = ["campaign", "rule"]

    @admin.display(description="Numbers")
    def report(self, entry):
        url = reverse("reports:report") + f"?group_1=subid&group_2=day&campaign={entry.campaign_id}"
        return format_html('<a href="{}">report</a>', url)

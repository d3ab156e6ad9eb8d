"""The marketers' audience pages: audiences with members by state, customer file uploads, rules,
lookalikes, exclusion lists, the last syncs and imports; "Sync now" and "Refresh rule now"."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from audiences import selectors, services
from audiences.models import Audience, AudienceSync, CustomerFileImport
from audiences.sync import audience_sync
from tracker.admin_base import ViewOnlyAdmin

Kind = Audience.Kind
# "Sync now" answers within a browser's patience; a large audience goes on in a queued task.
ADMIN_SYNC_TIME_BUDGET_S = 10.0
ERRORS_SHOWN = 200


def when(moment) -> str:
    return date_format(timezone.localtime(moment), "Y-m-d H:i:s") if moment else "-"


def counts_text(counts: dict) -> str:
    return (
        f"{counts['added']:,} added · {counts['pending_add']:,} to add · {counts['pending_remove']:,} to remove · "
        f"{counts['removed']:,} removed"
    )


class AudienceForm(forms.ModelForm):
    class Meta:
        model = Audience
        fields = [
            "name", "pixel", "kind", "is_exclusion", "auto_sync",
            "rule_event", "rule_goal", "rule_min_purchases", "rule_min_value_minor", "rule_campaign",
            "rule_within_days",
            "lookalike_source", "lookalike_size", "lookalike_location_ids", "lookalike_include_source",
        ]  # fmt: skip

    def clean_lookalike_location_ids(self):
        location_ids = self.cleaned_data.get("lookalike_location_ids") or []
        if not isinstance(location_ids, list) or not all(str(item).isdigit() for item in location_ids):
            raise forms.ValidationError('A list of TikTok location ids, e.g. ["6252001"].')
        return [str(item) for item in location_ids]

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind", self.instance.kind)
        pixel = cleaned.get("pixel") or (self.instance.pixel if self.instance.pixel_id else None)
        problems = services.pixel_problems(pixel) if pixel else {}
        if kind == Kind.RULE:
            for field, message in services.rule_problems(
                pixel=pixel, event=cleaned.get("rule_event", ""), goal=cleaned.get("rule_goal", "")
            ).items():
                problems[f"rule_{field}"] = message
        if kind == Kind.LOOKALIKE:
            source = cleaned.get("lookalike_source") or self.instance.lookalike_source
            for field, message in services.lookalike_problems(source=source, pixel=pixel).items():
                problems[f"lookalike_{field}"] = message
            if not cleaned.get("lookalike_size", self.instance.lookalike_size):
                problems["lookalike_size"] = "Choose a size."
        for field, message in problems.items():
            self.add_error(field if field in self.fields else None, message)
        return cleaned


class CustomerFileForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header row: email, phone, email_sha256 and/or phone_sha256.")
    mode = forms.ChoiceField(choices=CustomerFileImport.Mode.choices, initial=CustomerFileImport.Mode.APPEND)
    default_region = forms.RegexField(
        regex=r"^[A-Za-z]{2}$",
        required=False,
        max_length=2,
        help_text="Country (ISO code, e.g. RO) for phones written without +country code. Empty: they must have it.",
    )


class AudienceChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # One query for the page's member counts and one for its last syncs, not one per row.
        audiences = list(self.result_list)
        ids = [audience.pk for audience in audiences]
        counts = selectors.member_counts(ids)
        last_syncs = selectors.last_syncs_by_audience(ids)
        for audience in audiences:
            audience.member_counts = counts[audience.pk]
            audience.last_sync = last_syncs.get(audience.pk)


@admin.register(Audience)
class AudienceAdmin(admin.ModelAdmin):
    form = AudienceForm
    list_display = [
        "name", "kind", "is_exclusion", "advertiser", "members_in", "members_pending", "status", "tiktok_audience_id",
        "last_sync", "auto_sync",
    ]  # fmt: skip
    list_filter = ["kind", "is_exclusion", "status", "auto_sync"]
    search_fields = ["name", "=tiktok_audience_id"]
    list_select_related = ["pixel"]
    actions = ["sync_now", "refresh_rule_now", "recreate_at_tiktok"]
    readonly_fields = [
        "tiktok_audience_id", "status", "last_error", "last_synced_at", "last_refreshed_at", "created_at",
        "members_summary", "upload_link", "recent_syncs_table", "last_import_report",
    ]  # fmt: skip

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(None, {"fields": ["name", "pixel", "kind", "is_exclusion", "auto_sync"]})]
        if obj is None or obj.kind == Kind.RULE:
            fieldsets.append(
                (
                    "Rule (rule audiences): people with approved conversions matching all of these",
                    {"fields": ["rule_event", "rule_goal", "rule_min_purchases", "rule_min_value_minor",
                                "rule_campaign", "rule_within_days"]},
                )
            )  # fmt: skip
        if obj is None or obj.kind == Kind.LOOKALIKE:
            fieldsets.append(
                (
                    "Lookalike (lookalike audiences): TikTok creates it from a source already at TikTok",
                    {"fields": ["lookalike_source", "lookalike_size", "lookalike_location_ids",
                                "lookalike_include_source"]},
                )
            )  # fmt: skip
        if obj is not None:
            fieldsets.append(
                (
                    "At TikTok",
                    {"fields": ["tiktok_audience_id", "status", "last_error", "last_synced_at", "last_refreshed_at",
                                "created_at"]},
                )
            )  # fmt: skip
            fieldsets.append(("Members", {"fields": ["members_summary", "upload_link", "last_import_report"]}))
            fieldsets.append(("Last syncs", {"fields": ["recent_syncs_table"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        if obj is not None:
            fields.append("kind")  # a customer file does not turn into a rule
            if obj.tiktok_audience_id:
                # It lives at TikTok under this advertiser; a lookalike's spec was sent when it was created.
                fields += ["pixel", "lookalike_source", "lookalike_size", "lookalike_location_ids",
                           "lookalike_include_source"]  # fmt: skip
        return fields

    def get_changelist(self, request, **kwargs):
        return AudienceChangeList

    def save_model(self, request, obj, form, change):
        if obj.kind != Kind.RULE and not change:
            obj.rule_event = ""
        super().save_model(request, obj, form, change)
        if not change or obj.kind == Kind.RULE:
            # A new audience is created at TikTok by its first sync; an edited rule is applied by one.
            services.sync_queue(audience_id=obj.pk, trigger="admin")

    # --- list columns ---

    @admin.display(description="Advertiser", ordering="pixel__advertiser_id")
    def advertiser(self, audience):
        return audience.pixel.advertiser_id or "-"

    def _counts(self, audience) -> dict:
        if not hasattr(audience, "member_counts"):
            audience.member_counts = selectors.member_counts([audience.pk])[audience.pk]
        return audience.member_counts

    @admin.display(description="Members")
    def members_in(self, audience):
        counts = self._counts(audience)
        return f"{counts['added']:,}"

    @admin.display(description="Pending (+ / −)")
    def members_pending(self, audience):
        counts = self._counts(audience)
        return f"+{counts['pending_add']:,} / −{counts['pending_remove']:,}"

    @admin.display(description="Last sync")
    def last_sync(self, audience):
        run = getattr(audience, "last_sync", None)
        if run is None:
            run = AudienceSync.objects.filter(audience=audience).order_by("-id").first()
        if run is None:
            return "never"
        if run.ok:
            return f"{when(run.started_at)} ok"
        return format_html('{} <strong style="color:#c62828">failed</strong>: {}', when(run.started_at),
                           Truncator(run.message).chars(60))  # fmt: skip

    # --- change page ---

    @admin.display(description="Members by state")
    def members_summary(self, audience):
        return counts_text(self._counts(audience))

    @admin.display(description="Customer file")
    def upload_link(self, audience):
        if audience.kind != Kind.CUSTOMER_FILE:
            return "Only customer file audiences take uploads."
        url = reverse("admin:audiences_audience_customer_file", args=[audience.pk])
        return format_html('<a class="button" href="{}">Upload a customer file (CSV)</a>', url)

    @admin.display(description="Last import")
    def last_import_report(self, audience):
        record = selectors.last_import(audience)
        if record is None:
            return "none yet"
        return import_report_html(record)

    @admin.display(description=f"Last {selectors.RECENT_SYNCS} syncs")
    def recent_syncs_table(self, audience):
        runs = selectors.recent_syncs(audience)
        if not runs:
            return "none yet"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>+{} / −{}</td><td>{} / {}</td><td>{}</td><td>{}</td>"
            "<td>{}</td></tr>",
            (
                (when(run.started_at), run.trigger, "ok" if run.ok else "failed", run.rule_added, run.rule_removed,
                 run.added, run.removed, run.requests, "-" if run.code is None else run.code,
                 Truncator(run.message).chars(100))
                for run in runs
            ),
        )  # fmt: skip
        return format_html(
            "<table><thead><tr><th>Started</th><th>Trigger</th><th>Result</th><th>Rule +/−</th>"
            "<th>Sent add / delete</th><th>Requests</th><th>Code</th><th>Message</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    # --- the upload page ---

    def get_urls(self):
        upload = self.admin_site.admin_view(self.customer_file_view)
        return [
            path("<int:audience_id>/customer-file/", upload, name="audiences_audience_customer_file"),
            *super().get_urls(),
        ]

    def customer_file_view(self, request, audience_id: int):
        audience = get_object_or_404(Audience, pk=audience_id)
        if not self.has_change_permission(request, audience):
            raise PermissionDenied
        form = CustomerFileForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            uploaded = form.cleaned_data["file"]
            arguments = {
                "audience": audience,
                "filename": uploaded.name,
                "mode": form.cleaned_data["mode"],
                "default_region": form.cleaned_data["default_region"] or "",
            }
            try:
                if uploaded.size > settings.AUDIENCE_IMPORT_INLINE_MAX_BYTES:
                    record = services.customer_file_queue(uploaded_file=uploaded, **arguments)
                    messages.info(request, f"{uploaded.name}: large file, a worker imports it; the report "
                                           "appears below when it is done.")  # fmt: skip
                else:
                    record = services.customer_file_import(binary_file=uploaded.file, **arguments)
                    self._report_import(request, record)
            except services.AudienceRefused as error:
                messages.error(request, error.message)
            return redirect(reverse("admin:audiences_audience_change", args=[audience.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Upload a customer file to {audience}",
            "audience": audience,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/audiences/audience/customer_file.html", context)

    def _report_import(self, request, record: CustomerFileImport) -> None:
        if record.status == CustomerFileImport.Status.FAILED:
            messages.error(request, f"{record.filename}: {record.message}")
            return
        summary = (
            f"{record.filename}: {record.rows_ok:,} of {record.rows_total:,} rows imported, {record.rows_bad:,} bad, "
            f"{record.ids_changed:,} members changed, {record.duplicates:,} duplicates"
        )
        if record.errors_total:
            messages.warning(request, f"{summary}; {record.errors_total:,} problems, by line below.")
        else:
            messages.success(request, f"{summary}.")

    # --- actions ---

    @admin.action(description="Sync now (refresh the rule, send the changes to TikTok)")
    def sync_now(self, request, queryset):
        for audience in queryset:
            run = audience_sync(audience_id=audience.pk, trigger="admin", time_budget_s=ADMIN_SYNC_TIME_BUDGET_S)
            if run is None:
                messages.warning(request, f"{audience}: a sync is running right now; try again in a moment.")
            elif not run.ok:
                messages.error(request, f"{audience}: sync failed: {run.message}")
            else:
                text = (
                    f"{audience}: {run.added:,} added, {run.removed:,} removed at TikTok in {run.requests} request(s)"
                )
                if run.more_pending:
                    services.sync_queue(audience_id=audience.pk, trigger="admin")
                    text += "; the rest goes on in the background"
                messages.success(request, text + ".")

    @admin.action(description="Refresh rule now (recompute the members, send nothing)")
    def refresh_rule_now(self, request, queryset):
        for audience in queryset:
            if audience.kind != Kind.RULE:
                messages.warning(request, f"{audience}: not a rule audience.")
                continue
            changes = services.rule_refresh(audience=audience)
            if changes is None:
                messages.warning(request, f"{audience}: a sync is running right now; it refreshes the rule too.")
                continue
            messages.success(
                request,
                f"{audience}: {changes.to_add:,} to add, {changes.to_remove + changes.dropped:,} leaving; the next "
                "sync sends them.",
            )

    @admin.action(description="Recreate at TikTok (a new TikTok audience with every current member)")
    def recreate_at_tiktok(self, request, queryset):
        for audience in queryset:
            if services.audience_recreate(audience=audience):
                messages.success(request, f"{audience}: a new TikTok audience is created at the next sync.")
            else:
                messages.warning(request, f"{audience}: a sync is running right now; try again in a moment.")


def import_report_html(record: CustomerFileImport):
    counts = (
        f"{record.filename} ({record.get_mode_display().split(':')[0].lower()}, {record.get_status_display().lower()}"
        f", {when(record.finished_at or record.created_at)}): {record.rows_total:,} rows, {record.rows_ok:,} ok, "
        f"{record.rows_bad:,} bad; {record.ids_total:,} ids, {record.ids_changed:,} changed, "
        f"{record.ids_removed:,} removed (replace), {record.duplicates:,} duplicates"
    )
    columns = ", ".join(f"{name} → {what}" for name, what in (record.columns or {}).items()) or "-"
    errors = record.errors[:ERRORS_SHOWN]
    rows = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", ((e["line"], e["column"], e["error"]) for e in errors)
    )
    more = ""
    if record.errors_total > len(errors):
        more = f"… {record.errors_total - len(errors):,} more problems (the first 1,000 are kept, see the import)."
    table = (
        format_html("<table><thead><tr><th>Line</th><th>Column</th><th>Problem</th></tr></thead><tbody>{}</tbody>"
                    "</table>", rows)
        if errors
        else ""
    )  # fmt: skip
    return format_html(
        "<p>{}</p><p>Columns: {}</p>{}<p>{}</p>{}",
        counts,
        columns,
        format_html("<p><strong>{}</strong></p>", record.message) if record.message else "",
        more,
        table,
    )


@admin.register(AudienceSync)
class AudienceSyncAdmin(ViewOnlyAdmin):  # written by the sync only
    list_display = [
        "audience", "started_at", "trigger", "ok", "rule_added", "rule_removed", "added", "removed", "requests",
        "retries", "code", "short_message",
    ]  # fmt: skip
    list_filter = ["ok", "trigger"]
    list_select_related = ["audience"]
    search_fields = ["=audience__id", "audience__name", "=request_id"]
    show_full_result_count = False

    @admin.display(description="Message")
    def short_message(self, run):
        return format_html('<span title="{}">{}</span>', run.message, Truncator(run.message).chars(80))


@admin.register(CustomerFileImport)
class CustomerFileImportAdmin(ViewOnlyAdmin):  # written by the importer only
    list_display = [
        "filename", "audience", "mode", "status", "rows_total", "rows_ok", "rows_bad", "ids_changed", "duplicates",
        "errors_total", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "mode"]
    list_select_related = ["audience"]
    fields = ["audience", "filename", "mode", "status", "report", "created_at", "started_at", "finished_at"]
    readonly_fields = ["report"]

    @admin.display(description="Report")
    def report(self, record):
        return import_report_html(record)

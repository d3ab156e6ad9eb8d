from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.utils import timezone

from conversions.models import Campaign, TrafficSource
from reports.selectors import DIMENSIONS, ReportQuery, report_time_zone

MAX_DAYS = 366
DIMENSION_CHOICES = [("", "—")] + [(key, dimension.label) for key, dimension in DIMENSIONS.items()]
COMMON_ZONES = ("UTC", "Europe/Kyiv", "Europe/Bucharest", "Europe/Warsaw", "Europe/Berlin", "Europe/London",
                "Europe/Istanbul", "Asia/Dubai", "Asia/Almaty", "Asia/Bangkok", "America/New_York",
                "America/Sao_Paulo")  # fmt: skip


class ReportFilterForm(forms.Form):
    """The range, the time zone and the scope, shared by the report and the dashboard."""

    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    tz = forms.CharField(required=False, label="Time zone",
                         widget=forms.TextInput(attrs={"list": "report-zones", "size": 16}))  # fmt: skip
    campaign = forms.ModelChoiceField(Campaign.objects.order_by("name"), required=False, empty_label="All campaigns")
    # A utm_id typed in, not a select: a few hundred links make a slow page and an unusable list.
    link = forms.CharField(required=False, max_length=64, label="Link (utm_id)",
                           widget=forms.TextInput(attrs={"size": 14, "placeholder": "all links"}))  # fmt: skip

    def clean_link(self):
        utm_id = (self.cleaned_data.get("link") or "").strip()
        if not utm_id:
            return None
        link = TrafficSource.objects.filter(utm_id=utm_id).first()
        if link is None:
            raise forms.ValidationError(f"No tracking link {utm_id!r}.")
        return link

    def clean_tz(self):
        name = self.cleaned_data.get("tz") or str(report_time_zone())
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise forms.ValidationError(f"Unknown time zone {name!r}: use a name like Europe/Kyiv.") from error

    def clean(self):
        cleaned = super().clean()
        tz = cleaned.get("tz") or report_time_zone()
        today = timezone.now().astimezone(tz).date()
        cleaned["date_to"] = cleaned.get("date_to") or today
        cleaned["date_from"] = cleaned.get("date_from") or cleaned["date_to"] - timedelta(days=6)
        if cleaned["date_from"] > cleaned["date_to"]:
            raise forms.ValidationError("The range ends before it starts.")
        if (cleaned["date_to"] - cleaned["date_from"]).days >= MAX_DAYS:
            raise forms.ValidationError(f"Pick at most {MAX_DAYS} days.")
        return cleaned

    def query(self, dimensions: tuple[str, ...] = ()) -> ReportQuery:
        data = self.cleaned_data
        return ReportQuery.for_days(
            date_from=data["date_from"],
            date_to=data["date_to"],
            tz=data["tz"],
            dimensions=dimensions,
            campaign_ids=(data["campaign"].pk,) if data.get("campaign") else (),
            link_ids=(data["link"].pk,) if data.get("link") else (),
        )


class ReportForm(ReportFilterForm):
    group_1 = forms.ChoiceField(choices=DIMENSION_CHOICES, required=False, initial="campaign", label="Group by")
    group_2 = forms.ChoiceField(choices=DIMENSION_CHOICES, required=False, label="then by")
    group_3 = forms.ChoiceField(choices=DIMENSION_CHOICES, required=False, label="then by")
    sort = forms.CharField(required=False, widget=forms.HiddenInput)

    def dimensions(self) -> tuple[str, ...]:
        chosen = [self.cleaned_data.get(f"group_{n}") for n in (1, 2, 3)]
        return tuple(dict.fromkeys(key for key in chosen if key))  # in order, each once

    def query(self, dimensions=None) -> ReportQuery:
        return super().query(self.dimensions() if dimensions is None else dimensions)

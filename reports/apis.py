"""GET /api/v1/reports: the admin's report as JSON (management scope), for scripts and spreadsheets."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from conversions.apis import ERROR_RESPONSES
from reports.forms import ReportForm
from reports.selectors import DIMENSIONS, report_rows, report_table
from tracker.db.replica import report_reads

ReportOutput = inline_serializer(
    "Report",
    {
        "group_by": serializers.ListField(child=serializers.CharField()),
        "date_from": serializers.DateField(),
        "date_to": serializers.DateField(),
        "tz": serializers.CharField(),
        "columns": serializers.ListField(child=serializers.DictField()),
        "rows": serializers.ListField(child=serializers.ListField(child=serializers.CharField())),
        "totals": serializers.ListField(child=serializers.CharField()),
        "total_rows": serializers.IntegerField(),
    },
)


class ReportApi(APIView):
    """The same rows, columns and formatting as the admin's report and its CSV."""

    @extend_schema(
        parameters=[
            OpenApiParameter("group_by", str, description=f"Up to three of: {', '.join(DIMENSIONS)} (comma-separated)"),
            OpenApiParameter("date_from", str, description="YYYY-MM-DD (default: 6 days before date_to)"),
            OpenApiParameter("date_to", str, description="YYYY-MM-DD, included (default: today)"),
            OpenApiParameter(
                "tz", str, description="Time zone of the days, e.g. Europe/Kyiv (default REPORT_TIME_ZONE)"
            ),
            OpenApiParameter("campaign", int, description="Only this campaign (id)"),
            OpenApiParameter("link", str, description="Only this link (utm_id)"),
            OpenApiParameter("sort", str, description="A column key, '-' first for descending, e.g. -revenue_minor"),
        ],
        responses={200: ReportOutput, **ERROR_RESPONSES},
    )
    @report_reads()  # after authentication: the API key is checked on the primary
    def get(self, request):
        group_by = [key.strip() for key in request.query_params.get("group_by", "").split(",") if key.strip()]
        unknown = [key for key in group_by if key not in DIMENSIONS]
        if unknown or len(group_by) > 3:
            raise serializers.ValidationError(
                {"group_by": [f"Up to three of: {', '.join(DIMENSIONS)}" + (f" (not {', '.join(unknown)})"
                                                                            if unknown else "")]}
            )  # fmt: skip
        data = {key: value for key, value in request.query_params.items() if key != "group_by"}
        data.update({f"group_{n}": key for n, key in enumerate(group_by, start=1)})
        form = ReportForm(data)
        if not form.is_valid():
            errors = {("non_field_errors" if key == "__all__" else key): value for key, value in form.errors.items()}
            raise serializers.ValidationError(errors)
        result = report_rows(form.query())
        table = report_table(result, sort=form.cleaned_data.get("sort") or "")
        return Response({
            "group_by": list(result.query.dimensions),
            "date_from": form.cleaned_data["date_from"],
            "date_to": form.cleaned_data["date_to"],
            "tz": str(form.cleaned_data["tz"]),
            "columns": [{"key": column.key, "label": column.label, "kind": column.kind} for column in table.columns],
            "rows": table.rows,
            "totals": table.totals,
            "total_rows": table.total_rows,
        })  # fmt: skip

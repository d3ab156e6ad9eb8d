"""The seed's audience API, /api/integrations/tiktok-ads/audiences… (management-scope keys).

Each view: parse (nested InputSerializer), call one service, answer with the OutputSerializer.
Emails and phones are hashed while they are parsed; answers and errors never repeat them.
"""

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from audiences import selectors, services
from audiences.customer_files import EMAIL, PHONE, email_hash, phone_hash
from audiences.models import Audience, AudienceSync, CustomerFileImport
from conversions.apis import ERROR_RESPONSES
from conversions.errors import NotFoundField
from conversions.models import Campaign
from conversions.serializers import StrictIntegerField
from tiktok_ads.apis import ManagementApi
from tiktok_ads.funnel import default_pixel
from tiktok_ads.models import Pixel
from tiktok_ads.serializers import validated

MAX_SYNC_ROWS = 10_000  # per request; the body limit (API_MAX_BODY_BYTES) caps it too
AUDIENCE_TYPES = {"CUSTOMER_FILE": Audience.Kind.CUSTOMER_FILE, "RULE": Audience.Kind.RULE}
TYPE_OF_KIND = {
    Audience.Kind.CUSTOMER_FILE: "CUSTOMER_FILE",
    Audience.Kind.RULE: "RULE",
    Audience.Kind.LOOKALIKE: "LOOKALIKE",
}


def refused(error: services.AudienceRefused) -> serializers.ValidationError:
    return serializers.ValidationError({error.field: [error.message]})


def audience_or_404(audience_id: int) -> Audience:
    audience = Audience.objects.select_related("pixel", "rule_campaign", "lookalike_source").filter(pk=audience_id)
    found = audience.first()
    if found is None:
        raise NotFoundField("audience_id", "No audience with this id.")
    return found


def with_counts(audiences: list[Audience]) -> list[Audience]:
    counts = selectors.member_counts([audience.pk for audience in audiences])
    for audience in audiences:
        audience.member_counts = counts[audience.pk]
    return audiences


# --- output -------------------------------------------------------------------------------------


class RuleOutput(serializers.Serializer):
    event = serializers.CharField(source="rule_event", help_text="Empty: any conversion goal.")
    goal = serializers.CharField(source="rule_goal")
    min_purchases = serializers.IntegerField(source="rule_min_purchases")
    min_value = serializers.IntegerField(source="rule_min_value_minor", allow_null=True, help_text="Minor units.")
    campaign_id = serializers.IntegerField(source="rule_campaign_id", allow_null=True)
    within_days = serializers.IntegerField(source="rule_within_days", allow_null=True)


class LookalikeOutput(serializers.Serializer):
    source_audience_id = serializers.IntegerField(source="lookalike_source_id")
    audience_size = serializers.CharField(source="lookalike_size")
    location_ids = serializers.ListField(child=serializers.CharField(), source="lookalike_location_ids")
    include_source = serializers.BooleanField(source="lookalike_include_source")


class MemberCountsOutput(serializers.Serializer):
    pending_add = serializers.IntegerField()
    added = serializers.IntegerField()
    pending_remove = serializers.IntegerField()
    removed = serializers.IntegerField()


class AudienceOutput(serializers.Serializer):
    id = serializers.IntegerField()
    custom_audience_name = serializers.CharField(source="name")
    audience_type = serializers.SerializerMethodField()
    exclusion = serializers.BooleanField(source="is_exclusion", help_text="Meant to be excluded in ad groups.")
    auto_sync = serializers.BooleanField()
    advertiser_id = serializers.CharField(source="pixel.advertiser_id")
    pixel_id = serializers.CharField(source="pixel.pixel_code")
    tiktok_audience_id = serializers.CharField(help_text="Empty until the first sync created it at TikTok.")
    status = serializers.CharField(help_text="new (not at TikTok yet), ready, failed (TikTok refused to create it)")
    last_error = serializers.CharField()
    rule = serializers.SerializerMethodField()
    lookalike = serializers.SerializerMethodField()
    members = MemberCountsOutput(source="member_counts", help_text="Hashed ids by sync state.")
    last_synced_at = serializers.DateTimeField(allow_null=True)
    last_refreshed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_audience_type(self, audience) -> str:
        return TYPE_OF_KIND[audience.kind]

    @extend_schema_field(RuleOutput(allow_null=True))
    def get_rule(self, audience):
        return RuleOutput(audience).data if audience.kind == Audience.Kind.RULE else None

    @extend_schema_field(LookalikeOutput(allow_null=True))
    def get_lookalike(self, audience):
        return LookalikeOutput(audience).data if audience.kind == Audience.Kind.LOOKALIKE else None


class AudienceSyncRunOutput(serializers.ModelSerializer):
    class Meta:
        model = AudienceSync
        fields = [
            "id", "trigger", "started_at", "finished_at", "ok", "created_at_tiktok", "rule_added", "rule_removed",
            "added", "removed", "requests", "retries", "more_pending", "code", "message", "request_id",
        ]  # fmt: skip


class CustomerFileImportOutput(serializers.ModelSerializer):
    errors = serializers.ListField(child=serializers.DictField(), help_text="The first 1,000: line, column, error.")

    class Meta:
        model = CustomerFileImport
        fields = [
            "id", "filename", "mode", "status", "columns", "rows_total", "rows_ok", "rows_bad", "ids_total",
            "ids_changed", "ids_removed", "duplicates", "errors_total", "errors", "message", "created_at",
            "finished_at",
        ]  # fmt: skip


class AudienceDetailOutput(AudienceOutput):
    syncs = serializers.SerializerMethodField(help_text="The last 10 sync runs, newest first.")
    last_import = serializers.SerializerMethodField()

    @extend_schema_field(AudienceSyncRunOutput(many=True))
    def get_syncs(self, audience):
        return AudienceSyncRunOutput(selectors.recent_syncs(audience), many=True).data

    @extend_schema_field(CustomerFileImportOutput(allow_null=True))
    def get_last_import(self, audience):
        record = selectors.last_import(audience)
        return CustomerFileImportOutput(record).data if record else None


def detail_response(audience: Audience, status_code: int = status.HTTP_200_OK) -> Response:
    audience = audience_or_404(audience.pk)  # fresh: the service may have changed it
    return Response(AudienceDetailOutput(with_counts([audience])[0]).data, status=status_code)


# --- list and create ----------------------------------------------------------------------------


class RuleInput(serializers.Serializer):
    event = serializers.CharField(
        max_length=64,
        allow_blank=True,
        default="CompletePayment",
        help_text="TikTok event; conversions whose goal the pixel maps to it (CompleteRegistration: also bot "
        "starts). Empty: any goal.",
    )
    goal = serializers.CharField(max_length=64, allow_blank=True, default="", help_text="A conversion goal instead.")
    min_purchases = StrictIntegerField(min_value=1, max_value=1_000_000, default=1)
    min_value = StrictIntegerField(
        min_value=0, required=False, allow_null=True, help_text="Total value at least this, minor units."
    )
    campaign_id = StrictIntegerField(required=False, allow_null=True)
    within_days = StrictIntegerField(min_value=1, max_value=3650, required=False, allow_null=True)


class AudiencesApi(ManagementApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AudienceCreateInput"

        advertiser_id = serializers.CharField(
            max_length=64, required=False, help_text="Picks the pixel (its token) of this advertiser."
        )
        pixel_id = serializers.CharField(max_length=64, required=False, help_text="Or name the pixel itself.")
        custom_audience_name = serializers.CharField(max_length=128)
        audience_type = serializers.ChoiceField(
            ["CUSTOMER_FILE", "RULE", "EXCLUSION"],
            default="CUSTOMER_FILE",
            help_text="EXCLUSION: a RULE audience (default: everyone with a CompletePayment) flagged as an "
            "exclusion list. Lookalikes: POST …/audiences/{id}/lookalikes.",
        )
        exclusion = serializers.BooleanField(default=False, help_text="Flag it as an exclusion list.")
        auto_sync = serializers.BooleanField(default=True)
        rule = RuleInput(required=False)

        def validate(self, attrs):
            if "rule" in attrs and attrs["audience_type"] == "CUSTOMER_FILE":
                raise serializers.ValidationError({"rule": "Only RULE and EXCLUSION audiences have a rule."})
            return attrs

    @extend_schema(
        parameters=[
            OpenApiParameter("audience_type", str, enum=sorted(TYPE_OF_KIND.values()), required=False),
            OpenApiParameter("exclusion", bool, required=False, description="Only exclusion lists (or only others)."),
        ],
        responses={200: AudienceOutput(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        audiences = Audience.objects.select_related("pixel").order_by("-id")
        wanted = request.query_params.get("audience_type")
        if wanted:
            kinds = {value: kind for kind, value in TYPE_OF_KIND.items()}
            if wanted not in kinds:
                raise serializers.ValidationError({"audience_type": [f"One of {', '.join(sorted(kinds))}."]})
            audiences = audiences.filter(kind=kinds[wanted])
        exclusion = request.query_params.get("exclusion")
        if exclusion is not None:
            if exclusion not in ("true", "false"):
                raise serializers.ValidationError({"exclusion": ["true or false."]})
            audiences = audiences.filter(is_exclusion=exclusion == "true")
        paginator = LimitOffsetPagination()
        page = with_counts(list(paginator.paginate_queryset(audiences, request, view=self)))
        return paginator.get_paginated_response(AudienceOutput(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: AudienceDetailOutput, **ERROR_RESPONSES})
    def post(self, request):
        fields = validated(self.InputSerializer, request.data)
        pixel = pixel_for_audience(advertiser_id=fields.get("advertiser_id"), pixel_id=fields.get("pixel_id"))
        audience_type = fields["audience_type"]
        rule = None
        if audience_type in ("RULE", "EXCLUSION"):
            rule = rule_params(fields.get("rule") or {})
        try:
            audience = services.audience_create(
                pixel=pixel,
                name=fields["custom_audience_name"],
                kind=Audience.Kind.RULE if rule else Audience.Kind.CUSTOMER_FILE,
                is_exclusion=fields["exclusion"] or audience_type == "EXCLUSION",
                auto_sync=fields["auto_sync"],
                rule=rule,
            )
        except services.AudienceRefused as error:
            raise refused(error) from None
        return detail_response(audience, status.HTTP_201_CREATED)


def pixel_for_audience(*, advertiser_id: str | None, pixel_id: str | None) -> Pixel:
    """The named pixel, else the advertiser's (its default one first), else the default pixel."""
    if pixel_id:
        pixel = Pixel.objects.filter(pixel_code=pixel_id).first()
        if pixel is None:
            raise NotFoundField("pixel_id", "No pixel with this pixel_id.")
        if advertiser_id and pixel.advertiser_id != advertiser_id:
            raise serializers.ValidationError({"advertiser_id": ["The pixel belongs to another advertiser."]})
        return pixel
    if advertiser_id:
        pixel = Pixel.objects.filter(advertiser_id=advertiser_id).order_by("-is_default", "-is_active", "id").first()
        if pixel is None:
            raise NotFoundField(
                "advertiser_id",
                "No pixel with this advertiser_id: connect one (POST /api/integrations/tiktok-ads/connect).",
            )
        return pixel
    pixel = default_pixel()
    if pixel is None:
        raise NotFoundField("advertiser_id", "No default pixel: name an advertiser_id or a pixel_id.")
    return pixel


def rule_params(rule: dict) -> services.RuleParams:
    campaign = None
    if rule.get("campaign_id") is not None:
        campaign = Campaign.objects.filter(pk=rule["campaign_id"]).first()
        if campaign is None:
            raise NotFoundField("rule.campaign_id", "No campaign with this id.")
    return services.RuleParams(
        event=rule.get("event", "CompletePayment"),
        goal=rule.get("goal", ""),
        min_purchases=rule.get("min_purchases", 1),
        min_value_minor=rule.get("min_value"),
        campaign=campaign,
        within_days=rule.get("within_days"),
    )


class AudienceDetailApi(ManagementApi):
    @extend_schema(responses={200: AudienceDetailOutput, **ERROR_RESPONSES})
    def get(self, request, audience_id: int):
        return detail_response(audience_or_404(audience_id))


# --- members ------------------------------------------------------------------------------------


class AudienceSyncApi(ManagementApi):
    """The seed's sync: hashed members (raw emails and phones are hashed here) become pending_add
    (APPEND) or pending_remove (REMOVE), then a sync is queued. Without members: just sync now."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AudienceSyncInput"

        action = serializers.ChoiceField(["APPEND", "REMOVE"], default="APPEND")
        id_schema = serializers.ListField(
            child=serializers.ChoiceField([EMAIL, PHONE]), min_length=1, max_length=2, default=[EMAIL, PHONE]
        )
        members = serializers.ListField(
            child=serializers.ListField(child=serializers.CharField(allow_blank=True, allow_null=True)),
            required=False,
            max_length=MAX_SYNC_ROWS,
            help_text="Rows lined up with id_schema: SHA-256 hex (or raw values, hashed here); null or '' "
            "when missing.",
        )
        default_region = serializers.RegexField(
            r"^[A-Za-z]{2}$", required=False, help_text="For raw phones written without a country code, e.g. RO."
        )

        def validate(self, attrs):
            id_schema = attrs["id_schema"]
            if len(set(id_schema)) != len(id_schema):
                raise serializers.ValidationError({"id_schema": "Lists an id type twice."})
            attrs["ids"] = member_ids(attrs.get("members") or [], id_schema, attrs.get("default_region"))
            return attrs

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AudienceSyncAnswer"

        audience_id = serializers.IntegerField()
        action = serializers.CharField()
        rows = serializers.IntegerField(help_text="Member rows received.")
        ids = serializers.IntegerField(help_text="Hashed ids in them.")
        changed = serializers.IntegerField(help_text="Members that became pending_add (APPEND) or pending_remove.")
        unchanged = serializers.IntegerField(help_text="Already in that state, or repeated.")
        sync_queued = serializers.BooleanField()

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer, **ERROR_RESPONSES})
    def post(self, request, audience_id: int):
        audience = audience_or_404(audience_id)
        fields = validated(self.InputSerializer, request.data)
        ids = fields["ids"]
        changed = 0
        try:
            if ids:
                changes = services.audience_members_change(audience=audience, action=fields["action"], ids=ids)
                changed = changes.to_add + changes.to_remove
            else:
                services.sync_queue(audience_id=audience.pk, trigger="api")
        except services.AudienceRefused as error:
            raise refused(error) from None
        answer = {
            "audience_id": audience.pk,
            "action": fields["action"],
            "rows": len(fields.get("members") or []),
            "ids": len(ids),
            "changed": changed,
            "unchanged": len(ids) - changed,
            "sync_queued": True,
        }
        return Response(self.OutputSerializer(answer).data, status=status.HTTP_202_ACCEPTED)


def member_ids(rows: list[list], id_schema: list[str], default_region: str | None) -> list[tuple[str, str]]:
    """(id type, SHA-256) of every value; a 400 naming members[i][j] for each bad one (never quoting it)."""
    ids, problems = [], {}
    region = default_region.upper() if default_region else None
    for row_index, row in enumerate(rows):
        if len(row) != len(id_schema):
            problems[f"members[{row_index}]"] = [f"Has {len(row)} values; id_schema has {len(id_schema)}."]
            continue
        given = 0
        for column, (id_type, value) in enumerate(zip(id_schema, row, strict=True)):
            value = (value or "").strip()
            if not value:
                continue
            given += 1
            try:
                ids.append((id_type, email_hash(value) if id_type == EMAIL else phone_hash(value, region)))
            except ValueError:
                kind = "email address" if id_type == EMAIL else "phone number (E.164, e.g. +40721234567)"
                problems[f"members[{row_index}][{column}]"] = [f"Not a SHA-256 hex digest or a valid {kind}."]
        if not given:
            problems[f"members[{row_index}]"] = ["No id in this row."]
    if problems:
        raise serializers.ValidationError(problems)
    return ids


# --- customer files -----------------------------------------------------------------------------


class CustomerFileApi(ManagementApi):
    """Upload a CSV (multipart, field `file`): a header row naming email / phone / email_sha256 /
    phone_sha256 columns. Files up to AUDIENCE_IMPORT_INLINE_MAX_BYTES are imported now (201 with the
    report); larger ones by a worker (202; the report appears on the audience when done)."""

    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CustomerFileInput"

        file = serializers.FileField(allow_empty_file=True)
        mode = serializers.ChoiceField(CustomerFileImport.Mode.values, default=CustomerFileImport.Mode.APPEND)
        default_region = serializers.RegexField(
            r"^[A-Za-z]{2}$", required=False, help_text="For phones written without a country code, e.g. RO."
        )

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={201: CustomerFileImportOutput, 202: CustomerFileImportOutput, **ERROR_RESPONSES},
    )
    def post(self, request, audience_id: int):
        audience = audience_or_404(audience_id)
        fields = validated(self.InputSerializer, request.data)
        uploaded = fields["file"]
        arguments = {
            "audience": audience,
            "filename": uploaded.name or "upload.csv",
            "mode": fields["mode"],
            "default_region": fields.get("default_region", ""),
        }
        try:
            if uploaded.size > settings.AUDIENCE_IMPORT_INLINE_MAX_BYTES:
                record = services.customer_file_queue(uploaded_file=uploaded, **arguments)
                code = status.HTTP_202_ACCEPTED
            else:
                record = services.customer_file_import(binary_file=uploaded.file, **arguments)
                code = status.HTTP_201_CREATED
        except services.AudienceRefused as error:
            raise refused(error) from None
        return Response(CustomerFileImportOutput(record).data, status=code)


# --- lookalikes ---------------------------------------------------------------------------------


class LookalikesApi(ManagementApi):
    """A lookalike of this audience (which must be at TikTok and not itself a lookalike). TikTok creates
    it at the next sync, queued now (202); its status and any refusal show on the new audience."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "LookalikeCreateInput"

        name = serializers.CharField(max_length=128)
        audience_size = serializers.ChoiceField(Audience.LookalikeSize.values, default="BALANCED")
        location_ids = serializers.ListField(
            child=serializers.RegexField(r"^[0-9]{1,20}$"),
            default=list,
            max_length=200,
            help_text='TikTok location ids, e.g. ["6252001"] for the United States.',
        )
        include_source = serializers.BooleanField(default=False)

    @extend_schema(request=InputSerializer, responses={202: AudienceDetailOutput, **ERROR_RESPONSES})
    def post(self, request, audience_id: int):
        source = audience_or_404(audience_id)
        fields = validated(self.InputSerializer, request.data)
        try:
            lookalike = services.lookalike_create(
                source=source,
                name=fields["name"],
                audience_size=fields["audience_size"],
                location_ids=fields["location_ids"],
                include_source=fields["include_source"],
            )
        except services.AudienceRefused as error:
            raise refused(error) from None
        return detail_response(lookalike, status.HTTP_202_ACCEPTED)

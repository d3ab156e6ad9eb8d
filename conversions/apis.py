"""The bot / partner intake API and journeys. Each view: parse, call one service, respond."""

from collections import Counter
from dataclasses import asdict

from django.conf import settings
from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import parsers, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from conversions import fast_intake, selectors, services
from conversions.auth import ApiKeyAuthentication, HasIntakeScope, QueryParamApiKeyAuthentication
from conversions.errors import NotFoundField
from conversions.intake import conversion_body, conversion_status, postback_conversion
from conversions.models import Click, TrafficSource
from conversions.negotiation import JsonAnswer
from conversions.parsers import SafeJSONParser
from conversions.privacy import person_erase
from conversions.serializers import (
    MAX_BATCH_CONVERSIONS,
    ConversionBatchInput,
    ConversionWebhookInput,
    PostbackInput,
    StrictIntegerField,
    TrackStartInput,
    postback_params,
)
from conversions.throttling import ApiKeyRateThrottle

ErrorOutput = inline_serializer(
    "Error",
    {
        "error": serializers.CharField(),
        "message": serializers.CharField(),
        "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
    },
)
ERROR_RESPONSES = {400: ErrorOutput, 401: ErrorOutput, 403: ErrorOutput, 404: ErrorOutput, 413: ErrorOutput}


class ConversionOutput(serializers.Serializer):
    outcome = serializers.SerializerMethodField(help_text="created, updated (status or amount changed) or unchanged")
    conversion_id = serializers.CharField(source="public_id")
    status = serializers.CharField()
    goal = serializers.CharField()
    amount = serializers.IntegerField(source="amount_minor")
    currency = serializers.CharField()
    utm_id = serializers.CharField(source="link.utm_id", allow_null=True, default=None)
    click_id = serializers.CharField(source="click.click_id", allow_null=True, default=None)
    time_to_conversion = serializers.IntegerField(source="time_to_conversion_s", allow_null=True)

    def get_outcome(self, conversion) -> str:
        return self.context["outcome"]


def conversion_response(result: services.ConversionResult) -> Response:
    return Response(conversion_body(result), status=conversion_status(result))


class IntakeApi(APIView):
    """What the bot and partner networks call: an intake key, its rate limit, always a JSON answer."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasIntakeScope]
    throttle_classes = [ApiKeyRateThrottle]
    content_negotiation_class = JsonAnswer
    fast_answer = None  # request -> response or None: the plain request answered without DRF (fast_intake)

    def dispatch(self, request, *args, **kwargs):
        if self.fast_answer is not None and settings.INTAKE_FAST_PATH:
            response = self.fast_answer(request)
            if response is not None:
                for name, value in self.default_response_headers.items():  # Allow, as DRF answers
                    response[name] = value
                return response
        return super().dispatch(request, *args, **kwargs)


class TrackStartApi(IntakeApi):
    """The bot reports a /start <token>."""

    class OutputSerializer(serializers.Serializer):
        created = serializers.BooleanField(help_text="False when this user already started with this token")
        telegram_user_id = serializers.IntegerField()
        utm_id = serializers.CharField()
        click_id = serializers.CharField(allow_null=True)
        campaign = serializers.CharField()

    @extend_schema(request=TrackStartInput, responses={201: OutputSerializer, 200: OutputSerializer, **ERROR_RESPONSES})
    def post(self, request):
        data = TrackStartInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        result = services.lead_start(
            token=fields["utm_id"],
            telegram_user_id=fields["user_id"],
            username=fields.get("username", ""),
            first_name=fields.get("first_name", ""),
            language_code=fields.get("language_code", ""),
            referrer=fields.get("referrer", ""),
            consent=fields.get("consent"),
            email_sha256=fields.get("email", ""),
            phone_sha256=fields.get("phone", ""),
        )
        start = result.start
        body = {
            "created": result.created,
            "telegram_user_id": result.lead.telegram_user_id,
            "utm_id": start.link.utm_id,
            "click_id": start.click.click_id if start.click_id else None,
            "campaign": start.campaign.name,
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class ConversionWebhookApi(IntakeApi):
    """The bot reports a purchase. Idempotent on transaction_id (or the Idempotency-Key header)."""

    fast_answer = staticmethod(fast_intake.webhook_answer)

    @extend_schema(
        request=ConversionWebhookInput,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        responses={201: ConversionOutput, 200: ConversionOutput, **ERROR_RESPONSES},
    )
    def post(self, request):
        data = ConversionWebhookInput(data=request.data)
        data.is_valid(raise_exception=True)
        idempotency_key = request.headers.get("Idempotency-Key", "")[:200]
        result = services.webhook_conversion_record(data.validated_data, idempotency_key=idempotency_key)
        return conversion_response(result)


class ConversionBatchOutput(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    conversions = ConversionOutput(many=True, help_text="In the order sent.")


class ConversionBatchWebhookApi(IntakeApi):
    """Many purchases in one request (a backfill, a payment backend's batch): all recorded or, on any bad
    or unknown field, none. Idempotent per transaction_id, which every conversion must have."""

    def throttle_cost(self, request) -> int:
        """Each conversion of the batch counts against the key's INTAKE_REQUESTS_PER_MINUTE."""
        conversions = request.data.get("conversions") if isinstance(request.data, dict) else None
        return min(max(len(conversions), 1), MAX_BATCH_CONVERSIONS) if isinstance(conversions, list) else 1

    @extend_schema(request=ConversionBatchInput, responses={200: ConversionBatchOutput, **ERROR_RESPONSES})
    def post(self, request):
        data = ConversionBatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        results = services.conversions_record(data.validated_data["conversions"])
        outcomes = Counter(result.outcome for result in results)
        body = {name: outcomes[name] for name in ("created", "updated", "unchanged")}
        body["conversions"] = [conversion_body(result) for result in results]
        return Response(body)


class PostbackApi(IntakeApi):
    """A partner network's S2S postback: GET (query string) or POST (query, form or JSON)."""

    authentication_classes = [QueryParamApiKeyAuthentication]
    parser_classes = [SafeJSONParser, parsers.FormParser, parsers.MultiPartParser]
    fast_answer = staticmethod(fast_intake.postback_answer)

    @extend_schema(
        parameters=[
            OpenApiParameter("key", str, description="The API key (networks cannot set headers)."),
            OpenApiParameter("click_id", str, required=True, description="Also: cid, clickid, subid, aff_sub."),
            OpenApiParameter("payout", str, description="Major units, e.g. 7.50. Also: sum, amount, revenue."),
            OpenApiParameter("status", str, description="approved / pending / rejected and synonyms."),
            OpenApiParameter("goal", str),
            OpenApiParameter("transaction_id", str, description="Also: txid, tid."),
            OpenApiParameter("currency", str),
            OpenApiParameter("sub1", str),
        ],
        request=None,
        responses={201: ConversionOutput, 200: ConversionOutput, **ERROR_RESPONSES},
    )
    def get(self, request):
        return self._record(dict(request.query_params.items()))

    @extend_schema(request=PostbackInput, responses={201: ConversionOutput, 200: ConversionOutput, **ERROR_RESPONSES})
    def post(self, request):
        raw = dict(request.query_params.items())
        if hasattr(request.data, "items"):
            raw.update({key: value for key, value in request.data.items() if isinstance(value, str | int | float)})
        return self._record(raw)

    def _record(self, raw: dict) -> Response:
        data = PostbackInput(data=postback_params(raw))
        data.is_valid(raise_exception=True)
        return conversion_response(postback_conversion(data.validated_data, raw))


JourneyOutput = inline_serializer(
    "Journey", {"utm_id": serializers.CharField(), "conversions": serializers.ListField()}
)


class LinkJourneyApi(APIView):
    """Everything known for a utm_id (or a click id, which is what the bot holds)."""

    @extend_schema(responses={200: JourneyOutput, **ERROR_RESPONSES})
    def get(self, request, utm_id: str):
        click = selectors.one_or_none(Click.objects.select_related("link", "campaign").filter(click_id=utm_id))
        if click is not None:
            return Response(selectors.journey_for_click(click))
        link = TrafficSource.objects.select_related("campaign").filter(Q(utm_id=utm_id)).first()
        if link is None:
            raise NotFoundField("utm_id", "No tracking link or click with this id.")
        return Response(selectors.journey_for_link(link))


class ClickJourneyApi(APIView):
    @extend_schema(responses={200: JourneyOutput, **ERROR_RESPONSES})
    def get(self, request, click_id: str):
        click = selectors.one_or_none(Click.objects.select_related("link", "campaign").filter(click_id=click_id))
        if click is None:
            raise NotFoundField("click_id", "No click with this click_id.")
        return Response(selectors.journey_for_click(click))


class ErasureInput(serializers.Serializer):
    telegram_user_id = StrictIntegerField(min_value=1, max_value=2**63 - 1, required=False)
    customer_id = serializers.CharField(max_length=200, required=False, allow_blank=False)

    def validate(self, attrs):
        if "telegram_user_id" not in attrs and "customer_id" not in attrs:
            raise serializers.ValidationError({"telegram_user_id": "Give telegram_user_id or customer_id."})
        return attrs


class ErasureApi(APIView):
    """GDPR erasure of one person: Telegram user, their conversions' identifiers, clicks, unsent events."""

    @extend_schema(
        request=ErasureInput,
        responses={
            200: inline_serializer(
                "ErasureReport",
                {
                    name: serializers.IntegerField()
                    for name in ("leads", "conversions", "clicks", "tiktok_events", "audience_members")
                },  # fmt: skip
            ),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request):
        data = ErasureInput(data=request.data)
        data.is_valid(raise_exception=True)
        report = person_erase(
            telegram_user_id=data.validated_data.get("telegram_user_id"),
            customer_id=data.validated_data.get("customer_id", ""),
        )
        return Response(asdict(report))

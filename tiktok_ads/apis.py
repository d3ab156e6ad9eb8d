"""The seed's TikTok Ads API (management-scope keys): connection status, connect, events, batches.

Each view: parse (tiktok_ads.serializers), map (tiktok_ads.api_events), write through the outbox
(tiktok_ads.outbox.event_queue), respond. Access tokens are never returned, only their hint.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import F
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from conversions.apis import ERROR_RESPONSES
from conversions.auth import ApiKeyAuthentication, HasManagementScope
from conversions.errors import NotFoundField
from tiktok_ads.api_events import api_event_item, api_event_moment, api_event_skip_reason
from tiktok_ads.funnel import default_pixel
from tiktok_ads.models import Pixel, TikTokEvent
from tiktok_ads.outbox import event_queue
from tiktok_ads.pixels import pixel_connect
from tiktok_ads.selectors import pixels_with_numbers
from tiktok_ads.serializers import (
    TikTokConnectInput,
    TikTokEventBatchInput,
    TikTokEventInput,
    validated,
)

PIXEL_ID_PARAMETER = OpenApiParameter(
    "pixel_id", str, required=False, description="A pixel code; default: the default pixel."
)


class ManagementApi(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasManagementScope]


# --- Connection ---------------------------------------------------------------------------------


def pixels_with_delivery_stats():
    """Every pixel with the time of its last sent event and how many it sent this UTC day
    (index-served subqueries: the cost does not grow with the outbox)."""
    return pixels_with_numbers(Pixel.objects.order_by("id")).annotate(
        last_event_sent=F("last_sent_at"), events_sent_today=F("sent_today")
    )


def is_connected(pixel: Pixel | None) -> bool:
    return pixel is not None and pixel.is_active and not pixel.token_invalid


class TikTokPixelOutput(serializers.Serializer):
    connected = serializers.SerializerMethodField(help_text="Active, and TikTok has not rejected its token.")
    pixel_id = serializers.CharField(source="pixel_code")
    advertiser_id = serializers.CharField()
    test_mode = serializers.BooleanField()
    last_event_sent = serializers.DateTimeField(allow_null=True)
    name = serializers.CharField()
    is_default = serializers.BooleanField()
    is_active = serializers.BooleanField()
    token = serializers.CharField(source="token_hint", help_text="Masked: the last four characters only.")
    token_invalid = serializers.BooleanField()
    events_sent_today = serializers.IntegerField()
    daily_quota = serializers.IntegerField()
    quota_left_today = serializers.SerializerMethodField()

    def get_connected(self, pixel) -> bool:
        return is_connected(pixel)

    def get_quota_left_today(self, pixel) -> int:
        return max(0, pixel.daily_quota - pixel.events_sent_today)


class TikTokConnectionOutput(serializers.Serializer):
    """The seed's answer for one pixel (the default one unless ?pixel_id= names another), plus all pixels."""

    connected = serializers.BooleanField()
    pixel_id = serializers.CharField(allow_null=True)
    advertiser_id = serializers.CharField(allow_null=True)
    test_mode = serializers.BooleanField()
    last_event_sent = serializers.DateTimeField(allow_null=True)
    pixels = TikTokPixelOutput(many=True)


def connection_response(*, pixel_code: str | None, status_code: int = status.HTTP_200_OK) -> Response:
    pixels = list(pixels_with_delivery_stats())
    if pixel_code:
        selected = next((pixel for pixel in pixels if pixel.pixel_code == pixel_code), None)
        if selected is None:
            raise NotFoundField("pixel_id", "No pixel with this pixel_id.")
    else:
        selected = next((pixel for pixel in pixels if pixel.is_default), None)
    state = {
        "connected": is_connected(selected),
        "pixel_id": selected.pixel_code if selected else None,
        "advertiser_id": selected.advertiser_id if selected else None,
        "test_mode": bool(selected and selected.test_mode),
        "last_event_sent": selected.last_event_sent if selected else None,
        "pixels": pixels,
    }
    return Response(TikTokConnectionOutput(state).data, status=status_code)


class ConnectionApi(ManagementApi):
    @extend_schema(parameters=[PIXEL_ID_PARAMETER], responses={200: TikTokConnectionOutput, **ERROR_RESPONSES})
    def get(self, request):
        return connection_response(pixel_code=request.query_params.get("pixel_id"))


class ConnectApi(ManagementApi):
    """Create the pixel connection or replace its token and settings (201 created, 200 updated)."""

    @extend_schema(
        request=TikTokConnectInput,
        responses={201: TikTokConnectionOutput, 200: TikTokConnectionOutput, **ERROR_RESPONSES},
    )
    def post(self, request):
        fields = validated(TikTokConnectInput, request.data)
        pixel, created = pixel_connect(
            pixel_code=fields["pixel_id"],
            access_token=fields["access_token"],
            advertiser_id=fields.get("advertiser_id", ""),
            name=fields.get("name", ""),
            test_mode=fields.get("test_mode"),
            test_event_code=fields.get("test_event_code"),
            make_default=fields["make_default"],
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return connection_response(pixel_code=pixel.pixel_code, status_code=code)


# --- Events -------------------------------------------------------------------------------------


def pixel_for_event(pixel_code: str | None, *, field: str = "pixel_id") -> Pixel:
    """The named pixel, or the default one; a 404 naming `field` when there is none."""
    if pixel_code:
        pixel = Pixel.objects.filter(pixel_code=pixel_code).first()
        if pixel is None:
            raise NotFoundField(field, "No pixel with this pixel_id.")
        return pixel
    pixel = default_pixel()
    if pixel is None:
        raise NotFoundField(field, "No default pixel: connect one, or name a pixel_id.")
    return pixel


def queue_api_event(*, pixel: Pixel, body: dict) -> tuple[TikTokEvent, bool]:
    return event_queue(
        pixel=pixel,
        event_id=body["event_id"],
        event=body["event"],
        event_time=api_event_moment(body),
        payload=api_event_item(body),
        source="api",
        skip_reason=api_event_skip_reason(body, consent_required=settings.TIKTOK_CONSENT_REQUIRED),
        test_event_code=body.get("test_event_code"),
    )


class TikTokEventResultOutput(serializers.Serializer):
    event_id = serializers.CharField()
    status = serializers.CharField(help_text="queued, or skipped (e.g. no consent); a duplicate: its current status")
    duplicate = serializers.BooleanField(help_text="True when this event_id was already stored for the pixel.")


class TikTokEventAcceptedOutput(TikTokEventResultOutput):
    success = serializers.BooleanField()


def event_result(row: TikTokEvent, created: bool) -> dict:
    return {"event_id": row.event_id, "status": row.status, "duplicate": not created}


class EventsApi(ManagementApi):
    """One event (the seed's body). Idempotent on (pixel, event_id): a repeat writes nothing."""

    @extend_schema(
        request=TikTokEventInput,
        responses={202: TikTokEventAcceptedOutput, 200: TikTokEventAcceptedOutput, **ERROR_RESPONSES},
    )
    def post(self, request):
        body = validated(TikTokEventInput, request.data)
        pixel = pixel_for_event(body.get("pixel_id"))
        row, created = queue_api_event(pixel=pixel, body=body)
        answer = {"success": True, **event_result(row, created)}
        return Response(answer, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


class TikTokEventBatchOutput(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events stored now.")
    duplicates = serializers.IntegerField(help_text="Events already stored (or repeated in this batch).")
    events = TikTokEventResultOutput(many=True)


class EventBatchApi(ManagementApi):
    """Up to 1,000 events: all are validated first, then all are stored in one transaction, or none.

    The body is capped by API_MAX_BODY_BYTES like every JSON body (413 above it): at the default 256 KB,
    1,000 events fit only if they average under ~260 bytes; a full seed-shaped event is ~550.
    """

    @extend_schema(request=TikTokEventBatchInput, responses={202: TikTokEventBatchOutput, **ERROR_RESPONSES})
    def post(self, request):
        batch = validated(TikTokEventBatchInput, request.data)
        pixels: dict[str | None, Pixel] = {}
        if batch.get("pixel_id"):
            pixels[batch["pixel_id"]] = pixel_for_event(batch["pixel_id"])
        bodies = []
        for index, body in enumerate(batch["events"]):
            code = body.get("pixel_id") or batch.get("pixel_id")
            if code not in pixels:
                pixels[code] = pixel_for_event(code, field=f"events[{index}].pixel_id")
            if "test_event_code" not in body and "test_event_code" in batch:
                body = {**body, "test_event_code": batch["test_event_code"]}
            bodies.append((pixels[code], body))
        with transaction.atomic():
            results = [event_result(*queue_api_event(pixel=pixel, body=body)) for pixel, body in bodies]
        duplicates = sum(result["duplicate"] for result in results)
        answer = {"accepted": len(results) - duplicates, "duplicates": duplicates, "events": results}
        return Response(answer, status=status.HTTP_202_ACCEPTED)


class TikTokEventStatusOutput(serializers.Serializer):
    event_id = serializers.CharField()
    event = serializers.CharField()
    pixel_id = serializers.CharField(source="pixel.pixel_code")
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    last_code = serializers.IntegerField(allow_null=True, help_text="TikTok's code from the last attempt.")
    last_message = serializers.CharField(help_text="TikTok's message, or why the event was skipped.")
    request_id = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    payload = serializers.JSONField(help_text="The v1.3 data item as sent: email, phone, external_id hashed.")


class EventStatusApi(ManagementApi):
    """Where an event is: queued, sent (with TikTok's request_id), failed (with its code) or skipped."""

    @extend_schema(
        parameters=[
            OpenApiParameter("pixel_id", str, required=False, description="Default: any pixel, the default first.")
        ],
        responses={200: TikTokEventStatusOutput, **ERROR_RESPONSES},
    )
    def get(self, request, event_id: str):
        events = TikTokEvent.objects.select_related("pixel").filter(event_id=event_id)
        pixel_code = request.query_params.get("pixel_id")
        if pixel_code:
            if not Pixel.objects.filter(pixel_code=pixel_code).exists():
                raise NotFoundField("pixel_id", "No pixel with this pixel_id.")
            events = events.filter(pixel__pixel_code=pixel_code)
        row = events.order_by("-pixel__is_default", "id").first()
        if row is None:
            raise NotFoundField("event_id", "No event with this event_id.")
        return Response(TikTokEventStatusOutput(row).data)

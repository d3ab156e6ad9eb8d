"""Management API for campaigns, landing pages and tracking links (management-scope keys)."""

from django.conf import settings
from django.db.models import ProtectedError
from rest_framework import serializers, status, viewsets
from rest_framework.response import Response

from conversions.models import Campaign, LandingPage, TrafficSource
from conversions.selectors import totals_for


def tracking_url(link: TrafficSource) -> str:
    return f"{settings.PUBLIC_BASE_URL}/l/{link.utm_id}"


class CampaignSerializer(serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = ["id", "name", "status", "offer_url", "pixel", "notes", "created_at"]


class LandingPageSerializer(serializers.ModelSerializer):
    class Meta:
        model = LandingPage
        fields = ["id", "name", "title", "description", "logo_url", "redirect_text", "button_text", "redirect_delay_s"]


class TrafficSourceSerializer(serializers.ModelSerializer):
    tracking_url = serializers.SerializerMethodField()
    totals = serializers.SerializerMethodField()

    class Meta:
        model = TrafficSource
        fields = [
            "id", "utm_id", "name", "campaign", "utm_source", "utm_medium", "utm_campaign", "utm_content",
            "utm_term", "creative", "landing_page", "destination", "telegram_bot", "destination_url",
            "redirect_mode", "is_active", "created_at", "tracking_url", "totals",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at"]

    def get_tracking_url(self, link) -> str:
        return tracking_url(link)

    def get_totals(self, link) -> dict:
        return totals_for(link=link).as_dict()

    def validate(self, attrs):
        destination = attrs.get(
            "destination", getattr(self.instance, "destination", TrafficSource.Destination.TELEGRAM)
        )
        bot = attrs.get("telegram_bot", getattr(self.instance, "telegram_bot", ""))
        url = attrs.get("destination_url", getattr(self.instance, "destination_url", ""))
        if destination == TrafficSource.Destination.TELEGRAM and not bot:
            raise serializers.ValidationError({"telegram_bot": "A Telegram destination needs the bot's username."})
        if destination == TrafficSource.Destination.URL and not url:
            raise serializers.ValidationError({"destination_url": "A URL destination needs destination_url."})
        return attrs


class ProtectedDeleteMixin:
    def destroy(self, request, *args, **kwargs):
        try:
            return super().destroy(request, *args, **kwargs)
        except ProtectedError:
            return Response(
                {"error": "in_use", "message": "It has clicks or conversions; pause it instead.", "fields": {}},
                status=status.HTTP_409_CONFLICT,
            )


class CampaignViewSet(ProtectedDeleteMixin, viewsets.ModelViewSet):
    queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer


class LandingPageViewSet(viewsets.ModelViewSet):
    queryset = LandingPage.objects.all()
    serializer_class = LandingPageSerializer


class TrafficSourceViewSet(ProtectedDeleteMixin, viewsets.ModelViewSet):
    queryset = TrafficSource.objects.select_related("campaign")
    serializer_class = TrafficSourceSerializer
    lookup_field = "utm_id"
    lookup_value_regex = r"[A-Za-z0-9_-]{1,64}"

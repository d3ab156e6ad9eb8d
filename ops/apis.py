"""The bot asks for a TikTok Login Kit link for one of its users (intake key)."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from conversions.apis import ERROR_RESPONSES
from conversions.auth import ApiKeyAuthentication, HasIntakeScope
from conversions.serializers import StrictIntegerField
from ops.tiktok_login import login_configured, start_url


class LoginKitNotConfigured(exceptions.APIException):
    """This installation has no Login Kit app: the feature does not exist here (404, not a server fault)."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_configured"
    default_detail = "TikTok Login Kit is not configured (TIKTOK_LOGIN_CLIENT_KEY, TIKTOK_LOGIN_CLIENT_SECRET)."


# Named, not nested Input/OutputSerializer: the OpenAPI components are named after the class.
class TikTokLoginLinkInput(serializers.Serializer):
    telegram_user_id = StrictIntegerField(min_value=1, max_value=2**63 - 1)


class TikTokLoginLinkOutput(serializers.Serializer):
    url = serializers.URLField()
    expires_in = serializers.IntegerField(help_text="Seconds the link stays valid.")


class TikTokLoginLinkApi(APIView):
    """A link to send the Telegram user: it opens TikTok's consent page and comes back to /tiktok/callback."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasIntakeScope]

    @extend_schema(request=TikTokLoginLinkInput, responses={201: TikTokLoginLinkOutput, **ERROR_RESPONSES})
    def post(self, request):
        data = TikTokLoginLinkInput(data=request.data)
        data.is_valid(raise_exception=True)
        if not login_configured():
            raise LoginKitNotConfigured()
        body = {
            "url": start_url(data.validated_data["telegram_user_id"]),
            "expires_in": settings.TIKTOK_LOGIN_STATE_MAX_AGE_S,
        }
        return Response(TikTokLoginLinkOutput(body).data, status=status.HTTP_201_CREATED)

"""The TikTok client for audiences: tiktok_ads.client.TikTokClient plus the lookalike endpoint.

TikTokClient (tiktok_ads/client.py) already has audience_create and audience_members; lookalike
creation is the one audience call it lacks. It lives here, on a subclass, so the transport, the error
classification and the retry flag stay those of the one client; it belongs in TikTokClient itself.
"""

from django.conf import settings

from tiktok_ads.client import TikTokClient, TikTokError
from tiktok_ads.crypto import decrypt_token
from tiktok_ads.models import Pixel

LOOKALIKE_PATH = "/open_api/v1.3/dmp/custom_audience/lookalike/create/"


class AudienceClient(TikTokClient):
    def lookalike_create(
        self,
        *,
        advertiser_id: str,
        name: str,
        source_audience_id: str,
        audience_size: str,
        location_ids: list[str],
        include_source: bool = False,
    ) -> str:
        """Create a lookalike of an audience (TIKTOK.md "Audiences"); returns its audience id."""
        spec = {
            "source_audience_id": source_audience_id,
            "audience_size": audience_size,
            "include_source": include_source,
            "location_ids": list(location_ids),
        }
        body = {"advertiser_id": advertiser_id, "custom_audience_name": name, "lookalike_spec": spec}
        response = self._post(LOOKALIKE_PATH, body)
        data = response.data if isinstance(response.data, dict) else {}
        audience_id = data.get("audience_id")
        if not audience_id:
            # Not retryable: it may exist already, a retry could create a twin.
            raise TikTokError(
                "lookalike created but no data.audience_id in the answer",
                retryable=False,
                code=response.code,
                http_status=response.http_status,
                request_id=response.request_id,
                response_text=response.response_text,
            )
        return str(audience_id)


def client_for_pixel(pixel: Pixel) -> AudienceClient:
    return AudienceClient(
        settings.TIKTOK_API_BASE_URL, decrypt_token(pixel.access_token_encrypted), settings.TIKTOK_HTTP_TIMEOUT
    )

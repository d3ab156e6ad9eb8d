"""The TikTok client of a pixel, for its audiences (tiktok_ads.client.TikTokClient: create, members,
lookalikes)."""

from django.conf import settings

from tiktok_ads.client import TikTokClient
from tiktok_ads.crypto import decrypt_token
from tiktok_ads.models import Pixel


def client_for_pixel(pixel: Pixel) -> TikTokClient:
    return TikTokClient(
        settings.TIKTOK_API_BASE_URL, decrypt_token(pixel.access_token_encrypted), settings.TIKTOK_HTTP_TIMEOUT
    )

"""Pixel connections: create or update them with an encrypted token; the seed's env default pixel."""

from django.conf import settings
from django.db import transaction

from tiktok_ads.crypto import encrypt_token, mask_token
from tiktok_ads.funnel import forget_default_pixel
from tiktok_ads.models import Pixel


def pixel_connect(
    *,
    pixel_code: str,
    access_token: str,
    advertiser_id: str = "",
    name: str = "",
    test_mode: bool | None = None,
    test_event_code: str | None = None,
    make_default: bool = False,
) -> tuple[Pixel, bool]:
    """Create the pixel or update its token and settings. A new token clears the invalid-token flag."""
    with transaction.atomic():
        pixel, created = Pixel.objects.select_for_update().get_or_create(
            pixel_code=pixel_code, defaults={"access_token_encrypted": encrypt_token(access_token)}
        )
        pixel.access_token_encrypted = encrypt_token(access_token)
        pixel.token_hint = mask_token(access_token)
        pixel.token_invalid = False
        if advertiser_id:
            pixel.advertiser_id = advertiser_id
        if name:
            pixel.name = name
        if test_mode is not None:
            pixel.test_mode = test_mode
        if test_event_code is not None:
            pixel.test_event_code = test_event_code
        if make_default or not Pixel.objects.filter(is_default=True).exclude(pk=pixel.pk).exists():
            Pixel.objects.filter(is_default=True).exclude(pk=pixel.pk).update(is_default=False)
            pixel.is_default = True
        pixel.save()
    forget_default_pixel()
    return pixel, created


def pixel_sync_from_env() -> Pixel | None:
    """TIKTOK_PIXEL_ID + TIKTOK_ACCESS_TOKEN (the seed's configuration) make the default pixel."""
    if not (settings.TIKTOK_PIXEL_ID and settings.TIKTOK_ACCESS_TOKEN):
        return None
    existing = Pixel.objects.filter(pixel_code=settings.TIKTOK_PIXEL_ID).first()
    if existing is not None and existing.token_hint == mask_token(settings.TIKTOK_ACCESS_TOKEN) and existing.is_default:
        return existing
    pixel, _ = pixel_connect(
        pixel_code=settings.TIKTOK_PIXEL_ID,
        access_token=settings.TIKTOK_ACCESS_TOKEN,
        advertiser_id=settings.TIKTOK_ADVERTISER_ID,
        test_mode=settings.TIKTOK_TEST_MODE,
        test_event_code=settings.TIKTOK_TEST_EVENT_CODE,
        make_default=True,
    )
    return pixel

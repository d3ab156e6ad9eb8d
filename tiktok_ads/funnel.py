"""Funnel steps become TikTok events: landing view → ViewContent, /start → CompleteRegistration,
approved conversion → CompletePayment (or the pixel's event for the goal).

Each event carries what the click knew (ttclid, _ttp, IP, user agent, page URL, referrer) and the
SHA-256 external id of the Telegram user or customer. A landing view's and a new conversion's rows are written by
the statement that writes their cause (landing.click_store, conversions.conversion_store); the rest inside
the funnel's own transaction.
"""

import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from tiktok_ads.hashing import sha256_external_id
from tiktok_ads.models import Pixel, TikTokEvent
from tiktok_ads.outbox import event_queue, outbox_row, row_queue

_DEFAULT_PIXEL_TTL_S = 10.0
_default_pixel_cache: dict = {"at": 0.0, "pixel": None}


def default_pixel() -> Pixel | None:
    """The default pixel, cached for a few seconds: the click path must not look it up every time."""
    now = time.monotonic()
    if now - _default_pixel_cache["at"] > _DEFAULT_PIXEL_TTL_S:
        _default_pixel_cache["pixel"] = Pixel.objects.filter(is_default=True, is_active=True).first()
        _default_pixel_cache["at"] = now
    return _default_pixel_cache["pixel"]


def forget_default_pixel() -> None:
    _default_pixel_cache["at"] = 0.0


def pixel_for_campaign(campaign) -> Pixel | None:
    if campaign.pixel_id is not None:
        return campaign.pixel if campaign.pixel.is_active else None
    return default_pixel()


def compact(mapping: dict) -> dict:
    """Drop empty values (but keep 0 and False: TikTok needs `value: 0`)."""
    return {key: value for key, value in mapping.items() if value not in (None, "", [], {})}


def click_user(click) -> dict:
    if click is None:
        return {}
    return compact({"ttclid": click.ttclid, "ttp": click.ttp, "ip": click.ip, "user_agent": click.user_agent})


def click_page(click) -> dict:
    if click is None:
        return {}
    return compact({"url": click.landing_url, "referrer": click.referrer})


def _item(*, event: str, event_id: str, moment, user: dict, properties: dict | None = None, page: dict | None = None):
    return compact(
        {
            "event": event,
            "event_time": int(moment.timestamp()),
            "event_id": event_id,
            "user": compact(user),
            "properties": compact(properties or {}),
            "page": compact(page or {}),
        }
    )


def _consent_missing(lead) -> bool:
    return settings.TIKTOK_CONSENT_REQUIRED and (lead is None or lead.tracking_consent is not True)


def click_event_pixel(click) -> Pixel | None:
    """The pixel a click's ViewContent goes to, or None when the click sends nothing."""
    if click.is_bot or not click.served_landing:
        return None
    pixel = pixel_for_campaign(click.campaign)
    return pixel if pixel is not None and pixel.sends("ViewContent") else None


def click_event_row(click) -> dict | None:
    """The ViewContent outbox row of a landing view, for the click path to insert in the click's own
    statement (landing.click_store), or None when the click sends nothing."""
    pixel = click_event_pixel(click)
    if pixel is None:
        return None
    event_id = f"view_{click.click_id}"
    item = _item(event="ViewContent", event_id=event_id, moment=click.created_at, user=click_user(click),
                 page=click_page(click))  # fmt: skip
    return outbox_row(pixel=pixel, event_id=event_id, event="ViewContent", event_time=click.created_at, payload=item,
                      source="landing_view", skip_reason="no_consent" if _consent_missing(None) else "")  # fmt: skip


def on_start(start) -> None:
    pixel = pixel_for_campaign(start.campaign)
    if pixel is None or not pixel.sends("CompleteRegistration"):
        return
    lead = start.lead
    event_id = f"registration_{start.pk}"
    user = {**click_user(start.click), "external_id": sha256_external_id(lead.customer_id),
            "email": lead.email_sha256, "phone": lead.phone_sha256}  # fmt: skip
    item = _item(event="CompleteRegistration", event_id=event_id, moment=start.created_at, user=user,
                 page=click_page(start.click))  # fmt: skip
    event_queue(pixel=pixel, event_id=event_id, event="CompleteRegistration", event_time=start.created_at,
                payload=item, source="bot_start",
                skip_reason="no_consent" if _consent_missing(lead) else "")  # fmt: skip


def conversion_event_id(conversion) -> str:
    """Stable: `purchase_<conversion id>` whatever happens to the conversion later."""
    return f"{conversion.goal}_{conversion.public_id}"


def _conversion_pixel_event(conversion) -> tuple[Pixel, str] | None:
    pixel = pixel_for_campaign(conversion.campaign)
    if pixel is None:
        return None
    event = (pixel.goal_events or {}).get(conversion.goal)
    if not event or not pixel.sends(event):
        return None
    return pixel, event


def conversion_event_row(conversion) -> dict | None:
    """The outbox row of an approved conversion's event (tiktok_ads.outbox.outbox_row), or None when it
    sends nothing (not approved, no pixel, the goal mapped to no event)."""
    found = _conversion_pixel_event(conversion)
    if found is None or conversion.status != conversion.Status.APPROVED:
        return None
    return _conversion_event_row(conversion, *found)


def _conversion_event_row(conversion, pixel: Pixel, event: str) -> dict:
    event_id = conversion_event_id(conversion)
    skip_reason = ""
    if not conversion.in_attribution_window:
        skip_reason = "outside_attribution_window"
    elif _consent_missing(conversion.lead):
        skip_reason = "no_consent"
    value = round(conversion.amount_minor / 100, 2)
    external_id = conversion.customer_id or (conversion.lead.customer_id if conversion.lead_id else "")
    user = {**click_user(conversion.click), "external_id": sha256_external_id(external_id) if external_id else None,
            "email": conversion.email_sha256, "phone": conversion.phone_sha256}  # fmt: skip
    content = compact({"content_id": conversion.product_id or conversion.product_name,
                        "content_name": conversion.product_name, "price": value, "quantity": 1})  # fmt: skip
    properties = {
        "value": value,
        "currency": conversion.currency,
        "content_type": "product",
        "contents": [content] if content.get("content_id") else [],
        "order_id": conversion.transaction_id or conversion.public_id,
    }
    item = _item(event=event, event_id=event_id, moment=conversion.created_at, user=user, properties=properties,
                 page=click_page(conversion.click))  # fmt: skip
    return outbox_row(pixel=pixel, event_id=event_id, event=event, event_time=conversion.created_at, payload=item,
                      source="conversion", skip_reason=skip_reason)  # fmt: skip


def on_conversion_changed(conversion) -> None:
    """A repeat changed a conversion: approved → queue the goal's event once; rejected or back to pending
    before sending → the queued event is skipped."""
    found = _conversion_pixel_event(conversion)
    if found is None:
        return
    pixel, event = found
    if conversion.status != conversion.Status.APPROVED:
        TikTokEvent.objects.filter(
            pixel=pixel,
            event_id=conversion_event_id(conversion),
            status__in=[TikTokEvent.Status.QUEUED, TikTokEvent.Status.RETRYING],
        ).update(status=TikTokEvent.Status.SKIPPED, last_message=f"conversion {conversion.status}")
        return
    row_queue(pixel=pixel, row=_conversion_event_row(conversion, pixel, event))


def too_old(event_time) -> bool:
    return event_time < timezone.now() - timedelta(days=settings.TIKTOK_MAX_EVENT_AGE_DAYS)

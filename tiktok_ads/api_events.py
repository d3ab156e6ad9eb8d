"""The intake API's event body (the seed's shape) → one v1.3 `data` item. Pure functions, no I/O.

The body reaching here is already validated by tiktok_ads.serializers.ApiEventInput: email, phone and
external_id are SHA-256 hashes by then, so nothing below ever sees raw PII.

Seed body                                   v1.3 item (TIKTOK.md "Events API")
event_type | event                      →   event
event_time (Unix seconds)               →   event_time
event_id                                →   event_id
user.{email, phone, external_id, ttclid, ttp, ip, user_agent, locale}  →  user.{same}
context.{ip, user_agent, ttclid, ttp}   →   user.{same}, when `user` does not give them
context.{page_url, referrer}            →   page.{url, referrer}
properties.{value, currency, content_type, contents[], order_id, description, query}  →  properties
"""

from datetime import UTC, datetime
from decimal import Decimal

from tiktok_ads.funnel import compact

USER_KEYS = ("email", "phone", "external_id", "ttclid", "ttp", "ip", "user_agent", "locale")
# The seed puts these in `context` (and its PHP example puts ttclid / ttp there too); v1.3 wants them in `user`.
CONTEXT_USER_KEYS = ("ip", "user_agent", "ttclid", "ttp")
CONTENT_KEYS = ("content_id", "content_name", "content_category", "quantity", "price", "brand")
NO_CONSENT = "no_consent"


def _number(value: Decimal | None) -> float | None:
    """Decimals from the serializer become JSON numbers (TikTok wants `value: 150.0`, not a string)."""
    return None if value is None else float(value)


def api_event_user(body: dict) -> dict:
    user = body.get("user") or {}
    context = body.get("context") or {}
    merged = {key: user.get(key) for key in USER_KEYS}
    for key in CONTEXT_USER_KEYS:
        if not merged.get(key):
            merged[key] = context.get(key)
    return compact(merged)


def api_event_page(body: dict) -> dict:
    context = body.get("context") or {}
    return compact({"url": context.get("page_url"), "referrer": context.get("referrer")})


def api_event_contents(contents: list[dict]) -> list[dict]:
    items = []
    for content in contents:
        item = {key: content.get(key) for key in CONTENT_KEYS}
        item["price"] = _number(item["price"])
        items.append(compact(item))
    return [item for item in items if item]


def api_event_properties(body: dict) -> dict:
    properties = body.get("properties") or {}
    return compact(
        {
            "value": _number(properties.get("value")),
            "currency": properties.get("currency"),
            "content_type": properties.get("content_type"),
            "contents": api_event_contents(properties.get("contents") or []),
            "order_id": properties.get("order_id"),
            "description": properties.get("description"),
            "query": properties.get("query"),
        }
    )


def api_event_item(body: dict) -> dict:
    """The v1.3 `data` item for a validated body, exactly as it is stored and later sent."""
    return compact(
        {
            "event": body["event"],
            "event_time": body["event_time"],
            "event_id": body["event_id"],
            "user": api_event_user(body),
            "properties": api_event_properties(body),
            "page": api_event_page(body),
        }
    )


def api_event_moment(body: dict) -> datetime:
    return datetime.fromtimestamp(body["event_time"], tz=UTC)


def api_event_skip_reason(body: dict, *, consent_required: bool) -> str:
    """With TIKTOK_CONSENT_REQUIRED, only an explicit `consent: true` lets the event go to TikTok."""
    if consent_required and body.get("consent") is not True:
        return NO_CONSENT
    return ""

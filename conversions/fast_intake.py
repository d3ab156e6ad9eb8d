"""The everyday conversion answered without DRF's request machinery.

A bot's webhook (POST, JSON) or a network's GET postback is recorded here when it carries a valid key, fits
in the key's rate limit and every field it sends has its plain form: a string without surrounding spaces,
NUL or lone surrogates, an integer amount, a payout such as 7.50, no email or phone to hash. Anything else (no
key or a bad one, a refused rate, a field that needs the serializer's full rules, a click or link that does
not exist) goes on to the DRF view, which answers it completely, its errors included. So these rules only
have to be conservative: what they accept, the serializers accept with the same validated data
(tests/conversions/test_fast_intake.py checks it on generated input). A request that falls through after
its rate was spent (an unknown click) is counted twice against the key's limit.

DRF's request wrapper, negotiation, serializer and rendering were 28 % of a webhook's CPU (bench/README.md).
INTAKE_FAST_PATH=0 sends every request through DRF.
"""

import json
import re
from decimal import Decimal

from django.conf import settings
from django.http import HttpResponse
from rest_framework.exceptions import AuthenticationFailed

from conversions import services
from conversions.auth import api_key_check, raw_api_key
from conversions.currencies import ISO_4217
from conversions.errors import NotFoundField
from conversions.intake import conversion_body, conversion_status, postback_conversion
from conversions.models import TOKEN_REGEX
from conversions.serializers import GOAL_REGEX, MAX_AMOUNT_MINOR, minor_units, postback_params
from conversions.services import normalize_status
from conversions.throttling import intake_spend

MAX_BODY_BYTES = 16 * 1024  # a conversion is a few hundred bytes; anything bigger gets DRF's checks
_TOKEN = re.compile(TOKEN_REGEX)
_GOAL = re.compile(GOAL_REGEX)
# Within PostbackInput's payout: 14 digits, 4 of them decimals, below 10**10.
_PAYOUT = re.compile(r"[0-9]{1,10}(\.[0-9]{1,4})?")


def webhook_answer(request) -> HttpResponse | None:
    """ConversionWebhookApi's answer to a plain request, or None for the DRF view to answer."""
    if request.method != "POST":
        return None
    api_key = _api_key(request, allow_query_param=False)
    payload = _json_object(request) if api_key is not None else None
    fields = webhook_fields(payload) if payload is not None else None
    if fields is None or not intake_spend(api_key):
        return None
    idempotency_key = request.META.get("HTTP_IDEMPOTENCY_KEY", "")[:200]
    try:
        return _answer(services.webhook_conversion_record(fields, idempotency_key=idempotency_key))
    except NotFoundField:
        return None


def postback_answer(request) -> HttpResponse | None:
    """PostbackApi's answer to a plain GET postback, or None for the DRF view to answer."""
    if request.method != "GET":
        return None
    api_key = _api_key(request, allow_query_param=True)
    raw = dict(request.GET.items()) if api_key is not None else None
    fields = postback_fields(postback_params(raw)) if raw is not None else None
    if fields is None or not intake_spend(api_key):
        return None
    try:
        return _answer(postback_conversion(fields, raw))
    except NotFoundField:
        return None


def webhook_fields(payload) -> dict | None:
    """ConversionWebhookInput's validated data for a payload of plain fields; None when it takes the
    serializer to say (an error, a value it converts, an email or phone to hash)."""
    if type(payload) is not dict or "email" in payload or "phone" in payload:
        return None
    amount = payload.get("amount")
    consent = payload.get("consent")
    if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT_MINOR or not (consent is None or type(consent) is bool):
        return None
    fields = {"amount": amount, "consent": consent, "currency": settings.DEFAULT_CURRENCY}
    if not _cleaned(payload, _WEBHOOK_RULES, fields) or not (fields.get("utm_id") or fields.get("customer_id")):
        return None
    return fields


def postback_fields(mapped: dict) -> dict | None:
    """PostbackInput's validated data for parameters (postback_params) of plain form, or None (see above)."""
    payout = mapped.get("payout", "0")
    if type(payout) is not str or not _PAYOUT.fullmatch(payout):
        return None
    fields = {"amount_minor": minor_units(Decimal(payout)), "currency": settings.DEFAULT_CURRENCY}
    if "click_id" not in mapped or not _cleaned(mapped, _POSTBACK_RULES, fields):
        return None
    return fields


def _cleaned(given: dict, rules: dict, fields: dict) -> bool:
    """Copy each field `given` has into `fields` as its rule cleans it; False when a rule refuses one (None)."""
    for name, clean in rules.items():
        if name in given:
            value = clean(given[name])
            if value is None:
                return False
            fields[name] = value
    return True


def _plain(value, max_length: int) -> bool:
    """A string DRF's CharField keeps as it is and its default validators let through."""
    return (
        type(value) is str
        and len(value) <= max_length
        and value == value.strip()
        and "\x00" not in value
        and (value.isascii() or _no_surrogates(value))
    )


def _no_surrogates(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _text(max_length: int):
    return lambda value: value if _plain(value, max_length) else None


def _matching(pattern: re.Pattern):
    return lambda value: value if _plain(value, 64) and pattern.fullmatch(value) else None


def _currency(value) -> str | None:
    code = value.upper() if _plain(value, 3) else None
    return code if code in ISO_4217 else None


def _status(value) -> str | None:
    return normalize_status(value) if _plain(value, 32) else None


_WEBHOOK_RULES = {
    "utm_id": _matching(_TOKEN),
    "customer_id": _text(200),
    "transaction_id": _text(200),
    "product_name": _text(200),
    "product_id": _text(200),
    "currency": _currency,
    "event": _matching(_GOAL),
    "status": _status,
}
_POSTBACK_RULES = {
    "click_id": _matching(_TOKEN),
    "transaction_id": _text(200),
    "sub1": _text(200),
    "currency": _currency,
    "goal": _matching(_GOAL),
    "status": _status,
}


def _api_key(request, *, allow_query_param: bool):
    try:
        raw_key = raw_api_key(request, allow_query_param=allow_query_param)
    except AuthenticationFailed:
        return None
    return api_key_check(raw_key) if raw_key else None


def _json_object(request):
    """The body as JSON when DRF's SafeJSONParser would read it the same way, else None."""
    charset = request.content_params.get("charset", "utf-8").lower()
    if request.content_type != "application/json" or charset not in ("utf-8", "utf8"):
        return None
    length = request.META.get("CONTENT_LENGTH") or ""
    if not length.isdigit() or not 0 < int(length) <= MAX_BODY_BYTES:
        return None
    try:
        return json.loads(request.body.decode(), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # DRF's strict parsing refuses NaN and Infinity


def _answer(result: services.ConversionResult) -> HttpResponse:
    # The body is ASCII (ids, codes, numbers): the same bytes as DRF's compact JSONRenderer.
    body = json.dumps(conversion_body(result), separators=(",", ":"))
    return HttpResponse(body, content_type="application/json", status=conversion_status(result))

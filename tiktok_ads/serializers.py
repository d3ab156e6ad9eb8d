"""Input validation for the TikTok Ads API. Parsing only: no writes here.

Email, phone and external_id are normalised and SHA-256 hashed while they are parsed, so the
validated data (and everything stored from it) never holds them raw. Error messages never echo them.
"""

import re
import time

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from rest_framework import serializers
from rest_framework.settings import api_settings

from conversions.serializers import CurrencyField, StrictIntegerField
from tiktok_ads.hashing import is_sha256_hex, normalize_email, sha256_email, sha256_external_id, sha256_phone
from tiktok_ads.models import STANDARD_EVENTS

MAX_BATCH_EVENTS = 1000  # TIKTOK.md: up to 1,000 items per event/track request
MAX_CONTENTS = 100
FUTURE_SKEW_S = 3600  # clocks drift; an event an hour ahead is a bug, a minute ahead is not
SECONDS_BEFORE = 10**11  # a Unix time in seconds stays below this until the year 5138; milliseconds do not
CUSTOM_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,49}")
_STANDARD_BY_LOWER = {name.lower(): name for name in STANDARD_EVENTS}
MONEY = {"max_digits": 18, "decimal_places": 6, "min_value": 0, "max_value": 10**10, "coerce_to_string": False}


def error_fields(detail, path: str = "") -> dict[str, list[str]]:
    """DRF's nested errors as one flat mapping: {"events[3].user.phone": ["…"]}."""
    if isinstance(detail, dict):
        fields: dict[str, list[str]] = {}
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY and path:
                child = path
            elif isinstance(key, int):  # ListField reports its children by index
                child = f"{path}[{key}]"
            else:
                child = f"{path}.{key}" if path else str(key)
            for name, problems in error_fields(value, child).items():
                fields.setdefault(name, []).extend(problems)
        return fields
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {path or api_settings.NON_FIELD_ERRORS_KEY: [str(item) for item in detail]} if detail else {}
        fields = {}
        for index, item in enumerate(detail):
            for name, problems in error_fields(item, f"{path}[{index}]").items():
                fields.setdefault(name, []).extend(problems)
        return fields
    return {path or api_settings.NON_FIELD_ERRORS_KEY: [str(detail)]}


def validated(serializer_class, data) -> dict:
    """Validate `data`; on failure raise a 400 whose fields name the exact path of each problem."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise serializers.ValidationError(error_fields(serializer.errors))
    return serializer.validated_data


class EventNameField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=50, **kwargs)

    def to_internal_value(self, data):
        name = super().to_internal_value(data)
        if name in STANDARD_EVENTS:
            return name
        standard = _STANDARD_BY_LOWER.get(name.lower())
        if standard:
            raise serializers.ValidationError(f"Event names are case-sensitive: use {standard!r}.")
        if not CUSTOM_EVENT_NAME.fullmatch(name):
            raise serializers.ValidationError(
                "Use a standard event (CompletePayment, AddToCart…) or a custom name: a letter, then up to "
                "49 letters, digits or _."
            )
        return name


class EventTimeField(serializers.IntegerField):
    """Unix time in whole seconds, as v1.3 wants it: not milliseconds, not ISO 8601, not too old."""

    default_error_messages = {
        "invalid": "Send Unix time in whole seconds, e.g. 1705326600 (not ISO 8601, not a fraction).",
        "negative": "Unix time must be positive.",
        "milliseconds": "This looks like milliseconds: send Unix time in seconds.",
        "future": "The event time is in the future.",
        "too_old": "The event is older than {days} days: TikTok would reject it.",
    }

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, float) and not data.is_integer()):
            self.fail("invalid")
        if isinstance(data, str) and not re.fullmatch(r"-?[0-9]{1,20}", data.strip()):
            self.fail("invalid")
        seconds = super().to_internal_value(data)
        now = int(time.time())
        if seconds <= 0:
            self.fail("negative")
        if seconds >= SECONDS_BEFORE:
            self.fail("milliseconds")
        if seconds > now + FUTURE_SKEW_S:
            self.fail("future")
        if seconds < now - settings.TIKTOK_MAX_EVENT_AGE_DAYS * 86400:
            self.fail("too_old", days=settings.TIKTOK_MAX_EVENT_AGE_DAYS)
        return seconds


class HashedField(serializers.CharField):
    """A value TikTok matches on: hashed here (64-hex input is kept, lower-cased, never re-hashed)."""

    invalid_message = "Invalid value."

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return self.to_hash(value)
        except ValueError:
            # `from None`: the ValueError's text quotes the raw value, which must not reach a log.
            raise serializers.ValidationError(self.invalid_message) from None

    def to_hash(self, value: str) -> str:
        raise NotImplementedError


class HashedEmailField(HashedField):
    invalid_message = "Enter a valid email address (or its SHA-256)."

    def to_hash(self, value: str) -> str:
        if not is_sha256_hex(value):
            try:
                validate_email(normalize_email(value))
            except DjangoValidationError:
                raise ValueError("invalid email") from None
        return sha256_email(value)


class HashedPhoneField(HashedField):
    invalid_message = "Invalid phone number: use E.164 with the country code, e.g. +40721234567 (or its SHA-256)."

    def to_hash(self, value: str) -> str:
        return sha256_phone(value)


class HashedExternalIdField(HashedField):
    invalid_message = "Invalid external id."

    def to_hash(self, value: str) -> str:
        return sha256_external_id(value)


def _text(max_length: int, **kwargs):
    return serializers.CharField(max_length=max_length, required=False, allow_blank=True, **kwargs)


class TikTokEventUserInput(serializers.Serializer):
    email = HashedEmailField(max_length=254, required=False, allow_blank=True, allow_null=True)
    phone = HashedPhoneField(max_length=64, required=False, allow_blank=True, allow_null=True)
    external_id = HashedExternalIdField(max_length=256, required=False, allow_blank=True, allow_null=True)
    ttclid = _text(500, help_text="TikTok click id from the landing URL (?ttclid=); sent as is.")
    ttp = _text(200, help_text="The _ttp cookie; sent as is.")
    ip = serializers.IPAddressField(required=False, allow_blank=True)
    user_agent = _text(1000)
    locale = _text(35, help_text="e.g. ro_RO")


class TikTokEventContentInput(serializers.Serializer):
    content_id = _text(200)
    content_name = _text(500)
    content_category = _text(200)
    quantity = StrictIntegerField(min_value=1, max_value=10**6, required=False)
    price = serializers.DecimalField(required=False, **MONEY)
    brand = _text(200)


class TikTokEventPropertiesInput(serializers.Serializer):
    value = serializers.DecimalField(required=False, help_text="Major units, e.g. 150.00.", **MONEY)
    currency = CurrencyField(required=False, help_text="ISO 4217; required with value.")
    content_type = serializers.ChoiceField(["product", "product_group"], required=False)
    contents = TikTokEventContentInput(many=True, required=False, max_length=MAX_CONTENTS)
    order_id = _text(200)
    description = _text(1000)
    query = _text(500, help_text="The search string, for Search events.")

    def validate(self, attrs):
        if attrs.get("value") is not None and not attrs.get("currency"):
            raise serializers.ValidationError({"currency": "Required when value is given."})
        return attrs


class TikTokEventContextInput(serializers.Serializer):
    page_url = serializers.URLField(max_length=2048, required=False, allow_blank=True)
    referrer = _text(2048)
    user_agent = _text(1000)
    ip = serializers.IPAddressField(required=False, allow_blank=True)
    ttclid = _text(500)
    ttp = _text(200)


class TikTokEventInput(serializers.Serializer):
    """The seed's "Trimitere Eveniment" body."""

    event_type = EventNameField(required=False, help_text="CompletePayment, AddToCart… or a custom name.")
    event = EventNameField(required=False, help_text="Same as event_type (the v1.3 name).")
    event_time = EventTimeField(required=False, help_text="Unix seconds; default now.")
    event_id = serializers.CharField(max_length=128, help_text="Stable per event: TikTok deduplicates on it.")
    user = TikTokEventUserInput(required=False)
    properties = TikTokEventPropertiesInput(required=False)
    context = TikTokEventContextInput(required=False)
    pixel_id = serializers.CharField(max_length=64, required=False, help_text="Default: the default pixel.")
    test_event_code = serializers.CharField(max_length=64, required=False, allow_blank=True)
    consent = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="May this user's event go to TikTok?"
    )

    def validate(self, attrs):
        event_type, event = attrs.pop("event_type", None), attrs.pop("event", None)
        if event_type and event and event_type != event:
            raise serializers.ValidationError({"event_type": "event_type and event differ: send one of them."})
        if not (event_type or event):
            raise serializers.ValidationError({"event_type": "This field is required (or send event)."})
        attrs["event"] = event_type or event
        attrs.setdefault("event_time", int(time.time()))
        return attrs


class TikTokEventBatchInput(serializers.Serializer):
    events = TikTokEventInput(many=True, allow_empty=False, max_length=MAX_BATCH_EVENTS)
    pixel_id = serializers.CharField(max_length=64, required=False, help_text="For events that name no pixel_id.")
    test_event_code = serializers.CharField(
        max_length=64, required=False, allow_blank=True, help_text="For events that give no test_event_code."
    )


def no_whitespace(value: str):
    if any(character.isspace() for character in value):
        raise serializers.ValidationError("An access token has no spaces.")


class TikTokConnectInput(serializers.Serializer):
    """The seed's "Creare Conexiune" body, plus the pixel's optional settings."""

    pixel_id = serializers.RegexField(r"^[A-Za-z0-9_-]{1,64}$", help_text="The pixel code, e.g. CXXXXXX.")
    access_token = serializers.CharField(
        min_length=8, max_length=512, validators=[no_whitespace], write_only=True, help_text="Stored encrypted."
    )
    advertiser_id = serializers.RegexField(r"^[0-9]{1,64}$", required=False, allow_blank=True)
    name = _text(200)
    test_mode = serializers.BooleanField(required=False, allow_null=True, default=None)
    test_event_code = serializers.CharField(max_length=64, required=False, allow_blank=True)
    make_default = serializers.BooleanField(required=False, default=False)

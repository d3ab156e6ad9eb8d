"""Input validation shared by the API views. Parsing only: no writes here."""

import re
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from rest_framework import serializers

from conversions.currencies import ISO_4217
from conversions.models import TOKEN_REGEX
from conversions.services import normalize_status

MAX_AMOUNT_MINOR = 10**12  # ten billion in major units: anything above is a bug upstream
GOAL_REGEX = r"^[A-Za-z0-9_.-]{1,64}$"


class FlatInputSerializer(serializers.Serializer):
    """An input serializer of plain fields, built fast: every instance gets shallow copies of the declared
    fields instead of DRF's deep copies.

    DRF deep-copies each field (re-running its __init__, validators and all) for every instance, so that an
    instance may change its fields. These serializers never change a field and have no nested serializer; the
    deep copies were a quarter of a conversion's CPU (bench/README.md). The copies still get bound (name,
    parent, source) one by one, and the class's own fields are never touched.
    """

    def get_fields(self):
        return {name: _shallow_copy(field) for name, field in self._declared_fields.items()}


def _shallow_copy(field):
    # What copy.copy makes of a field, without its __reduce_ex__ round (a fifth of the serializer's setup).
    clone = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    return clone


class StrictIntegerField(serializers.IntegerField):
    """An integer, or a string of digits; never a fraction ("50.00" is ambiguous in minor units) or a bool."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, float) and not data.is_integer()):
            self.fail("invalid")
        if isinstance(data, str) and not re.fullmatch(r"-?[0-9]{1,20}", data.strip()):
            self.fail("invalid")
        return super().to_internal_value(data)


class TokenField(serializers.RegexField):
    def __init__(self, **kwargs):
        super().__init__(
            TOKEN_REGEX,
            max_length=64,
            error_messages={"invalid": "Use 1-64 characters of A-Z a-z 0-9 _ - (a click id or a utm_id)."},
            **kwargs,
        )


class CurrencyField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=3, min_length=3, **kwargs)

    def to_internal_value(self, data):
        code = super().to_internal_value(data).upper()
        if code not in ISO_4217:
            raise serializers.ValidationError(f"Unknown currency {code!r}: use an ISO 4217 code such as USD.")
        return code


class StatusField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=32, **kwargs)

    def to_internal_value(self, data):
        status = normalize_status(super().to_internal_value(data))
        if status is None:
            raise serializers.ValidationError("Unknown status: use approved, pending or rejected.")
        return status


def no_nul(value: str):
    if "\x00" in value:
        raise serializers.ValidationError("NUL characters are not allowed.")


class HashedEmailField(serializers.CharField):
    """An email (or its SHA-256): normalised and hashed on parse, so the raw value is never kept."""

    def __init__(self, **kwargs):
        super().__init__(max_length=254, required=False, allow_blank=True, **kwargs)

    def to_internal_value(self, data):
        from tiktok_ads.hashing import is_sha256_hex, sha256_email

        value = super().to_internal_value(data).strip()
        if value and not is_sha256_hex(value) and "@" not in value:
            raise serializers.ValidationError("Enter an email address or its SHA-256.")
        return sha256_email(value) if value else ""


class HashedPhoneField(serializers.CharField):
    """A phone number in international form (or its SHA-256), hashed in E.164 on parse."""

    def __init__(self, **kwargs):
        super().__init__(max_length=64, required=False, allow_blank=True, **kwargs)

    def to_internal_value(self, data):
        from tiktok_ads.hashing import sha256_phone

        value = super().to_internal_value(data).strip()
        if not value:
            return ""
        try:
            return sha256_phone(value)
        except ValueError:
            raise serializers.ValidationError("Enter a phone number in international form: +40721234567.") from None


class TrackStartInput(FlatInputSerializer):
    utm_id = TokenField(help_text="What the bot received in /start: a click id or a utm_id.")
    user_id = StrictIntegerField(min_value=1, max_value=2**63 - 1, help_text="Telegram user id.")
    username = serializers.CharField(max_length=64, required=False, allow_blank=True, validators=[no_nul])
    first_name = serializers.CharField(max_length=200, required=False, allow_blank=True, validators=[no_nul])
    language_code = serializers.CharField(max_length=16, required=False, allow_blank=True, validators=[no_nul])
    referrer = serializers.CharField(max_length=100, required=False, allow_blank=True, validators=[no_nul])
    consent = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="May this user's events go to TikTok?"
    )
    email = HashedEmailField(help_text="Optional; stored only as SHA-256 (for audiences).")
    phone = HashedPhoneField(help_text="Optional; stored only as SHA-256 of its E.164 form.")

    def validate_username(self, value):
        return value.lstrip("@")


class ConversionWebhookInput(FlatInputSerializer):
    utm_id = TokenField(required=False, help_text="The /start token or the link's utm_id.")
    customer_id = serializers.CharField(
        max_length=200, required=False, allow_blank=True, validators=[no_nul], help_text="e.g. telegram_123456789"
    )
    amount = StrictIntegerField(
        min_value=0, max_value=MAX_AMOUNT_MINOR, help_text="Minor units: 5000 = 50.00 in the currency."
    )
    currency = CurrencyField(required=False)
    transaction_id = serializers.CharField(max_length=200, required=False, allow_blank=True, validators=[no_nul])
    event = serializers.RegexField(GOAL_REGEX, required=False, help_text="The goal: purchase, deposit, registration…")
    status = StatusField(required=False)
    product_name = serializers.CharField(max_length=200, required=False, allow_blank=True, validators=[no_nul])
    product_id = serializers.CharField(max_length=200, required=False, allow_blank=True, validators=[no_nul])
    consent = serializers.BooleanField(required=False, allow_null=True, default=None)
    email = HashedEmailField(help_text="Optional; stored only as SHA-256 (for audiences).")
    phone = HashedPhoneField(help_text="Optional; stored only as SHA-256 of its E.164 form.")

    def validate(self, attrs):
        if not attrs.get("utm_id") and not attrs.get("customer_id"):
            raise serializers.ValidationError({"utm_id": "Give utm_id, or a customer_id such as telegram_<id>."})
        attrs.setdefault("currency", settings.DEFAULT_CURRENCY)
        return attrs


MAX_BATCH_CONVERSIONS = 500


class ConversionBatchItemInput(ConversionWebhookInput):
    """One conversion of a batch: the webhook's fields, with the transaction id required (a batch has no
    Idempotency-Key per conversion, and a retried batch must not count anything twice)."""

    transaction_id = serializers.CharField(max_length=200, validators=[no_nul])


class ConversionBatchInput(serializers.Serializer):
    conversions = ConversionBatchItemInput(many=True, allow_empty=False, max_length=MAX_BATCH_CONVERSIONS,
                                           help_text=f"1 to {MAX_BATCH_CONVERSIONS} conversions.")  # fmt: skip

    def to_internal_value(self, data):
        """Errors of a conversion are named by its place in the list: conversions[3].amount."""
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            items = exc.detail.get("conversions") if isinstance(exc.detail, dict) else None
            if isinstance(items, list):  # DRF before 3.15: a list with an entry per conversion
                items = dict(enumerate(items))
            if not isinstance(items, dict) or not all(isinstance(index, int) for index in items):
                raise  # about the list itself: missing, not a list, empty, too long
            named = {f"conversions[{index}].{name}": problems for index, item in sorted(items.items())
                     if isinstance(item, dict) for name, problems in item.items()}  # fmt: skip
            if not named:
                raise
            raise serializers.ValidationError(named) from None


class PostbackInput(FlatInputSerializer):
    click_id = TokenField()
    payout = serializers.DecimalField(
        max_digits=14, decimal_places=4, min_value=Decimal(0), max_value=Decimal(10**10), required=False
    )
    status = StatusField(required=False)
    goal = serializers.RegexField(GOAL_REGEX, required=False)
    transaction_id = serializers.CharField(max_length=200, required=False, allow_blank=True, validators=[no_nul])
    currency = CurrencyField(required=False)
    sub1 = serializers.CharField(max_length=200, required=False, allow_blank=True, validators=[no_nul])

    def validate(self, attrs):
        attrs["amount_minor"] = minor_units(attrs.pop("payout", Decimal(0)))
        attrs.setdefault("currency", settings.DEFAULT_CURRENCY)
        return attrs


def minor_units(payout: Decimal) -> int:
    """A postback's payout in major units (7.50) as minor units (750), half a cent rounded up."""
    return int((payout * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# Names partner networks use for our parameters (first match wins). The POSTBACK_PARAM_ALIASES setting
# adds a network's own names without code (docs/postbacks.md).
POSTBACK_ALIASES = {
    "click_id": ("click_id", "clickid", "cid", "subid", "aff_sub", "sub_id"),
    "payout": ("payout", "sum", "amount", "revenue", "price"),
    "status": ("status", "state"),
    "goal": ("goal", "event", "action"),
    "transaction_id": ("transaction_id", "txid", "tid", "transaction", "order_id"),
    "currency": ("currency", "cur"),
    "sub1": ("sub1",),
}


def postback_aliases() -> dict[str, tuple[str, ...]]:
    """The built-in aliases merged with POSTBACK_PARAM_ALIASES: configured names are tried first, and a
    name configured for one parameter is no longer an alias of another (`goal:sub1` takes sub1 over)."""
    configured = settings.POSTBACK_PARAM_ALIASES
    if not configured:
        return POSTBACK_ALIASES
    claimed = {name for names in configured.values() for name in names}
    return {
        ours: tuple(dict.fromkeys((*configured.get(ours, ()), *(name for name in names if name not in claimed))))
        for ours, names in POSTBACK_ALIASES.items()
    }


def postback_params(raw: dict) -> dict:
    """Map a network's parameter names onto ours; unknown names are kept aside as params."""
    mapped = {}
    for ours, names in postback_aliases().items():
        for name in names:
            if raw.get(name) not in (None, ""):
                mapped[ours] = raw[name]
                break
    return mapped

"""Normalising and SHA-256 hashing of the user fields TikTok matches on.

TikTok wants `email`, `phone` and `external_id` as lowercase SHA-256 hex, hashed after
normalisation; values that already are 64-hex are sent as they are (lower-cased), never
re-hashed (TIKTOK.md, "Hashing"; Segment's tiktok-conversions formatter does the same).
"""

import hashlib
import re

import phonenumbers

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def is_sha256_hex(value: str) -> bool:
    """True when `value` looks like a SHA-256 digest (64 hex digits, either case)."""
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def normalize_email(value: str) -> str:
    return value.strip().lower()


def normalize_external_id(value: str) -> str:
    # Lower-cased as Segment and Stape do, so the same id hashes the same everywhere.
    return value.strip().lower()


def normalize_phone(value: str, default_region: str | None = None) -> str:
    """E.164 with the leading '+', e.g. '+1 (213) 373-4253' -> '+12133734253'.

    `default_region` (ISO 3166 alpha-2, e.g. "RO") is used for numbers written without a
    country code. Raises ValueError when the number cannot be parsed or is not valid.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty phone number")
    if default_region is None and text[0].isdigit() and not text.startswith("00"):
        # Without a region the only reading of bare digits is "E.164 without the +".
        text = "+" + text
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"unparseable phone number {value!r}: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"invalid phone number {value!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hash_unless_hashed(value: str, normalize) -> str:
    stripped = value.strip()
    if is_sha256_hex(stripped):
        return stripped.lower()
    normalized = normalize(stripped)
    if not normalized:
        raise ValueError("nothing to hash: empty value")
    return _sha256_hex(normalized)


def sha256_email(value: str) -> str:
    return _hash_unless_hashed(value, normalize_email)


def sha256_phone(value: str, default_region: str | None = None) -> str:
    return _hash_unless_hashed(value, lambda v: normalize_phone(v, default_region))


def sha256_external_id(value: str) -> str:
    return _hash_unless_hashed(value, normalize_external_id)

import hashlib

import pytest

from tiktok_ads.hashing import (
    is_sha256_hex,
    normalize_email,
    normalize_external_id,
    normalize_phone,
    sha256_email,
    sha256_external_id,
    sha256_phone,
)

JOHN_EMAIL_SHA256 = "855f96e983f1f8e8be944692b6f719fd54329826cb62e98015efee8e2e071dd4"  # "john@example.com"
US_PHONE_SHA256 = "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd"  # "+12133734253"
USER_456_SHA256 = "961cf164240ff1af2c14f14f7e8b8943ead0b788acc28f5b0495a97b563ddf25"  # "user_456"


def test_email_is_trimmed_and_lowercased_before_hashing():
    assert normalize_email(" John@Example.COM ") == "john@example.com"
    assert sha256_email(" John@Example.COM ") == JOHN_EMAIL_SHA256
    assert hashlib.sha256(b"john@example.com").hexdigest() == JOHN_EMAIL_SHA256


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 (213) 373-4253", None, "+12133734253"),
        ("+12133734253", None, "+12133734253"),
        ("12133734253", None, "+12133734253"),  # E.164 written without the +
        ("(213) 373-4253", "US", "+12133734253"),
        ("0721 234 567", "RO", "+40721234567"),
        ("+40 721 234 567", "US", "+40721234567"),  # an explicit country code wins
    ],
)
def test_phone_is_e164_with_plus(raw, region, expected):
    assert normalize_phone(raw, region) == expected


def test_phone_hash_is_of_the_e164_form_with_plus():
    assert sha256_phone("+1 (213) 373-4253") == US_PHONE_SHA256
    assert sha256_phone("(213) 373-4253", default_region="US") == US_PHONE_SHA256


@pytest.mark.parametrize("raw", ["", "   ", "abc", "123", "+1 555", "0721 234 567"])
def test_invalid_phone_raises_value_error(raw):
    with pytest.raises(ValueError):
        normalize_phone(raw)
    with pytest.raises(ValueError):
        sha256_phone(raw)


def test_external_id_is_trimmed_and_lowercased():
    assert normalize_external_id("  User_456 ") == "user_456"
    assert sha256_external_id("  User_456 ") == USER_456_SHA256


@pytest.mark.parametrize("hash_function", [sha256_email, sha256_phone, sha256_external_id])
def test_already_hashed_values_are_lowercased_not_rehashed(hash_function):
    assert hash_function(JOHN_EMAIL_SHA256.upper()) == JOHN_EMAIL_SHA256
    assert hash_function(f"  {JOHN_EMAIL_SHA256}  ") == JOHN_EMAIL_SHA256


@pytest.mark.parametrize("hash_function", [sha256_email, sha256_external_id])
def test_empty_values_are_refused(hash_function):
    with pytest.raises(ValueError):
        hash_function("   ")


def test_is_sha256_hex():
    assert is_sha256_hex(JOHN_EMAIL_SHA256)
    assert is_sha256_hex(JOHN_EMAIL_SHA256.upper())
    assert not is_sha256_hex(JOHN_EMAIL_SHA256[:-1])
    assert not is_sha256_hex(JOHN_EMAIL_SHA256 + "0")
    assert not is_sha256_hex("g" * 64)
    assert not is_sha256_hex("john@example.com")
    assert not is_sha256_hex(None)


def test_hashes_are_lowercase_hex():
    for digest in (sha256_email("A@B.CO"), sha256_phone("+12133734253"), sha256_external_id("X")):
        assert is_sha256_hex(digest)
        assert digest == digest.lower()

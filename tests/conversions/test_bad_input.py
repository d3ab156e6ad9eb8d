"""Every bad input gets a 4xx JSON body naming the problem, and writes nothing."""

import json

import pytest

from conversions.models import BotStart, Conversion, Lead

pytestmark = pytest.mark.django_db

START = "/api/v1/utm/track/click"
WEBHOOK = "/api/v1/utm/webhook/conversion"


@pytest.fixture(autouse=True)
def nothing_written(db):
    yield
    assert (Conversion.objects.count(), Lead.objects.count(), BotStart.objects.count()) == (0, 0, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"utm_id": "tiktok_abc123", "amount": "50.00"}, "amount"),
        ({"utm_id": "tiktok_abc123", "amount": "abc"}, "amount"),
        ({"utm_id": "tiktok_abc123", "amount": -1}, "amount"),
        ({"utm_id": "tiktok_abc123", "amount": 10**13}, "amount"),
        ({"utm_id": "tiktok_abc123", "amount": True}, "amount"),
        ({"utm_id": "tiktok_abc123"}, "amount"),
        ({"utm_id": "tiktok_abc123", "amount": 1, "currency": "XXX"}, "currency"),
        ({"utm_id": "tiktok_abc123", "amount": 1, "currency": "dollars"}, "currency"),
        ({"utm_id": "tiktok_abc123", "amount": 1, "status": "maybe"}, "status"),
        ({"amount": 1}, "utm_id"),
        ({"utm_id": "x" * 65, "amount": 1}, "utm_id"),
        ({"utm_id": "../../etc/passwd", "amount": 1}, "utm_id"),
        ({"utm_id": "unknown_link", "amount": 1}, "utm_id"),
        ({"utm_id": "tiktok_abc123", "amount": 1, "product_name": "a\x00b"}, "product_name"),
        ({"utm_id": "tiktok_abc123", "amount": 1, "product_name": "p" * 201}, "product_name"),
    ],
)
def test_bad_conversion_bodies(bot_api, link, body, field):
    response = bot_api.post(WEBHOOK, body, format="json")

    assert response.status_code in (400, 404)
    assert field in response.json()["fields"], response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": 1}, "utm_id"),
        ({"utm_id": "tiktok_abc123"}, "user_id"),
        ({"utm_id": "tiktok_abc123", "user_id": "john"}, "user_id"),
        ({"utm_id": "tiktok_abc123", "user_id": -5}, "user_id"),
        ({"utm_id": "tiktok_abc123", "user_id": 2**64}, "user_id"),
        ({"utm_id": "tiktok abc", "user_id": 1}, "utm_id"),
        ({"utm_id": "tiktok_abc123", "user_id": 1, "username": "u" * 65}, "username"),
    ],
)
def test_bad_start_bodies(bot_api, link, body, field):
    response = bot_api.post(START, body, format="json")

    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_malformed_json_is_400(bot_api, link):
    response = bot_api.post(WEBHOOK, data='{"utm_id": "tiktok_abc123", "amount": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"


def test_json_that_is_not_an_object_is_400(bot_api, link):
    response = bot_api.post(WEBHOOK, data="[1, 2]", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_deeply_nested_json_is_400(bot_api, link):
    response = bot_api.post(WEBHOOK, data="[" * 100_000 + "]" * 100_000, content_type="application/json")

    assert response.status_code in (400, 413)
    assert response.json()["error"] in ("parse_error", "body_too_large", "invalid")


def test_wrong_content_type_is_415(bot_api, link):
    response = bot_api.post(WEBHOOK, data="utm_id=tiktok_abc123&amount=1", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_oversized_body_is_413(bot_api, link, settings):
    body = json.dumps(
        {"utm_id": "tiktok_abc123", "amount": 1, "product_name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)}
    )

    response = bot_api.post(WEBHOOK, data=body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_invalid_utf8_is_400(bot_api, link):
    response = bot_api.post(WEBHOOK, data=b'{"utm_id": "\xff\xfe", "amount": 1}', content_type="application/json")

    assert response.status_code == 400


def test_missing_key_is_401(client, link):
    response = client.post(WEBHOOK, {"utm_id": "tiktok_abc123", "amount": 1}, content_type="application/json")

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert "Authorization: Api-Key" in response.json()["message"]
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize("header", ["Api-Key nope", "Api-Key abcdefgh.wrong", "Bearer abc", "Api-Key "])
def test_wrong_key_is_401(client, link, intake_key, header):
    response = client.post(START, {"utm_id": "tiktok_abc123", "user_id": 1}, content_type="application/json",
                           HTTP_AUTHORIZATION=header)  # fmt: skip

    assert response.status_code == 401


def test_revoked_key_is_401(client, link, intake_key):
    from conversions.models import ApiKey

    ApiKey.objects.update(is_active=False)
    response = client.post(START, {"utm_id": "tiktok_abc123", "user_id": 1}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Api-Key {intake_key}")  # fmt: skip

    assert response.status_code == 401


def test_unknown_api_path_is_json_404(bot_api):
    response = bot_api.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"

import pytest

pytestmark = pytest.mark.django_db

START = "/api/v1/utm/track/click"


def test_a_revoked_key_stops_within_the_cache_ttl_and_at_once_when_saved(client, link, intake_key, settings):
    from conversions.models import ApiKey

    def start(user_id: int) -> int:
        return client.post(START, {"utm_id": "tiktok_abc123", "user_id": user_id}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Api-Key {intake_key}").status_code  # fmt: skip

    settings.API_KEY_CACHE_TTL_S = 60
    assert start(1) == 201
    ApiKey.objects.update(is_active=False)  # another worker's change: this worker trusts its check a while
    assert start(2) == 201
    key = ApiKey.objects.get()
    key.save()  # a change saved in this worker (the admin's revoke) is seen at once
    assert start(3) == 401

    settings.API_KEY_CACHE_TTL_S = 0
    ApiKey.objects.update(is_active=True)
    assert start(4) == 201
    ApiKey.objects.update(is_active=False)
    assert start(5) == 401

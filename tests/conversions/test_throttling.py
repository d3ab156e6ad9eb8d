import pytest

from conversions.models import Conversion

pytestmark = pytest.mark.django_db


def test_intake_is_limited_per_key(bot_api, management_api, link, settings):
    settings.INTAKE_REQUESTS_PER_MINUTE = 3
    body = {"utm_id": "tiktok_abc123", "amount": 100}

    answers = [bot_api.post("/api/v1/utm/webhook/conversion", body, format="json") for _ in range(4)]

    assert [answer.status_code for answer in answers] == [201, 201, 201, 429]
    assert answers[-1].json()["error"] == "throttled"
    assert int(answers[-1]["Retry-After"]) <= 60
    assert Conversion.objects.count() == 3
    other_key = management_api.post("/api/v1/utm/webhook/conversion", body, format="json")
    assert other_key.status_code == 201  # the limit is per key


def test_admin_login_is_throttled_after_repeated_failures(client, admin_user, settings):
    settings.ADMIN_LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        wrong = client.post("/admin/login/", {"username": "admin", "password": "wrong"})
        assert wrong.status_code == 200  # the form again, with its error

    locked = client.post("/admin/login/", {"username": "admin", "password": "password"})

    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_admin_login_still_works_below_the_limit(client, admin_user):
    client.post("/admin/login/", {"username": "admin", "password": "wrong"})

    response = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": "password"})

    assert response.status_code == 302 and response["Location"] == "/admin/"

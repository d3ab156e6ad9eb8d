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


def test_a_batch_counts_each_conversion_against_the_limit(bot_api, link, settings):
    settings.INTAKE_REQUESTS_PER_MINUTE = 5
    batch = "/api/v1/utm/webhook/conversions"

    def conversions(*numbers):
        return {"conversions": [{"utm_id": "tiktok_abc123", "amount": 100, "transaction_id": f"b{n}"} for n in numbers]}

    assert bot_api.post(batch, conversions(1, 2, 3), format="json").status_code == 200
    refused = bot_api.post(batch, conversions(4, 5, 6), format="json")  # 6 > 5: refused whole
    assert refused.status_code == 429 and refused.json()["error"] == "throttled"
    assert bot_api.post(batch, conversions(4, 5), format="json").status_code == 200  # the refused ones spent nothing
    assert bot_api.post("/api/v1/utm/webhook/conversion", {"utm_id": "tiktok_abc123", "amount": 1},
                        format="json").status_code == 429  # fmt: skip
    assert sorted(Conversion.objects.values_list("transaction_id", flat=True)) == ["b1", "b2", "b3", "b4", "b5"]


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


def _counter(settings, api_key) -> int:
    """The shared count of the key's current window, as every web worker sees it."""
    import time

    import redis

    from conversions.throttling import WINDOW_S

    key = f"throttle:intake:{api_key.prefix}:{int(time.time() // WINDOW_S)}"
    return int(redis.Redis.from_url(settings.REDIS_URL).get(key) or 0)


@pytest.mark.skipif("not __import__('os').environ.get('REDIS_URL')", reason="needs the test Redis")
def test_a_worker_reserves_requests_in_chunks_and_the_limit_is_never_exceeded(bot_api, link, settings):
    import time

    import redis

    from conversions.models import ApiKey
    from conversions.throttling import WINDOW_S, forget_reservations, reservation_size

    settings.INTAKE_REQUESTS_PER_MINUTE = 2_500  # reservations of 2
    assert reservation_size(2_500) == 2
    body = {"utm_id": "tiktok_abc123", "amount": 100}
    first = bot_api.post("/api/v1/utm/webhook/conversion", body, format="json")
    api_key = ApiKey.objects.get()
    if int(time.time() % WINDOW_S) > WINDOW_S - 3:  # do not straddle two windows
        time.sleep(4)
        forget_reservations()
        first = bot_api.post("/api/v1/utm/webhook/conversion", body, format="json")
    assert first.status_code == 201
    assert _counter(settings, api_key) == 2  # one round trip reserved two requests
    second = bot_api.post("/api/v1/utm/webhook/conversion", body, format="json")
    assert second.status_code == 201 and _counter(settings, api_key) == 2  # spent locally

    # The other workers have taken all but three of the window's requests.
    key = f"throttle:intake:{api_key.prefix}:{int(time.time() // WINDOW_S)}"
    redis.Redis.from_url(settings.REDIS_URL).set(key, 2_497)
    answers = [bot_api.post("/api/v1/utm/webhook/conversion", body, format="json").status_code for _ in range(4)]

    # 2,497 + 2 reserved here + 1 of the next reservation fit; then the limit is reached.
    assert answers == [201, 201, 201, 429]
    forget_reservations()  # another worker, with nothing reserved
    assert bot_api.post("/api/v1/utm/webhook/conversion", body, format="json").status_code == 429

from datetime import timedelta

import pytest

from conversions.models import Click

pytestmark = pytest.mark.django_db


@pytest.fixture
def converted(visit, bot_api, link):
    visit("/l/tiktok_abc123", HTTP_REFERER="https://www.tiktok.com/")
    click = Click.objects.get()
    Click.objects.filter(pk=click.pk).update(created_at=click.created_at - timedelta(hours=1))
    bot_api.post("/api/v1/utm/track/click", {"utm_id": click.click_id, "user_id": 123456789,
                                             "username": "john_doe"}, format="json")  # fmt: skip
    bot_api.post("/api/v1/utm/webhook/conversion", {"utm_id": "tiktok_abc123", "customer_id": "telegram_123456789",
                 "amount": 5000, "product_name": "Gold Lootbox"}, format="json")  # fmt: skip
    return Click.objects.get()


def assert_seed_fields(journey, click):
    assert journey["utm_source"] == "tiktok"
    assert journey["utm_campaign"] == "football_jan_2025"
    assert journey["utm_content"] == "video_messi_goal"
    assert journey["first_click"] == click.created_at.isoformat()
    assert journey["ip"] == "95.123.45.67"
    assert (journey["country"], journey["city"]) == ("ES", "Sant Pere de Ribes")
    assert (journey["device"], journey["browser"]) == ("mobile", "Mobile Safari")
    assert journey["telegram_user_id"] == 123456789
    assert journey["telegram_username"] == "@john_doe"
    conversion = journey["conversion"]
    assert (conversion["amount"], conversion["product"]) == (5000, "Gold Lootbox")
    assert 3600 <= conversion["time_to_conversion"] < 3660


def test_click_journey(management_api, converted):
    response = management_api.get(f"/api/v1/clicks/{converted.click_id}/journey")

    assert response.status_code == 200
    assert_seed_fields(response.json(), converted)
    assert response.json()["click_id"] == converted.click_id


def test_utm_journey_by_link(management_api, converted):
    response = management_api.get("/api/v1/utm/tiktok_abc123/journey")

    journey = response.json()
    assert_seed_fields(journey, converted)
    assert journey["starts"][0]["click_id"] == converted.click_id
    assert journey["totals"]["conversions"] == 1 and journey["totals"]["revenue_minor"] == 5000


def test_utm_journey_by_click_token(management_api, converted):
    response = management_api.get(f"/api/v1/utm/{converted.click_id}/journey")

    assert_seed_fields(response.json(), converted)


def test_journey_of_unknown_ids_is_404(management_api, link):
    assert management_api.get("/api/v1/utm/nope/journey").json()["fields"] == {
        "utm_id": ["No tracking link or click with this id."]
    }
    assert management_api.get("/api/v1/clicks/nope/journey").status_code == 404


def test_journey_needs_a_management_key(bot_api, converted):
    assert bot_api.get(f"/api/v1/clicks/{converted.click_id}/journey").status_code == 403

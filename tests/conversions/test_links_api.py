import pytest

from conversions.models import TrafficSource

pytestmark = pytest.mark.django_db


def test_create_a_link_through_the_api(management_api, campaign, settings):
    settings.PUBLIC_BASE_URL = "https://trk.example"
    body = {"campaign": campaign.pk, "utm_id": "tiktok_new1", "utm_source": "tiktok", "utm_content": "video_1",
            "creative": "video_1", "telegram_bot": "my_shop_bot"}  # fmt: skip

    response = management_api.post("/api/v1/links", body, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["tracking_url"] == "https://trk.example/l/tiktok_new1"
    assert response.json()["totals"]["clicks"] == 0
    link = TrafficSource.objects.get(utm_id="tiktok_new1")
    assert (link.destination, link.redirect_mode, link.telegram_bot) == ("telegram", "page", "my_shop_bot")


def test_link_detail_and_update_by_utm_id(management_api, link, visit):
    visit("/l/tiktok_abc123")

    detail = management_api.get("/api/v1/links/tiktok_abc123")
    paused = management_api.patch("/api/v1/links/tiktok_abc123", {"is_active": False}, format="json")

    assert detail.json()["totals"]["clicks"] == 1
    assert paused.status_code == 200
    assert visit("/l/tiktok_abc123").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"utm_id": "bad id!", "telegram_bot": "my_shop_bot"}, "utm_id"),
        ({"utm_id": "ok1", "telegram_bot": ""}, "telegram_bot"),
        ({"utm_id": "ok2", "telegram_bot": "x"}, "telegram_bot"),
        ({"utm_id": "ok3", "destination": "url", "destination_url": "javascript:alert(1)"}, "destination_url"),
        ({"utm_id": "ok4", "destination": "url"}, "destination_url"),
        ({"utm_id": "tiktok_abc123", "telegram_bot": "my_shop_bot"}, "utm_id"),
    ],
)
def test_bad_links_are_rejected_naming_the_field(management_api, campaign, link, body, field):
    response = management_api.post("/api/v1/links", {"campaign": campaign.pk, **body}, format="json")

    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_intake_keys_cannot_manage_links(bot_api, campaign):
    response = bot_api.post("/api/v1/links", {"campaign": campaign.pk, "utm_id": "x1", "telegram_bot": "my_shop_bot"},
                            format="json")  # fmt: skip

    assert response.status_code == 403
    assert not TrafficSource.objects.filter(utm_id="x1").exists()


def test_deleting_a_link_with_clicks_is_a_409(management_api, link, visit):
    visit("/l/tiktok_abc123")

    response = management_api.delete("/api/v1/links/tiktok_abc123")

    assert response.status_code == 409
    assert TrafficSource.objects.filter(utm_id="tiktok_abc123").exists()


def test_campaigns_crud(management_api):
    created = management_api.post("/api/v1/campaigns", {"name": "Spring", "offer_url": "https://o.example/?c={click_id}"},
                                  format="json")  # fmt: skip

    assert created.status_code == 201
    assert management_api.get("/api/v1/campaigns").json()["results"][0]["name"] == "Spring"


def test_openapi_schema_lists_every_endpoint(client):
    response = client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = (
        response.json()["paths"] if response["Content-Type"].startswith("application/vnd.oai.openapi+json") else None
    )
    if paths is None:
        import yaml

        paths = yaml.safe_load(response.content)["paths"]
    for path in ("/api/v1/utm/track/click", "/api/v1/utm/webhook/conversion", "/postback",
                 "/api/v1/utm/{utm_id}/journey", "/api/v1/clicks/{click_id}/journey", "/api/v1/links/"):  # fmt: skip
        assert path in paths, path

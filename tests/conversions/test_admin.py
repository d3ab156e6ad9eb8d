import re

import pytest

from conversions.auth import hash_key
from conversions.models import ApiKey, Click

pytestmark = pytest.mark.django_db


def test_link_page_shows_the_tracking_url_totals_and_journey(admin_client, link, visit, settings):
    settings.PUBLIC_BASE_URL = "https://trk.example"
    visit("/l/tiktok_abc123")

    changelist = admin_client.get("/admin/conversions/trafficsource/")
    change = admin_client.get(f"/admin/conversions/trafficsource/{link.pk}/change/")

    assert changelist.status_code == 200
    assert 'value="https://trk.example/l/tiktok_abc123"' in changelist.content.decode()
    html = change.content.decode()
    assert 'value="https://trk.example/l/tiktok_abc123"' in html
    assert "Sant Pere de Ribes" in html  # the journey block
    assert "<th>clicks</th><td>1</td>" in html


def test_click_page_shows_its_journey(admin_client, link, visit):
    visit("/l/tiktok_abc123")
    click = Click.objects.get()

    html = admin_client.get(f"/admin/conversions/click/{click.pk}/change/").content.decode()

    assert click.click_id in html and "95.123.45.67" in html


def test_api_key_created_in_the_admin_is_shown_once_and_stored_hashed(admin_client, client, link):
    response = admin_client.post("/admin/conversions/apikey/add/", {"name": "my bot", "scope": "intake",
                                                                    "is_active": "on"}, follow=True)  # fmt: skip

    raw_key = re.search(r"copy it\): ([0-9a-f]{8}\.[A-Za-z0-9_-]+)", response.content.decode()).group(1)
    stored = ApiKey.objects.get(name="my bot")
    assert stored.key_hash == hash_key(raw_key) and raw_key not in stored.key_hash
    answer = client.post("/api/v1/utm/track/click", {"utm_id": "tiktok_abc123", "user_id": 5},
                         content_type="application/json", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")  # fmt: skip
    assert answer.status_code == 201


@pytest.mark.parametrize(
    "path",
    ["campaign", "landingpage", "trafficsource", "click", "lead", "botstart", "conversion", "dailystats", "apikey"],
)
def test_every_admin_list_opens(admin_client, link, path):
    assert admin_client.get(f"/admin/conversions/{path}/").status_code == 200

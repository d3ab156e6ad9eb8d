import pytest

from conversions.models import BotStart, Click, Lead
from tests.factories import TrafficSourceFactory

pytestmark = pytest.mark.django_db

START = "/api/v1/utm/track/click"


def seed_start(token, user_id=123456789, **extra):
    return {"utm_id": token, "user_id": user_id, "username": "john_doe", "first_name": "John",
            "language_code": "ru", "referrer": "telegram_bot_start", **extra}  # fmt: skip


def test_start_with_a_click_id_links_the_telegram_user_to_that_click(bot_api, visit, link):
    visit("/l/tiktok_abc123")
    click = Click.objects.get()

    response = bot_api.post(START, seed_start(click.click_id), format="json")

    assert response.status_code == 201
    assert response.json() == {"created": True, "telegram_user_id": 123456789, "utm_id": "tiktok_abc123",
                               "click_id": click.click_id, "campaign": link.campaign.name}  # fmt: skip
    lead = Lead.objects.get()
    assert (lead.telegram_user_id, lead.username, lead.first_name, lead.language_code) == (
        123456789, "john_doe", "John", "ru")  # fmt: skip
    assert lead.click == click and lead.link == link and lead.campaign == link.campaign
    start = BotStart.objects.get()
    assert (start.lead, start.click, start.link, start.referrer) == (lead, click, link, "telegram_bot_start")


def test_start_with_a_plain_utm_id_links_the_user_to_the_link_only(bot_api, link):
    response = bot_api.post(START, seed_start("tiktok_abc123"), format="json")

    assert response.status_code == 201 and response.json()["click_id"] is None
    lead = Lead.objects.get()
    assert lead.link == link and lead.click is None


def test_the_same_start_twice_is_one_start(bot_api, link):
    assert bot_api.post(START, seed_start("tiktok_abc123"), format="json").status_code == 201
    second = bot_api.post(START, seed_start("tiktok_abc123", username="john_new"), format="json")

    assert second.status_code == 200 and second.json()["created"] is False
    assert BotStart.objects.count() == 1
    assert Lead.objects.get().username == "john_new"


def test_last_touch_wins(bot_api, visit, link):
    other = TrafficSourceFactory(utm_id="tiktok_other")
    visit("/l/tiktok_abc123")
    first_click = Click.objects.get()
    bot_api.post(START, seed_start(first_click.click_id), format="json")
    visit("/l/tiktok_other", ip="81.2.69.160")
    second_click = Click.objects.get(link=other)

    bot_api.post(START, seed_start(second_click.click_id), format="json")

    lead = Lead.objects.get()
    assert lead.click == second_click and lead.link == other
    assert BotStart.objects.count() == 2


def test_a_plain_utm_id_keeps_the_exact_click_on_the_same_link(bot_api, visit, link):
    visit("/l/tiktok_abc123")
    click = Click.objects.get()
    bot_api.post(START, seed_start(click.click_id), format="json")

    bot_api.post(START, seed_start("tiktok_abc123"), format="json")

    assert Lead.objects.get().click == click


def test_unknown_token_is_404_naming_utm_id_and_writes_nothing(bot_api, link):
    response = bot_api.post(START, seed_start("no_such_token"), format="json")

    assert response.status_code == 404
    assert response.json()["fields"] == {"utm_id": ["No tracking link or click with this id."]}
    assert Lead.objects.count() == 0 and BotStart.objects.count() == 0


def test_username_may_come_with_an_at_sign(bot_api, link):
    bot_api.post(START, seed_start("tiktok_abc123", username="@john_doe"), format="json")

    assert Lead.objects.get().username == "john_doe"

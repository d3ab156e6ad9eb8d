"""The seed's funnel over real HTTP: visitor → landing → Telegram bot /start → purchase → partner postback."""

import re
import threading
from datetime import timedelta

import pytest
import requests

from conversions.models import Click, Conversion
from tests.conftest import IPHONE_SAFARI

pytestmark = pytest.mark.django_db(transaction=True)


def test_visitor_bot_and_partner_over_http(live_server, link, intake_key, management_key):
    base = live_server.url
    bot = requests.Session()
    bot.headers["Authorization"] = f"Api-Key {intake_key}"

    # A preview fetcher first: stored as a bot hit, not a click.
    requests.get(f"{base}/l/tiktok_abc123", headers={"User-Agent": "TelegramBot (like TwitterBot)"}, timeout=10)
    # The visitor, behind our trusted reverse proxy (loopback), from the seed's IP.
    page = requests.get(
        f"{base}/l/tiktok_abc123?ttclid=E.C.P.seed",
        headers={"User-Agent": IPHONE_SAFARI, "X-Forwarded-For": "95.123.45.67", "Referer": "https://www.tiktok.com/"},
        timeout=10,
    )
    assert page.status_code == 200 and page.cookies.get_dict() == {}
    token = re.search(r'href="https://t\.me/demo_tracker_bot\?start=([A-Za-z0-9_-]{1,64})"', page.text).group(1)
    click = Click.objects.get(click_id=token)
    Click.objects.filter(pk=click.pk).update(created_at=click.created_at - timedelta(hours=1))  # clicked an hour ago

    start = bot.post(f"{base}/api/v1/utm/track/click", json={"utm_id": token, "user_id": 123456789,
                     "username": "john_doe", "first_name": "John", "language_code": "ru",
                     "referrer": "telegram_bot_start"}, timeout=10)  # fmt: skip
    assert start.status_code == 201

    purchase = {"utm_id": "tiktok_abc123", "customer_id": "telegram_123456789", "amount": 5000,
                "product_name": "Gold Lootbox", "transaction_id": "order-1"}  # fmt: skip
    answers = []

    def send_purchase():
        answers.append(bot.post(f"{base}/api/v1/utm/webhook/conversion", json=purchase, timeout=10).status_code)

    threads = [threading.Thread(target=send_purchase) for _ in range(4)]  # the bot retries in a hurry
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 200, 200, 201]

    postback = requests.get(f"{base}/postback", params={"key": intake_key, "click_id": token, "payout": "2.50",
                            "goal": "deposit", "txid": "net-1", "status": "approved"}, timeout=10)  # fmt: skip
    repeat = requests.get(postback.url, timeout=10)
    assert (postback.status_code, repeat.status_code, repeat.json()["outcome"]) == (201, 200, "unchanged")

    journey = requests.get(f"{base}/api/v1/utm/tiktok_abc123/journey",
                           headers={"Authorization": f"Api-Key {management_key}"}, timeout=10).json()  # fmt: skip
    assert {key: journey[key] for key in ("utm_source", "utm_campaign", "utm_content", "ip", "country", "city",
                                          "device", "browser", "telegram_user_id", "telegram_username")} == {
        "utm_source": "tiktok",
        "utm_campaign": "football_jan_2025",
        "utm_content": "video_messi_goal",
        "ip": "95.123.45.67",
        "country": "ES",  # 95.123.45.67 as the shipped GeoLite2 City database places it
        "city": "Sant Pere de Ribes",
        "device": "mobile",
        "browser": "Mobile Safari",
        "telegram_user_id": 123456789,
        "telegram_username": "@john_doe",
    }  # fmt: skip
    assert journey["first_click"] == Click.objects.get(pk=click.pk).created_at.isoformat()
    purchase_facts = next(c for c in journey["conversions"] if c["transaction_id"] == "order-1")
    assert (purchase_facts["amount"], purchase_facts["product"]) == (5000, "Gold Lootbox")
    assert 3600 <= purchase_facts["time_to_conversion"] < 3660
    assert journey["totals"]["clicks"] == 1 and journey["totals"]["bot_hits"] == 1
    assert journey["totals"]["starts"] == 1
    assert journey["totals"]["conversions"] == 2 and journey["totals"]["revenue_minor"] == 5250
    assert Conversion.objects.count() == 2

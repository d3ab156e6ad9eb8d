"""The example bot's real handlers, fed updates as Telegram would send them (Telegram itself is faked at
its HTTP boundary), against a live tracker: visitor → /start → purchase → journey → TikTok link."""

import asyncio
import re

import pytest
import requests
from telegram import Update
from telegram.ext import Application

from conversions.models import BotStart, Conversion, Lead
from examples.telegram_bot.bot import build_application
from ops.models import TikTokAccountLink
from tests.conftest import IPHONE_SAFARI
from tests.examples.telegram_fake import FakeTelegramApi, message_update, pre_checkout_update
from tiktok_ads.fake_server import FakeTikTok
from tracker_client import TrackerClient

pytestmark = pytest.mark.django_db(transaction=True)

PAYMENT = {"currency": "USD", "total_amount": 5000, "invoice_payload": "gold_lootbox",
           "telegram_payment_charge_id": "tg-charge-1", "provider_payment_charge_id": "prov-1"}  # fmt: skip


def run_bot(telegram: FakeTelegramApi, tracker: TrackerClient, updates: list[dict]) -> list[Exception]:
    builder = Application.builder().request(telegram.request()).get_updates_request(telegram.request())
    application = build_application(bot_token="7000000001:TEST", tracker=tracker, builder=builder)
    errors: list[Exception] = []

    async def collect(update, context):
        errors.append(context.error)

    application.add_error_handler(collect)

    async def drive():
        async with application:  # initialize (getMe through the fake) … shutdown
            for data in updates:
                await application.process_update(Update.de_json(data, application.bot))

    try:
        asyncio.run(drive())
    finally:
        tracker.close()  # a kept-alive connection would hold a live-server thread (and its database session)
    return errors


@pytest.fixture
def login_kit(settings, live_server):
    with FakeTikTok(port=0, rate_limit=0) as fake:
        fake.add_login_client("awbot", "bot-secret", f"{live_server.url}/tiktok/callback")
        fake.set_login_user(open_id="open-john", display_name="John on TikTok")
        settings.PUBLIC_BASE_URL = live_server.url
        settings.TIKTOK_LOGIN_CLIENT_KEY = "awbot"
        settings.TIKTOK_LOGIN_CLIENT_SECRET = "bot-secret"
        settings.TIKTOK_LOGIN_AUTH_URL = f"{fake.url}/v2/auth/authorize/"
        settings.TIKTOK_LOGIN_API_BASE_URL = fake.url
        yield fake


def test_bot_start_purchase_and_tiktok_link(live_server, link, intake_key, management_key, login_kit):
    page = requests.get(f"{live_server.url}/l/tiktok_abc123", headers={"User-Agent": IPHONE_SAFARI}, timeout=10)
    click_id = re.search(r"start=([A-Za-z0-9_-]+)", page.text).group(1)
    telegram = FakeTelegramApi()
    tracker = TrackerClient(live_server.url, intake_key, backoff_factor=0)

    errors = run_bot(telegram, tracker, [
        message_update(1, text=f"/start {click_id}"),
        message_update(2, text="/buy"),
        pre_checkout_update(3, payload="gold_lootbox", total_amount=5000),
        message_update(4, successful_payment=PAYMENT),
        message_update(5, successful_payment=PAYMENT),  # delivered twice: still one conversion
        message_update(6, text="/link_tiktok"),
    ])  # fmt: skip

    assert errors == []
    replies = [params["text"] for params in telegram.calls_to("sendMessage")]
    assert (
        replies[:3]
        == ["Welcome, John! Send /buy to get a Gold Lootbox."] + ["Thank you! Your Gold Lootbox is on its way."] * 2
    )
    (invoice,) = telegram.calls_to("sendInvoice")
    assert {key: invoice[key] for key in ("chat_id", "payload", "currency", "prices")} == {
        "chat_id": 123456789, "payload": "gold_lootbox", "currency": "USD",
        "prices": [{"label": "Gold Lootbox", "amount": 5000}],
    }  # fmt: skip
    assert telegram.calls_to("answerPreCheckoutQuery") == [{"pre_checkout_query_id": "pcq-3", "ok": True}]

    lead = Lead.objects.get()
    assert (lead.telegram_user_id, lead.username, lead.language_code, lead.click.click_id) == (
        123456789, "john_doe", "ru", click_id,
    )  # fmt: skip
    assert BotStart.objects.get().click.click_id == click_id
    conversion = Conversion.objects.get()
    assert (conversion.transaction_id, conversion.amount_minor, conversion.product_name, conversion.click.click_id) == (
        "tg-charge-1", 5000, "Gold Lootbox", click_id,
    )  # fmt: skip
    journey = requests.get(f"{live_server.url}/api/v1/clicks/{click_id}/journey",
                           headers={"Authorization": f"Api-Key {management_key}"}, timeout=10).json()  # fmt: skip
    assert (journey["telegram_user_id"], journey["telegram_username"], journey["utm_id"]) == (
        123456789, "@john_doe", "tiktok_abc123",
    )  # fmt: skip
    assert [(c["amount"], c["product"], c["transaction_id"]) for c in journey["conversions"]] == [
        (5000, "Gold Lootbox", "tg-charge-1")
    ]

    # /link_tiktok: the user opens the link the bot sent; TikTok (the fake) approves; accounts are linked.
    link_url = re.search(r"https?://\S+", replies[3]).group(0)
    assert link_url.startswith(f"{live_server.url}/tiktok/oauth/start?state=")
    linked = requests.get(link_url, timeout=10)  # follows our redirect to TikTok and TikTok's back to us
    assert linked.status_code == 200 and "Linked to John on TikTok" in linked.text
    assert [r.status_code for r in linked.history] == [302, 302]
    assert TikTokAccountLink.objects.get().telegram_user_id == 123456789


def test_tracking_trouble_never_blocks_the_user(live_server, link, intake_key):
    """An unknown token (a stale link) and an unreachable tracker: the bot still answers."""
    telegram = FakeTelegramApi()
    down = TrackerClient("http://127.0.0.1:9", intake_key, retries=0)
    errors = run_bot(
        telegram, TrackerClient(live_server.url, intake_key), [message_update(1, text="/start not_a_link")]
    )
    errors += run_bot(telegram, down, [message_update(2, successful_payment=PAYMENT)])
    assert errors == []
    assert [p["text"] for p in telegram.calls_to("sendMessage")] == [
        "Welcome, John! Send /buy to get a Gold Lootbox.", "Thank you! Your Gold Lootbox is on its way.",
    ]  # fmt: skip
    assert not Lead.objects.exists() and not Conversion.objects.exists()

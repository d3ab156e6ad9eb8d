"""A real browser (headless Chromium through Playwright) opens a tracking link: the landing page shows
logo, title, description and button, sets no cookie, and goes on to Telegram after the delay."""

import re
import tempfile
from pathlib import Path

import pytest

from conversions.models import Click, LandingPage
from tests.conftest import DESKTOP_CHROME

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed: apt-get install -y chromium"),
]


def test_landing_page_in_chromium(live_server, link):
    from playwright.sync_api import expect, sync_playwright

    page_text = {"title": "Football Insider", "description": "Daily predictions and lootboxes."}
    LandingPage.objects.filter(pk=link.landing_page_id).update(redirect_delay_s=1, **page_text)
    telegram_visits = []

    def fake_telegram(route):
        telegram_visits.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<html><title>Telegram</title>opened</html>")

    # No ORM call in this block: Playwright's sync API runs an event loop in this thread.
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        # Headless Chromium says "HeadlessChrome" and would rightly count as a bot: present as a person's Chrome.
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS, user_agent=DESKTOP_CHROME
        )
        try:
            browser.route("https://t.me/**", fake_telegram)  # no network: Telegram is a stub page
            page = browser.new_page()
            page.goto(f"{live_server.url}/l/tiktok_abc123?utm_term=browser", wait_until="load")

            expect(page.locator("h1")).to_have_text("Football Insider")
            expect(page.locator("p.description")).to_have_text("Daily predictions and lootboxes.")
            expect(page.locator("img.logo")).to_be_visible()
            logo_loaded = page.eval_on_selector("img.logo", "img => img.complete && img.naturalWidth > 0")
            button = page.locator("a#open-button")
            expect(button).to_be_visible()
            button_href = button.get_attribute("href")
            cookies_on_landing = browser.cookies()

            page.wait_for_url(re.compile(r"^https://t\.me/demo_tracker_bot\?start="), timeout=15_000)
            final_url = page.url
            cookies_after = browser.cookies()
        finally:
            browser.close()

    assert logo_loaded, "the logo (a static file served by whitenoise) did not load"
    assert cookies_on_landing == [] and cookies_after == []
    click_id = re.fullmatch(r"https://t\.me/demo_tracker_bot\?start=([A-Za-z0-9_-]{1,64})", final_url).group(1)
    assert button_href == final_url and telegram_visits == [final_url]
    click = Click.objects.get(click_id=click_id)
    assert (click.link_id, click.is_bot, click.served_landing, click.utm_term) == (link.pk, False, True, "browser")

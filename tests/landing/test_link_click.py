import re

import pytest

from conversions.models import Campaign, Click, TrafficSource
from tests.conftest import DESKTOP_CHROME, IPHONE_SAFARI
from tests.factories import TrafficSourceFactory

pytestmark = pytest.mark.django_db


def test_click_is_recorded_with_everything_the_request_tells(visit, link):
    response = visit(
        "/l/tiktok_abc123?utm_medium=bio&utm_term=messi&sub1=a&sub5=e&ttclid=E.C.P.abc&_ttp=ttp-123&foo=bar",
        HTTP_REFERER="https://www.tiktok.com/",
    )

    assert response.status_code == 200
    click = Click.objects.get()
    assert click.link == link and click.campaign == link.campaign
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", click.click_id)
    assert click.ip == "95.123.45.67"
    assert (click.country, click.city) == ("ES", "Sant Pere de Ribes")  # what GeoLite2 City says of this IP
    assert (click.device_type, click.os, click.browser) == ("mobile", "iOS", "Mobile Safari")
    assert click.user_agent == IPHONE_SAFARI
    assert click.referrer == "https://www.tiktok.com/"
    assert (click.utm_medium, click.utm_term, click.sub1, click.sub5) == ("bio", "messi", "a", "e")
    assert (click.ttclid, click.ttp) == ("E.C.P.abc", "ttp-123")
    assert click.extra_params == {"foo": "bar"}
    assert click.landing_url.endswith(
        "/l/tiktok_abc123?utm_medium=bio&utm_term=messi&sub1=a&sub5=e&ttclid=E.C.P.abc&_ttp=ttp-123&foo=bar"
    )
    assert not click.is_bot and click.is_unique and click.served_landing


def test_landing_page_redirects_to_telegram_with_the_click_id_and_sets_no_cookie(visit, link):
    response = visit("/l/tiktok_abc123")

    click = Click.objects.get()
    html = response.content.decode()
    telegram_url = f"https://t.me/demo_tracker_bot?start={click.click_id}"
    assert f'content="3;url={telegram_url}"' in html  # meta refresh after the default 3 s
    assert f'href="{telegram_url}"' in html  # the button for in-app browsers
    assert "Football Insider" in html and "Daily predictions and lootboxes." in html
    assert "Redirecting to Telegram" in html
    assert "setTimeout" in html
    assert response.cookies == {}
    assert "Set-Cookie" not in response.headers
    assert response["Cache-Control"] == "no-store, private"


def test_a_cached_links_page_is_rendered_once_and_each_visit_gets_its_own_click_id(visit, link, settings):
    import json

    from django.test.signals import template_rendered

    from conversions.click_settings import forget_cached_settings
    from landing.views import _CLICK_ID_SLOT

    settings.LINK_CACHE_TTL_S = 60
    renders = []

    def count(sender, template, **kwargs):
        renders.append(template.name)

    template_rendered.connect(count)
    try:
        pages = [visit("/l/tiktok_abc123", ip=f"95.123.45.{n}").content.decode() for n in (1, 2)]
    finally:
        template_rendered.disconnect(count)

    assert renders.count("landing/page.html") == 1
    first, second = Click.objects.order_by("id")
    for page, click in zip(pages, (first, second), strict=True):
        telegram_url = f"https://t.me/demo_tracker_bot?start={click.click_id}"
        assert f'content="3;url={telegram_url}"' in page and f'href="{telegram_url}"' in page
        embedded = re.search(r'id="destination" type="application/json">(.*?)</script>', page)[1]
        assert json.loads(embedded) == telegram_url
        assert _CLICK_ID_SLOT not in page
    link.landing_page.title = "Basketball Insider"
    link.landing_page.save()
    forget_cached_settings()  # what a change of the click settings' version does (tests/landing/test_link_cache.py)
    assert "Basketball Insider" in visit("/l/tiktok_abc123").content.decode()


def test_an_offer_links_page_is_rendered_for_each_click(visit, link, settings):
    settings.LINK_CACHE_TTL_S = 60
    link.destination = TrafficSource.Destination.URL
    link.destination_url = "https://offer.example/?c={click_id}&country={country}"
    link.save()

    pages = [visit("/l/tiktok_abc123", ip=ip).content.decode() for ip in ("95.123.45.67", "10.0.0.1")]

    first, second = Click.objects.order_by("id")
    assert f'href="https://offer.example/?c={first.click_id}&amp;country=ES"' in pages[0]
    assert f'href="https://offer.example/?c={second.click_id}&amp;country="' in pages[1]


def test_redirect_delay_comes_from_the_landing_page(visit, link):
    link.landing_page.redirect_delay_s = 5
    link.landing_page.save()

    html = visit("/l/tiktok_abc123").content.decode()

    assert 'content="5;url=https://t.me/demo_tracker_bot?start=' in html


def test_direct_link_answers_302_at_once(visit, campaign):
    TrafficSourceFactory(campaign=campaign, utm_id="direct1", redirect_mode=TrafficSource.RedirectMode.DIRECT)

    response = visit("/l/direct1")

    click = Click.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"https://t.me/demo_tracker_bot?start={click.click_id}"
    assert not click.served_landing


def test_url_destination_fills_macros_url_encoded(visit, campaign):
    TrafficSourceFactory(
        campaign=campaign,
        utm_id="offer1",
        destination=TrafficSource.Destination.URL,
        telegram_bot="",
        destination_url="https://offer.example/go?cid={click_id}&s={sub1}&c={country}&u={utm_id}&x={unknown}",
        redirect_mode=TrafficSource.RedirectMode.DIRECT,
    )

    response = visit("/l/offer1?sub1=a b&c/d")

    click = Click.objects.get()
    assert (
        response["Location"] == f"https://offer.example/go?cid={click.click_id}&s=a%20b&c=ES&u=offer1&x=%7Bunknown%7D"
    )


@pytest.mark.parametrize(
    "user_agent",
    [
        "TelegramBot (like TwitterBot)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 (compatible; Bytespider; spider-feedback@bytedance.com)",
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 "
        "(compatible; TikTokSpider; ttspider-feedback@tiktok.com)",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
        "python-requests/2.32.3",
        "",
    ],
)
def test_crawlers_and_previews_are_bot_hits_not_clicks(visit, link, user_agent):
    response = visit("/l/tiktok_abc123", user_agent=user_agent)

    assert response.status_code == 200
    click = Click.objects.get()
    assert click.is_bot and not click.is_unique and not click.served_landing
    assert click.device_type == "bot"


def test_tiktok_in_app_browser_is_a_visitor_not_a_bot(visit, link):
    tiktok_in_app = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 musical_ly_32.5.0 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/en Region/US "
        "ByteFullLocale/en isDarkMode/0 WKWebView/1 BytedanceWebview/d8a21c6"
    )

    visit("/l/tiktok_abc123", user_agent=tiktok_in_app)

    click = Click.objects.get()
    assert not click.is_bot and click.device_type == "mobile" and click.served_landing


def test_head_request_is_a_bot_hit(visit, link):
    visit("/l/tiktok_abc123", method="head")

    click = Click.objects.get()
    assert click.is_bot and click.bot_reason == "head_request"


def test_same_visitor_within_24h_is_one_unique_click(visit, link):
    visit("/l/tiktok_abc123")
    visit("/l/tiktok_abc123")
    visit("/l/tiktok_abc123", user_agent=DESKTOP_CHROME)
    visit("/l/tiktok_abc123", ip="81.2.69.160")

    assert list(Click.objects.order_by("id").values_list("is_unique", flat=True)) == [True, False, True, True]


@pytest.mark.parametrize("path", ["/l/nope", "/l/..%2Fadmin", "/l/" + "a" * 65, "/l/paused1", "/l/pausedcampaign1"])
def test_unknown_or_paused_links_get_a_404_page_and_no_click(visit, campaign, path):
    TrafficSourceFactory(campaign=campaign, utm_id="paused1", is_active=False)
    TrafficSourceFactory(campaign__status=Campaign.Status.PAUSED, utm_id="pausedcampaign1")

    response = visit(path)

    assert response.status_code == 404
    assert "does not exist" in response.content.decode()
    assert Click.objects.count() == 0


def test_forwarded_for_from_an_untrusted_peer_is_ignored(client, link):
    client.get("/l/tiktok_abc123", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="95.123.45.67",
               HTTP_USER_AGENT=IPHONE_SAFARI)  # fmt: skip

    assert Click.objects.get().ip == "203.0.113.9"


def test_forwarded_chain_takes_the_last_untrusted_hop(client, link):
    client.get("/l/tiktok_abc123", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 95.123.45.67, 127.0.0.1",
               HTTP_USER_AGENT=IPHONE_SAFARI)  # fmt: skip

    assert Click.objects.get().ip == "95.123.45.67"


def test_post_is_not_allowed_on_a_tracking_link(client, link):
    assert client.post("/l/tiktok_abc123").status_code == 405
    assert Click.objects.count() == 0


def test_unique_clicks_need_no_redis(visit, link, settings):
    settings.REDIS_URL = ""

    visit("/l/tiktok_abc123")
    visit("/l/tiktok_abc123")

    assert list(Click.objects.order_by("id").values_list("is_unique", flat=True)) == [True, False]

"""The click paths' own handler (landing.click_handler), called as gunicorn calls the product: through
tracker.wsgi's kind of application, not Django's test client (which has a handler of its own)."""

from unittest import mock

import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory

from conversions.models import Click
from landing.click_handler import with_click_handler
from tests.conftest import IPHONE_SAFARI
from tests.factories import CampaignFactory
from tiktok_ads.models import TikTokEvent
from tiktok_ads.pixels import pixel_connect

pytestmark = pytest.mark.django_db(transaction=True)  # a real handler closes what a test transaction holds


def answer(application, method: str, path: str, **headers) -> tuple[str, dict, bytes]:
    """(status, headers, body) of one request through a WSGI application."""
    environ = RequestFactory().generic(method, path, **{"HTTP_USER_AGENT": IPHONE_SAFARI, **headers}).environ
    started = {}
    body = application(environ, lambda status, response_headers, exc_info=None: started.update(
        status=status, headers=dict(response_headers)))  # fmt: skip
    try:
        content = b"".join(body)
    finally:
        body.close()
    return started["status"], started["headers"], content


def without_ids(status: str, headers: dict, body: bytes, click_ids: list[str]) -> tuple:
    """The answer with what differs between two clicks (the click id, the request id) blanked out."""
    text = body.decode()
    headers = {name: value for name, value in headers.items() if name != "X-Request-ID"}
    for click_id in click_ids:
        text = text.replace(click_id, "<click>")
        headers = {name: value.replace(click_id, "<click>") for name, value in headers.items()}
    return status, headers, text


@pytest.fixture
def links(link):
    pixel, _ = pixel_connect(pixel_code="CHANDLER1", access_token="tok-handler-1234567890")
    link.campaign.pixel = pixel
    link.campaign.save()
    link.campaign.links.create(utm_id="tt_direct", redirect_mode="direct", telegram_bot="demo_tracker_bot")
    return CampaignFactory(offer_url="https://partner.example/offer?click_id={click_id}&sub={subid}")


REQUESTS = {
    "page link with a pixel": ("GET", "/l/tiktok_abc123?utm_term=x&sub1=y", {}),
    "direct link": ("GET", "/l/tt_direct", {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}),
    "classic click": ("GET", "/click?campaign_id={classic}&subid=abc", {}),
    "unknown link": ("GET", "/l/no_such_link", {}),
    "not a link token": ("GET", "/l/bad%20token!", {}),
    "unknown campaign": ("GET", "/click?campaign_id=999999", {}),
    "HEAD: a bot hit": ("HEAD", "/l/tiktok_abc123", {}),
    "a crawler": ("GET", "/l/tiktok_abc123", {"HTTP_USER_AGENT": "TelegramBot (like TwitterBot)"}),
    "a host not allowed": ("GET", "/l/tiktok_abc123", {"HTTP_HOST": "evil.example"}),
}


@pytest.mark.parametrize("name", REQUESTS)
def test_the_click_handler_answers_as_the_whole_application_does(links, name):
    method, path, headers = REQUESTS[name]
    path = path.format(classic=links.pk)
    everything = WSGIHandler()
    application = with_click_handler(everything)
    assert application is not everything

    answers = []
    for app in (everything, application):
        before = set(Click.objects.values_list("click_id", flat=True))
        answers.append(answer(app, method, path, **headers))
        answers.append(set(Click.objects.values_list("click_id", flat=True)) - before)  # what it stored
    (full, full_clicks), (ours, our_clicks) = zip(answers[::2], answers[1::2], strict=True)

    assert len(full_clicks) == len(our_clicks) == (name in {"page link with a pixel", "direct link", "classic click",
                                                            "HEAD: a bot hit", "a crawler"})  # fmt: skip
    click_ids = [*full_clicks, *our_clicks]
    assert without_ids(*ours, click_ids) == without_ids(*full, click_ids)
    assert ours[1]["X-Request-ID"] and ours[1]["X-Request-ID"] != full[1]["X-Request-ID"]
    if name == "page link with a pixel":
        assert TikTokEvent.objects.filter(event="ViewContent").count() == 2
        assert ours[1]["X-Frame-Options"] == "DENY" and ours[1]["X-Content-Type-Options"] == "nosniff"


def test_a_post_gets_the_views_own_405_not_csrfs_403(links):
    """The one answer that differs: the whole application refuses a POST in its CSRF middleware before the
    view sees it; without that middleware the view says what it accepts."""
    everything = WSGIHandler()

    full = answer(everything, "POST", "/l/tiktok_abc123")
    ours = answer(with_click_handler(everything), "POST", "/l/tiktok_abc123")

    assert full[0] == "403 Forbidden"
    assert ours[0] == "405 Method Not Allowed" and ours[1]["Allow"] == "GET, HEAD" and ours[2] == b""
    assert Click.objects.count() == 0


def test_only_the_click_paths_skip_the_middleware_they_do_not_need(links):
    with mock.patch.object(SessionMiddleware, "process_request", autospec=True,
                           side_effect=lambda self, request: None) as sessions:  # fmt: skip
        application = with_click_handler(WSGIHandler())

        answer(application, "GET", "/l/tt_direct")
        answer(application, "GET", f"/click?campaign_id={links.pk}")
        assert sessions.call_count == 0
        answer(application, "GET", "/admin/login/")
        assert sessions.call_count == 1


def test_an_error_in_a_click_view_is_answered_as_django_answers_it(links, caplog):
    everything = WSGIHandler()
    application = with_click_handler(everything)

    with mock.patch("landing.views.click_record", side_effect=RuntimeError("the database is on fire")):
        full = answer(everything, "GET", "/l/tt_direct")
        ours = answer(application, "GET", "/l/tt_direct")

    assert ours[0] == full[0] == "500 Internal Server Error"
    assert without_ids(*ours, []) == without_ids(*full, [])
    logged = [record for record in caplog.records if record.name == "django.request"]
    assert len(logged) == 2 and all("the database is on fire" in str(record.exc_info[1]) for record in logged)


def test_click_handler_off_is_the_whole_application(settings):
    settings.CLICK_HANDLER = False
    everything = WSGIHandler()

    assert with_click_handler(everything) is everything

"""The hot paths' own handler (tracker.hot_paths), called as gunicorn calls the product: through
tracker.wsgi's kind of application, not Django's test client (which has a handler of its own)."""

import json
from unittest import mock

import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory

from conversions.models import Click
from tests.conftest import IPHONE_SAFARI
from tests.factories import CampaignFactory
from tiktok_ads.models import TikTokEvent
from tiktok_ads.pixels import pixel_connect
from tracker.hot_paths import with_hot_path_handler

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
def test_the_hot_path_handler_answers_a_click_as_the_whole_application_does(links, name):
    method, path, headers = REQUESTS[name]
    path = path.format(classic=links.pk)
    everything = WSGIHandler()
    application = with_hot_path_handler(everything)
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


def intake_requests(key: str, click_id: str) -> list[tuple]:
    """The bot's and a partner's requests, in order: (method, path, body, headers)."""
    bot = {"HTTP_AUTHORIZATION": f"Api-Key {key}", "CONTENT_TYPE": "application/json"}
    webhook, batch = "/api/v1/utm/webhook/conversion", "/api/v1/utm/webhook/conversions"
    purchase = {"utm_id": click_id, "amount": 5000, "currency": "eur", "transaction_id": "T-1"}
    return [
        ("POST", "/api/v1/utm/track/click", {"utm_id": click_id, "user_id": 123456789}, bot),
        ("POST", "/api/v1/utm/track/click", {"utm_id": click_id, "user_id": 123456789}, bot),  # a repeat
        ("POST", webhook, purchase, bot),
        ("POST", webhook, purchase, bot),  # a repeat
        ("POST", webhook, {**purchase, "amount": "lots"}, bot),  # a field in error
        ("POST", webhook, purchase, {**bot, "HTTP_AUTHORIZATION": "Api-Key nope"}),
        ("GET", webhook, None, bot),
        ("POST", batch, {"conversions": [{**purchase, "transaction_id": "T-2"}]}, bot),
        ("GET", f"/postback?key={key}&click_id={click_id}&payout=1.25&goal=lead&txid=P-1", None, {}),
        ("GET", f"/postback?key={key}&click_id=no_such_click&payout=1.25", None, {}),
        ("GET", f"/postback?key={key}&click_id={click_id}&payout=x", None, {}),
    ]


def test_the_hot_path_handler_answers_the_intake_as_the_whole_application_does(links, intake_key, visit):
    from conversions.models import BotStart, Conversion, Lead

    visit("/l/tiktok_abc123")
    click_id = Click.objects.get().click_id
    everything = WSGIHandler()
    seen = {}
    for name, application in (("everything", everything), ("hot", with_hot_path_handler(everything))):
        answers = []
        for method, path, body, headers in intake_requests(intake_key, click_id):
            extra = {"data": json.dumps(body)} if body is not None else {}
            status, response_headers, content = answer(application, method, path, **headers, **extra)
            parsed = json.loads(content)
            if isinstance(parsed, dict) and "conversion_id" in parsed:
                parsed["conversion_id"] = "…"
            for item in parsed.get("conversions", []) if isinstance(parsed, dict) else []:
                item["conversion_id"] = "…"
            answers.append((status, {key: value for key, value in response_headers.items() if key != "X-Request-ID"},
                            parsed))  # fmt: skip
        seen[name] = answers, (BotStart.objects.count(), Conversion.objects.count(), TikTokEvent.objects.count())
        Conversion.objects.all().delete()  # the next application meets the same database
        Lead.objects.all().delete()
        TikTokEvent.objects.exclude(event="ViewContent").delete()

    for ours, full in zip(seen["hot"][0], seen["everything"][0], strict=True):
        assert ours == full
    assert seen["hot"][1] == seen["everything"][1]
    statuses = [status.split()[0] for status, _, _ in seen["hot"][0]]
    assert statuses == ["201", "200", "201", "200", "400", "401", "405", "200", "201", "404", "400"]
    assert seen["hot"][1] == (1, 3, 4)  # one start, three conversions; their events and the click's ViewContent


def test_a_post_gets_the_views_own_405_not_csrfs_403(links):
    """The one answer that differs: the whole application refuses a POST in its CSRF middleware before the
    view sees it; without that middleware the view says what it accepts."""
    everything = WSGIHandler()

    full = answer(everything, "POST", "/l/tiktok_abc123")
    ours = answer(with_hot_path_handler(everything), "POST", "/l/tiktok_abc123")

    assert full[0] == "403 Forbidden"
    assert ours[0] == "405 Method Not Allowed" and ours[1]["Allow"] == "GET, HEAD" and ours[2] == b""
    assert Click.objects.count() == 0


def test_only_the_hot_paths_skip_the_middleware_they_do_not_need(links, intake_key):
    with mock.patch.object(SessionMiddleware, "process_request", autospec=True,
                           side_effect=lambda self, request: None) as sessions:  # fmt: skip
        application = with_hot_path_handler(WSGIHandler())

        answer(application, "GET", "/l/tt_direct")
        answer(application, "GET", f"/click?campaign_id={links.pk}")
        answer(application, "GET", f"/postback?key={intake_key}&click_id=nope")
        answer(application, "POST", "/api/v1/utm/webhook/conversion", HTTP_AUTHORIZATION=f"Api-Key {intake_key}")
        assert sessions.call_count == 0
        answer(application, "GET", "/admin/login/")
        answer(application, "GET", "/api/v1/campaigns/")
        assert sessions.call_count == 2


def test_an_error_in_a_click_view_is_answered_as_django_answers_it(links, caplog):
    everything = WSGIHandler()
    application = with_hot_path_handler(everything)

    with mock.patch("landing.views.click_record", side_effect=RuntimeError("the database is on fire")):
        full = answer(everything, "GET", "/l/tt_direct")
        ours = answer(application, "GET", "/l/tt_direct")

    assert ours[0] == full[0] == "500 Internal Server Error"
    assert without_ids(*ours, []) == without_ids(*full, [])
    logged = [record for record in caplog.records if record.name == "django.request"]
    assert len(logged) == 2 and all("the database is on fire" in str(record.exc_info[1]) for record in logged)


def test_hot_path_handler_off_is_the_whole_application(settings):
    settings.HOT_PATH_HANDLER = False
    everything = WSGIHandler()

    assert with_hot_path_handler(everything) is everything

import importlib

import pytest
from django.urls import clear_url_caches

import tracker.urls
from tests.conftest import IPHONE_SAFARI

pytestmark = pytest.mark.django_db

NO_STORE_HEADERS = ("Cache-Control", "X-Robots-Tag", "Referrer-Policy")


@pytest.fixture
def bench_endpoints_on(settings):
    """The URLconf as bench/clicks.py's gunicorn sees it (BENCH_ENDPOINTS=1), restored afterwards."""
    settings.BENCH_ENDPOINTS = True
    importlib.reload(tracker.urls)
    clear_url_caches()
    yield
    settings.BENCH_ENDPOINTS = False
    importlib.reload(tracker.urls)
    clear_url_caches()


def test_the_bare_redirect_is_not_mounted_by_default(client, settings):
    assert settings.BENCH_ENDPOINTS is False

    response = client.get("/bench/redirect", HTTP_USER_AGENT=IPHONE_SAFARI)

    assert response.status_code == 404


def test_the_bare_redirect_answers_like_a_direct_link_when_switched_on(bench_endpoints_on, client, visit, link):
    link.redirect_mode = "direct"
    link.save()

    bare = client.get("/bench/redirect", HTTP_USER_AGENT=IPHONE_SAFARI)
    tracked = visit("/l/tiktok_abc123")

    assert bare.status_code == tracked.status_code == 302
    assert bare["Location"] == "https://t.me/demo_tracker_bot?start=x"
    assert {name: bare[name] for name in NO_STORE_HEADERS} == {name: tracked[name] for name in NO_STORE_HEADERS}

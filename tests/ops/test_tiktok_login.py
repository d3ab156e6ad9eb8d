"""TikTok Login Kit: the bot gets a signed link, TikTok (the fake) authorises, the callback links accounts."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core import signing

from ops.models import TikTokAccountLink
from ops.tiktok_login import STATE_SALT, state_for
from tiktok_ads.fake_server import FakeTikTok

pytestmark = pytest.mark.django_db

CLIENT_KEY = "awclientkey123"
CLIENT_SECRET = "client-secret-xyz"
PUBLIC = "https://trk.example.com"
REDIRECT_URI = f"{PUBLIC}/tiktok/callback"


@pytest.fixture
def fake(settings):
    with FakeTikTok(port=0, rate_limit=0) as server:
        server.add_login_client(CLIENT_KEY, CLIENT_SECRET, REDIRECT_URI)
        settings.PUBLIC_BASE_URL = PUBLIC
        settings.TIKTOK_LOGIN_CLIENT_KEY = CLIENT_KEY
        settings.TIKTOK_LOGIN_CLIENT_SECRET = CLIENT_SECRET
        settings.TIKTOK_LOGIN_AUTH_URL = f"{server.url}/v2/auth/authorize/"
        settings.TIKTOK_LOGIN_API_BASE_URL = server.url
        yield server


def local(url: str) -> str:
    """Our own URL as the Django test client takes it."""
    assert url.startswith(PUBLIC), url
    return url[len(PUBLIC) :]


def authorize_at_tiktok(client, start_url: str) -> str:
    """The browser: our start page → TikTok's consent page → back to our callback. Returns the callback URL."""
    to_tiktok = client.get(local(start_url))
    assert to_tiktok.status_code == 302
    back = requests.get(to_tiktok["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 302
    return back.headers["Location"]


def test_link_a_telegram_user_to_a_tiktok_account(client, bot_api, fake):
    fake.set_login_user(
        open_id="open-777", union_id="union-777", display_name="Messi Fan", avatar_url="https://a.example/x.jpg"
    )
    answer = bot_api.post("/api/v1/tiktok/login-link", {"telegram_user_id": 123456789}, format="json")
    assert answer.status_code == 201 and answer.json()["expires_in"] == 600
    start_url = answer.json()["url"]
    assert start_url.startswith(f"{PUBLIC}/tiktok/oauth/start?state=")

    to_tiktok = client.get(local(start_url))
    authorize = urlsplit(to_tiktok["Location"])
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == f"{fake.url}/v2/auth/authorize/"
    state = parse_qs(urlsplit(start_url).query)["state"][0]
    assert {key: values[0] for key, values in parse_qs(authorize.query).items()} == {
        "client_key": CLIENT_KEY, "scope": "user.info.basic", "response_type": "code",
        "redirect_uri": REDIRECT_URI, "state": state,
    }  # fmt: skip

    callback = requests.get(to_tiktok["Location"], allow_redirects=False, timeout=10).headers["Location"]
    page = client.get(local(callback))

    assert page.status_code == 200 and "Linked to Messi Fan" in page.content.decode()
    assert page.cookies == {} and page["Referrer-Policy"] == "no-referrer"
    link = TikTokAccountLink.objects.get()
    assert (link.telegram_user_id, link.open_id, link.union_id, link.display_name, link.scopes) == (
        123456789, "open-777", "union-777", "Messi Fan", "user.info.basic",
    )  # fmt: skip
    authorize_request, token_request, user_request = fake.requests
    code = parse_qs(urlsplit(callback).query)["code"][0]
    assert token_request["method"] == "POST" and token_request["path"] == "/v2/oauth/token/"
    assert token_request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert token_request["body"] == {
        "client_key": CLIENT_KEY, "client_secret": CLIENT_SECRET, "code": code,
        "grant_type": "authorization_code", "redirect_uri": REDIRECT_URI,
    }  # fmt: skip
    assert (user_request["method"], user_request["path"]) == ("GET", "/v2/user/info/")
    assert user_request["query"] == {"fields": "open_id,union_id,avatar_url,display_name"}
    access_token = user_request["headers"]["Authorization"].removeprefix("Bearer ")
    assert access_token.startswith("act.")
    # The token was used once and is kept nowhere.
    assert access_token not in str(list(TikTokAccountLink.objects.values()))


def test_linking_again_replaces_the_account(client, bot_api, fake):
    for open_id in ("first-open-id", "second-open-id"):
        fake.set_login_user(open_id=open_id, display_name=open_id)
        url = bot_api.post("/api/v1/tiktok/login-link", {"telegram_user_id": 5}, format="json").json()["url"]
        assert client.get(local(authorize_at_tiktok(client, url))).status_code == 200
    assert list(TikTokAccountLink.objects.values_list("telegram_user_id", "open_id")) == [(5, "second-open-id")]


def test_forged_or_expired_state_is_refused(client, fake, settings):
    forged = signing.dumps({"tg": 666, "n": "x"}, salt="another-salt")
    payload, signed_at, signature = state_for(123).rsplit(":", 2)
    tampered = ":".join([signing.b64_encode(b'{"tg":666,"n":"x"}').decode(), signed_at, signature])
    for state in (forged, tampered, "", "tg:666"):
        start = client.get("/tiktok/oauth/start", {"state": state})
        callback = client.get("/tiktok/callback", {"state": state, "code": "any"})
        assert (start.status_code, callback.status_code) == (400, 400)
        assert "This link has expired" in start.content.decode()
    assert signing.loads(state_for(123), salt=STATE_SALT)["tg"] == 123

    settings.TIKTOK_LOGIN_STATE_MAX_AGE_S = -1  # every state is now too old
    assert client.get("/tiktok/oauth/start", {"state": state_for(123)}).status_code == 400
    assert fake.requests == [] and not TikTokAccountLink.objects.exists()


def test_user_says_no(client, fake):
    fake.deny_next_login()
    callback = authorize_at_tiktok(client, f"{PUBLIC}/tiktok/oauth/start?state={state_for(9)}")
    assert parse_qs(urlsplit(callback).query)["error"] == ["access_denied"]
    page = client.get(local(callback))
    assert page.status_code == 400 and "You did not allow access." in page.content.decode()
    crafted = client.get("/tiktok/callback", {"error": "x", "error_description": "Call +1-555-SCAM"})
    assert crafted.status_code == 400 and "SCAM" not in crafted.content.decode()
    assert not TikTokAccountLink.objects.exists()


def test_code_replay_is_refused_by_tiktok(client, fake):
    callback = authorize_at_tiktok(client, f"{PUBLIC}/tiktok/oauth/start?state={state_for(9)}")
    assert client.get(local(callback)).status_code == 200
    replay = client.get(local(callback))
    assert replay.status_code == 502 and "did not confirm" in replay.content.decode()
    assert fake.requests[-1]["path"] == "/v2/oauth/token/" and fake.requests[-1]["http_status"] == 400
    assert TikTokAccountLink.objects.count() == 1


def test_tiktok_down_gives_502_and_writes_nothing(client, fake):
    callback = authorize_at_tiktok(client, f"{PUBLIC}/tiktok/oauth/start?state={state_for(9)}")
    fake.fail_next(1, "http503")
    assert client.get(local(callback)).status_code == 502
    assert not TikTokAccountLink.objects.exists()


def test_not_configured(client, bot_api, settings):
    settings.TIKTOK_LOGIN_CLIENT_KEY = ""
    answer = bot_api.post("/api/v1/tiktok/login-link", {"telegram_user_id": 5}, format="json")
    assert answer.status_code == 404 and answer.json()["error"] == "not_configured"
    assert client.get("/tiktok/oauth/start", {"state": state_for(5)}).status_code == 404
    assert client.get("/tiktok/callback", {"state": state_for(5), "code": "c"}).status_code == 404


def test_login_link_needs_a_key_and_a_user_id(client, bot_api, fake):
    assert (
        client.post("/api/v1/tiktok/login-link", {"telegram_user_id": 5}, content_type="application/json").status_code
        == 401
    )
    bad = bot_api.post("/api/v1/tiktok/login-link", {"telegram_user_id": "abc"}, format="json")
    assert bad.status_code == 400 and list(bad.json()["fields"]) == ["telegram_user_id"]

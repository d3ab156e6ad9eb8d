"""The fake over real HTTP, driven with plain `requests` so its own rules are what is tested."""

import copy
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tiktok_ads.fake_server import FakeTikTok, main
from tiktok_ads.hashing import sha256_email, sha256_phone

TOKEN = "tok"
PIXEL = "CPIXEL1"
ADVERTISER = "adv-1"
TRACK = "/open_api/v1.3/event/track/"
AUDIENCE = "/open_api/v1.3/segment/audience/"
MAPPING = "/open_api/v1.3/segment/mapping/"
LOOKALIKE = "/open_api/v1.3/dmp/custom_audience/lookalike/create/"
EMAIL_HASH = sha256_email("a@example.com")
PHONE_HASH = sha256_phone("+12133734253")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake():
    with FakeTikTok(port=0, rate_limit=0, timeout_delay=2) as server:
        yield server


def post(fake, path, body, token=TOKEN, timeout=5):
    headers = {"Access-Token": token} if token is not None else {}
    return requests.post(fake.url + path, json=body, headers=headers, timeout=timeout)


def event(**overrides):
    item = {
        "event": "CompletePayment",
        "event_time": int(time.time()),
        "event_id": "order_1",
        "user": {"email": EMAIL_HASH, "phone": [PHONE_HASH], "external_id": EMAIL_HASH, "ip": "203.0.113.7"},
        "properties": {
            "value": 150.0,
            "currency": "EUR",
            "contents": [{"content_id": "t1", "price": 75, "quantity": 2}],
        },
    }
    item.update(overrides)
    return item


def track_body(*items, **overrides):
    body = {"event_source": "web", "event_source_id": PIXEL, "data": list(items) or [event()]}
    body.update(overrides)
    return body


def with_user(**fields):
    return event(user={**event()["user"], **fields})


def with_properties(**fields):
    return event(properties={**event()["properties"], **fields})


# --- Events API: success ----------------------------------------------------------


def test_success_answer_shape_and_unique_request_ids(fake):
    first = post(fake, TRACK, track_body()).json()
    second = post(fake, TRACK, track_body()).json()
    assert {k: first[k] for k in ("code", "message", "data")} == {"code": 0, "message": "OK", "data": {}}
    assert first["request_id"] and first["request_id"] != second["request_id"]


def test_accepted_events_carry_pixel_and_test_event_code(fake):
    item = event(page={"url": "https://example.com"}, limited_data_use=False)
    answer = post(fake, TRACK, track_body(item, test_event_code="TEST1")).json()

    (accepted,) = fake.accepted_events()
    assert {k: accepted[k] for k in item} == item
    assert accepted["pixel_code"] == PIXEL
    assert accepted["test_event_code"] == "TEST1"
    assert accepted["request_id"] == answer["request_id"]
    assert fake.accepted_events(pixel_code="OTHER") == []


@pytest.mark.parametrize(
    "item",
    [
        with_properties(value=0),
        with_user(email=[EMAIL_HASH, PHONE_HASH]),
        event(event_time=int(time.time()) - 6 * 24 * 3600),
        event(user={}, properties={}),
        {"event": "PageView", "event_time": int(time.time())},
    ],
)
def test_valid_edge_cases_are_accepted(fake, item):
    assert post(fake, TRACK, track_body(item)).json()["code"] == 0


def test_batch_of_1000_is_accepted(fake):
    items = [event(event_id=f"o{index}") for index in range(1000)]
    assert post(fake, TRACK, track_body(*items)).json()["code"] == 0
    assert len(fake.accepted_events()) == 1000


# --- Events API: validation ---------------------------------------------------------

NOW = int(time.time())
INVALID_BODIES = [
    (track_body(event_source="email"), "event_source"),
    (track_body(event_source_id=""), "event_source_id"),
    (track_body(event_source_id=None), "event_source_id"),
    ({"event_source": "web", "event_source_id": PIXEL, "data": []}, "data"),
    (track_body(*[event()] * 1001), "data"),
    (track_body(event(event="")), "data[0].event"),
    (track_body({"event_time": NOW}), "data[0].event"),
    (track_body(event(event_time="2025-01-15T14:30:00Z")), "data[0].event_time"),
    (track_body(event(event_time=str(NOW))), "data[0].event_time"),
    (track_body(event(event_time=float(NOW))), "data[0].event_time"),
    (track_body(event(event_time=NOW * 1000)), "data[0].event_time"),
    (track_body(event(event_time=NOW - 8 * 24 * 3600)), "data[0].event_time"),
    (track_body(event(event_time=NOW + 2 * 24 * 3600)), "data[0].event_time"),
    (track_body({"event": "PageView"}), "data[0].event_time"),
    (track_body(event(event_id=123)), "data[0].event_id"),
    (track_body(event(user="someone")), "data[0].user"),
    (track_body(with_user(email="john@example.com")), "data[0].user.email"),
    (track_body(with_user(email=EMAIL_HASH.upper())), "data[0].user.email"),
    (track_body(with_user(phone="+12133734253")), "data[0].user.phone"),
    (track_body(with_user(phone=[PHONE_HASH, "+40721234567"])), "data[0].user.phone"),
    (track_body(with_user(external_id="user_456")), "data[0].user.external_id"),
    (track_body(with_user(ip=EMAIL_HASH)), "data[0].user.ip"),
    (track_body(with_properties(value="150")), "data[0].properties.value"),
    (track_body(with_properties(currency="EURO")), "data[0].properties.currency"),
    (track_body(with_properties(currency="eur")), "data[0].properties.currency"),
    (track_body(with_properties(contents={"content_id": "x"})), "data[0].properties.contents"),
    (track_body(with_properties(contents=["x"])), "data[0].properties.contents[0]"),
    (track_body(event(), event(), with_properties(value=None)), "data[2].properties.value"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_BODIES)
def test_invalid_bodies_are_rejected_whole_with_40002_naming_the_field(fake, body, field):
    response = post(fake, TRACK, body)
    answer = response.json()
    assert response.status_code == 200
    assert answer["code"] == 40002
    assert answer["message"].startswith(field + ":") or answer["message"].startswith(field + "[")
    assert answer["request_id"]
    assert fake.accepted_events() == []


def test_non_json_body_is_40002(fake):
    response = requests.post(fake.url + TRACK, data="{not json", headers={"Access-Token": TOKEN}, timeout=5)
    assert response.json()["code"] == 40002


# --- auth ---------------------------------------------------------------------------


def test_missing_or_empty_token_is_40105(fake):
    assert post(fake, TRACK, track_body(), token=None).json()["code"] == 40105
    assert post(fake, TRACK, track_body(), token="").json()["code"] == 40105
    assert fake.accepted_events() == []


def test_registered_pixels_bind_tokens(fake):
    fake.add_pixel(PIXEL, "owner-token")
    fake.add_pixel("CPIXEL2", "other-token")

    assert post(fake, TRACK, track_body(), token="unknown").json()["code"] == 40105
    assert post(fake, TRACK, track_body(), token="other-token").json()["code"] == 40001
    assert post(fake, TRACK, track_body(), token="owner-token").json()["code"] == 0
    assert len(fake.accepted_events()) == 1


# --- rate limit ---------------------------------------------------------------------


def test_rate_limit_answers_40100_past_the_limit():
    with FakeTikTok(port=0, rate_limit=10, rate_period_s=60) as server:
        codes = [post(server, TRACK, track_body()).json()["code"] for _ in range(15)]
        assert codes.count(0) == 10
        assert codes.count(40100) == 5
        assert len(server.accepted_events()) == 10
        assert server.requests[-1]["code"] == 40100


def test_rate_limit_default_window_limits_a_quick_burst():
    with FakeTikTok(port=0) as server:
        session = requests.Session()
        codes = [
            session.post(server.url + TRACK, json=track_body(), headers={"Access-Token": TOKEN}, timeout=5).json()[
                "code"
            ]
            for _ in range(15)
        ]
    assert set(codes) <= {0, 40100}
    assert codes.count(40100) >= 1
    assert codes.count(0) == len(server.accepted_events())


def test_rate_limit_is_shared_by_all_endpoints():
    with FakeTikTok(port=0, rate_limit=3, rate_period_s=60) as server:
        create = {"advertiser_id": ADVERTISER, "custom_audience_name": "A", "action": "create"}
        assert post(server, AUDIENCE, create).json()["code"] == 0
        assert post(server, TRACK, track_body()).json()["code"] == 0
        assert post(server, AUDIENCE, create).json()["code"] == 0
        assert post(server, TRACK, track_body()).json()["code"] == 40100
        assert post(server, AUDIENCE, create).json()["code"] == 40100


def test_control_endpoints_are_not_rate_limited():
    with FakeTikTok(port=0, rate_limit=1, rate_period_s=60) as server:
        for _ in range(5):
            assert requests.get(server.url + "/__fake__/events", timeout=5).status_code == 200
        assert post(server, TRACK, track_body()).json()["code"] == 0


# --- faults -------------------------------------------------------------------------


def test_fail_next_http500_then_recovers(fake):
    fake.fail_next(2, "http500")
    statuses = [post(fake, TRACK, track_body()).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert len(fake.accepted_events()) == 1
    assert [r["fault"] for r in fake.requests] == ["http500", "http500", None]


def test_fail_next_malformed_is_200_without_json(fake):
    fake.fail_next(1, "malformed")
    response = post(fake, TRACK, track_body())
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_fail_next_code_answers_that_code(fake):
    fake.fail_next(1, "code:50002")
    answer = post(fake, TRACK, track_body()).json()
    assert answer["code"] == 50002
    assert fake.accepted_events() == []


def test_fail_next_timeout_holds_the_request(fake):
    fake.fail_next(1, "timeout")
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(fake, TRACK, track_body(), timeout=0.2)
    assert fake.requests[0]["fault"] == "timeout"


def test_latency_delays_but_answers(fake):
    fake.set_latency(0.05)
    assert post(fake, TRACK, track_body()).json()["code"] == 0


def test_unknown_fault_mode_is_refused(fake):
    with pytest.raises(ValueError):
        fake.fail_next(1, "explode")
    response = requests.post(fake.url + "/__fake__/fail", json={"n": 1, "mode": "explode"}, timeout=5)
    assert response.status_code == 400


# --- control endpoints (cross-process use) ---------------------------------------------


def test_control_endpoints(fake):
    url = fake.url + "/__fake__/"
    assert requests.post(url + "pixels", json={"pixel_code": PIXEL, "access_token": TOKEN}, timeout=5).ok
    assert requests.post(url + "fail", json={"n": 1, "mode": "code:40100"}, timeout=5).ok
    assert post(fake, TRACK, track_body()).json()["code"] == 40100
    assert post(fake, TRACK, track_body()).json()["code"] == 0

    events = requests.get(url + "events", timeout=5).json()
    assert [e["pixel_code"] for e in events] == [PIXEL]
    logged = requests.get(url + "requests", timeout=5).json()
    assert [r["code"] for r in logged] == [40100, 0]
    assert logged[1]["headers"]["Access-Token"] == TOKEN
    assert logged[1]["body"] == fake.requests[1]["body"]

    assert requests.post(url + "latency", json={"seconds": 0}, timeout=5).ok
    assert requests.post(url + "reset", timeout=5).ok
    assert requests.get(url + "events", timeout=5).json() == []
    assert requests.get(url + "audiences", timeout=5).json() == {}
    assert requests.get(url + "nothing", timeout=5).status_code == 404


def test_requests_log_holds_path_headers_body_code_and_time(fake):
    body = track_body()
    post(fake, TRACK, body)
    (logged,) = fake.requests
    assert logged["path"] == TRACK
    assert logged["headers"]["Access-Token"] == TOKEN
    assert logged["body"] == body
    assert (logged["http_status"], logged["code"]) == (200, 0)
    assert isinstance(logged["time"], float)


def test_unknown_path_is_404(fake):
    response = post(fake, "/open_api/v1.3/pixel/track/", {"pixel_code": PIXEL})
    assert response.status_code == 404


def test_reset_clears_state(fake):
    fake.add_pixel(PIXEL, "owner")
    fake.fail_next(3, "http500")
    fake.reset()
    assert post(fake, TRACK, track_body()).json()["code"] == 0  # no pixel binding, no fault
    fake.reset()
    assert fake.accepted_events() == [] and fake.requests == [] and fake.audiences() == {}


def test_concurrent_requests_are_all_recorded(fake):
    def send(index):
        post(fake, TRACK, track_body(event(event_id=f"o{index}")))

    threads = [threading.Thread(target=send, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e["event_id"] for e in fake.accepted_events()) == sorted(f"o{i}" for i in range(20))
    assert len(fake.requests) == 20


# --- audiences ----------------------------------------------------------------------


def create_audience(fake, name="Buyers", advertiser=ADVERTISER):
    body = {"advertiser_id": advertiser, "custom_audience_name": name, "action": "create"}
    answer = post(fake, AUDIENCE, body).json()
    assert answer["code"] == 0, answer
    return answer["data"]["audience_id"]


def mapping(audience_id, action="add", rows=None, id_schema=("EMAIL_SHA256", "PHONE_SHA256")):
    if rows is None:
        rows = [[{"id": EMAIL_HASH, "audience_ids": [audience_id]}, {}]]
    return {"advertiser_ids": [ADVERTISER], "action": action, "id_schema": list(id_schema), "batch_data": rows}


def test_audience_create_validates(fake):
    assert post(fake, AUDIENCE, {"advertiser_id": ADVERTISER, "custom_audience_name": "A"}).json()["code"] == 40002
    too_long = {"advertiser_id": ADVERTISER, "custom_audience_name": "x" * 129, "action": "create"}
    assert post(fake, AUDIENCE, too_long).json()["code"] == 40002
    assert post(fake, AUDIENCE, {"custom_audience_name": "A", "action": "create"}).json()["code"] == 40002


def test_mapping_add_and_delete_keep_membership(fake):
    audience_id = create_audience(fake)
    rows = [
        [{"id": EMAIL_HASH, "audience_ids": [audience_id]}, {"id": PHONE_HASH, "audience_ids": [audience_id]}],
        [{}, {"id": sha256_phone("+40721234567"), "audience_ids": [audience_id]}],
    ]
    assert post(fake, MAPPING, mapping(audience_id, rows=rows)).json()["code"] == 0
    assert fake.audience_members(audience_id) == {
        "EMAIL_SHA256": {EMAIL_HASH},
        "PHONE_SHA256": {PHONE_HASH, sha256_phone("+40721234567")},
    }
    assert fake.audiences()[audience_id]["size"] == 2

    assert post(fake, MAPPING, mapping(audience_id, action="delete")).json()["code"] == 0
    assert fake.audience_members(audience_id)["EMAIL_SHA256"] == set()


def test_mapping_validation(fake):
    audience_id = create_audience(fake)
    other_advertisers = create_audience(fake, advertiser="adv-2")
    entry = {"id": EMAIL_HASH, "audience_ids": [audience_id]}
    cases = [
        ({**mapping(audience_id), "action": "APPEND"}, "action"),
        ({**mapping(audience_id), "advertiser_ids": []}, "advertiser_ids"),
        (mapping(audience_id, id_schema=["EMAIL"], rows=[[entry]]), "id_schema"),
        (mapping(audience_id, id_schema=["EMAIL_SHA256", "EMAIL_SHA256"], rows=[[entry, {}]]), "id_schema"),
        (mapping(audience_id, rows=[[entry]]), "batch_data[0]"),
        (mapping(audience_id, rows=[[{}, {}]]), "batch_data[0]"),
        (
            mapping(audience_id, rows=[[{"id": "a@example.com", "audience_ids": [audience_id]}, {}]]),
            "batch_data[0][0].id",
        ),
        (mapping(audience_id, rows=[[{"id": EMAIL_HASH, "audience_ids": ["404"]}, {}]]), "batch_data[0][0]"),
        (
            mapping(audience_id, rows=[[{"id": EMAIL_HASH, "audience_ids": [other_advertisers]}, {}]]),
            "batch_data[0][0]",
        ),
        (mapping(audience_id, rows=[]), "batch_data"),
    ]
    for body, field in cases:
        answer = post(fake, MAPPING, body).json()
        assert answer["code"] == 40002, (body, answer)
        assert answer["message"].startswith(field), (field, answer["message"])
    assert fake.audience_members(audience_id) == {}


def test_mapping_batch_is_atomic(fake):
    audience_id = create_audience(fake)
    rows = [
        [{"id": EMAIL_HASH, "audience_ids": [audience_id]}, {}],
        [{}, {"id": "not-a-hash", "audience_ids": [audience_id]}],
    ]
    answer = post(fake, MAPPING, mapping(audience_id, rows=rows)).json()
    assert answer["code"] == 40002
    assert "batch_data[1][1]" in answer["message"]
    assert fake.audience_members(audience_id) == {}


def test_md5_id_types_take_32_hex(fake):
    audience_id = create_audience(fake)
    rows = [[{"id": "0" * 32, "audience_ids": [audience_id]}]]
    assert post(fake, MAPPING, mapping(audience_id, rows=rows, id_schema=["IDFA_MD5"])).json()["code"] == 0
    rows = [[{"id": "0" * 64, "audience_ids": [audience_id]}]]
    assert post(fake, MAPPING, mapping(audience_id, rows=rows, id_schema=["IDFA_MD5"])).json()["code"] == 40002


def lookalike(source_id, size="BALANCED", **spec):
    return {
        "advertiser_id": ADVERTISER,
        "custom_audience_name": "Like buyers",
        "lookalike_spec": {"source_audience_id": source_id, "audience_size": size, **spec},
    }


def fill(fake, audience_id, people):
    rows = [[{"id": sha256_email(f"p{index}@example.com"), "audience_ids": [audience_id]}] for index in range(people)]
    assert post(fake, MAPPING, mapping(audience_id, rows=rows, id_schema=["EMAIL_SHA256"])).json()["code"] == 0


def test_lookalike_needs_a_big_enough_real_source(fake):
    source = create_audience(fake)
    fill(fake, source, 99)
    assert post(fake, LOOKALIKE, lookalike(source)).json()["code"] == 40002  # fewer than 100 people
    fill(fake, source, 100)

    answer = post(fake, LOOKALIKE, lookalike(source, include_source=False, location_ids=["6252001"])).json()
    assert answer["code"] == 0
    lookalike_id = answer["data"]["audience_id"]
    assert fake.audiences()[lookalike_id]["type"] == "LOOKALIKE"

    assert post(fake, LOOKALIKE, lookalike(lookalike_id)).json()["code"] == 40002  # a lookalike of a lookalike
    assert post(fake, LOOKALIKE, lookalike(source, size="HUGE")).json()["code"] == 40002
    assert post(fake, LOOKALIKE, lookalike("404")).json()["code"] == 40002
    rows = [[{"id": EMAIL_HASH, "audience_ids": [lookalike_id]}]]
    assert post(fake, MAPPING, mapping(lookalike_id, rows=rows, id_schema=["EMAIL_SHA256"])).json()["code"] == 40002


def test_audience_calls_need_a_token(fake):
    body = {"advertiser_id": ADVERTISER, "custom_audience_name": "A", "action": "create"}
    assert post(fake, AUDIENCE, body, token=None).json()["code"] == 40105


# --- running standalone ---------------------------------------------------------------


def test_standalone_process_prints_url_and_serves():
    process = subprocess.Popen(
        [sys.executable, "-m", "tiktok_ads.fake_server", "--port", "0", "--rate-limit", "10"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        response = requests.post(url + TRACK, json=track_body(), headers={"Access-Token": TOKEN}, timeout=5)
        assert response.json()["code"] == 0
        assert len(requests.get(url + "/__fake__/events", timeout=5).json()) == 1
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_main_and_management_command_build_the_same_fake(monkeypatch):
    served = []
    monkeypatch.setattr(FakeTikTok, "serve_forever", lambda self, announce: served.append(copy.copy(vars(self))))
    main(["--port", "0", "--rate-limit", "7", "--pixel", f"{PIXEL}:{TOKEN}"])

    from tiktok_ads.management.commands.fake_tiktok import Command

    command = Command()
    options = vars(command.create_parser("manage.py", "fake_tiktok").parse_args(["--port", "0", "--rate-limit", "7"]))
    command.handle(**options)

    assert [s["rate_limit"] for s in served] == [7, 7]
    assert served[0]["_pixel_tokens"] == {PIXEL: {TOKEN}}


# --- Login Kit v2 (OAuth for the web) --------------------------------------------


LOGIN_CLIENT = "awlogin1"
LOGIN_SECRET = "login-secret"
LOGIN_REDIRECT = "https://trk.example.com/tiktok/callback"


@pytest.fixture
def login_fake(fake):
    fake.add_login_client(LOGIN_CLIENT, LOGIN_SECRET, LOGIN_REDIRECT)
    return fake


def authorize(fake, **overrides):
    params = {"client_key": LOGIN_CLIENT, "scope": "user.info.basic", "response_type": "code",
              "redirect_uri": LOGIN_REDIRECT, "state": "st-1", **overrides}  # fmt: skip
    return requests.get(f"{fake.url}/v2/auth/authorize/", params=params, allow_redirects=False, timeout=5)


def redirected_query(response) -> dict:
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(LOGIN_REDIRECT + "?")
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def token(fake, **form):
    body = {"client_key": LOGIN_CLIENT, "client_secret": LOGIN_SECRET, "grant_type": "authorization_code",
            "redirect_uri": LOGIN_REDIRECT, **form}  # fmt: skip
    return requests.post(f"{fake.url}/v2/oauth/token/", data=body, timeout=5)


def user_info(fake, access_token, fields="open_id,union_id,avatar_url,display_name"):
    headers = {"Authorization": f"Bearer {access_token}"}
    return requests.get(f"{fake.url}/v2/user/info/", params={"fields": fields}, headers=headers, timeout=5)


def test_login_authorize_redirects_back_with_code_scopes_and_state(login_fake):
    back = redirected_query(authorize(login_fake, scope="user.info.basic,video.list"))
    assert set(back) == {"code", "scopes", "state"}
    assert (back["scopes"], back["state"]) == ("user.info.basic,video.list", "st-1")


def test_login_authorize_refusals(login_fake):
    assert authorize(login_fake, client_key="unknown").status_code == 400  # no redirect to an unknown app
    assert authorize(login_fake, redirect_uri="https://evil.example/cb").status_code == 400
    assert redirected_query(authorize(login_fake, scope="user.info.everything"))["error"] == "invalid_scope"
    assert redirected_query(authorize(login_fake, response_type="token"))["error"] == "unsupported_response_type"
    login_fake.deny_next_login()
    denied = redirected_query(authorize(login_fake))
    assert (denied["error"], denied["state"]) == ("access_denied", "st-1")
    assert "code" in redirected_query(authorize(login_fake))  # only the next one was denied


def test_login_token_exchange_and_user_info(login_fake):
    login_fake.set_login_user(open_id="oid-1", union_id="uid-1", display_name="Ana", avatar_url="https://x/a.jpg")
    code = redirected_query(authorize(login_fake))["code"]
    answer = token(login_fake, code=code)
    body = answer.json()
    assert answer.status_code == 200 and set(body) == {
        "access_token", "expires_in", "open_id", "refresh_expires_in", "refresh_token", "scope", "token_type",
    }  # fmt: skip
    assert (body["open_id"], body["scope"], body["token_type"], body["expires_in"]) == (
        "oid-1", "user.info.basic", "Bearer", 86400,
    )  # fmt: skip
    info = user_info(login_fake, body["access_token"])
    assert info.status_code == 200 and info.json()["data"] == {
        "user": {"open_id": "oid-1", "union_id": "uid-1", "avatar_url": "https://x/a.jpg", "display_name": "Ana"}
    }
    assert info.json()["error"]["code"] == "ok"
    assert user_info(login_fake, body["access_token"], fields="display_name").json()["data"] == {
        "user": {"display_name": "Ana"}
    }


def test_login_token_errors(login_fake):
    code = redirected_query(authorize(login_fake))["code"]
    assert token(login_fake, code=code, client_secret="wrong").json()["error"] == "invalid_client"
    assert token(login_fake, code=code).status_code == 200  # an unauthenticated client could not burn it
    assert token(login_fake, code=code).json()["error"] == "invalid_grant"  # one use only
    other = redirected_query(authorize(login_fake))["code"]
    mismatch = token(login_fake, code=other, redirect_uri="https://trk.example.com/other")
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "invalid_grant"
    assert set(mismatch.json()) == {"error", "error_description", "log_id"}
    assert token(login_fake, code="x", grant_type="password").json()["error"] == "unsupported_grant_type"
    as_json = requests.post(f"{login_fake.url}/v2/oauth/token/", json={"client_key": LOGIN_CLIENT}, timeout=5)
    assert as_json.json()["error"] == "invalid_request"


def test_login_refresh_rotates_the_refresh_token(login_fake):
    first = token(login_fake, code=redirected_query(authorize(login_fake))["code"]).json()
    refreshed = token(login_fake, grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    assert refreshed["access_token"] != first["access_token"] and refreshed["open_id"] == first["open_id"]
    reused = token(login_fake, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert reused.json()["error"] == "invalid_grant"
    assert user_info(login_fake, refreshed["access_token"]).status_code == 200


def test_login_user_info_errors(login_fake):
    access_token = token(login_fake, code=redirected_query(authorize(login_fake))["code"]).json()["access_token"]
    invalid = user_info(login_fake, "act.not-issued")
    assert (invalid.status_code, invalid.json()["error"]["code"]) == (401, "access_token_invalid")
    assert invalid.json()["data"] == {}
    out_of_scope = user_info(login_fake, access_token, fields="open_id,follower_count")
    assert (out_of_scope.status_code, out_of_scope.json()["error"]["code"]) == (401, "scope_not_authorized")
    assert user_info(login_fake, access_token, fields="").json()["error"]["code"] == "invalid_params"
    assert user_info(login_fake, access_token, fields="password").json()["error"]["code"] == "invalid_params"


def test_login_requests_are_logged(login_fake):
    code = redirected_query(authorize(login_fake))["code"]
    token(login_fake, code=code)
    authorize_entry, token_entry = login_fake.requests
    assert (authorize_entry["method"], authorize_entry["path"], authorize_entry["http_status"]) == (
        "GET", "/v2/auth/authorize/", 302,
    )  # fmt: skip
    assert authorize_entry["query"]["state"] == "st-1"
    assert token_entry["body"] == {"client_key": LOGIN_CLIENT, "client_secret": LOGIN_SECRET, "code": code,
                                   "grant_type": "authorization_code", "redirect_uri": LOGIN_REDIRECT}  # fmt: skip


def test_login_control_endpoints(fake):
    control = f"{fake.url}/__fake__/login/"
    requests.post(control + "clients", json={"client_key": LOGIN_CLIENT, "client_secret": LOGIN_SECRET,
                                             "redirect_uri": LOGIN_REDIRECT}, timeout=5)  # fmt: skip
    requests.post(control + "user", json={"open_id": "ctl-1", "display_name": "Ctl"}, timeout=5)
    requests.post(control + "deny", json={"n": 1}, timeout=5)
    assert redirected_query(authorize(fake))["error"] == "access_denied"
    answer = token(fake, code=redirected_query(authorize(fake))["code"]).json()
    assert answer["open_id"] == "ctl-1"

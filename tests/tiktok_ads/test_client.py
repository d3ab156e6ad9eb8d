import json
import pickle
import time
import types

import pytest

from tiktok_ads.client import (
    RESPONSE_TEXT_LIMIT,
    TikTokClient,
    TikTokError,
    client_for,
    parse_response,
)
from tiktok_ads.fake_server import FakeTikTok
from tiktok_ads.hashing import sha256_email, sha256_phone

TOKEN = "test-access-token"
PIXEL = "CPIXEL123"
ADVERTISER = "7000000000000000001"


@pytest.fixture
def fake():
    with FakeTikTok(port=0, rate_limit=0, timeout_delay=2) as server:
        yield server


@pytest.fixture
def client(fake):
    api = TikTokClient(fake.url, TOKEN, timeout=2)
    yield api
    api.close()


def purchase(event_id="order_1", **overrides):
    event = {
        "event": "CompletePayment",
        "event_time": int(time.time()),
        "event_id": event_id,
        "user": {
            "email": sha256_email(" John@Example.COM "),
            "phone": sha256_phone("+1 (213) 373-4253"),
            "ttclid": "E.C.P.abc",
            "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0",
        },
        "properties": {
            "value": 0,
            "currency": "EUR",
            "content_type": "product",
            "contents": [{"content_id": "ticket_789", "quantity": 2, "price": 75.0}],
        },
        "page": {"url": "https://example.com/checkout"},
    }
    event.update(overrides)
    return event


# --- what goes on the wire ------------------------------------------------------


def test_track_events_sends_the_v13_body_and_access_token_header(fake, client):
    event = purchase()
    response = client.track_events(pixel_code=PIXEL, events=[event], test_event_code="TEST123")

    (request,) = fake.requests
    assert request["path"] == "/open_api/v1.3/event/track/"
    assert request["headers"]["Access-Token"] == TOKEN
    assert "Authorization" not in request["headers"]
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == {
        "event_source": "web",
        "event_source_id": PIXEL,
        "data": [event],
        "test_event_code": "TEST123",
    }
    assert response.code == 0
    assert response.message == "OK"
    assert response.http_status == 200
    assert response.request_id
    assert json.loads(response.response_text)["request_id"] == response.request_id


def test_optional_fields_are_sent_only_when_given(fake, client):
    client.track_events(pixel_code=PIXEL, events=[purchase()])
    client.track_events(pixel_code=PIXEL, events=[purchase("order_2")], partner_name="Tracker")

    first, second = (r["body"] for r in fake.requests)
    assert "test_event_code" not in first and "partner_name" not in first
    assert second["partner_name"] == "Tracker"


def test_accepted_events_keep_zero_value_and_request_fields(fake, client):
    response = client.track_events(pixel_code=PIXEL, events=[purchase()], test_event_code="T1")

    (accepted,) = fake.accepted_events()
    assert accepted["properties"]["value"] == 0
    assert accepted["pixel_code"] == PIXEL
    assert accepted["test_event_code"] == "T1"
    assert accepted["request_id"] == response.request_id


@pytest.mark.parametrize("events", [[], [{"event": "X"}] * 1001])
def test_track_events_refuses_empty_or_oversized_batches(client, events):
    with pytest.raises(ValueError):
        client.track_events(pixel_code=PIXEL, events=events)


# --- error classification ---------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "code", "http_status"),
    [
        ("code:40100", 40100, 200),
        ("code:50000", 50000, 200),
        ("code:50002", 50002, 200),
        ("http500", None, 500),
        ("http503", None, 503),
        ("http429", None, 429),
        ("malformed", None, 200),
    ],
)
def test_retryable_failures(fake, client, mode, code, http_status):
    fake.fail_next(1, mode)
    with pytest.raises(TikTokError) as caught:
        client.track_events(pixel_code=PIXEL, events=[purchase()])
    error = caught.value
    assert error.retryable is True
    assert error.code == code
    assert error.http_status == http_status
    assert fake.accepted_events() == []


@pytest.mark.parametrize(
    ("mode", "code", "http_status"),
    [
        ("code:40001", 40001, 200),
        ("code:40002", 40002, 200),
        ("code:40003", 40003, 200),
        ("code:40105", 40105, 200),
        ("code:41000", 41000, 200),
        ("http400", None, 400),
        ("http404", None, 404),
    ],
)
def test_non_retryable_failures(fake, client, mode, code, http_status):
    fake.fail_next(1, mode)
    with pytest.raises(TikTokError) as caught:
        client.track_events(pixel_code=PIXEL, events=[purchase()])
    error = caught.value
    assert error.retryable is False
    assert error.code == code
    assert error.http_status == http_status


def test_code_error_carries_request_id_and_response_text(fake, client):
    fake.fail_next(1, "code:40002")
    with pytest.raises(TikTokError) as caught:
        client.track_events(pixel_code=PIXEL, events=[purchase()])
    body = json.loads(caught.value.response_text)
    assert caught.value.request_id == body["request_id"]
    assert caught.value.message == body["message"]


def test_timeout_is_retryable(fake):
    fake.fail_next(1, "timeout")
    api = TikTokClient(fake.url, TOKEN, timeout=0.2)
    with pytest.raises(TikTokError) as caught:
        api.track_events(pixel_code=PIXEL, events=[purchase()])
    assert caught.value.retryable is True
    assert caught.value.code is None
    assert caught.value.http_status is None


def test_connection_refused_is_retryable():
    with FakeTikTok(port=0) as server:
        closed_url = server.url
    api = TikTokClient(closed_url, TOKEN, timeout=1)
    with pytest.raises(TikTokError) as caught:
        api.track_events(pixel_code=PIXEL, events=[purchase()])
    assert caught.value.retryable is True


def test_bad_base_url_is_not_retryable():
    api = TikTokClient("not-a-url", TOKEN)
    with pytest.raises(TikTokError) as caught:
        api.track_events(pixel_code=PIXEL, events=[purchase()])
    assert caught.value.retryable is False


def test_validation_failure_from_the_fake_is_not_retryable_and_names_the_item(fake, client):
    good = purchase("order_1")
    in_milliseconds = purchase("order_2", event_time=int(time.time() * 1000))
    with pytest.raises(TikTokError) as caught:
        client.track_events(pixel_code=PIXEL, events=[good, in_milliseconds])
    assert caught.value.code == 40002
    assert caught.value.retryable is False
    assert "data[1].event_time" in caught.value.message
    assert fake.accepted_events() == []


def test_invalid_token_is_not_retryable(fake):
    api = TikTokClient(fake.url, "", timeout=2)
    with pytest.raises(TikTokError) as caught:
        api.track_events(pixel_code=PIXEL, events=[purchase()])
    assert (caught.value.code, caught.value.retryable) == (40105, False)


def test_pixel_of_another_token_is_no_permission(fake, client):
    fake.add_pixel(PIXEL, "someone-else")
    fake.add_pixel("COURS", TOKEN)
    with pytest.raises(TikTokError) as caught:
        client.track_events(pixel_code=PIXEL, events=[purchase()])
    assert (caught.value.code, caught.value.retryable) == (40001, False)
    assert client.track_events(pixel_code="COURS", events=[purchase()]).code == 0


def test_rate_limit_is_a_retryable_40100():
    with FakeTikTok(port=0, rate_limit=10, rate_period_s=60) as server:
        api = TikTokClient(server.url, TOKEN, timeout=2)
        outcomes = []
        for index in range(15):
            try:
                api.track_events(pixel_code=PIXEL, events=[purchase(f"order_{index}")])
                outcomes.append("ok")
            except TikTokError as error:
                assert error.retryable is True
                outcomes.append(error.code)
    assert outcomes.count("ok") == 10
    assert outcomes.count(40100) == 5
    assert len(server.accepted_events()) == 10


def test_parse_response_rules():
    ok = parse_response(200, json.dumps({"code": 0, "message": "OK", "request_id": "r1", "data": {"a": 1}}))
    assert (ok.code, ok.request_id, ok.data) == (0, "r1", {"a": 1})
    for status, text, retryable in [
        (200, "[]", True),  # JSON but not an object
        (200, json.dumps({"message": "no code"}), True),
        (200, json.dumps({"code": "40100", "message": "Too many requests"}), True),
        (502, "", True),
        (401, json.dumps({"code": 40105, "message": "Access token is invalid"}), False),
    ]:
        with pytest.raises(TikTokError) as caught:
            parse_response(status, text)
        assert caught.value.retryable is retryable, (status, text)


def test_response_text_is_truncated():
    text = json.dumps({"code": 40002, "message": "x" * 5000})
    with pytest.raises(TikTokError) as caught:
        parse_response(200, text)
    assert len(caught.value.response_text) == RESPONSE_TEXT_LIMIT


def test_error_survives_pickling():
    error = TikTokError("Too many requests", retryable=True, code=40100, http_status=200, request_id="r")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.retryable, copy.code, copy.http_status, copy.request_id) == (
        "Too many requests",
        True,
        40100,
        200,
        "r",
    )


# --- audiences ----------------------------------------------------------------------


def test_audience_create_sends_the_documented_body(fake, client):
    audience_id = client.audience_create(advertiser_id=ADVERTISER, name="Past ticket buyers")

    (request,) = fake.requests
    assert request["path"] == "/open_api/v1.3/segment/audience/"
    assert request["body"] == {
        "advertiser_id": ADVERTISER,
        "custom_audience_name": "Past ticket buyers",
        "action": "create",
    }
    assert fake.audiences()[audience_id]["name"] == "Past ticket buyers"


def test_audience_members_rows_line_up_with_id_schema(fake, client):
    audience_id = client.audience_create(advertiser_id=ADVERTISER, name="Buyers")
    email, phone = sha256_email("a@example.com"), sha256_phone("+12133734253")
    client.audience_members(
        advertiser_id=ADVERTISER,
        audience_id=audience_id,
        action="add",
        id_schema=["EMAIL_SHA256", "PHONE_SHA256"],
        rows=[[email, phone], [None, phone], [None, None]],
    )

    body = fake.requests[-1]["body"]
    assert fake.requests[-1]["path"] == "/open_api/v1.3/segment/mapping/"
    assert body == {
        "advertiser_ids": [ADVERTISER],
        "action": "add",
        "id_schema": ["EMAIL_SHA256", "PHONE_SHA256"],
        "batch_data": [
            [{"id": email, "audience_ids": [audience_id]}, {"id": phone, "audience_ids": [audience_id]}],
            [{}, {"id": phone, "audience_ids": [audience_id]}],
        ],
    }
    assert fake.audience_members(audience_id) == {"EMAIL_SHA256": {email}, "PHONE_SHA256": {phone}}

    client.audience_members(
        advertiser_id=ADVERTISER,
        audience_id=audience_id,
        action="delete",
        id_schema=["EMAIL_SHA256"],
        rows=[[email]],
    )
    assert fake.audience_members(audience_id)["EMAIL_SHA256"] == set()


def test_audience_members_refuses_misaligned_rows_and_bad_actions(client):
    with pytest.raises(ValueError):
        client.audience_members(
            advertiser_id=ADVERTISER, audience_id="1", action="add", id_schema=["EMAIL_SHA256"], rows=[["a", "b"]]
        )
    with pytest.raises(ValueError):
        client.audience_members(
            advertiser_id=ADVERTISER, audience_id="1", action="APPEND", id_schema=["EMAIL_SHA256"], rows=[["a"]]
        )


def test_audience_members_on_unknown_audience_is_rejected_by_the_fake(client):
    with pytest.raises(TikTokError) as caught:
        client.audience_members(
            advertiser_id=ADVERTISER,
            audience_id="999",
            action="add",
            id_schema=["EMAIL_SHA256"],
            rows=[[sha256_email("a@example.com")]],
        )
    assert (caught.value.code, caught.value.retryable) == (40002, False)


# --- settings ---------------------------------------------------------------------


def test_client_for_reads_settings_lazily(monkeypatch):
    fake_settings = types.SimpleNamespace(TIKTOK_API_BASE_URL="http://127.0.0.1:9555/", TIKTOK_HTTP_TIMEOUT=3)
    monkeypatch.setattr("django.conf.settings", fake_settings)
    api = client_for("tok")
    assert (api.base_url, api.access_token, api.timeout) == ("http://127.0.0.1:9555", "tok", 3.0)

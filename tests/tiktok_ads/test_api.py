"""The seed's TikTok Ads API: connection, connect, events (hashed before storage), batches, status."""

import hashlib
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tiktok_ads.crypto import decrypt_token
from tiktok_ads.models import Pixel, TikTokEvent
from tiktok_ads.outbox import event_queue
from tiktok_ads.pixels import pixel_connect

pytestmark = pytest.mark.django_db

BASE = "/api/integrations/tiktok-ads"
CONNECTION, CONNECT, EVENTS, BATCH = f"{BASE}/connection", f"{BASE}/connect", f"{BASE}/events", f"{BASE}/events/batch"
TOKEN = "tok-live-abcdef123456"
SEED_TOKEN = "token_ul_tau_de_acces"
EMAIL_SHA256 = hashlib.sha256(b"client@exemplu.com").hexdigest()
PHONE_SHA256 = hashlib.sha256(b"+40721234567").hexdigest()
EXTERNAL_ID_SHA256 = hashlib.sha256(b"user_456").hexdigest()
RAW_PII = ("client@exemplu.com", "Client@Exemplu.com", "exemplu", "+40721234567", "40721234567", "0721 234 567",
           "user_456", "User_456")  # fmt: skip
USER_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"


def recent(seconds_ago: int = 60) -> int:
    return int(time.time()) - seconds_ago


def seed_event(event_id: str = "order_123", **overrides) -> dict:
    """The seed's "Trimitere Eveniment" body (with a recent event_time and a ttclid)."""
    body = {
        "event_type": "CompletePayment",
        "event_time": recent(),
        "event_id": event_id,
        "user": {
            "email": "client@exemplu.com",
            "phone": "+40721234567",
            "external_id": "user_456",
            "ttclid": "E.C.P.abc123",
        },  # fmt: skip
        "properties": {
            "value": 150.00,
            "currency": "EUR",
            "content_type": "product",
            "contents": [
                {"content_id": "ticket_789", "content_name": "Concert VIP Pass", "quantity": 2, "price": 75.00}
            ],  # fmt: skip
        },
        "context": {
            "page_url": "https://site-ul-tau.com/checkout/complete",
            "user_agent": USER_AGENT,
            "ip": "192.168.1.1",
        },  # fmt: skip
    }
    body.update(overrides)
    return body


def stored_row_text(row: TikTokEvent) -> str:
    """Every column of the row as it is in the database, as one string to search."""
    row.refresh_from_db()
    return json.dumps({field.attname: getattr(row, field.attname) for field in row._meta.concrete_fields}, default=str)


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def main_pixel(db) -> Pixel:
    return pixel_connect(pixel_code="CXXXXXX", access_token=TOKEN, advertiser_id="123456789", name="Main")[0]


@pytest.fixture
def other_pixel(main_pixel) -> Pixel:
    return pixel_connect(pixel_code="COTHER1", access_token="tok-other-999999zzzz", name="Other")[0]


# --- Auth ---------------------------------------------------------------------------------------

ENDPOINTS = [
    ("get", CONNECTION),
    ("post", CONNECT),
    ("post", EVENTS),
    ("post", BATCH),
    ("get", f"{EVENTS}/order_123"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_intake_key_is_refused_with_403(bot_api, main_pixel, method, path):
    response = getattr(bot_api, method)(path, seed_event() if method == "post" else None, format="json")

    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    assert not TikTokEvent.objects.exists()


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_key_is_401(db, main_pixel, method, path):
    response = getattr(APIClient(), method)(path, seed_event() if method == "post" else None, format="json")

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert not TikTokEvent.objects.exists()


# --- Connection ---------------------------------------------------------------------------------


def test_connection_without_pixels_is_not_connected(management_api):
    response = management_api.get(CONNECTION)

    assert response.status_code == 200
    assert response.json() == {"connected": False, "pixel_id": None, "advertiser_id": None, "test_mode": False,
                               "last_event_sent": None, "pixels": []}  # fmt: skip


def test_connection_answers_for_the_default_pixel_and_lists_all(management_api, main_pixel, other_pixel):
    sent_at = timezone.now().replace(microsecond=0)
    for event_id, moment in (("sent-today", sent_at), ("sent-yesterday", sent_at - timedelta(days=1))):
        row, _ = event_queue(pixel=main_pixel, event_id=event_id, event="ViewContent", event_time=moment,
                             payload={"event": "ViewContent"}, source="api")  # fmt: skip
        TikTokEvent.objects.filter(pk=row.pk).update(status="sent", sent_at=moment)
    event_queue(pixel=main_pixel, event_id="queued", event="ViewContent", event_time=sent_at, payload={}, source="api")

    response = management_api.get(CONNECTION)

    assert response.status_code == 200
    body = response.json()
    assert body == {
        "connected": True,
        "pixel_id": "CXXXXXX",
        "advertiser_id": "123456789",
        "test_mode": False,
        "last_event_sent": iso(sent_at),
        "pixels": [
            {"connected": True, "pixel_id": "CXXXXXX", "advertiser_id": "123456789", "test_mode": False,
             "last_event_sent": iso(sent_at), "name": "Main", "is_default": True, "is_active": True,
             "token": "…3456", "token_invalid": False, "events_sent_today": 1, "daily_quota": 50_000,
             "quota_left_today": 49_999},
            {"connected": True, "pixel_id": "COTHER1", "advertiser_id": "", "test_mode": False,
             "last_event_sent": None, "name": "Other", "is_default": False, "is_active": True,
             "token": "…zzzz", "token_invalid": False, "events_sent_today": 0, "daily_quota": 50_000,
             "quota_left_today": 50_000},
        ],
    }  # fmt: skip
    assert TOKEN not in response.content.decode() and "tok-other" not in response.content.decode()


def test_connection_for_a_named_pixel_with_a_rejected_token(management_api, main_pixel, other_pixel):
    Pixel.objects.filter(pk=other_pixel.pk).update(token_invalid=True, test_mode=True, daily_quota=10)

    body = management_api.get(CONNECTION, {"pixel_id": "COTHER1"}).json()

    assert (body["connected"], body["pixel_id"], body["test_mode"]) == (False, "COTHER1", True)
    other = next(pixel for pixel in body["pixels"] if pixel["pixel_id"] == "COTHER1")
    assert (other["connected"], other["token_invalid"], other["quota_left_today"]) == (False, True, 10)


def test_connection_for_an_unknown_pixel_is_404(management_api, main_pixel):
    response = management_api.get(CONNECTION, {"pixel_id": "CNOPE"})

    assert response.status_code == 404
    assert response.json()["fields"] == {"pixel_id": ["No pixel with this pixel_id."]}


# --- Connect ------------------------------------------------------------------------------------


def test_connect_creates_then_updates_and_never_returns_the_token(management_api):
    seed = {"pixel_id": "CXXXXXX", "access_token": SEED_TOKEN, "advertiser_id": "123456789"}

    created = management_api.post(CONNECT, seed, format="json")

    assert created.status_code == 201
    assert SEED_TOKEN not in created.content.decode()
    body = created.json()
    assert {key: body[key] for key in ("connected", "pixel_id", "advertiser_id", "test_mode", "last_event_sent")} == {
        "connected": True, "pixel_id": "CXXXXXX", "advertiser_id": "123456789", "test_mode": False,
        "last_event_sent": None}  # fmt: skip
    assert [(pixel["pixel_id"], pixel["token"], pixel["is_default"]) for pixel in body["pixels"]] == [
        ("CXXXXXX", "…cces", True)
    ]
    pixel = Pixel.objects.get()
    assert decrypt_token(pixel.access_token_encrypted) == SEED_TOKEN
    assert SEED_TOKEN not in pixel.access_token_encrypted
    Pixel.objects.filter(pk=pixel.pk).update(token_invalid=True)

    changes = {
        "access_token": "new-token-7777WXYZ",
        "name": "Concerts",
        "test_mode": True,
        "test_event_code": "TEST12345",
    }
    updated = management_api.post(CONNECT, {**seed, **changes}, format="json")

    assert updated.status_code == 200
    assert "new-token-7777WXYZ" not in updated.content.decode()
    body = updated.json()
    assert (body["connected"], body["test_mode"]) == (True, True)
    assert [(pixel["token"], pixel["name"], pixel["token_invalid"]) for pixel in body["pixels"]] == [
        ("…WXYZ", "Concerts", False)
    ]
    pixel = Pixel.objects.get()
    assert decrypt_token(pixel.access_token_encrypted) == "new-token-7777WXYZ"
    assert (pixel.test_mode, pixel.test_event_code, pixel.advertiser_id) == (True, "TEST12345", "123456789")


def test_connect_a_second_pixel_as_the_default(management_api, main_pixel):
    response = management_api.post(CONNECT, {"pixel_id": "CSECOND", "access_token": "second-token-1234",
                                             "make_default": True}, format="json")  # fmt: skip

    assert response.status_code == 201
    assert response.json()["pixel_id"] == "CSECOND"
    assert list(Pixel.objects.filter(is_default=True).values_list("pixel_code", flat=True)) == ["CSECOND"]
    assert management_api.get(CONNECTION).json()["pixel_id"] == "CSECOND"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pixel_id": "CXXXXXX"}, "access_token"),
        ({"pixel_id": "CXXXXXX", "access_token": "has a space in it"}, "access_token"),
        ({"access_token": SEED_TOKEN}, "pixel_id"),
        ({"pixel_id": "C X", "access_token": SEED_TOKEN}, "pixel_id"),
        ({"pixel_id": "CXXXXXX", "access_token": SEED_TOKEN, "advertiser_id": "adv-1"}, "advertiser_id"),
    ],
)
def test_connect_rejects_bad_input_naming_the_field(management_api, body, field):
    response = management_api.post(CONNECT, body, format="json")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert "has a space" not in response.content.decode() and SEED_TOKEN not in response.content.decode()
    assert not Pixel.objects.exists()


# --- One event ----------------------------------------------------------------------------------


def test_seed_event_is_stored_as_a_hashed_v13_item(management_api, main_pixel):
    body = seed_event()

    response = management_api.post(EVENTS, body, format="json")

    assert response.status_code == 202
    assert response.json() == {"success": True, "event_id": "order_123", "status": "queued", "duplicate": False}
    row = TikTokEvent.objects.get()
    assert (row.pixel, row.event, row.event_id, row.source, row.status) == (
        main_pixel, "CompletePayment", "order_123", "api", "queued")  # fmt: skip
    assert int(row.event_time.timestamp()) == body["event_time"]
    assert row.payload == {
        "event": "CompletePayment",
        "event_time": body["event_time"],
        "event_id": "order_123",
        "user": {
            "email": EMAIL_SHA256,
            "phone": PHONE_SHA256,
            "external_id": EXTERNAL_ID_SHA256,
            "ttclid": "E.C.P.abc123",
            "ip": "192.168.1.1",
            "user_agent": USER_AGENT,
        },  # fmt: skip
        "properties": {
            "value": 150.0,
            "currency": "EUR",
            "content_type": "product",
            "contents": [
                {"content_id": "ticket_789", "content_name": "Concert VIP Pass", "quantity": 2, "price": 75.0}
            ],  # fmt: skip
        },
        "page": {"url": "https://site-ul-tau.com/checkout/complete"},
    }
    assert isinstance(row.payload["event_time"], int)
    stored = stored_row_text(row)
    assert not [raw for raw in RAW_PII if raw in stored]


def test_pii_is_normalised_before_hashing_and_hashes_are_kept(management_api, main_pixel):
    already_hashed = EMAIL_SHA256.upper()
    body = seed_event(user={"email": " Client@Exemplu.com ", "phone": "+40 721 234 567", "external_id": " User_456 ",
                            "ttp": "ttp-cookie", "locale": "ro_RO"})  # fmt: skip
    second = seed_event("order_124", user={"email": already_hashed, "phone": PHONE_SHA256})

    assert management_api.post(EVENTS, body, format="json").status_code == 202
    assert management_api.post(EVENTS, second, format="json").status_code == 202

    first_row, second_row = TikTokEvent.objects.order_by("id")
    assert first_row.payload["user"] == {"email": EMAIL_SHA256, "phone": PHONE_SHA256,
                                         "external_id": EXTERNAL_ID_SHA256, "ttp": "ttp-cookie", "locale": "ro_RO",
                                         "ip": "192.168.1.1", "user_agent": USER_AGENT}  # fmt: skip
    assert (second_row.payload["user"]["email"], second_row.payload["user"]["phone"]) == (EMAIL_SHA256, PHONE_SHA256)
    for row in (first_row, second_row):
        stored = stored_row_text(row)
        assert not [raw for raw in (*RAW_PII, "+40 721 234 567") if raw in stored]


def test_repeat_of_an_event_id_is_a_duplicate_and_writes_nothing(management_api, main_pixel):
    management_api.post(EVENTS, seed_event(), format="json")
    TikTokEvent.objects.update(status="sent")
    before = TikTokEvent.objects.values().get()

    response = management_api.post(EVENTS, seed_event(event_type="AddToCart", properties={}), format="json")

    assert response.status_code == 200
    assert response.json() == {"success": True, "event_id": "order_123", "status": "sent", "duplicate": True}
    assert TikTokEvent.objects.values().get() == before


def test_same_event_id_on_another_pixel_is_a_new_event(management_api, main_pixel, other_pixel):
    management_api.post(EVENTS, seed_event(), format="json")

    response = management_api.post(EVENTS, seed_event(pixel_id="COTHER1", test_event_code="TEST1"), format="json")

    assert response.status_code == 202
    row = TikTokEvent.objects.get(pixel=other_pixel)
    assert (row.event_id, row.test_event_code) == ("order_123", "TEST1")
    assert TikTokEvent.objects.get(pixel=main_pixel).test_event_code == ""


def test_minimal_event_with_the_v13_name_defaults_event_time_to_now(management_api, main_pixel):
    before = int(time.time())

    response = management_api.post(EVENTS, {"event": "ViewContent", "event_id": "view-1"}, format="json")

    assert response.status_code == 202
    row = TikTokEvent.objects.get()
    assert before <= row.payload["event_time"] <= int(time.time())
    assert row.payload == {"event": "ViewContent", "event_time": row.payload["event_time"], "event_id": "view-1"}


def test_custom_event_name_and_page_referrer(management_api, main_pixel):
    body = {"event_type": "Ticket_Scan2", "event_id": "scan-1", "properties": {"value": 0, "currency": "ron"},
            "context": {"page_url": "https://example.com/a", "referrer": "https://www.tiktok.com/",
                        "ttclid": "ctx-ttclid", "ttp": "ctx-ttp"}}  # fmt: skip

    assert management_api.post(EVENTS, body, format="json").status_code == 202

    payload = TikTokEvent.objects.get().payload
    assert payload["event"] == "Ticket_Scan2"
    assert payload["properties"] == {"value": 0.0, "currency": "RON"}
    assert payload["page"] == {"url": "https://example.com/a", "referrer": "https://www.tiktok.com/"}
    assert payload["user"] == {"ttclid": "ctx-ttclid", "ttp": "ctx-ttp"}


@pytest.mark.parametrize(
    ("event_time", "problem"),
    [
        (int(time.time() * 1000), "milliseconds"),
        ("2025-01-15T14:30:00Z", "seconds"),
        (-5, "positive"),
        (1705326600.5, "seconds"),
        (True, "seconds"),
        (int(time.time()) + 86_400, "future"),
        (1705326600, "older than 7 days"),
    ],
)
def test_bad_event_time_is_400_naming_event_time(management_api, main_pixel, event_time, problem):
    response = management_api.post(EVENTS, seed_event(event_time=event_time), format="json")

    assert response.status_code == 400
    body = response.json()
    assert (body["error"], list(body["fields"])) == ("invalid", ["event_time"])
    assert problem in body["fields"]["event_time"][0]
    assert not TikTokEvent.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"user": {"phone": "0721 234 567"}}, "user.phone"),
        ({"user": {"phone": "+40 12"}}, "user.phone"),
        ({"user": {"email": "not-an-email"}}, "user.email"),
        ({"user": {"ip": "999.1.1.1"}}, "user.ip"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"event_type": "completepayment"}, "event_type"),
        ({"event_type": "1Bad-Name"}, "event_type"),
        ({"event_type": "AddToCart", "event": "ViewContent"}, "event_type"),
        ({"properties": {"value": 10, "currency": "XYZ"}}, "properties.currency"),
        ({"properties": {"value": 10}}, "properties.currency"),
        ({"properties": {"value": -1, "currency": "EUR"}}, "properties.value"),
        ({"properties": {"contents": [{"content_id": "a"}, {"quantity": 0}]}}, "properties.contents[1].quantity"),
        ({"context": {"page_url": "not a url"}}, "context.page_url"),
    ],
)
def test_bad_event_is_400_naming_the_field_and_stores_nothing(management_api, main_pixel, change, field):
    body = seed_event(**change)

    response = management_api.post(EVENTS, body, format="json")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    content = response.content.decode()
    assert not [raw for raw in ("0721 234 567", "+40 12", "not-an-email") if raw in content]
    assert not TikTokEvent.objects.exists()


def test_missing_event_id_and_name_are_named(management_api, main_pixel):
    response = management_api.post(EVENTS, {"user": {"email": "client@exemplu.com"}}, format="json")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"event_id"}
    response = management_api.post(EVENTS, {"event_id": "e-1"}, format="json")
    assert response.json()["fields"] == {"event_type": ["This field is required (or send event)."]}


def test_unknown_pixel_is_404_naming_pixel_id(management_api, main_pixel):
    response = management_api.post(EVENTS, seed_event(pixel_id="CNOPE"), format="json")

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "No pixel with this pixel_id.",
                               "fields": {"pixel_id": ["No pixel with this pixel_id."]}}  # fmt: skip
    assert not TikTokEvent.objects.exists()


def test_no_default_pixel_is_404_naming_pixel_id(management_api):
    response = management_api.post(EVENTS, seed_event(), format="json")

    assert response.status_code == 404
    assert list(response.json()["fields"]) == ["pixel_id"]


def test_without_consent_the_event_is_stored_skipped_when_consent_is_required(management_api, main_pixel, settings):
    settings.TIKTOK_CONSENT_REQUIRED = True

    refused = management_api.post(EVENTS, seed_event("no-consent"), format="json")
    unknown = management_api.post(EVENTS, seed_event("unknown-consent", consent=None), format="json")
    given = management_api.post(EVENTS, seed_event("consent", consent=True), format="json")

    assert refused.json() == {"success": True, "event_id": "no-consent", "status": "skipped", "duplicate": False}
    assert (refused.status_code, unknown.status_code, given.status_code) == (202, 202, 202)
    rows = {row.event_id: (row.status, row.last_message) for row in TikTokEvent.objects.all()}
    assert rows == {"no-consent": ("skipped", "no_consent"), "unknown-consent": ("skipped", "no_consent"),
                    "consent": ("queued", "")}  # fmt: skip


def test_consent_is_not_needed_when_not_required(management_api, main_pixel, settings):
    settings.TIKTOK_CONSENT_REQUIRED = False

    response = management_api.post(EVENTS, seed_event(consent=False), format="json")

    assert response.json()["status"] == "queued"


# --- Batches ------------------------------------------------------------------------------------


def test_batch_stores_all_and_reports_each_event(management_api, main_pixel, other_pixel):
    management_api.post(EVENTS, seed_event("old-1"), format="json")
    events = [seed_event("b-1"), seed_event("old-1"), seed_event("old-1", pixel_id="CXXXXXX"), seed_event("b-1"),
              {"event": "ViewContent", "event_id": "b-3", "test_event_code": ""}]  # fmt: skip

    response = management_api.post(BATCH, {"events": events, "pixel_id": "COTHER1", "test_event_code": "T1"},
                                   format="json")  # fmt: skip

    assert response.status_code == 202
    assert response.json() == {
        "accepted": 3,
        "duplicates": 2,
        "events": [
            {"event_id": "b-1", "status": "queued", "duplicate": False},
            {"event_id": "old-1", "status": "queued", "duplicate": False},
            {"event_id": "old-1", "status": "queued", "duplicate": True},
            {"event_id": "b-1", "status": "queued", "duplicate": True},
            {"event_id": "b-3", "status": "queued", "duplicate": False},
        ],
    }
    rows = {(row.pixel.pixel_code, row.event_id, row.test_event_code)
            for row in TikTokEvent.objects.select_related("pixel")}  # fmt: skip
    assert rows == {("CXXXXXX", "old-1", ""), ("COTHER1", "b-1", "T1"), ("COTHER1", "old-1", "T1"),
                    ("COTHER1", "b-3", "")}  # fmt: skip


def test_batch_event_naming_the_stored_pixel_is_a_duplicate(management_api, main_pixel):
    management_api.post(EVENTS, seed_event("b-2"), format="json")

    response = management_api.post(BATCH, {"events": [seed_event("b-2"), seed_event("b-9")]}, format="json")

    assert response.json()["events"] == [{"event_id": "b-2", "status": "queued", "duplicate": True},
                                         {"event_id": "b-9", "status": "queued", "duplicate": False}]  # fmt: skip
    assert TikTokEvent.objects.count() == 2


def test_batch_with_one_bad_event_stores_nothing_and_names_its_index(management_api, main_pixel):
    events = [seed_event(f"e-{index}") for index in range(5)]
    events[3]["user"]["phone"] = "12"
    events[1]["event_time"] = "2025-01-15T14:30:00Z"

    response = management_api.post(BATCH, {"events": events}, format="json")

    assert response.status_code == 400
    fields = response.json()["fields"]
    assert set(fields) == {"events[1].event_time", "events[3].user.phone"}
    assert fields["events[3].user.phone"][0].startswith("Invalid phone number")
    assert not TikTokEvent.objects.exists()


def test_batch_with_an_unknown_pixel_stores_nothing(management_api, main_pixel):
    events = [seed_event("e-0"), seed_event("e-1", pixel_id="CNOPE")]

    response = management_api.post(BATCH, {"events": events}, format="json")

    assert response.status_code == 404
    assert list(response.json()["fields"]) == ["events[1].pixel_id"]
    assert not TikTokEvent.objects.exists()


def test_batch_of_1000_is_accepted_and_1001_is_refused(management_api, main_pixel):
    events = [{"event": "ViewContent", "event_id": f"v-{index}"} for index in range(1001)]

    refused = management_api.post(BATCH, {"events": events}, format="json")

    assert refused.status_code == 400
    assert list(refused.json()["fields"]) == ["events"]
    assert not TikTokEvent.objects.exists()

    accepted = management_api.post(BATCH, {"events": events[:1000]}, format="json")

    assert accepted.status_code == 202
    assert (accepted.json()["accepted"], TikTokEvent.objects.count()) == (1000, 1000)


@pytest.mark.parametrize(("body", "field"), [({"events": []}, "events"), ({}, "events"), ({"events": "x"}, "events")])
def test_batch_without_events_is_400(management_api, main_pixel, body, field):
    response = management_api.post(BATCH, body, format="json")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]


# --- Event status -------------------------------------------------------------------------------


def test_event_status_shows_the_stored_event(management_api, main_pixel):
    management_api.post(EVENTS, seed_event(), format="json")
    row = TikTokEvent.objects.get()

    response = management_api.get(f"{EVENTS}/order_123")

    assert response.status_code == 200
    assert response.json() == {
        "event_id": "order_123",
        "event": "CompletePayment",
        "pixel_id": "CXXXXXX",
        "status": "queued",
        "attempts": 0,
        "last_code": None,
        "last_message": "",
        "request_id": "",
        "sent_at": None,
        "created_at": iso(row.created_at),
        "payload": row.payload,
    }
    assert "client@exemplu.com" not in response.content.decode()


def test_event_status_after_sending_and_per_pixel(management_api, main_pixel, other_pixel):
    management_api.post(EVENTS, seed_event("ev/1"), format="json")
    management_api.post(EVENTS, seed_event("ev/1", event_type="Purchase", pixel_id="COTHER1"), format="json")
    sent_at = timezone.now()
    TikTokEvent.objects.filter(pixel=other_pixel).update(status="sent", attempts=1, last_code=0, last_message="OK",
                                                         request_id="req-42", sent_at=sent_at)  # fmt: skip

    default = management_api.get(f"{EVENTS}/ev/1").json()
    other = management_api.get(f"{EVENTS}/ev/1", {"pixel_id": "COTHER1"}).json()

    assert (default["pixel_id"], default["event"], default["status"]) == ("CXXXXXX", "CompletePayment", "queued")
    assert {key: other[key] for key in ("pixel_id", "event", "status", "attempts", "last_code", "request_id")} == {
        "pixel_id": "COTHER1", "event": "Purchase", "status": "sent", "attempts": 1, "last_code": 0,
        "request_id": "req-42"}  # fmt: skip
    assert other["sent_at"] == iso(sent_at)


def test_event_status_unknown_event_or_pixel_is_404(management_api, main_pixel):
    management_api.post(EVENTS, seed_event(), format="json")

    unknown_event = management_api.get(f"{EVENTS}/nope")
    unknown_pixel = management_api.get(f"{EVENTS}/order_123", {"pixel_id": "CNOPE"})

    assert unknown_event.status_code == 404
    assert unknown_event.json()["fields"] == {"event_id": ["No event with this event_id."]}
    assert unknown_pixel.status_code == 404
    assert list(unknown_pixel.json()["fields"]) == ["pixel_id"]

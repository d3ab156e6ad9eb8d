"""tracker_client: typed calls against a live tracker; retries (5xx, connection errors) only where safe."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.stack import free_port
from tracker_client import ConversionResult, StartResult, TrackerClient, TrackerError, TrackerUnavailable


@pytest.mark.django_db(transaction=True)
def test_typed_calls_and_clear_errors(live_server, link, intake_key):
    with TrackerClient(live_server.url, intake_key) as tracker:
        start = tracker.track_start(token="tiktok_abc123", user_id=42, username="@ann", language_code="en")
        assert start == StartResult(created=True, telegram_user_id=42, utm_id="tiktok_abc123", click_id=None,
                                    campaign=link.campaign.name)  # fmt: skip
        assert tracker.track_start(token="tiktok_abc123", user_id=42).created is False

        bought = tracker.conversion(customer_id="telegram_42", amount_minor=1999, currency="EUR", transaction_id="t-1")
        assert isinstance(bought, ConversionResult)
        assert (bought.outcome, bought.amount, bought.currency, bought.utm_id) == (
            "created",
            1999,
            "EUR",
            "tiktok_abc123",
        )
        assert tracker.conversion(customer_id="telegram_42", amount_minor=1999, currency="EUR",
                                  transaction_id="t-1").outcome == "unchanged"  # fmt: skip

        batch = tracker.conversions([{"customer_id": "telegram_42", "amount": 500, "transaction_id": "t-2"},
                                     {"customer_id": "telegram_42", "amount": 1999, "currency": "EUR",
                                      "transaction_id": "t-1"}])  # fmt: skip
        assert [(result.outcome, result.amount) for result in batch] == [("created", 500), ("unchanged", 1999)]
        with pytest.raises(TrackerError) as bad_batch:
            tracker.conversions([{"customer_id": "telegram_42", "amount": 1, "transaction_id": "t-3"},
                                 {"customer_id": "telegram_42", "amount": 1}])  # fmt: skip
        assert (bad_batch.value.status_code, list(bad_batch.value.fields)) == (400, ["conversions[1].transaction_id"])

        with pytest.raises(TrackerError) as bad_amount:
            tracker.conversion(customer_id="telegram_42", amount_minor=-5)
        assert (bad_amount.value.status_code, bad_amount.value.error) == (400, "invalid")
        assert list(bad_amount.value.fields) == ["amount"]
        with pytest.raises(TrackerError) as unknown:
            tracker.track_start(token="no_such_link", user_id=42)
        assert (unknown.value.status_code, unknown.value.fields) == (
            404,
            {"utm_id": ["No tracking link or click with this id."]},
        )

    with TrackerClient(live_server.url, "00000000.nope") as stranger, pytest.raises(TrackerError) as wrong_key:
        stranger.track_start(token="tiktok_abc123", user_id=1)
    assert wrong_key.value.status_code == 401


class FlakyTracker:
    """A stand-in for the tracker at the HTTP boundary: answers the scripted statuses in turn."""

    def __init__(self, statuses: list[int]):
        self.statuses = list(statuses)
        self.received: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = fake.statuses.pop(0)
                if status < 300:
                    answer = {"outcome": "created", "conversion_id": "c1", "status": "approved", "goal": "purchase",
                              "amount": body["amount"], "currency": "USD", "utm_id": "u", "click_id": None,
                              "time_to_conversion": 5}  # fmt: skip
                elif status < 500:
                    answer = {"error": "invalid", "message": "Invalid input: amount", "fields": {"amount": ["bad"]}}
                else:
                    answer = {"error": "server_error", "message": "Internal error.", "fields": {}}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky():
    servers = []

    def make(statuses):
        servers.append(FlakyTracker(statuses))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_5xx_is_retried_with_the_same_idempotency_key(flaky):
    server = flaky([503, 502, 201])
    with TrackerClient(server.url, "k.1", retries=3, backoff_factor=0) as tracker:
        result = tracker.conversion(customer_id="telegram_1", amount_minor=500)
    assert result.outcome == "created" and len(server.received) == 3
    keys = {request["headers"]["Idempotency-Key"] for request in server.received}
    assert len(keys) == 1 and len(keys.pop()) == 32  # one key for the call, so the tracker makes one conversion
    assert server.received[0]["headers"]["Authorization"] == "Api-Key k.1"


def test_transaction_id_makes_the_key_unnecessary(flaky):
    server = flaky([201])
    with TrackerClient(server.url, "k.1") as tracker:
        tracker.conversion(customer_id="telegram_1", amount_minor=500, transaction_id="pay-9")
    assert "Idempotency-Key" not in server.received[0]["headers"]
    assert server.received[0]["body"] == {"customer_id": "telegram_1", "amount": 500, "transaction_id": "pay-9"}


def test_4xx_is_not_retried_and_carries_the_error_body(flaky):
    server = flaky([400, 201])
    with TrackerClient(server.url, "k.1", retries=3, backoff_factor=0) as tracker, pytest.raises(TrackerError) as error:
        tracker.conversion(customer_id="telegram_1", amount_minor=500)
    assert len(server.received) == 1
    assert (error.value.status_code, error.value.error, error.value.fields) == (400, "invalid", {"amount": ["bad"]})


def test_persistent_5xx_raises_after_the_retries(flaky):
    server = flaky([500, 500, 500])
    with TrackerClient(server.url, "k.1", retries=2, backoff_factor=0) as tracker, pytest.raises(TrackerError) as error:
        tracker.conversion(customer_id="telegram_1", amount_minor=500)
    assert len(server.received) == 3 and (error.value.status_code, error.value.error) == (500, "server_error")


def test_nobody_listening_is_tracker_unavailable():
    nobody = f"http://127.0.0.1:{free_port()}"
    with (
        TrackerClient(nobody, "k.1", retries=1, backoff_factor=0) as tracker,
        pytest.raises(TrackerUnavailable) as error,
    ):
        tracker.track_start(token="abc", user_id=1)
    assert error.value.error == "unavailable" and "ConnectionError" in error.value.message

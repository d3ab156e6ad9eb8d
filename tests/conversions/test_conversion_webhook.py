from datetime import timedelta

import pytest

from conversions.models import Click, Conversion, ConversionStatusChange
from conversions.selectors import totals_for

pytestmark = pytest.mark.django_db

START = "/api/v1/utm/track/click"
WEBHOOK = "/api/v1/utm/webhook/conversion"


@pytest.fixture
def started_click(bot_api, visit, link):
    """A visitor who clicked an hour ago and pressed /start in the bot."""
    visit("/l/tiktok_abc123")
    click = Click.objects.get()
    Click.objects.filter(pk=click.pk).update(created_at=click.created_at - timedelta(hours=1))
    bot_api.post(START, {"utm_id": click.click_id, "user_id": 123456789, "username": "john_doe"}, format="json")
    return Click.objects.get()


def test_seed_webhook_records_a_conversion_with_time_to_conversion(bot_api, started_click, link):
    body = {"utm_id": "tiktok_abc123", "customer_id": "telegram_123456789", "amount": 5000,
            "product_name": "Gold Lootbox"}  # fmt: skip

    response = bot_api.post(WEBHOOK, body, format="json")

    assert response.status_code == 201
    conversion = Conversion.objects.get()
    assert response.json()["conversion_id"] == conversion.public_id
    assert response.json()["outcome"] == "created"
    assert conversion.link == link and conversion.click == started_click  # exact click through the Telegram user
    assert (conversion.amount_minor, conversion.currency, conversion.product_name) == (5000, "USD", "Gold Lootbox")
    assert conversion.customer_id == "telegram_123456789"
    assert conversion.lead.telegram_user_id == 123456789
    assert 3600 <= conversion.time_to_conversion_s < 3660
    assert conversion.status == "approved" and conversion.goal == "purchase"
    totals = totals_for(link=link)
    assert (totals.conversions, totals.revenue_minor) == (1, 5000)


def test_customer_id_alone_finds_the_click(bot_api, started_click, link):
    response = bot_api.post(WEBHOOK, {"customer_id": "telegram_123456789", "amount": 990, "currency": "eur"},
                            format="json")  # fmt: skip

    assert response.status_code == 201
    conversion = Conversion.objects.get()
    assert conversion.click == started_click and conversion.currency == "EUR"


def test_click_id_as_utm_id(bot_api, started_click):
    response = bot_api.post(WEBHOOK, {"utm_id": started_click.click_id, "amount": 100}, format="json")

    assert response.status_code == 201
    assert Conversion.objects.get().click == started_click


def test_same_transaction_twice_is_one_conversion(bot_api, started_click, link):
    body = {"utm_id": "tiktok_abc123", "customer_id": "telegram_123456789", "amount": 5000, "transaction_id": "tx-1"}

    first = bot_api.post(WEBHOOK, body, format="json")
    second = bot_api.post(WEBHOOK, body, format="json")

    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["outcome"] == "unchanged"
    assert second.json()["conversion_id"] == first.json()["conversion_id"]
    assert Conversion.objects.count() == 1
    assert totals_for(link=link).revenue_minor == 5000


def test_a_repeat_answers_what_is_stored_from_one_read(bot_api, started_click, link, visit):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = bot_api.post(WEBHOOK, {"utm_id": started_click.click_id, "amount": 5000, "transaction_id": "tx-r"},
                         format="json").json()  # fmt: skip
    visit("/l/tiktok_abc123")
    other_click = Click.objects.exclude(pk=started_click.pk).get()
    repeat_body = {"utm_id": other_click.click_id, "amount": 5000, "transaction_id": "tx-r"}

    with CaptureQueriesContext(connection) as queries:
        repeat = bot_api.post(WEBHOOK, repeat_body, format="json")

    # the click it names, the INSERT that finds the transaction taken, the stored conversion with link and click
    statements = [query["sql"] for query in queries.captured_queries if "conversions_apikey" not in query["sql"]]
    assert len(statements) == 3, statements
    assert "FOR UPDATE" not in statements[2] and 'cv."dedup_key"' in statements[2]
    assert repeat.status_code == 200
    assert repeat.json() == {**first, "outcome": "unchanged"}  # the stored click, not the one the repeat named
    assert repeat.json()["click_id"] == started_click.click_id and repeat.json()["utm_id"] == link.utm_id
    assert Conversion.objects.count() == 1 and ConversionStatusChange.objects.count() == 1


def test_idempotency_key_header_deduplicates_without_a_transaction_id(bot_api, started_click):
    body = {"utm_id": "tiktok_abc123", "amount": 5000}

    bot_api.post(WEBHOOK, body, format="json", HTTP_IDEMPOTENCY_KEY="retry-1")
    bot_api.post(WEBHOOK, body, format="json", HTTP_IDEMPOTENCY_KEY="retry-1")

    assert Conversion.objects.count() == 1


def test_refund_moves_revenue(bot_api, started_click, link):
    body = {"utm_id": "tiktok_abc123", "amount": 5000, "transaction_id": "tx-1"}
    bot_api.post(WEBHOOK, body, format="json")

    response = bot_api.post(WEBHOOK, {**body, "status": "refunded"}, format="json")

    assert response.status_code == 200 and response.json()["outcome"] == "updated"
    assert Conversion.objects.get().status == "rejected"
    totals = totals_for(link=link)
    assert (totals.conversions, totals.revenue_minor, totals.rejected_conversions) == (0, 0, 1)
    changes = list(ConversionStatusChange.objects.values_list("old_status", "new_status"))
    assert changes == [("", "approved"), ("approved", "rejected")]


def test_unknown_customer_without_utm_id_is_404_naming_customer_id(bot_api, link):
    response = bot_api.post(WEBHOOK, {"customer_id": "telegram_42", "amount": 100}, format="json")

    assert response.status_code == 404
    assert list(response.json()["fields"]) == ["customer_id"]
    assert Conversion.objects.count() == 0


def test_conversion_outside_the_attribution_window_is_recorded_and_flagged(bot_api, started_click, settings):
    Click.objects.filter(pk=started_click.pk).update(created_at=started_click.created_at - timedelta(days=40))

    bot_api.post(WEBHOOK, {"utm_id": started_click.click_id, "amount": 100}, format="json")

    assert Conversion.objects.get().in_attribution_window is False


def test_email_and_phone_are_stored_only_as_hashes(bot_api, started_click):
    import hashlib

    bot_api.post("/api/v1/utm/track/click", {"utm_id": started_click.click_id, "user_id": 123456789,
                 "email": " John@Example.COM ", "phone": "+1 (213) 373-4253"}, format="json")  # fmt: skip
    bot_api.post(WEBHOOK, {"utm_id": started_click.click_id, "amount": 100}, format="json")

    from conversions.models import Lead

    lead = Lead.objects.get()
    assert lead.email_sha256 == hashlib.sha256(b"john@example.com").hexdigest()
    assert lead.phone_sha256 == hashlib.sha256(b"+12133734253").hexdigest()
    conversion = Conversion.objects.get()
    assert (conversion.email_sha256, conversion.phone_sha256) == (lead.email_sha256, lead.phone_sha256)


@pytest.mark.parametrize(("field", "value"), [("email", "not-an-email"), ("phone", "5550")])
def test_bad_email_or_phone_is_400(bot_api, started_click, field, value):
    response = bot_api.post(WEBHOOK, {"utm_id": started_click.click_id, "amount": 1, field: value}, format="json")

    assert response.status_code == 400 and field in response.json()["fields"]
    assert value not in response.content.decode()


def test_the_answer_is_what_the_documented_serializer_renders(bot_api, client, intake_key, started_click):
    """conversion_body builds the answer without the serializer; the schema documents ConversionOutput."""
    from conversions.apis import ConversionOutput, conversion_body
    from conversions.services import ConversionResult

    def rendered(conversion, outcome):
        return dict(ConversionOutput(conversion, context={"outcome": outcome}).data)

    refund = {"utm_id": started_click.click_id, "amount": 100, "status": "refund", "transaction_id": "T-1"}
    requests = {
        "by click id": lambda: bot_api.post(WEBHOOK, {**refund, "amount": 5000, "status": "approved"}, format="json"),
        "updated": lambda: bot_api.post(WEBHOOK, refund, format="json"),
        "unchanged": lambda: bot_api.post(WEBHOOK, refund, format="json"),
        "postback": lambda: client.get(
            f"/postback?key={intake_key}&click_id={started_click.click_id}&payout=1.25&txid=P-1"
        ),  # fmt: skip
    }
    for name, request in requests.items():
        body = request().json()
        assert body == rendered(Conversion.objects.get(public_id=body["conversion_id"]), body["outcome"]), name
        assert body["outcome"] == {"by click id": "created", "postback": "created"}.get(name, name)
        assert body["click_id"] == started_click.click_id and body["utm_id"] == "tiktok_abc123"
    # The postback read the click's latest lead with the click, in the same query.
    assert Conversion.objects.get(transaction_id="P-1").lead.telegram_user_id == 123456789

    bare = Conversion(public_id="c-1", status="pending", goal="deposit", amount_minor=0, currency="EUR")
    assert conversion_body(ConversionResult(conversion=bare, outcome="created")) == rendered(bare, "created")
    assert conversion_body(ConversionResult(conversion=bare, outcome="created"))["click_id"] is None

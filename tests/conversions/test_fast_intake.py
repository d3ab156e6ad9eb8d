"""The fast intake path (conversions/fast_intake.py): what its rules accept, the serializers accept with the same
validated data; the everyday webhook and postback are answered by it, exactly as DRF answers them; anything
else reaches the DRF view."""

from unittest import mock

import pytest
from hypothesis import given, strategies
from hypothesis import settings as hypothesis_settings

from conversions.fast_intake import postback_fields, webhook_fields
from conversions.models import Click, Conversion
from conversions.serializers import (
    MAX_AMOUNT_MINOR,
    POSTBACK_ALIASES,
    ConversionWebhookInput,
    PostbackInput,
    postback_params,
)

WEBHOOK = "/api/v1/utm/webhook/conversion"
MANY = hypothesis_settings(max_examples=600, deadline=None)

# Values near every rule's edge: plain and padded strings, NUL, a lone surrogate, non-ASCII, lengths at and over
# the limits, currency and status words in other cases, payouts DRF takes or refuses.
EDGE_TEXTS = [
    "", "tiktok_abc123", "clk-9_Z", " tiktok_abc123", "tiktok_abc123\n", "a b", "with\x00nul", "\ud800", "Gold\udfff",
    "Gold Lootbox", "Золото", "usd", "USD", "Eur", "xxx", "US", "USDD", " usd", "approved", "Refund", "paid ",
    "on-hold", "K", "o\u212a", "ßp",
    "purchase", "deposit.v2", "telegram_123456789", "a" * 64, "a" * 65, "b" * 200, "b" * 201, "7.50", "12", "0",
    "1e3", "-1", "+1", "10000000000", "10000000000.0001", "9999999999.9999", "0.005", "007.5", "1.23456", " 7.5",
    "NaN", "Infinity",
]  # fmt: skip
texts = strategies.one_of(strategies.sampled_from(EDGE_TEXTS), strategies.text(max_size=70))
EDGE_OTHERS = [0, -1, MAX_AMOUNT_MINOR, MAX_AMOUNT_MINOR + 1, 5000.0, 5000.5, True, False, None, [], {}]
values = strategies.one_of(
    texts, strategies.integers(min_value=-3, max_value=10**4), strategies.sampled_from(EDGE_OTHERS)
)
WEBHOOK_NAMES = ["utm_id", "customer_id", "amount", "currency", "transaction_id", "event", "status",
                 "product_name", "product_id", "consent", "email", "phone", "unknown"]  # fmt: skip
# Mostly one to three fields over a plain request (so that one rule decides), else anything.
webhook_payloads = strategies.dictionaries(strategies.sampled_from(WEBHOOK_NAMES), values, max_size=3).map(
    lambda payload: {"amount": 5000, "utm_id": "tiktok_abc123", **payload}
) | strategies.dictionaries(strategies.sampled_from(WEBHOOK_NAMES), values, max_size=8)
POSTBACK_NAMES = sorted({name for names in POSTBACK_ALIASES.values() for name in names} | {"key", "other"})
postback_queries = strategies.dictionaries(strategies.sampled_from(POSTBACK_NAMES), texts, max_size=3).map(
    lambda query: {"click_id": "clk_1", **query}
) | strategies.dictionaries(strategies.sampled_from(POSTBACK_NAMES), texts, max_size=8)


@MANY
@given(webhook_payloads)
def test_what_the_webhook_rules_accept_the_serializer_accepts_the_same(payload):
    fields = webhook_fields(payload)
    if fields is not None:
        serializer = ConversionWebhookInput(data=payload)
        assert serializer.is_valid(), serializer.errors
        assert fields == dict(serializer.validated_data)


@MANY
@given(postback_queries)
def test_what_the_postback_rules_accept_the_serializer_accepts_the_same(query):
    mapped = postback_params(query)
    fields = postback_fields(mapped)
    if fields is not None:
        serializer = PostbackInput(data=mapped)
        assert serializer.is_valid(), serializer.errors
        assert fields == dict(serializer.validated_data)


def test_every_edge_value_in_every_field_agrees_with_the_serializer():
    for name in WEBHOOK_NAMES:
        for value in [*EDGE_TEXTS, *EDGE_OTHERS]:
            payload = {"amount": 5000, "utm_id": "tiktok_abc123", name: value}
            fields = webhook_fields(payload)
            if fields is not None:
                serializer = ConversionWebhookInput(data=payload)
                assert serializer.is_valid(), (payload, serializer.errors)
                assert fields == dict(serializer.validated_data), payload
    for name in POSTBACK_NAMES:
        for value in EDGE_TEXTS:
            mapped = postback_params({"click_id": "clk_1", name: value})
            fields = postback_fields(mapped)
            if fields is not None:
                serializer = PostbackInput(data=mapped)
                assert serializer.is_valid(), (mapped, serializer.errors)
                assert fields == dict(serializer.validated_data), mapped


def test_the_everyday_requests_are_plain():
    payload = {"utm_id": "tiktok_abc123", "amount": 5000, "currency": "usd", "event": "purchase",
               "transaction_id": "T-1", "product_name": "Золото", "status": "Paid", "consent": True}  # fmt: skip
    assert webhook_fields(payload) == {**payload, "currency": "USD", "status": "approved"}
    assert webhook_fields({"customer_id": "telegram_1", "amount": 0}) == {
        "customer_id": "telegram_1", "amount": 0, "currency": "USD", "consent": None}  # fmt: skip
    query = {"key": "k", "cid": "clk_1", "sum": "7.505", "txid": "T-2", "cur": "eur", "goal": "deposit"}
    expected = {"click_id": "clk_1", "amount_minor": 751, "transaction_id": "T-2", "currency": "EUR", "goal": "deposit"}
    assert postback_fields(postback_params(query)) == expected


@pytest.mark.parametrize(
    "payload",
    [
        {"utm_id": "tiktok_abc123", "amount": "5000"},  # the serializer converts it
        {"utm_id": "tiktok_abc123", "amount": 5000, "email": "a@b.example"},  # hashed by the serializer
        {"utm_id": "tiktok_abc123", "amount": 5000, "consent": "yes"},
        {"utm_id": " tiktok_abc123", "amount": 5000},
        {"amount": 5000},  # an error: the serializer names it
        [{"utm_id": "tiktok_abc123", "amount": 5000}],
    ],
)
def test_anything_else_is_left_to_the_serializer(payload):
    assert webhook_fields(payload) is None


@pytest.fixture
def click(visit, link):
    visit("/l/tiktok_abc123")
    return Click.objects.get()


def _without_serializers():
    """The DRF views' serializers refuse to run: a request answered anyway was answered by the fast path."""
    refuse = mock.patch.object(ConversionWebhookInput, "is_valid", side_effect=AssertionError("DRF path taken"))
    refuse_postback = mock.patch.object(PostbackInput, "is_valid", side_effect=AssertionError("DRF path taken"))
    return refuse, refuse_postback


@pytest.mark.django_db
def test_the_everyday_webhook_and_postback_take_the_fast_path(bot_api, client, intake_key, click):
    refuse, refuse_postback = _without_serializers()
    with refuse, refuse_postback:
        webhook = bot_api.post(WEBHOOK, {"utm_id": click.click_id, "amount": 5000, "transaction_id": "W-1"},
                               format="json")  # fmt: skip
        postback = client.get(f"/postback?key={intake_key}&cid={click.click_id}&payout=7.50&txid=P-1&sub1=x")
        repeat = client.get(f"/postback?key={intake_key}&cid={click.click_id}&payout=7.50&txid=P-1&sub1=x")

    assert (webhook.status_code, postback.status_code, repeat.status_code) == (201, 201, 200)
    assert repeat.json()["outcome"] == "unchanged"
    stored = {c.transaction_id: c for c in Conversion.objects.all()}
    assert (stored["W-1"].source, stored["W-1"].amount_minor, stored["W-1"].click) == ("webhook", 5000, click)
    assert (stored["P-1"].source, stored["P-1"].amount_minor, stored["P-1"].click) == ("postback", 750, click)
    assert stored["P-1"].params == {"cid": click.click_id, "payout": "7.50", "txid": "P-1", "sub1": "x"}


@pytest.mark.django_db
@pytest.mark.parametrize("fast", [True, False])
def test_the_fast_path_answers_as_the_drf_view_does(bot_api, client, intake_key, click, settings, fast):
    """The same requests with the fast path on and off: the same status, headers and body (but the new
    conversion's id), the same rows."""
    settings.INTAKE_FAST_PATH = fast
    body = {"utm_id": click.click_id, "amount": 5000, "currency": "eur", "event": "deposit", "status": "paid",
            "transaction_id": "T-1", "product_id": "gold"}  # fmt: skip
    answers = [
        bot_api.post(WEBHOOK, body, format="json"),
        bot_api.post(WEBHOOK, body, format="json"),
        bot_api.post(WEBHOOK, {**body, "status": "refund"}, format="json"),
        client.get(f"/postback?key={intake_key}&click_id={click.click_id}&payout=1.25&goal=lead"),
    ]

    seen = [
        (answer.status_code, {name: value for name, value in answer.headers.items() if name != "X-Request-ID"},
         {**answer.json(), "conversion_id": "…"})
        for answer in answers
    ]  # fmt: skip
    headers = {"Content-Type": "application/json", "Allow": "POST, OPTIONS", "X-Frame-Options": "DENY",
               "Content-Length": mock.ANY, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "same-origin", "Cross-Origin-Opener-Policy": "same-origin"}  # fmt: skip
    answer = {"conversion_id": "…", "status": "approved", "goal": "deposit", "amount": 5000, "currency": "EUR",
              "utm_id": "tiktok_abc123", "click_id": click.click_id, "time_to_conversion": 0}  # fmt: skip
    assert seen == [
        (201, headers, {**answer, "outcome": "created"}),
        (200, headers, {**answer, "outcome": "unchanged"}),
        (200, headers, {**answer, "outcome": "updated", "status": "rejected"}),
        (201, {**headers, "Allow": "GET, POST, HEAD, OPTIONS"},
         {**answer, "outcome": "created", "goal": "lead", "amount": 125, "currency": "USD"}),
    ]  # fmt: skip
    assert sorted(Conversion.objects.values_list("source", "transaction_id", "status", "amount_minor", "goal")) == [
        ("postback", "", "approved", 125, "lead"), ("webhook", "T-1", "rejected", 5000, "deposit")]  # fmt: skip


@pytest.mark.django_db
def test_a_postback_does_not_keep_its_api_key(client, intake_key, click):
    for path in (f"/postback?api_key={intake_key}&click_id={click.click_id}&txid=K-1",
                 f"/postback?key={intake_key}&click_id={click.click_id}&txid=K-2&status=pending%20"):  # fmt: skip
        assert client.get(path).status_code == 201  # the second one through DRF: its status has a trailing space

    assert [c.params for c in Conversion.objects.order_by("transaction_id")] == [
        {"click_id": click.click_id, "txid": "K-1"},
        {"click_id": click.click_id, "txid": "K-2", "status": "pending "},
    ]

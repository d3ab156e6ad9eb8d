"""Two identical requests at the same moment make one row: the unique constraint decides, not a read."""

import threading

import pytest
from django.db import connection, connections

from conversions.models import ApiKey, Campaign, Click, Conversion, Lead
from conversions.services import conversion_record, lead_start
from landing.services import Visit, click_record

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
]


@pytest.fixture(autouse=True)
def needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions need PostgreSQL (SQLite serialises writers)")


def run_together(target, count: int):
    """Start `count` threads that call target() at the same moment; collect results and errors."""
    barrier = threading.Barrier(count)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            results.append(target())
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


@pytest.fixture
def click(db):
    from tests.factories import TrafficSourceFactory

    link = TrafficSourceFactory(utm_id="tiktok_abc123")
    visit = Visit(ip="95.123.45.67", user_agent="Mozilla/5.0 (iPhone)", referrer="", landing_url="", method="GET")
    return click_record(campaign=link.campaign, link=link, visit=visit, shows_landing=True)


def test_concurrent_duplicate_webhooks_make_one_conversion(click):
    def post_same_transaction():
        return conversion_record(source="webhook", token=click.click_id, amount_minor=5000, currency="USD",
                                 transaction_id="tx-race")  # fmt: skip

    results, errors = run_together(post_same_transaction, 8)

    assert errors == []
    assert Conversion.objects.count() == 1
    assert sorted(result.outcome for result in results) == ["created"] + ["unchanged"] * 7
    assert {result.conversion.pk for result in results} == {Conversion.objects.get().pk}


def test_concurrent_duplicate_postbacks_without_transaction_id(click):
    def post_same_click_and_goal():
        return conversion_record(source="postback", click=Click.objects.get(pk=click.pk), amount_minor=750,
                                 currency="USD", goal="deposit")  # fmt: skip

    results, errors = run_together(post_same_click_and_goal, 8)

    assert errors == []
    assert Conversion.objects.count() == 1


def test_concurrent_starts_of_one_user_make_one_lead(click):
    def start():
        return lead_start(token=click.click_id, telegram_user_id=777, username="racer")

    results, errors = run_together(start, 6)

    assert errors == []
    assert Lead.objects.count() == 1
    assert sum(result.created for result in results) == 1


def test_concurrent_clicks_all_stored(click):
    campaign = Campaign.objects.get()
    link = campaign.links.get()
    visit = Visit(ip="1.2.3.4", user_agent="Mozilla/5.0 (iPhone)", referrer="", landing_url="", method="GET")

    results, errors = run_together(lambda: click_record(campaign=campaign, link=link, visit=visit,
                                                        shows_landing=True), 10)  # fmt: skip

    assert errors == []
    assert Click.objects.count() == 11
    assert len({result.click_id for result in results}) == 10
    assert ApiKey.objects.count() == 0


def test_batches_sharing_transaction_ids_in_opposite_orders_do_not_deadlock(click):
    """Each batch writes in transaction-id order: the second waits for the first, then finds its rows."""
    from conversions.services import conversions_record

    items = [{"transaction_id": f"tx-{n:03d}", "utm_id": click.click_id, "amount": 100, "currency": "USD"}
             for n in range(60)]  # fmt: skip
    orders = [items, items[::-1], items[::2] + items[1::2], items[::-1]]

    results, errors = run_together(lambda: conversions_record(orders.pop()), 4)

    assert errors == []
    assert Conversion.objects.count() == 60
    outcomes = sorted(sum(result.outcome == "created" for result in batch) for batch in results)
    assert sum(outcomes) == 60  # each conversion created by exactly one batch; the others found it unchanged


def test_batches_changing_the_consent_of_the_same_users_in_opposite_orders_do_not_deadlock(click):
    """A batch locks the Telegram users whose consent it may change in one order before writing anything, so
    two batches naming the same users in opposite orders wait for each other instead of deadlocking."""
    from conversions.services import conversions_record

    users = range(9001, 9031)
    for user in users:
        lead_start(token=click.click_id, telegram_user_id=user, consent=True)
    # Written in transaction-id order: the first batch meets the users in ascending order, the second descending.
    first = [{"transaction_id": f"a-{n:03d}", "customer_id": f"telegram_{user}", "amount": 100, "currency": "USD",
              "consent": False} for n, user in enumerate(users)]  # fmt: skip
    second = [{"transaction_id": f"b-{n:03d}", "customer_id": f"telegram_{user}", "amount": 100, "currency": "USD",
               "consent": False} for n, user in enumerate(reversed(users))]  # fmt: skip
    batches = [first, second]

    results, errors = run_together(lambda: conversions_record(batches.pop()), 2)

    assert errors == []
    assert Conversion.objects.count() == 60
    assert set(Lead.objects.values_list("tracking_consent", flat=True)) == {False}

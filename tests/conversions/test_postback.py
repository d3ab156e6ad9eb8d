import pytest

from conversions.models import Click, Conversion
from conversions.selectors import totals_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def click(visit, link):
    visit("/l/tiktok_abc123")
    return Click.objects.get()


def test_get_postback_records_a_conversion(client, intake_key, click, link):
    response = client.get(f"/postback?key={intake_key}&click_id={click.click_id}&payout=7.50&status=approved&sub1=x")

    assert response.status_code == 201
    conversion = Conversion.objects.get()
    assert (conversion.click, conversion.link, conversion.amount_minor, conversion.status) == (
        click, link, 750, "approved")  # fmt: skip
    assert conversion.source == "postback" and conversion.params["sub1"] == "x"
    assert "key" not in conversion.params


def test_post_postback_with_form_body(client, intake_key, click):
    response = client.post(f"/postback?key={intake_key}", {"cid": click.click_id, "sum": "12.345", "tid": "T1",
                                                           "currency": "eur", "goal": "deposit"})  # fmt: skip

    assert response.status_code == 201
    conversion = Conversion.objects.get()
    assert (conversion.amount_minor, conversion.currency, conversion.transaction_id, conversion.goal) == (
        1235, "EUR", "T1", "deposit")  # fmt: skip


def test_repeat_changes_nothing_and_status_change_moves_revenue(client, intake_key, click, link):
    url = f"/postback?key={intake_key}&click_id={click.click_id}&payout=7.50&txid=T1"

    assert client.get(url + "&status=pending").status_code == 201
    assert totals_for(link=link).revenue_minor == 0
    repeat = client.get(url + "&status=hold")
    assert repeat.status_code == 200 and repeat.json()["outcome"] == "unchanged"
    approved = client.get(url + "&status=confirmed")
    assert approved.json()["outcome"] == "updated"
    assert totals_for(link=link).revenue_minor == 750
    client.get(url + "&status=chargeback")

    assert Conversion.objects.count() == 1
    assert Conversion.objects.get().status == "rejected"
    totals = totals_for(link=link)
    assert (totals.conversions, totals.revenue_minor, totals.rejected_conversions) == (0, 0, 1)


def test_without_transaction_id_one_conversion_per_click_and_goal(client, intake_key, click):
    base = f"/postback?key={intake_key}&click_id={click.click_id}&payout=1"

    client.get(base + "&goal=registration")
    client.get(base + "&goal=registration")
    client.get(base + "&goal=deposit")

    assert sorted(Conversion.objects.values_list("goal", flat=True)) == ["deposit", "registration"]


def test_classic_click_can_convert_by_postback(client, intake_key, visit, campaign):
    visit(f"/click?campaign_id={campaign.pk}&subid=abc123")
    click = Click.objects.get()

    response = client.get(f"/postback?key={intake_key}&click_id={click.click_id}&payout=3")

    assert response.status_code == 201
    conversion = Conversion.objects.get()
    assert conversion.campaign == campaign and conversion.link is None
    assert totals_for(campaign_id=campaign.pk).revenue_minor == 300


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("click_id=nope&payout=1", "click_id"),
        ("payout=1", "click_id"),
        ("click_id={click}&payout=-1", "payout"),
        ("click_id={click}&payout=abc", "payout"),
        ("click_id={click}&payout=NaN", "payout"),
        ("click_id={click}&payout=1e400", "payout"),
        ("click_id={click}&payout=1&status=maybe", "status"),
        ("click_id={click}&payout=1&currency=XYZ", "currency"),
    ],
)
def test_bad_postbacks_are_4xx_naming_the_field(client, intake_key, click, query, field):
    response = client.get(f"/postback?key={intake_key}&" + query.format(click=click.click_id))

    assert 400 <= response.status_code < 500
    assert field in response.json()["fields"]
    assert Conversion.objects.count() == 0


def test_postback_without_a_key_is_401(client, click):
    response = client.get(f"/postback?click_id={click.click_id}&payout=1")

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert Conversion.objects.count() == 0


@pytest.mark.parametrize("accept", ["text/html", "application/xml;q=0.9", "image/*", "*/*", ""])
def test_a_postback_is_recorded_and_answered_in_json_whatever_its_client_accepts(client, intake_key, click, accept):
    response = client.get(f"/postback?key={intake_key}&click_id={click.click_id}&payout=1", HTTP_ACCEPT=accept)

    assert response.status_code == 201 and response["Content-Type"] == "application/json"
    assert response.json()["click_id"] == click.click_id
    assert Conversion.objects.count() == 1


def test_a_bad_postback_is_answered_in_json_whatever_its_client_accepts(client, intake_key):
    response = client.get(f"/postback?key={intake_key}&payout=1", HTTP_ACCEPT="text/html")

    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert "click_id" in str(response.json())

import pytest

from conversions.models import Click
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def test_classic_click_records_and_redirects_with_macros(visit):
    campaign = CampaignFactory(offer_url="https://partner.example/offer?click_id={click_id}&sub={subid}&c={country}")

    response = visit(f"/click?campaign_id={campaign.pk}&subid=abc 123&sub2=x")

    click = Click.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"https://partner.example/offer?click_id={click.click_id}&sub=abc%20123&c=ES"
    assert click.campaign == campaign and click.link is None
    assert (click.subid, click.sub2) == ("abc 123", "x")


@pytest.mark.parametrize("query", ["", "campaign_id=", "campaign_id=abc", "campaign_id=999999", "campaign_id=-1"])
def test_classic_click_without_a_known_campaign_is_404(visit, query):
    CampaignFactory()

    response = visit(f"/click?{query}")

    assert response.status_code == 404
    assert Click.objects.count() == 0


def test_a_redirect_target_in_the_query_string_is_ignored(visit):
    campaign = CampaignFactory(offer_url="https://partner.example/offer?click_id={click_id}")

    response = visit(f"/click?campaign_id={campaign.pk}&url=https://evil.example&redirect=https://evil.example")

    assert response["Location"].startswith("https://partner.example/offer?click_id=")

import factory

from conversions.models import Campaign, LandingPage, TrafficSource


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    offer_url = "https://partner.example/offer?click_id={click_id}&sub={subid}&c={country}"


class LandingPageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LandingPage

    name = factory.Sequence(lambda n: f"Page {n}")
    title = "Football Insider"
    description = "Daily predictions and lootboxes."


class TrafficSourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrafficSource

    campaign = factory.SubFactory(CampaignFactory)
    utm_id = factory.Sequence(lambda n: f"tiktok_link{n}")
    utm_source = "tiktok"
    telegram_bot = "demo_tracker_bot"

"""A generated ledger for the report tests: clicks, starts and conversions written straight to the
tables (as the funnel would have written them), at chosen times, with the truth kept beside them."""

import random
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import F

from conversions.models import BotStart, Click, Conversion, ConversionStatusChange, Lead
from reports.rollups import report_rollup_refresh
from tests.factories import CampaignFactory, TrafficSourceFactory

COUNTRIES = ("ES", "UA", "RO", "")
CITIES = {"ES": ("Madrid", "Barcelona"), "UA": ("Kyiv", "Lviv"), "RO": ("Bucharest",), "": ("",)}
DEVICES = (("mobile", "iOS", "Mobile Safari"), ("mobile", "Android", "Chrome Mobile"), ("desktop", "Windows", "Chrome"))
SUBIDS = ("", "src_a", "src_b", "src_c")
GOALS = ("purchase", "deposit")
STATUSES = ("approved", "approved", "pending", "rejected")


@dataclass
class Ledger:
    campaigns: list
    links: list
    clicks: list[Click] = field(default_factory=list)
    starts: list[BotStart] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)


def settle_and_roll_up() -> dict:
    """Make the status-change log older than the rollup's settle delay, then refresh."""
    ConversionStatusChange.objects.update(created_at=F("created_at") - timedelta(seconds=30))
    return report_rollup_refresh()


def add_conversion(*, click=None, link=None, created_at, status="approved", goal="purchase", amount_minor=1000,
                   lead=None) -> Conversion:  # fmt: skip
    link = link or click.link
    conversion = Conversion.objects.create(
        public_id=secrets.token_urlsafe(12), dedup_key=f"tx:{secrets.token_hex(8)}", source="postback",
        campaign_id=(click or link).campaign_id, link=link, click=click, lead=lead, goal=goal, status=status,
        amount_minor=amount_minor, currency="USD", created_at=created_at, updated_at=created_at,
        time_to_conversion_s=int((created_at - click.created_at).total_seconds()) if click else None,
    )  # fmt: skip
    ConversionStatusChange.objects.create(conversion=conversion, new_status=status, new_amount_minor=amount_minor)
    return conversion


def generate(*, clicks: int, start: datetime, hours: int, seed: int = 7) -> Ledger:
    rnd = random.Random(seed)
    campaigns = [CampaignFactory(name="Football"), CampaignFactory(name="Casino")]
    links = [
        TrafficSourceFactory(campaign=campaigns[0], utm_id="bio_link", creative="video_goal", utm_content="goal"),
        TrafficSourceFactory(campaign=campaigns[0], utm_id="ad_link", creative="video_save", utm_content=""),
        TrafficSourceFactory(campaign=campaigns[1], utm_id="casino_link", creative="video_spin", utm_content="spin"),
        None,  # classic /click?campaign_id=… clicks have no link
    ]
    ledger = Ledger(campaigns=campaigns, links=[link for link in links if link])
    rows = []
    for index in range(clicks):
        link = rnd.choice(links)
        campaign = link.campaign if link else campaigns[1]
        country = rnd.choice(COUNTRIES)
        device, os_name, browser = rnd.choice(DEVICES)
        is_bot = rnd.random() < 0.1
        rows.append(Click(
            click_id=f"c{seed}x{index}", campaign=campaign, link=link,
            created_at=start + timedelta(seconds=rnd.randrange(hours * 3600)),
            device_type=device, os=os_name, browser=browser, country=country, city=rnd.choice(CITIES[country]),
            is_bot=is_bot, is_unique=not is_bot and rnd.random() < 0.8,
            served_landing=not is_bot and link is not None and rnd.random() < 0.9,
            subid=rnd.choice(SUBIDS), utm_content=rnd.choice(("", "", "from_query")),
        ))  # fmt: skip
    ledger.clicks = Click.objects.bulk_create(rows, batch_size=2000)
    humans = [click for click in ledger.clicks if not click.is_bot and click.link_id]
    starters = rnd.sample(humans, k=len(humans) // 4)
    leads = Lead.objects.bulk_create(
        Lead(telegram_user_id=10_000 + number, click=click, link=click.link) for number, click in enumerate(starters)
    )
    ledger.starts = BotStart.objects.bulk_create(
        BotStart(lead=lead, campaign_id=click.campaign_id, link=click.link, click=click, token=click.click_id,
                 created_at=click.created_at + timedelta(seconds=rnd.randrange(5, 600)))
        for lead, click in zip(leads, starters, strict=True)
    )  # fmt: skip
    conversions = []
    for lead, click in zip(leads, starters, strict=True):
        if rnd.random() < 0.5:
            created_at = click.created_at + timedelta(seconds=rnd.randrange(60, 6 * 3600))
            status, amount_minor = rnd.choice(STATUSES), rnd.randrange(100, 10_000)
            conversions.append(Conversion(
                public_id=secrets.token_urlsafe(12), dedup_key=f"tx:{secrets.token_hex(8)}", source="postback",
                campaign_id=click.campaign_id, link=click.link, click=click, lead=lead, goal=rnd.choice(GOALS),
                status=status, amount_minor=amount_minor, currency="USD", created_at=created_at,
                updated_at=created_at, time_to_conversion_s=int((created_at - click.created_at).total_seconds()),
            ))  # fmt: skip
    ledger.conversions = Conversion.objects.bulk_create(conversions)
    ConversionStatusChange.objects.bulk_create(
        ConversionStatusChange(conversion=conversion, new_status=conversion.status,
                               new_amount_minor=conversion.amount_minor)
        for conversion in ledger.conversions
    )  # fmt: skip
    # A conversion through a plain utm_id: no click, so no visitor dimensions and no time to conversion.
    ledger.conversions.append(add_conversion(link=links[0], created_at=start + timedelta(hours=1), amount_minor=777))
    return ledger


@pytest.fixture
def ledger(db) -> Ledger:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    data = generate(clicks=1000, start=start, hours=72)
    settle_and_roll_up()
    return data


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """admin_client's user gets a password: hashing it with the real PBKDF2 costs a second a test here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

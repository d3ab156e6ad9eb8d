"""Privacy services: data retention and the erasure of one person.

Erasure keeps the money (amounts, statuses, rollups) and removes who it was: the Telegram user row,
their identifiers on conversions, the IP / user agent / referrer / parameters of their clicks, and
their TikTok events that have not left yet. Audience membership follows through the audiences hook.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from conversions.models import BotStart, Click, Conversion, Lead
from conversions.services import telegram_user_id_of

ERASED = "erased"
# What a click keeps after its personal data is stripped: time, link, place, device (aggregates).
CLICK_PERSONAL_FIELDS = {
    "ip": None, "user_agent": "", "referrer": "", "landing_url": "", "visitor_hash": "", "ttclid": "",
    "ttp": "", "subid": "", "sub1": "", "sub2": "", "sub3": "", "sub4": "", "sub5": "", "extra_params": {},
    "city": "",
}  # fmt: skip


@dataclass(frozen=True)
class ErasureReport:
    leads: int
    conversions: int
    clicks: int
    tiktok_events: int
    audience_members: int


def _lead_and_customer_ids(*, telegram_user_id: int | None, customer_id: str) -> tuple[Lead | None, set[str]]:
    if telegram_user_id is None:
        telegram_user_id = telegram_user_id_of(customer_id)
    lead = Lead.objects.filter(telegram_user_id=telegram_user_id).first() if telegram_user_id else None
    customer_ids = {customer_id} if customer_id else set()
    if telegram_user_id:
        customer_ids.add(f"telegram_{telegram_user_id}")
    return lead, customer_ids


def person_erase(*, telegram_user_id: int | None = None, customer_id: str = "") -> ErasureReport:
    """Erase everything personal about one Telegram user or customer id, in one transaction."""
    from tiktok_ads.privacy import tiktok_events_erase

    lead, customer_ids = _lead_and_customer_ids(telegram_user_id=telegram_user_id, customer_id=customer_id)
    with transaction.atomic():
        person = Q(customer_id__in=customer_ids)
        if lead is not None:
            person |= Q(lead=lead)
        conversions = Conversion.objects.filter(person)
        conversion_ids = list(conversions.values_list("pk", flat=True))
        click_ids = set(conversions.exclude(click=None).values_list("click_id", flat=True))
        hashes = set(conversions.values_list("email_sha256", "phone_sha256").distinct())
        if lead is not None:
            click_ids |= set(BotStart.objects.filter(lead=lead).exclude(click=None).values_list("click_id", flat=True))
            hashes.add((lead.email_sha256, lead.phone_sha256))
        events = tiktok_events_erase(customer_ids=customer_ids, conversion_ids=conversion_ids, click_ids=click_ids,
                                     lead=lead)  # fmt: skip
        members = _audience_members_erase({value for pair in hashes for value in pair if value})
        erased_conversions = Conversion.objects.filter(pk__in=conversion_ids).update(
            customer_id=ERASED, email_sha256="", phone_sha256="", lead=None, params={}
        )
        erased_clicks = Click.objects.filter(pk__in=click_ids).update(**CLICK_PERSONAL_FIELDS)
        leads = 0
        if lead is not None:
            lead.delete()  # its starts go with it
            leads = 1
    return ErasureReport(leads=leads, conversions=erased_conversions, clicks=erased_clicks, tiktok_events=events,
                         audience_members=members)  # fmt: skip


def _audience_members_erase(hashes: set[str]) -> int:
    """Members with these hashes leave every audience at the next sync (when the audiences app says how)."""
    try:
        from audiences.services import members_erase
    except ImportError:
        return 0
    return members_erase(id_hashes=hashes)


@dataclass(frozen=True)
class PurgeReport:
    deleted: int
    stripped: int


def clicks_purge(*, older_than_days: int, batch_size: int = 10_000) -> PurgeReport:
    """Delete clicks older than the cutoff; strip the personal fields of those a start or conversion
    still refers to. Counts already rolled up stay in DailyStats. Works in batches (no long locks)."""
    from conversions.rollups import unrolled_since

    cutoff = timezone.now() - timedelta(days=older_than_days)
    # Only clicks the rollup has counted: deleting the others would take them out of the totals.
    old = Click.objects.filter(created_at__lt=cutoff, pk__lte=unrolled_since("clicks"))
    referenced = old.filter(Q(starts__isnull=False) | Q(conversions__isnull=False) | Q(leads__isnull=False))
    stripped = referenced.exclude(user_agent="", ip=None).distinct().count()
    Click.objects.filter(pk__in=referenced.values("pk")).update(**CLICK_PERSONAL_FIELDS)
    deleted = 0
    while True:
        batch = list(old.exclude(pk__in=referenced.values("pk")).values_list("pk", flat=True)[:batch_size])
        if not batch:
            break
        deleted += Click.objects.filter(pk__in=batch).delete()[0]
    return PurgeReport(deleted=deleted, stripped=stripped)

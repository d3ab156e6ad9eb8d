"""Writes of the ledger: bot starts and conversions. Each service is one transaction."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversions.click_reads import click_with_campaign, clicks_with_campaign, latest_lead
from conversions.conversion_store import conversion_insert, stored_conversion
from conversions.errors import NotFoundField
from conversions.models import BotStart, Click, Conversion, ConversionStatusChange, Lead, TrafficSource
from conversions.selectors import one_or_none
from tiktok_ads import hooks as tiktok_hooks
from tracker.db.statements import new_instance

STATUS_SYNONYMS = {
    Conversion.Status.APPROVED: {
        "approved", "approve", "confirmed", "confirm", "accepted", "success", "successful",
        "sale", "paid", "complete", "completed", "ok", "1",
    },
    Conversion.Status.PENDING: {"pending", "hold", "on_hold", "onhold", "wait", "waiting", "processing", "lead", "0"},
    Conversion.Status.REJECTED: {
        "rejected", "reject", "declined", "decline", "cancelled", "canceled", "cancel", "refund",
        "refunded", "chargeback", "reversed", "fraud", "trash", "invalid", "failed", "-1",
    },
}  # fmt: skip
_STATUS_BY_WORD = {word: status for status, words in STATUS_SYNONYMS.items() for word in words}


def normalize_status(word: str) -> str | None:
    """The conversion status a partner's word means, or None when it means nothing we know."""
    return _STATUS_BY_WORD.get(word.strip().lower().replace("-", "_").replace(" ", "_"))


@dataclass(frozen=True)
class Touch:
    """Where a token points: an exact click, or only a tracking link."""

    link: TrafficSource
    click: Click | None


def resolve_token(token: str, *, with_latest_lead: bool = False) -> Touch | None:
    """A /start token is a click id (exact) or a plain utm_id (the link only)."""
    # The campaign comes with its pixel: the funnel's TikTok event needs it in the same request.
    click = click_with_campaign(token, with_latest_lead=with_latest_lead)
    if click is not None and click.link_id is not None:
        return Touch(link=click.link, click=click)
    link = one_or_none(TrafficSource.objects.select_related("campaign__pixel").filter(utm_id=token))
    if link is not None:
        return Touch(link=link, click=None)
    return None


def _within_window(moment) -> bool:
    return moment >= timezone.now() - timedelta(days=settings.ATTRIBUTION_WINDOW_DAYS)


@dataclass(frozen=True)
class StartResult:
    lead: Lead
    start: BotStart
    created: bool


def lead_start(
    *,
    token: str,
    telegram_user_id: int,
    username: str = "",
    first_name: str = "",
    language_code: str = "",
    referrer: str = "",
    consent: bool | None = None,
    email_sha256: str = "",
    phone_sha256: str = "",
) -> StartResult:
    """Record a /start: create or update the Telegram user and attribute them to the token.

    Last touch wins: the newest start sets the lead's click (exact) or link. A plain utm_id does not
    replace an exact click on the same link that is still inside the attribution window.
    The same token twice for one user is one BotStart. Raises NotFoundField for an unknown token.
    """
    touch = resolve_token(token)
    if touch is None:
        raise NotFoundField("utm_id", "No tracking link or click with this id.")
    now = timezone.now()
    with transaction.atomic():
        lead, _ = Lead.objects.get_or_create(telegram_user_id=telegram_user_id)
        lead = Lead.objects.select_for_update().get(pk=lead.pk)
        for name, value in (("username", username), ("first_name", first_name), ("language_code", language_code)):
            if value:
                setattr(lead, name, value)
        if consent is not None:
            lead.tracking_consent = consent
        if email_sha256:
            lead.email_sha256 = email_sha256
        if phone_sha256:
            lead.phone_sha256 = phone_sha256
        keeps_exact_click = (
            touch.click is None
            and lead.click_id is not None
            and lead.link_id == touch.link.pk
            and _within_window(lead.attributed_at)
        )
        if not keeps_exact_click:
            lead.click = touch.click
            lead.link = touch.link
            lead.campaign_id = touch.link.campaign_id
            lead.attributed_at = now
        lead.save()
        start, created = _bot_start_once(lead=lead, touch=touch, token=token, referrer=referrer, now=now)
        if created:
            tiktok_hooks.on_start(start)
    return StartResult(lead=lead, start=start, created=created)


def _bot_start_once(*, lead, touch, token, referrer, now) -> tuple[BotStart, bool]:
    try:
        with transaction.atomic():
            start = BotStart.objects.create(
                lead=lead,
                campaign=touch.link.campaign,
                link=touch.link,
                click=touch.click,
                token=token,
                referrer=referrer[:100],
                created_at=now,
            )
            return start, True
    except IntegrityError:
        return BotStart.objects.get(lead=lead, token=token), False


def telegram_user_id_of(customer_id: str) -> int | None:
    """`telegram_<id>` (or a bare numeric id) names a Telegram user; anything else names none."""
    raw = customer_id.strip()
    if raw.startswith("telegram_"):
        raw = raw[len("telegram_") :]
    return int(raw) if raw.isdigit() and len(raw) <= 19 else None


def lead_for_customer(customer_id: str) -> Lead | None:
    """The Telegram user a customer_id names, if we know them."""
    telegram_user_id = telegram_user_id_of(customer_id)
    if telegram_user_id is None:
        return None
    return one_or_none(
        Lead.objects.select_related("click__campaign__pixel", "link__campaign__pixel").filter(
            telegram_user_id=telegram_user_id
        )
    )


@dataclass(frozen=True)
class ConversionResult:
    conversion: Conversion
    outcome: str  # created | updated | unchanged


def _attribution(*, token: str, lead: Lead | None) -> Touch:
    if token:
        touch = resolve_token(token, with_latest_lead=lead is None)
        if touch is None:
            raise NotFoundField("utm_id", "No tracking link or click with this id.")
        # The bot often knows only the link's utm_id; the lead may know the exact click on that link.
        if touch.click is None and lead is not None and lead.click_id and lead.link_id == touch.link.pk:
            return Touch(link=touch.link, click=lead.click)
        return touch
    if lead is not None and lead.link_id is not None:
        return Touch(link=lead.link, click=lead.click)
    raise NotFoundField("customer_id", "No utm_id given and no Telegram user known for this customer_id.")


def _dedup_key(*, transaction_id: str, idempotency_key: str, click: Click | None, goal: str, source: str) -> str:
    if transaction_id:
        return f"tx:{transaction_id}"
    if idempotency_key:
        return f"key:{idempotency_key}"
    if source == Conversion.Source.POSTBACK and click is not None:
        return f"click:{click.click_id}:{goal}"
    return f"once:{secrets.token_hex(16)}"


def conversion_record(
    *,
    source: str,
    token: str = "",
    click: Click | None = None,
    customer_id: str = "",
    amount_minor: int,
    currency: str,
    status: str = Conversion.Status.APPROVED,
    goal: str = "purchase",
    transaction_id: str = "",
    idempotency_key: str = "",
    product_id: str = "",
    product_name: str = "",
    params: dict | None = None,
    consent: bool | None = None,
    email_sha256: str = "",
    phone_sha256: str = "",
) -> ConversionResult:
    """Record a conversion, idempotently.

    The same transaction id (or Idempotency-Key, or for postbacks without one the same click and
    goal) is one conversion, enforced by a unique constraint: concurrent duplicates make one row.
    A repeat with another status or amount updates the row and logs the change; an identical
    repeat changes nothing. Raises NotFoundField when nothing identifies the click or link.
    """
    lead = lead_for_customer(customer_id) if customer_id else None
    if lead is not None and consent is not None and lead.tracking_consent != consent:
        Lead.objects.filter(pk=lead.pk).update(tracking_consent=consent)
        lead.tracking_consent = consent
    touch = Touch(link=click.link, click=click) if click is not None else _attribution(token=token, lead=lead)
    if lead is None and touch.click is not None:
        lead = latest_lead(touch.click)
    now = timezone.now()
    touch_time = touch.click.created_at if touch.click is not None else None
    dedup_key = _dedup_key(
        transaction_id=transaction_id, idempotency_key=idempotency_key, click=touch.click, goal=goal, source=source
    )
    conversion = new_instance(
        Conversion,
        public_id=secrets.token_urlsafe(12),
        dedup_key=dedup_key,
        source=source,
        campaign=touch.click.campaign if touch.click is not None else touch.link.campaign,
        link=touch.link,
        click=touch.click,
        lead=lead,
        customer_id=customer_id or (lead.customer_id if lead else ""),
        email_sha256=email_sha256 or (lead.email_sha256 if lead else ""),
        phone_sha256=phone_sha256 or (lead.phone_sha256 if lead else ""),
        transaction_id=transaction_id,
        goal=goal,
        status=status,
        amount_minor=amount_minor,
        currency=currency,
        product_id=product_id,
        product_name=product_name,
        time_to_conversion_s=int((now - touch_time).total_seconds()) if touch_time else None,
        in_attribution_window=_within_window(touch_time) if touch_time else True,
        params=params or {},
        created_at=now,
        updated_at=now,
    )
    event = tiktok_hooks.conversion_event_row(conversion)
    if conversion_insert(conversion, event=event):  # the row, its first status change, its event: one statement
        if event is not None:
            tiktok_hooks.event_row_written(event)
        return ConversionResult(conversion=conversion, outcome="created")
    return _conversion_update(dedup_key=dedup_key, status=status, amount_minor=amount_minor)


def webhook_conversion_record(
    fields: dict, *, idempotency_key: str = "", click: Click | None = None
) -> ConversionResult:
    """Record the bot's conversion from validated ConversionWebhookInput data; `click`: the click its utm_id
    names, already read (with its latest lead)."""
    return conversion_record(
        source=Conversion.Source.WEBHOOK,
        token="" if click is not None else fields.get("utm_id", ""),
        click=click,
        customer_id=fields.get("customer_id", ""),
        amount_minor=fields["amount"],
        currency=fields["currency"],
        status=fields.get("status", Conversion.Status.APPROVED),
        goal=fields.get("event", "purchase"),
        transaction_id=fields.get("transaction_id", ""),
        idempotency_key=idempotency_key,
        product_id=fields.get("product_id", ""),
        product_name=fields.get("product_name", ""),
        consent=fields.get("consent"),
        email_sha256=fields.get("email", ""),
        phone_sha256=fields.get("phone", ""),
    )


def conversions_record(items: list[dict]) -> list[ConversionResult]:
    """Record a batch of webhook conversions (validated ConversionBatchItemInput data) in one transaction:
    all of them or, when one names no click or link, none (NotFoundField names it: conversions[3].utm_id).
    Results in the order given. The rows are written in transaction-id order, so two batches that share
    transaction ids wait for each other instead of deadlocking."""
    results: list[ConversionResult | None] = [None] * len(items)
    with transaction.atomic():
        _lock_consenting_leads(items)
        # The clicks the utm_ids name, in one read (a utm_id may also be a link's: those resolve one by one).
        clicks = clicks_with_campaign({item["utm_id"] for item in items if item.get("utm_id")})
        for index in sorted(range(len(items)), key=lambda position: items[position]["transaction_id"]):
            click = clicks.get(items[index].get("utm_id", ""))
            if click is not None and click.link_id is None:
                click = None  # a /click visit without a link: resolve_token decides, as for one conversion
            try:
                results[index] = webhook_conversion_record(items[index], click=click)
            except NotFoundField as exc:
                raise NotFoundField(f"conversions[{index}].{exc.field}", str(exc.detail)) from None
    return results


def _lock_consenting_leads(items: list[dict]) -> None:
    """Lock, in id order, the Telegram users whose consent the batch may change: two batches that name the
    same users in different orders then wait for each other instead of deadlocking on the updates."""
    user_ids = {telegram_user_id_of(item["customer_id"]) for item in items
                if item.get("customer_id") and item.get("consent") is not None}  # fmt: skip
    user_ids.discard(None)
    if user_ids:
        list(Lead.objects.select_for_update().filter(telegram_user_id__in=user_ids).order_by("pk").values_list("pk"))


def _conversion_update(*, dedup_key: str, status: str, amount_minor: int) -> ConversionResult:
    """A repeat: unchanged when it says what is stored (one read, nothing locked); otherwise the stored row is
    locked, read again and changed, with the change logged."""
    existing = stored_conversion(dedup_key)
    if existing is not None and existing.status == status and existing.amount_minor == amount_minor:
        return ConversionResult(conversion=existing, outcome="unchanged")
    with transaction.atomic():
        existing = (
            Conversion.objects.select_for_update(of=("self",)).select_related("link", "click").get(dedup_key=dedup_key)
        )
        if existing.status == status and existing.amount_minor == amount_minor:
            return ConversionResult(conversion=existing, outcome="unchanged")
        ConversionStatusChange.objects.create(
            conversion=existing,
            old_status=existing.status,
            new_status=status,
            old_amount_minor=existing.amount_minor,
            new_amount_minor=amount_minor,
        )
        existing.status = status
        existing.amount_minor = amount_minor
        existing.updated_at = timezone.now()
        existing.save(update_fields=["status", "amount_minor", "updated_at"])
        tiktok_hooks.on_conversion_changed(existing)
    return ConversionResult(conversion=existing, outcome="updated")

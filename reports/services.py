"""Writes of the reports app: daily spend (typed or imported) and the automation rules' firings."""

import csv
import io
import logging
import operator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from conversions.models import Campaign, TrafficSource
from reports.models import CostEntry, Rule, RuleFiring, SourceList
from reports.selectors import ReportQuery, Row, report_rows

logger = logging.getLogger(__name__)

# --- daily spend from a CSV ----------------------------------------------------------------------

CSV_COLUMNS = {
    "day": ("day", "date"),
    "campaign": ("campaign", "campaign_id", "campaign_name"),
    "link": ("utm_id", "link"),
    "amount": ("spend", "cost", "amount"),
    "currency": ("currency",),
}


@dataclass
class CostImportResult:
    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)


def _csv_column(header: list[str], name: str) -> int | None:
    wanted = CSV_COLUMNS[name]
    for index, title in enumerate(header):
        if title.strip().lower() in wanted:
            return index
    return None


def cost_import_csv(*, text: str, default_currency: str | None = None) -> CostImportResult:
    """Import daily spend: one row per day and campaign (or link), columns day, campaign (id or
    name), utm_id (optional), spend (major units, e.g. 12.50), currency (optional).

    All or nothing: any bad line and nothing is written (the errors name the lines). A row for a day
    and scope that already has spend replaces it: re-importing an export is safe.
    """
    result = CostImportResult()
    default_currency = default_currency or settings.DEFAULT_CURRENCY
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header:
        result.errors.append("The file is empty.")
        return result
    index = {name: _csv_column(header, name) for name in CSV_COLUMNS}
    missing = [CSV_COLUMNS[name][0] for name in ("day", "campaign", "amount") if index[name] is None]
    if missing:
        result.errors.append(f"Missing column(s): {', '.join(missing)} (header: {', '.join(header)}).")
        return result
    campaigns_by_name = {campaign.name.lower(): campaign for campaign in Campaign.objects.all()}
    entries = []
    for line_number, line in enumerate(reader, start=2):
        if not any(cell.strip() for cell in line):
            continue

        def cell(name, line=line):
            position = index[name]
            return line[position].strip() if position is not None and position < len(line) else ""

        try:
            day = date.fromisoformat(cell("day"))
        except ValueError:
            result.errors.append(f"Line {line_number}: day {cell('day')!r} is not YYYY-MM-DD.")
            continue
        campaign_text = cell("campaign")
        campaign = campaigns_by_name.get(campaign_text.lower())
        if campaign is None and campaign_text.isdigit():
            campaign = Campaign.objects.filter(pk=int(campaign_text)).first()
        if campaign is None:
            result.errors.append(f"Line {line_number}: no campaign {campaign_text!r}.")
            continue
        link = None
        if cell("link"):
            link = TrafficSource.objects.filter(utm_id=cell("link"), campaign=campaign).first()
            if link is None:
                result.errors.append(f"Line {line_number}: no link {cell('link')!r} in campaign {campaign.name!r}.")
                continue
        try:
            amount = Decimal(cell("amount").replace(",", "."))
        except InvalidOperation:
            result.errors.append(f"Line {line_number}: spend {cell('amount')!r} is not a number.")
            continue
        if amount < 0:
            result.errors.append(f"Line {line_number}: spend is negative.")
            continue
        currency = (cell("currency") or default_currency).upper()
        if len(currency) != 3:
            result.errors.append(f"Line {line_number}: currency {currency!r} is not a 3-letter code.")
            continue
        entries.append((campaign, link, day, int((amount * 100).to_integral_value()), currency))
    if result.errors:
        return result
    with transaction.atomic():
        for campaign, link, day, amount_minor, currency in entries:
            _, created = CostEntry.objects.update_or_create(
                campaign=campaign,
                link=link,
                day=day,
                defaults={"amount_minor": amount_minor, "currency": currency, "source": CostEntry.Source.CSV},
            )
            if created:
                result.created += 1
            else:
                result.updated += 1
    return result


# --- automation rules ----------------------------------------------------------------------------

OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "=": operator.eq,
             "!=": operator.ne}  # fmt: skip
RULE_METRICS = [choice.value for choice in Rule.Metric]


def rule_window(*, rule: Rule, now: datetime) -> tuple[datetime, datetime]:
    """The rolled-up hours of the window: the current hour and the window_hours − 1 before it."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return end - timedelta(hours=rule.window_hours), end


def rule_condition_holds(rule: Rule, row: Row) -> bool:
    conditions = [(rule.metric, rule.operator, rule.threshold)]
    if rule.metric_2:
        conditions.append((rule.metric_2, rule.operator_2, rule.threshold_2))
    for metric, op, threshold in conditions:
        value = row.metric(metric)
        if value is None or threshold is None or not OPERATORS[op](Decimal(str(round(value, 4))), threshold):
            return False
    return True


def _metrics_of(row: Row) -> dict:
    return {metric: (None if row.metric(metric) is None else round(row.metric(metric), 4)) for metric in RULE_METRICS}


@dataclass(frozen=True)
class Target:
    key: str  # what the cooldown and the log name: campaign:<id>, link:<utm_id>, subid:<value>
    row: Row
    campaign: Campaign | None = None
    link: TrafficSource | None = None
    subid: str = ""


def _rule_targets(rule: Rule, start: datetime, end: datetime) -> list[Target]:
    scope = {"campaign_ids": (rule.campaign_id,), "link_ids": (rule.link_id,) if rule.link_id else ()}
    Action = Rule.Action
    if rule.action == Action.PAUSE_LINK:
        links = [rule.link] if rule.link else list(rule.campaign.links.all())
        rows = {row.key[0]: row for row in report_rows(ReportQuery(start=start, end=end, dimensions=("link",),
                                                                   **scope)).rows}  # fmt: skip
        return [Target(f"link:{link.utm_id}", rows.get(link.pk) or Row(key=(link.pk,)), link=link)
                for link in links if link.is_active]  # fmt: skip
    if rule.action in (Action.BLACKLIST_SUBID, Action.WHITELIST_SUBID):
        kind = SourceList.Kind.BLACKLIST if rule.action == Action.BLACKLIST_SUBID else SourceList.Kind.WHITELIST
        listed = set(SourceList.objects.filter(campaign=rule.campaign, kind=kind).values_list("subid", flat=True))
        result = report_rows(ReportQuery(start=start, end=end, dimensions=("subid",), **scope))
        return [Target(f"subid:{row.key[0]}", row, subid=row.key[0])
                for row in result.rows if row.key[0] and row.key[0] not in listed]  # fmt: skip
    totals = report_rows(ReportQuery(start=start, end=end, **scope)).totals
    if rule.action == Action.PAUSE_CAMPAIGN and not rule.campaign.is_active:
        return []
    key = f"link:{rule.link.utm_id}" if rule.link else f"campaign:{rule.campaign_id}"
    return [Target(key, totals, campaign=rule.campaign, link=rule.link)]


def _notification_text(rule: Rule, target: Target, metrics: dict) -> tuple[str, str]:
    subject = f"[tracker] Rule “{rule.name}” fired for {target.key}"
    lines = [
        f"Rule: {rule.name} (campaign {rule.campaign.name}{', link ' + rule.link.utm_id if rule.link else ''})",
        f"Target: {target.key}",
        f"Window: last {rule.window_hours} h",
        "",
        *(f"{name}: {value}" for name, value in metrics.items() if value is not None),
    ]
    return subject, "\n".join(lines)


def _act(rule: Rule, target: Target, metrics: dict, now: datetime) -> tuple[bool, str]:
    """Do the rule's action on one target. Returns (ok, what happened)."""
    Action = Rule.Action
    if rule.action == Action.PAUSE_LINK:
        TrafficSource.objects.filter(pk=target.link.pk).update(is_active=False)
        return True, f"link {target.link.utm_id} paused"
    if rule.action == Action.PAUSE_CAMPAIGN:
        Campaign.objects.filter(pk=rule.campaign_id).update(status=Campaign.Status.PAUSED)
        return True, f"campaign {rule.campaign.name} paused"
    if rule.action in (Action.BLACKLIST_SUBID, Action.WHITELIST_SUBID):
        kind = SourceList.Kind.BLACKLIST if rule.action == Action.BLACKLIST_SUBID else SourceList.Kind.WHITELIST
        SourceList.objects.update_or_create(
            campaign=rule.campaign, subid=target.subid,
            defaults={"kind": kind, "rule": rule, "note": f"By rule “{rule.name}” at {now:%Y-%m-%d %H:%M} UTC"},
        )  # fmt: skip
        return True, f"sub-id {target.subid} {kind}ed"
    subject, body = _notification_text(rule, target, metrics)
    if rule.action == Action.NOTIFY_EMAIL:
        recipients = [address.strip() for address in rule.notify_email.split(",") if address.strip()]
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
        except Exception as error:  # SMTP errors come in many classes; the firing shows which
            return False, f"email failed: {error}"
        return True, f"email sent to {', '.join(recipients)}"
    payload = {
        "rule": {"id": rule.pk, "name": rule.name, "action": rule.action, "window_hours": rule.window_hours},
        "campaign": {"id": rule.campaign_id, "name": rule.campaign.name},
        "link": rule.link.utm_id if rule.link else None,
        "target": target.key,
        "metrics": metrics,
        "fired_at": now.isoformat(),
        "text": body,
    }
    try:
        answer = requests.post(rule.webhook_url, json=payload, timeout=settings.RULES_WEBHOOK_TIMEOUT_S)
    except requests.RequestException as error:
        return False, f"webhook failed: {error}"
    return answer.ok, f"webhook answered HTTP {answer.status_code}"


def rule_evaluate(*, rule_id: int, now: datetime | None = None) -> list[RuleFiring]:
    """Evaluate one rule and act on every target whose numbers meet its condition.

    A target fires at most once per cooldown: the last successful firing on it is the clock (a failed
    notification is logged and tried again at the next evaluation). The rule row stays locked while
    it runs, so two workers never fire the same rule twice.
    """
    now = now or timezone.now()
    firings = []
    with transaction.atomic():
        rule = (
            Rule.objects.select_for_update(of=("self",)).select_related("campaign", "link").filter(pk=rule_id).first()
        )
        if rule is None or not rule.enabled:
            return []
        start, end = rule_window(rule=rule, now=now)
        cooling = set(
            RuleFiring.objects.filter(rule=rule, ok=True, fired_at__gt=now - timedelta(hours=rule.cooldown_hours))
            .values_list("target", flat=True)
        )  # fmt: skip
        for target in _rule_targets(rule, start, end):
            if target.key in cooling or not rule_condition_holds(rule, target.row):
                continue
            metrics = _metrics_of(target.row)
            ok, result = _act(rule, target, metrics, now)
            firing = RuleFiring.objects.create(
                rule=rule, target=target.key[:300], fired_at=now, metrics=metrics, action=rule.action, ok=ok,
                result=result,
            )  # fmt: skip
            firings.append(firing)
            logger.info("rule %s fired on %s: %s", rule.pk, target.key, result)
        rule.last_evaluated_at = now
        rule.save(update_fields=["last_evaluated_at"])
    return firings


def rules_evaluate(*, now: datetime | None = None) -> list[RuleFiring]:
    """Evaluate every enabled rule (the beat task)."""
    firings = []
    for rule_id in Rule.objects.filter(enabled=True).values_list("pk", flat=True):
        firings += rule_evaluate(rule_id=rule_id, now=now)
    return firings

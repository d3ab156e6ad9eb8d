"""A visitor's path as a timeline: click → landing page → bot start → conversions.

Built on conversions.selectors.journey_for_click (the seed's "what we know"), plus the steps in order
with the time each took since the click.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.urls import reverse

from conversions.models import Click, Conversion, Lead
from conversions.selectors import journey_for_click


@dataclass
class Step:
    at: datetime
    kind: str  # click | landing | start | conversion
    title: str
    details: list[tuple[str, str]] = field(default_factory=list)
    admin_url: str = ""
    since_click: str = ""
    highlight: bool = False


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def _money(amount_minor: int, currency: str) -> str:
    return f"{amount_minor / 100:,.2f} {currency}"


def _click_steps(click: Click) -> list[Step]:
    link = click.link
    where = link.utm_id if link else f"/click?campaign_id={click.campaign_id}"
    details = [
        ("IP", click.ip or "–"),
        ("Place", ", ".join(part for part in (click.city, click.country) if part) or "–"),
        ("Device", " / ".join(part for part in (click.device_type, click.os, click.browser) if part) or "–"),
        ("Referrer", click.referrer or "–"),
    ]
    details += [(name, getattr(click, name)) for name in ("subid", "sub1", "sub2", "sub3", "sub4", "sub5", "ttclid",
                                                          "utm_content") if getattr(click, name)]  # fmt: skip
    title = f"Bot hit on {where} ({click.bot_reason or 'bot'})" if click.is_bot else f"Clicked {where}"
    steps = [Step(at=click.created_at, kind="click", title=title, details=details,
                  admin_url=reverse("admin:conversions_click_change", args=[click.pk]))]  # fmt: skip
    if click.served_landing:
        page = link.landing_page.name if link and link.landing_page else "the landing page"
        steps.append(Step(at=click.created_at, kind="landing", title=f"Saw {page}, sent on to Telegram"))
    elif link is not None and not click.is_bot:
        steps.append(Step(at=click.created_at, kind="landing", title=f"Redirected at once ({link.destination})"))
    return steps


def _start_step(start) -> Step:
    lead = start.lead
    who = f"@{lead.username}" if lead.username else str(lead.telegram_user_id)
    return Step(at=start.created_at, kind="start", title=f"Started the bot: {who}",
                details=[("Telegram user id", str(lead.telegram_user_id)), ("Token", start.token),
                         ("Referrer", start.referrer or "–")],
                admin_url=reverse("admin:conversions_lead_change", args=[lead.pk]))  # fmt: skip


def _conversion_step(conversion: Conversion, *, highlight: bool = False) -> Step:
    details = [("Status", conversion.status), ("Amount", _money(conversion.amount_minor, conversion.currency)),
               ("Product", conversion.product_name or "–"), ("Transaction", conversion.transaction_id or "–"),
               ("Source", conversion.source)]  # fmt: skip
    if conversion.time_to_conversion_s is not None:
        details.append(("Time to conversion", _duration(conversion.time_to_conversion_s)))
    return Step(at=conversion.created_at, kind="conversion",
                title=f"{conversion.goal.capitalize()}: {_money(conversion.amount_minor, conversion.currency)} "
                      f"({conversion.status})",
                details=details, highlight=highlight,
                admin_url=reverse("admin:conversions_conversion_change", args=[conversion.pk]))  # fmt: skip


def _timeline(*, click: Click | None, starts, conversions, highlight: Conversion | None = None) -> list[Step]:
    steps = _click_steps(click) if click else []
    steps += [_start_step(start) for start in starts]
    seen = set()
    for conversion in conversions:
        if conversion.pk not in seen:
            seen.add(conversion.pk)
            steps.append(
                _conversion_step(conversion, highlight=highlight is not None and conversion.pk == highlight.pk)
            )
    order = {"click": 0, "landing": 1, "start": 2, "conversion": 3}
    steps.sort(key=lambda step: (step.at, order[step.kind]))
    if click:
        for step in steps:
            step.since_click = "" if step.kind in ("click", "landing") else "+" + _duration(
                max(0.0, (step.at - click.created_at).total_seconds()))  # fmt: skip
    return steps


def _facts(journey: dict) -> list[tuple[str, str]]:
    labels = [("utm_source", "Source"), ("campaign", "Campaign"), ("utm_id", "Link"), ("utm_campaign", "utm_campaign"),
              ("utm_content", "Content"), ("creative", "Creative"), ("first_click", "First click"), ("ip", "IP"),
              ("country", "Country"), ("city", "City"), ("device", "Device"), ("os", "OS"), ("browser", "Browser"),
              ("telegram_user_id", "Telegram user id"), ("telegram_username", "Telegram username")]  # fmt: skip
    return [(label, str(journey[key])) for key, label in labels if journey.get(key) not in (None, "")]


def click_journey(click: Click, *, highlight: Conversion | None = None) -> dict:
    starts = click.starts.select_related("lead").order_by("created_at")
    conversions = click.conversions.order_by("created_at")
    return {"facts": _facts(journey_for_click(click)), "click": click,
            "steps": _timeline(click=click, starts=starts, conversions=conversions, highlight=highlight)}  # fmt: skip


def lead_journey(lead: Lead, *, highlight: Conversion | None = None) -> dict:
    """The lead's click (when an exact one is known), every start and every conversion of the lead."""
    starts = list(lead.starts.select_related("lead").order_by("created_at"))
    conversions = list(lead.conversions.order_by("created_at"))
    click = lead.click or next((start.click for start in starts if start.click_id), None)
    if click is not None:
        conversions += list(click.conversions.order_by("created_at"))
    facts = _facts(journey_for_click(click)) if click else [
        ("Campaign", lead.campaign.name if lead.campaign else "–"), ("Link", lead.link.utm_id if lead.link else "–"),
        ("Telegram user id", str(lead.telegram_user_id)), ("Telegram username", f"@{lead.username}" if lead.username
                                                                                   else "–")]  # fmt: skip
    return {"facts": facts, "click": click, "lead": lead,
            "steps": _timeline(click=click, starts=starts, conversions=conversions, highlight=highlight)}  # fmt: skip


def conversion_journey(conversion: Conversion) -> dict:
    if conversion.click is not None:
        return click_journey(conversion.click, highlight=conversion)
    if conversion.lead is not None:
        journey = lead_journey(conversion.lead, highlight=conversion)
        if all(step.kind != "conversion" or not step.highlight for step in journey["steps"]):
            journey["steps"].append(_conversion_step(conversion, highlight=True))
        return journey
    link = conversion.link
    facts = [
        ("Campaign", conversion.campaign.name),
        ("Link", link.utm_id if link else "–"),
        ("Customer", conversion.customer_id or "–"),
        ("Note", "No click is known for this conversion"),
    ]
    return {"facts": facts, "click": None, "steps": [_conversion_step(conversion, highlight=True)]}

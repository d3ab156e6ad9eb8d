import hashlib
import secrets
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from conversions.models import Campaign, Click, TrafficSource
from landing.click_store import click_insert
from landing.enrichment import anonymize_ip, client_ip, locate, parse_user_agent
from tiktok_ads import hooks as tiktok_hooks
from tracker.db.statements import new_instance

TRACKED_PARAMS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "subid",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
    "ttclid",
)
MAX_EXTRA_PARAMS = 20
MAX_PARAM_LENGTH = 200


@dataclass(frozen=True)
class Visit:
    """What the click path knows from one request, independent of Django's request object."""

    ip: str | None
    user_agent: str
    referrer: str
    landing_url: str
    method: str
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_request(cls, request) -> "Visit":
        return cls(
            ip=client_ip(request.META),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
            referrer=request.META.get("HTTP_REFERER", "")[:1000],
            landing_url=request.build_absolute_uri()[:2000],
            method=request.method,
            params={key: value for key, value in request.GET.items()},
        )


def new_click_id() -> str:
    # 16 url-safe characters (96 random bits): fits Telegram's 64-character start parameter.
    return secrets.token_urlsafe(12)


def _visitor_hash(ip: str | None, user_agent: str) -> str:
    return hashlib.sha256(f"{ip or ''}|{user_agent}".encode()).hexdigest()


def _clean(value: str) -> str:
    return value.replace("\x00", "")[:MAX_PARAM_LENGTH]


def click_record(*, campaign: Campaign, link: TrafficSource | None, visit: Visit, shows_landing: bool) -> Click:
    """Append one click (or bot hit). Never updates another row, so a viral link has no hot row.

    A visit is a bot hit when its user agent is a crawler or preview fetcher, or it is a HEAD request.
    Unique: the first non-bot click of the same IP + user agent on the same link within the window
    (decided by the INSERT itself, see landing.click_store).
    """
    now = timezone.now()
    device = parse_user_agent(visit.user_agent)
    is_bot = device.is_bot or visit.method == "HEAD"
    bot_reason = ""
    if visit.method == "HEAD":
        bot_reason = "head_request"
    elif device.is_bot:
        bot_reason = "user_agent" if visit.user_agent.strip() else "empty_user_agent"
    place = locate(visit.ip)  # from the full address; only the anonymised one is stored
    stored_ip = anonymize_ip(visit.ip, settings.IP_ANONYMIZATION)
    visitor_hash = _visitor_hash(stored_ip, visit.user_agent)
    params = {key: _clean(value) for key, value in visit.params.items()}
    extra = {key[:64]: value for key, value in params.items() if key not in TRACKED_PARAMS and key not in ("_ttp",)}
    click = new_instance(
        Click,
        click_id=new_click_id(),
        campaign=campaign,
        link=link,
        created_at=now,
        ip=stored_ip,
        user_agent=visit.user_agent,
        referrer=visit.referrer,
        landing_url=visit.landing_url,
        device_type=device.device_type,
        os=device.os,
        browser=device.browser,
        country=place.country,
        city=place.city,
        is_bot=is_bot,
        bot_reason=bot_reason,
        is_unique=not is_bot,  # a candidate: click_insert keeps it only for the visitor's first in the window
        served_landing=shows_landing and not is_bot,
        visitor_hash=visitor_hash,
        ttp=params.get("_ttp", ""),
        extra_params=dict(list(extra.items())[:MAX_EXTRA_PARAMS]),
        **{name: params.get(name, "") for name in TRACKED_PARAMS},
    )
    event = tiktok_hooks.click_event_row(click)  # ViewContent: written with the click, or neither is
    click_insert(click, event=event)
    if event is not None:
        tiktok_hooks.event_row_written(event)
    return click

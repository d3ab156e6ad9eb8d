"""What a visitor touches: /l/<utm_id> and the classic /click. Record the click, then redirect."""

import re
import secrets

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.template.loader import render_to_string
from django.views.decorators.http import require_safe

from conversions.models import TOKEN_REGEX, TrafficSource
from landing.macros import fill_macros, macro_values
from landing.selectors import active_campaign, active_link
from landing.services import Visit, click_record

_TOKEN = re.compile(TOKEN_REGEX)


def _not_found(request, what: str):
    body = render_to_string("landing/not_found.html", {"what": what}, request=request)
    return _no_store(HttpResponseNotFound(body))


def _no_store(response):
    # Every visit must reach us (and be counted), never a cached copy.
    response["Cache-Control"] = "no-store, private"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response


def destination_for(link: TrafficSource, click) -> str:
    if link.destination == TrafficSource.Destination.TELEGRAM:
        return f"https://t.me/{link.telegram_bot}?start={click.click_id}"
    return fill_macros(link.destination_url, macro_values(click))


@require_safe
def link_click(request, utm_id: str):
    if not _TOKEN.match(utm_id):
        return _not_found(request, "link")
    link = active_link(utm_id)
    if link is None:
        return _not_found(request, "link")
    shows_landing = link.redirect_mode == TrafficSource.RedirectMode.PAGE
    click = click_record(
        campaign=link.campaign, link=link, visit=Visit.from_request(request), shows_landing=shows_landing
    )
    if not shows_landing:
        return _no_store(HttpResponseRedirect(destination_for(link, click)))
    return _no_store(HttpResponse(landing_page_html(link, click)))


def _page_context(link: TrafficSource, destination: str) -> dict:
    page = link.landing_page
    delay_s = page.redirect_delay_s if page and page.redirect_delay_s is not None else settings.LANDING_REDIRECT_DELAY_S
    return {
        "link": link,
        "page": page,
        "title": page.title if page else link.campaign.name,
        "description": page.description if page else "",
        "logo_url": (page.logo_url if page else "") or "",
        "redirect_text": page.redirect_text if page else "Redirecting to Telegram…",
        "button_text": page.button_text if page else "Open in Telegram",
        "destination": destination,
        "delay_s": delay_s,
    }


# Stands for the click id in a link's page rendered once: url-safe characters, so it is written the same
# way in the page's HTML attributes and its JSON, as a real click id is; random, so no page text holds it.
_CLICK_ID_SLOT = "slot" + secrets.token_urlsafe(12)


def landing_page_html(link: TrafficSource, click) -> str:
    """The link's landing page for this click. A Telegram link's page differs between clicks only by the
    click id, so it is rendered once per cached link (it lives as long as the link stays in the link cache,
    LINK_CACHE_TTL_S) and the click id is put in its place; an offer URL's macros differ per click."""
    if link.destination != TrafficSource.Destination.TELEGRAM:
        return render_to_string("landing/page.html", _page_context(link, destination_for(link, click)))
    page = getattr(link, "_rendered_page", None)
    if page is None:
        slot_destination = f"https://t.me/{link.telegram_bot}?start={_CLICK_ID_SLOT}"
        page = render_to_string("landing/page.html", _page_context(link, slot_destination))
        link._rendered_page = page
    return page.replace(_CLICK_ID_SLOT, click.click_id)


@require_safe
def classic_click(request):
    campaign_id = request.GET.get("campaign_id", "")
    campaign = None
    if campaign_id.isdigit() and len(campaign_id) < 19:
        campaign = active_campaign(int(campaign_id))
    if campaign is None or not campaign.offer_url:
        return _not_found(request, "campaign")
    click = click_record(campaign=campaign, link=None, visit=Visit.from_request(request), shows_landing=False)
    return _no_store(HttpResponseRedirect(fill_macros(campaign.offer_url, macro_values(click))))

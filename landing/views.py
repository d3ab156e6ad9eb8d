"""What a visitor touches: /l/<utm_id> and the classic /click. Record the click, then redirect."""

import re

from django.conf import settings
from django.http import HttpResponseNotFound, HttpResponseRedirect
from django.shortcuts import render
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
    destination = destination_for(link, click)
    if not shows_landing:
        return _no_store(HttpResponseRedirect(destination))
    page = link.landing_page
    delay_s = page.redirect_delay_s if page and page.redirect_delay_s is not None else settings.LANDING_REDIRECT_DELAY_S
    context = {
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
    return _no_store(render(request, "landing/page.html", context))


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

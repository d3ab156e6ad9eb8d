"""TikTok Login Kit pages a person opens: /tiktok/oauth/start (from the bot's link) and /tiktok/callback
(TikTok sends the browser back there). HTML answers, no cookie, never cached."""

import logging

from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from ops.services import tiktok_account_link
from ops.tiktok_login import BadState, LoginKitError, authorize_url, login_configured, telegram_user_from_state

logger = logging.getLogger(__name__)


def _page(request, *, status: int, title: str, message: str):
    response = render(request, "ops/tiktok_link.html", {"title": title, "message": message}, status=status)
    response["Referrer-Policy"] = "no-referrer"  # the callback URL carries the one-time code
    return response


def _not_configured(request):
    return _page(
        request,
        status=404,
        title="TikTok login is not set up",
        message="This tracker has no TikTok Login Kit app configured.",
    )


def _bad_state(request):
    return _page(
        request,
        status=400,
        title="This link has expired",
        message="Ask the bot for a new TikTok link and open it within a few minutes.",
    )


@require_safe
@never_cache
def tiktok_oauth_start(request):
    if not login_configured():
        return _not_configured(request)
    state = request.GET.get("state", "")
    try:
        telegram_user_from_state(state)
    except BadState:
        return _bad_state(request)
    return HttpResponseRedirect(authorize_url(state))


@require_safe
@never_cache
def tiktok_callback(request):
    if not login_configured():
        return _not_configured(request)
    state, code = request.GET.get("state", ""), request.GET.get("code", "")
    if request.GET.get("error"):
        # The user said no (access_denied) or TikTok refused the request; nothing to link.
        return _page(
            request,
            status=400,
            title="TikTok account not linked",
            # Fixed words, not the query's text: anyone can craft this URL on our domain.
            message="You did not allow access."
            if request.GET["error"] == "access_denied"
            else "TikTok refused the request. Please ask the bot for a new link.",
        )
    if not code:
        return _page(request, status=400, title="TikTok account not linked", message="TikTok sent no code.")
    try:
        link = tiktok_account_link(state=state, code=code)
    except BadState:
        return _bad_state(request)
    except LoginKitError as exc:
        logger.warning("TikTok Login Kit refused: %s (log_id %s)", exc, exc.log_id or "-")
        return _page(
            request,
            status=502,
            title="TikTok account not linked",
            message="TikTok did not confirm the login. Please ask the bot for a new link.",
        )
    return _page(
        request,
        status=200,
        title="TikTok account linked",
        message=f"Linked to {link.display_name or 'your TikTok account'}. You can go back to Telegram.",
    )

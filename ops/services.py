"""Writes of the ops app: linking a Telegram user to a TikTok account (Login Kit)."""

from django.utils import timezone

from ops.models import TikTokAccountLink
from ops.tiktok_login import LoginKitClient, redirect_uri, telegram_user_from_state


def tiktok_account_link(*, state: str, code: str, client: LoginKitClient | None = None) -> TikTokAccountLink:
    """Finish a Login Kit authorisation: check our signed state, trade the code for a token, read the
    account, and store (or replace) the Telegram user's link. The token is used once and not kept.

    Raises BadState (forged or expired state) or LoginKitError (TikTok refused or did not answer);
    nothing is written then.
    """
    telegram_user_id = telegram_user_from_state(state)
    client = client or LoginKitClient.from_settings()
    grant = client.exchange_code(code=code, redirect_uri=redirect_uri())
    user = client.user_info(access_token=grant.access_token)
    link, _ = TikTokAccountLink.objects.update_or_create(
        telegram_user_id=telegram_user_id,
        defaults={
            "open_id": user.open_id or grant.open_id,
            "union_id": user.union_id,
            "display_name": user.display_name,
            "avatar_url": user.avatar_url,
            "scopes": grant.scope[:200],
            "linked_at": timezone.now(),
        },
    )
    return link

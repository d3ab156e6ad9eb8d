from django.contrib import admin

from ops.models import TikTokAccountLink
from tracker.admin_base import ReadOnlyAdmin


@admin.register(TikTokAccountLink)
class TikTokAccountLinkAdmin(ReadOnlyAdmin):
    """Written by the Login Kit callback only; deleting a row unlinks the account."""

    list_display = ["telegram_user_id", "display_name", "open_id", "scopes", "linked_at"]
    search_fields = ["=telegram_user_id", "=open_id", "display_name"]
    readonly_fields = ["telegram_user_id", "open_id", "union_id", "display_name", "avatar_url", "scopes", "linked_at"]

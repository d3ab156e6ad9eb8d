from django import template

from ops.selectors import OutboxSummary, outbox_summary

register = template.Library()


@register.simple_tag
def tiktok_outbox() -> OutboxSummary:
    """The outbox line on the TikTok events list (templates/admin/tiktok_ads/tiktokevent/change_list.html)."""
    return outbox_summary()

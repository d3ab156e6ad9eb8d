"""Fill {macro} placeholders of admin-configured destination URLs with URL-encoded click values.

Only the URL template comes from the admin; the query string of a visit can fill values into it
but never choose where the visitor goes (no open redirect).
"""

import re
from urllib.parse import quote

MACRO_PATTERN = re.compile(r"\{([a-z0-9_]+)\}")
KNOWN_MACROS = (
    "click_id",
    "subid",
    "utm_id",
    "campaign_id",
    "country",
    "city",
    "device",
    "os",
    "browser",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
    "ttclid",
)


def macro_values(click) -> dict[str, str]:
    return {
        "click_id": click.click_id,
        "subid": click.subid,
        "utm_id": click.link.utm_id if click.link_id else "",
        "campaign_id": str(click.campaign_id),
        "country": click.country,
        "city": click.city,
        "device": click.device_type,
        "os": click.os,
        "browser": click.browser,
        "utm_source": click.utm_source,
        "utm_medium": click.utm_medium,
        "utm_campaign": click.utm_campaign,
        "utm_content": click.utm_content,
        "utm_term": click.utm_term,
        "sub1": click.sub1,
        "sub2": click.sub2,
        "sub3": click.sub3,
        "sub4": click.sub4,
        "sub5": click.sub5,
        "ttclid": click.ttclid,
    }


def fill_macros(template: str, values: dict[str, str]) -> str:
    """Replace known {macros} with URL-encoded values; unknown ones are left as written."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        return quote(values[name] or "", safe="")

    return MACRO_PATTERN.sub(replace, template)

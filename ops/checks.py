"""System checks: a misconfigured alias fails `manage.py check` (and so `make test` and boot scripts)."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def postback_aliases_check(app_configs, **kwargs):
    from conversions.serializers import POSTBACK_ALIASES

    unknown = sorted(set(settings.POSTBACK_PARAM_ALIASES) - set(POSTBACK_ALIASES))
    if not unknown:
        return []
    return [
        Error(
            f"POSTBACK_PARAM_ALIASES names unknown parameters: {', '.join(unknown)}.",
            hint=f"Map onto one of: {', '.join(POSTBACK_ALIASES)}.",
            id="ops.E001",
        )
    ]

"""Small parsers for environment values that are more than a string or a list (no Django imports:
tracker/settings.py uses them)."""

import re

_NAME = re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}")


def parse_aliases(text: str) -> dict[str, tuple[str, ...]]:
    """`click_id:clickref|s2,payout:commission` → {"click_id": ("clickref", "s2"), "payout": ("commission",)}.

    Raises ValueError naming the bad part, so a typo fails at boot rather than silently dropping postbacks.
    """
    aliases: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (chunk.strip() for chunk in text.split(","))):
        ours, colon, theirs = part.partition(":")
        names = tuple(filter(None, (name.strip() for name in theirs.split("|"))))
        if not colon or not _NAME.fullmatch(ours.strip()) or not names:
            raise ValueError(f"{part!r}: write <our name>:<their name>[|<another>], e.g. click_id:clickref|s2")
        for name in names:
            if not _NAME.fullmatch(name):
                raise ValueError(f"{name!r} in {part!r} is not a query parameter name")
        aliases[ours.strip()] = aliases.get(ours.strip(), ()) + names
    return aliases

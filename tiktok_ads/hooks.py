"""What the funnel tells the TikTok integration: the outbox rows that a click's or a new conversion's own
statement writes, and the other steps inside the funnel's own transaction."""


def click_event_row(click) -> dict | None:
    """The outbox row the click's ViewContent needs, written by the click's own INSERT; or None."""
    from tiktok_ads import funnel

    return funnel.click_event_row(click)


def event_row_written(row: dict) -> None:
    from tiktok_ads import outbox

    outbox.row_committed(row)


def conversion_event_row(conversion) -> dict | None:
    """The outbox row of a new conversion's event, written by the conversion's own INSERT; or None."""
    from tiktok_ads import funnel

    return funnel.conversion_event_row(conversion)


def on_start(start) -> None:
    from tiktok_ads import funnel

    funnel.on_start(start)


def on_conversion_changed(conversion) -> None:
    from tiktok_ads import funnel

    funnel.on_conversion_changed(conversion)

"""What the funnel tells the TikTok integration, inside the funnel's own transaction."""


def click_event_row(click) -> dict | None:
    """The outbox row the click's ViewContent needs, written by the click's own INSERT; or None."""
    from tiktok_ads import funnel

    return funnel.click_event_row(click)


def event_row_written(row: dict) -> None:
    from tiktok_ads import outbox

    outbox.row_committed(row)


def on_start(start) -> None:
    from tiktok_ads import funnel

    funnel.on_start(start)


def on_conversion(conversion, *, created: bool) -> None:
    from tiktok_ads import funnel

    funnel.on_conversion(conversion, created=created)

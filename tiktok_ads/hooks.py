"""What the funnel tells the TikTok integration, inside the funnel's own transaction."""


def click_has_event(click) -> bool:
    """Will on_click write an outbox row? (When not, the click is saved without a transaction.)"""
    from tiktok_ads import funnel

    return funnel.click_event_pixel(click) is not None


def on_click(click) -> None:
    from tiktok_ads import funnel

    funnel.on_click(click)


def on_start(start) -> None:
    from tiktok_ads import funnel

    funnel.on_start(start)


def on_conversion(conversion, *, created: bool) -> None:
    from tiktok_ads import funnel

    funnel.on_conversion(conversion, created=created)

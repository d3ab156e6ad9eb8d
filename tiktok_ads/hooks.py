"""What the funnel tells the TikTok integration, inside the funnel's own transaction."""


def on_click(click) -> None:
    from tiktok_ads import funnel

    funnel.on_click(click)


def on_start(start) -> None:
    from tiktok_ads import funnel

    funnel.on_start(start)


def on_conversion(conversion, *, created: bool) -> None:
    from tiktok_ads import funnel

    funnel.on_conversion(conversion, created=created)

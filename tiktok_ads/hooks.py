"""What the funnel tells the TikTok integration after each commit (click, start, conversion)."""


def on_click(click) -> None:
    pass


def on_start(start) -> None:
    pass


def on_conversion(conversion, *, created: bool) -> None:
    pass

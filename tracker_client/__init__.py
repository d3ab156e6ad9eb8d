"""A small Python client for the tracker's bot and partner API (see docs/telegram-bot.md).

from tracker_client import TrackerClient
tracker = TrackerClient("https://trk.example.com", api_key="1a2b3c4d.…")
tracker.track_start(token="<what /start carried>", user_id=123456789, username="john_doe")
tracker.conversion(customer_id="telegram_123456789", amount_minor=5000, transaction_id="order-1")
"""

from tracker_client.client import (
    ConversionResult,
    StartResult,
    TrackerClient,
    TrackerError,
    TrackerUnavailable,
)

__all__ = ["ConversionResult", "StartResult", "TrackerClient", "TrackerError", "TrackerUnavailable"]

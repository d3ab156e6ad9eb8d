"""Prometheus metrics: business numbers read from the database at scrape time, request latency
observed by the middleware.

Why the database: gunicorn runs several worker processes, each with its own memory, so a counter
incremented in one worker is invisible to a scrape answered by another. Clicks, starts, conversions and
the outbox are already rows; counting them at scrape time (a custom Collector) gives the same exact,
cumulative numbers from any worker, with no extra write on the click path.

Latency has to be observed in the process that served the request. Under gunicorn.conf.py the workers
run in prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR): each writes its histogram to a
file there, and /metrics merges them. Without that variable (runserver, tests) the histogram lives in
the process. docs/observability.md lists every metric.
"""

import logging
import os

from django.db import DatabaseError
from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from conversions import partitions
from ops import selectors

logger = logging.getLogger(__name__)

# Not registered in a global registry: /metrics builds its registry per scrape (multiprocess or not).
REQUEST_LATENCY = Histogram(
    "tracker_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, URL route (the pattern, not the path) and status code.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,
)

TOTALS_HELP = {
    "clicks": ("tracker_clicks", "Clicks on tracking links and classic links (bot hits excluded)."),
    "unique_clicks": ("tracker_unique_clicks", "Unique clicks (first of an IP + user agent on a link in 24 h)."),
    "bot_hits": ("tracker_bot_hits", "Visits by crawlers and link-preview fetchers."),
    "landing_views": ("tracker_landing_views", "Landing pages shown to people."),
    "starts": ("tracker_bot_starts", "Telegram /start reports (one per user and token)."),
}


def observe_request(*, method: str, route: str, status: int, duration_s: float) -> None:
    REQUEST_LATENCY.labels(method=method, route=route, status=str(status)).observe(duration_s)


class TrackerCollector(Collector):
    """Reads the numbers from the database on every scrape."""

    def collect(self):
        try:
            totals = selectors.tracker_totals()
            conversions = selectors.conversion_numbers()
            events = selectors.tiktok_events_by_status()
            outbox = selectors.outbox_summary(by_status=events)
            click_ids_left = partitions.click_ids_left()
        except DatabaseError:
            logger.warning("metrics: the database did not answer", exc_info=True)
            yield GaugeMetricFamily("tracker_database_up", "1 when the numbers below could be read.", value=0)
            return
        yield GaugeMetricFamily("tracker_database_up", "1 when the numbers below could be read.", value=1)
        for key, (name, help_text) in TOTALS_HELP.items():
            yield CounterMetricFamily(name, help_text, value=totals[key])
        yield CounterMetricFamily("tracker_conversions", "Conversions recorded (any status).", value=conversions.total)
        by_status = GaugeMetricFamily(
            "tracker_conversions_by_status", "Conversions by their current status.", labels=["status"]
        )
        for status, count in sorted(conversions.by_status.items()):
            by_status.add_metric([status], count)
        yield by_status
        revenue = GaugeMetricFamily(
            "tracker_revenue_minor", "Revenue of approved conversions in minor units, by currency.", labels=["currency"]
        )
        for currency, amount in sorted(conversions.approved_revenue_minor.items()):
            revenue.add_metric([currency], amount)
        yield revenue
        by_event_status = GaugeMetricFamily(
            "tracker_tiktok_events", "TikTok events in the outbox by status.", labels=["status"]
        )
        for status, count in sorted(events.items()):
            by_event_status.add_metric([status], count)
        yield by_event_status
        yield GaugeMetricFamily(
            "tracker_tiktok_outbox_depth", "TikTok events not sent yet (queued, retrying, sending).", value=outbox.depth
        )
        yield GaugeMetricFamily(
            "tracker_tiktok_outbox_oldest_age_seconds",
            "Age of the oldest TikTok event still waiting to be sent (queued or retrying); 0 when none.",
            value=outbox.oldest_pending_age_s,
        )
        if click_ids_left is not None:
            yield GaugeMetricFamily(
                "tracker_click_ids_left",
                "Ids the clicks table's partitions hold beyond the next click (manage.py partition_clicks).",
                value=click_ids_left,
            )


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def render_metrics() -> bytes:
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_LATENCY)
    registry.register(TrackerCollector())
    return generate_latest(registry)

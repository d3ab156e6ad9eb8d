"""Benchmark: the 30-day report by campaign and day on 1,000,000 clicks and 100,000 conversions.

    .venv/bin/python bench/reports.py                       # 1,000,000 clicks, 100,000 conversions
    .venv/bin/python bench/reports.py --clicks 100000 --conversions 10000 --runs 5

It drops and recreates the PostgreSQL database `tracker_bench_reports` on 127.0.0.1:5432, migrates
it, loads the ledger with COPY (20 campaigns, 200 links, 35 days of clicks with countries, cities,
devices and sub-ids; bot starts; conversions with goals, statuses and time to conversion; daily
spend and costs per click), runs the product's rollup until it has read everything, and then times
the reports (the median of --runs runs each). It checks that the report's numbers equal those
counted from the raw rows, prints a Markdown table, and always drops the database at the end.
Run on demand only; never part of the test suite.
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from common import (
    EMPTY_CLICK_COLUMNS,
    EMPTY_CLICK_TEXT,
    ROOT,
    BenchTimeout,
    bench_env,
    copy_rows,
    drop_database,
    git_revision,
    hard_cap,
    machine,
    migrate,
    recreate_database,
)

DB_NAME = "tracker_bench_reports"
CAMPAIGNS, LINKS_PER_CAMPAIGN, DAYS = 20, 10, 35
END = datetime(2026, 11, 1, tzinfo=UTC)  # fixed, so runs are comparable; the 30-day report ends on Oct 31
COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "UA", "RO", "PL", "BR", "MX", "TR", "IN", "ID", "PH", "VN",
             "TH", "NG", "EG", "SA", "AE", "KZ", "CA", "AU", "NL", "SE", "CZ", "PT", "AR", "CO"]  # fmt: skip
DEVICES = [("mobile", "iOS", "Mobile Safari"), ("mobile", "Android", "Chrome Mobile"), ("mobile", "Android",
           "TikTok"), ("desktop", "Windows", "Chrome"), ("desktop", "Mac OS X", "Safari"), ("tablet", "iOS",
           "Mobile Safari")]  # fmt: skip


# --- the ledger ----------------------------------------------------------------------------------


def load_ledger(*, clicks: int, conversions: int, seed: int = 42) -> dict:
    from decimal import Decimal

    from django.db import connection

    from conversions.models import Campaign, TrafficSource
    from reports.models import CostEntry, CostPerClick

    rnd = random.Random(seed)
    started = time.monotonic()
    campaigns = Campaign.objects.bulk_create(Campaign(name=f"Campaign {n:02d}") for n in range(CAMPAIGNS))
    links = TrafficSource.objects.bulk_create(
        TrafficSource(campaign=campaign, utm_id=f"bench_{campaign.pk}_{n}", telegram_bot="bench_bot",
                      creative=f"video_{campaign.pk}_{n % 4}", utm_content=f"content_{n % 3}")
        for campaign in campaigns for n in range(LINKS_PER_CAMPAIGN)
    )  # fmt: skip
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(links))]  # a few links bring most of the traffic
    cities = {country: [f"{country} city {n}" for n in range(10)] for country in COUNTRIES}
    first_second = int((END - timedelta(days=DAYS)).timestamp())
    span = DAYS * 86400
    click_rows, humans = [], []
    chosen_links = rnd.choices(links, weights=weights, k=clicks)
    for index, link in enumerate(chosen_links):
        created = datetime.fromtimestamp(first_second + rnd.randrange(span), tz=UTC)
        country = rnd.choice(COUNTRIES)
        device, os_name, browser = rnd.choice(DEVICES)
        is_bot = rnd.random() < 0.08
        if not is_bot:
            humans.append((index + 1, link, created))
        click_rows.append((f"b{index}", link.campaign_id, link.pk, created, device, os_name, browser, country,
                           rnd.choice(cities[country]), is_bot, not is_bot and rnd.random() < 0.85, not is_bot,
                           f"src_{rnd.randrange(500)}", rnd.choice(("", "", "from_url")), *EMPTY_CLICK_TEXT,
                           "{}"))  # fmt: skip
    copy_rows("conversions_click", ["click_id", "campaign_id", "link_id", "created_at", "device_type", "os", "browser",
              "country", "city", "is_bot", "is_unique", "served_landing", "subid", "utm_content",
              *EMPTY_CLICK_COLUMNS, "extra_params"], click_rows)  # fmt: skip
    # COPY does not return ids: the clicks table was empty, so the n-th row has id n.
    starters = rnd.sample(humans, k=min(len(humans), conversions * 3 // 2))
    copy_rows("conversions_lead", ["telegram_user_id", "campaign_id", "link_id", "click_id", "first_seen_at",
              "last_seen_at", "username", "first_name", "language_code", "email_sha256", "phone_sha256"],
              ((10**9 + n, link.campaign_id, link.pk, click_id, created, created, "", "", "", "", "")
               for n, (click_id, link, created) in enumerate(starters)))  # fmt: skip
    copy_rows("conversions_botstart", ["lead_id", "campaign_id", "link_id", "click_id", "token", "referrer",
              "created_at"], ((n + 1, link.campaign_id, link.pk, click_id, f"b{click_id - 1}", "",
                               created + timedelta(seconds=rnd.randrange(5, 300)))
                              for n, (click_id, link, created) in enumerate(starters)))  # fmt: skip
    conversion_rows, change_rows = [], []
    for n, (click_id, link, created) in enumerate(rnd.sample(starters, k=min(conversions, len(starters)))):
        ttc = int(rnd.lognormvariate(7.5, 1.5))
        at = created + timedelta(seconds=ttc)
        status = rnd.choices(("approved", "pending", "rejected"), weights=(80, 12, 8))[0]
        amount = rnd.randrange(100, 20_000)
        conversion_rows.append((f"bc{n}", f"tx:bench-{n}", "postback", link.campaign_id, link.pk, click_id,
                                rnd.choice(("purchase", "purchase", "deposit", "registration")), status, amount,
                                "USD", ttc, True, "{}", at, at, "", "", "", "", "", ""))  # fmt: skip
        change_rows.append((n + 1, "", status, amount, at))
    copy_rows("conversions_conversion", ["public_id", "dedup_key", "source", "campaign_id", "link_id", "click_id",
              "goal", "status", "amount_minor", "currency", "time_to_conversion_s", "in_attribution_window",
              "params", "created_at", "updated_at", "customer_id", "email_sha256", "phone_sha256", "transaction_id",
              "product_id", "product_name"], conversion_rows)  # fmt: skip
    copy_rows("conversions_conversionstatuschange", ["conversion_id", "old_status", "new_status", "new_amount_minor",
              "created_at"], change_rows)  # fmt: skip
    # Costs: half the campaigns pay per click, the other half enter daily spend.
    for campaign in campaigns[: CAMPAIGNS // 2]:
        CostPerClick.objects.create(campaign=campaign, cost_per_click=Decimal("0.12"), starts_on=date(2026, 1, 1))
    CostEntry.objects.bulk_create(
        CostEntry(campaign=campaign, day=(END - timedelta(days=days + 1)).date(),
                  amount_minor=rnd.randrange(5_000, 50_000))
        for campaign in campaigns[CAMPAIGNS // 2 :] for days in range(DAYS)
    )  # fmt: skip
    with connection.cursor() as cursor:
        for table in ("conversions_click", "conversions_lead", "conversions_botstart", "conversions_conversion",
                      "conversions_conversionstatuschange"):  # fmt: skip
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
            # Statistics, as autovacuum keeps them on a live table: without them the planner takes the
            # freshly loaded tables for empty ones and the rollup's range scans for full scans.
            cursor.execute(f"ANALYZE {table}")
    return {"load_s": round(time.monotonic() - started, 1), "clicks": clicks, "starts": len(starters),
            "conversions": len(conversion_rows)}  # fmt: skip


def roll_up() -> dict:
    from django.db import connection

    from reports.models import ConversionDetailHour, ConversionHour, TrafficDetailHour, TrafficHour
    from reports.rollups import report_rollup_refresh

    started = time.monotonic()
    while any(report_rollup_refresh().values()):
        pass
    seconds = time.monotonic() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # what autovacuum would have done by the time anyone reads a report
    return {"rollup_s": round(seconds, 1), "traffic_hour_rows": TrafficHour.objects.count(),
            "traffic_detail_rows": TrafficDetailHour.objects.count(),
            "conversion_hour_rows": ConversionHour.objects.count(),
            "conversion_detail_rows": ConversionDetailHour.objects.count()}  # fmt: skip


# --- measurements --------------------------------------------------------------------------------


def timed(function, runs: int) -> dict:
    function()  # warm-up: connection, plans, the ORM's caches
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(samples), 1), "min_ms": round(min(samples), 1),
            "max_ms": round(max(samples), 1)}  # fmt: skip


def thirty_days(tz: str = "UTC", **kwargs):
    from zoneinfo import ZoneInfo

    from reports.selectors import ReportQuery

    last = (END - timedelta(days=1)).date()
    return ReportQuery.for_days(date_from=last - timedelta(days=29), date_to=last, tz=ZoneInfo(tz), **kwargs)


def check_against_raw() -> dict:
    """The 30-day report by campaign and day against counts from the raw tables (one SQL each)."""
    from django.db import connection

    from reports.selectors import report_rows

    query = thirty_days(dimensions=("campaign", "day"))
    rows = {row.key: row for row in report_rows(query).rows}
    with connection.cursor() as cursor:
        cursor.execute("""SELECT campaign_id, (created_at AT TIME ZONE 'UTC')::date,
                                 COUNT(*) FILTER (WHERE NOT is_bot), COUNT(*) FILTER (WHERE is_bot)
                          FROM conversions_click WHERE created_at >= %s AND created_at < %s GROUP BY 1, 2""",
                       [query.start, query.end])  # fmt: skip
        clicks = {(c, d): (humans, bots) for c, d, humans, bots in cursor.fetchall()}
        cursor.execute("""SELECT campaign_id, (created_at AT TIME ZONE 'UTC')::date, COUNT(*), SUM(amount_minor)
                          FROM conversions_conversion WHERE status = 'approved' AND created_at >= %s
                          AND created_at < %s GROUP BY 1, 2""", [query.start, query.end])  # fmt: skip
        converted = {(c, d): (n, revenue) for c, d, n, revenue in cursor.fetchall()}
    mismatches = 0
    for key in set(clicks) | set(converted) | set(rows):
        row = rows.get(key)
        expected = (*clicks.get(key, (0, 0)), *converted.get(key, (0, 0)))
        got = (row.clicks, row.bot_hits, row.conversions, row.revenue_minor) if row else (0, 0, 0, 0)
        mismatches += expected != got
    return {"groups": len(rows), "mismatches": mismatches}


def measure(runs: int) -> list[tuple[str, dict]]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from reports.selectors import report_rows, report_table

    user = get_user_model().objects.filter(username="bench").first() or get_user_model().objects.create_superuser(
        "bench", "bench@example.com", "bench-password-1"
    )
    client = Client()
    client.force_login(user)
    slow_runs = max(3, runs // 4)  # the detailed reports take seconds: fewer runs
    last = (END - timedelta(days=1)).date()
    page_query = {"date_from": str(last - timedelta(days=29)), "date_to": str(last), "tz": "UTC",
                  "group_1": "campaign", "group_2": "day"}  # fmt: skip

    def selector(**kwargs):
        return lambda: report_table(report_rows(thirty_days(**kwargs)))

    def page(**params):
        def get():
            response = client.get("/admin/reports/" if "dashboard" not in params else "/admin/reports/dashboard/",
                                  {**page_query, **params})  # fmt: skip
            assert response.status_code == 200, response.status_code

        return get

    return [
        ("**30 days by campaign and day** (selector: rollup + costs + median + table)",
         timed(selector(dimensions=("campaign", "day")), runs)),
        ("the same, as the admin page (HTTP through Django's test client, HTML rendered)", timed(page(), runs)),
        ("the same, CSV export", timed(page(format="csv"), runs)),
        ("the same in Europe/Kyiv (days of UTC+2/+3)",
         timed(selector(dimensions=("campaign", "day"), tz="Europe/Kyiv"), runs)),
        ("30 days by link", timed(selector(dimensions=("link",)), runs)),
        ("30 days by country (detailed rollup)", timed(selector(dimensions=("country",)), slow_runs)),
        ("30 days by campaign and country", timed(selector(dimensions=("campaign", "country")), slow_runs)),
        ("30 days by sub-id (500 values)", timed(selector(dimensions=("subid",)), slow_runs)),
        ("30 days by device, OS, browser", timed(selector(dimensions=("device", "os", "browser")), slow_runs)),
        ("dashboard page (series, funnel, time to conversion, top creatives)",
         timed(page(dashboard="1"), runs)),
    ]  # fmt: skip


def markdown(figures: list[tuple[str, dict]]) -> str:
    lines = ["| 30-day report | median (ms) | min (ms) | max (ms) |", "|---|---:|---:|---:|"]
    for label, numbers in figures:
        lines.append(f"| {label} | {numbers['median_ms']} | {numbers['min_ms']} | {numbers['max_ms']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=1_000_000)
    parser.add_argument("--conversions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per report (median taken)")
    parser.add_argument("--cap", type=int, default=1200, help="hard cap for the whole benchmark, seconds")
    parser.add_argument("--keep-database", action="store_true", help="leave tracker_bench_reports in place")
    parser.add_argument("--reuse-database", action="store_true",
                        help="time the reports on a database kept by --keep-database (no load, no rollup)")  # fmt: skip
    args = parser.parse_args(argv)
    hard_cap(args.cap)
    env = bench_env(db_name=DB_NAME, workdir=Path("/tmp/bench-reports"), REDIS_URL="", REPORT_TIME_ZONE="UTC")
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    # Celery's Django fixup puts the working directory first on sys.path: from bench/, this file would
    # shadow the reports app.
    os.chdir(ROOT)
    Path(env["VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    import django

    django.setup()
    print({**machine(), "revision": git_revision(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")})
    failed = False
    try:
        if not args.reuse_database:
            recreate_database(DB_NAME)
            migrate(env, timeout=300)
            loaded = load_ledger(clicks=args.clicks, conversions=args.conversions)
            print("loaded", loaded, flush=True)
            rolled = roll_up()
            print("rolled up", rolled, flush=True)
        checked = check_against_raw()
        print("report vs raw rows, 30 days by campaign and day:", checked, flush=True)
        failed = checked["mismatches"] > 0
        load_before = os.getloadavg()[0]
        figures = measure(args.runs)
        print(f"load average (1 min) before / after the timings: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
        print("\n" + markdown(figures))
    except (BenchTimeout, RuntimeError) as error:
        failed = True
        print(f"benchmark stopped: {error}")
    finally:
        import signal

        signal.alarm(0)
        if not args.keep_database:
            drop_database(DB_NAME)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: what one reports-rollup refresh costs after 1,000 conversion changes, on an hour that already
holds 10,000 and then 100,000 conversions (a viral hour).

    .venv/bin/python bench/conversion_rollup.py                  # 10,000 and 100,000, 1,000 changes
    .venv/bin/python bench/conversion_rollup.py --sizes 5000 --changes 200 --no-readme

For each size it drops and recreates the PostgreSQL database `tracker_bench_rollup` on 127.0.0.1:5432,
migrates it, loads that many clicks and conversions into the current hour with COPY (each conversion with
its first status-change row, as the product writes them), and lets the product's rollup catch up. Then
half of the changes are partners' updates of existing conversions (another status or amount) and half new
conversions, all through `conversions.services.conversion_record`, the service the API calls; the
refresh that adds them is timed, then the hourly reconcile of the day. The report tables are checked
against the conversions table. Tables are not analyzed beforehand (as on a new install before its first
autovacuum): the refreshes run without statistics and the reconcile gathers them first. Run on demand
only; never part of the test suite; the database is dropped at the end.
"""

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

from common import (
    EMPTY_CLICK_COLUMNS,
    EMPTY_CLICK_TEXT,
    ROOT,
    bench_env,
    copy_rows,
    drop_database,
    git_revision,
    hard_cap,
    machine,
    migrate,
    postgres_version,
    recreate_database,
    write_readme_section,
)

DB_NAME = "tracker_bench_rollup"
LINKS = 20


def load_hour(conversions: int, rnd: random.Random) -> tuple[list, str]:
    """`conversions` clicks and conversions in the current hour; the links, and the hour's start."""
    from django.db import connection
    from django.utils import timezone

    from conversions.models import Campaign, TrafficSource

    campaign = Campaign.objects.create(name="Viral")
    links = TrafficSource.objects.bulk_create(
        TrafficSource(campaign=campaign, utm_id=f"viral_{n}", telegram_bot="bench_bot") for n in range(LINKS)
    )
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    span = max(1, int((now - hour).total_seconds()) - 5)
    clicks, conversion_rows, change_rows = [], [], []
    for n in range(conversions):
        link = rnd.choice(links)
        converted = hour + timedelta(seconds=rnd.randrange(span))
        clicked = converted - timedelta(seconds=rnd.randrange(60, 3600))
        clicks.append((f"r{n}", campaign.pk, link.pk, clicked, rnd.choice(("ES", "UA", "RO")), "", "mobile", "iOS",
                       "Mobile Safari", False, True, True, "", "", *EMPTY_CLICK_TEXT, "{}"))  # fmt: skip
        status = rnd.choices(("approved", "pending", "rejected"), weights=(80, 12, 8))[0]
        amount = rnd.randrange(100, 9000)
        conversion_rows.append((f"rc{n}", f"tx:roll-{n}", "postback", campaign.pk, link.pk, n + 1, "purchase", status,
                                amount, "USD", int((converted - clicked).total_seconds()), True, "{}", converted,
                                converted, "", "", "", f"roll-{n}", "", ""))  # fmt: skip
        change_rows.append((n + 1, "", status, amount, converted - timedelta(seconds=30)))
    copy_rows("conversions_click", ["click_id", "campaign_id", "link_id", "created_at", "country", "city",
              "device_type", "os", "browser", "is_bot", "is_unique", "served_landing", "subid", "utm_content",
              *EMPTY_CLICK_COLUMNS, "extra_params"], clicks)  # fmt: skip
    copy_rows("conversions_conversion", ["public_id", "dedup_key", "source", "campaign_id", "link_id", "click_id",
              "goal", "status", "amount_minor", "currency", "time_to_conversion_s", "in_attribution_window",
              "params", "created_at", "updated_at", "customer_id", "email_sha256", "phone_sha256", "transaction_id",
              "product_id", "product_name"], conversion_rows)  # fmt: skip
    copy_rows("conversions_conversionstatuschange", ["conversion_id", "old_status", "new_status", "new_amount_minor",
              "created_at"], change_rows)  # fmt: skip
    with connection.cursor() as cursor:
        for table in ("conversions_click", "conversions_conversion", "conversions_conversionstatuschange"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
    return links, hour


def catch_up() -> float:
    from reports.rollups import report_rollup_refresh

    started = time.perf_counter()
    while any(report_rollup_refresh().values()):
        pass
    return time.perf_counter() - started


def make_changes(count: int, existing: int, rnd: random.Random) -> None:
    """Half updates of existing conversions (another status, or the amount), half new ones, through the
    service the webhook and the postback call; then old enough for the rollup (its settle delay)."""
    from django.db.models import F

    from conversions.click_reads import click_with_campaign
    from conversions.models import Conversion, ConversionStatusChange
    from conversions.services import conversion_record

    for n in rnd.sample(range(existing), k=count // 2):
        click = click_with_campaign(f"r{n}")
        current = Conversion.objects.values_list("status", "amount_minor").get(dedup_key=f"tx:roll-{n}")
        status = rnd.choice([s for s in ("approved", "pending", "rejected") if s != current[0]] + [current[0]])
        amount = current[1] if status != current[0] else current[1] + 100
        conversion_record(source=Conversion.Source.POSTBACK, click=click, transaction_id=f"roll-{n}", status=status,
                          amount_minor=amount, currency="USD")  # fmt: skip
    for n in range(count - count // 2):
        click = click_with_campaign(f"r{rnd.randrange(existing)}")
        conversion_record(source=Conversion.Source.POSTBACK, click=click, transaction_id=f"new-{n}",
                          status="approved", amount_minor=500, currency="USD")  # fmt: skip
    ConversionStatusChange.objects.filter(created_at__gt=F("created_at") - timedelta(days=1)).update(
        created_at=F("created_at") - timedelta(seconds=30)
    )


def matches_raw() -> bool:
    from django.db.models import Count, Sum

    from conversions.models import Conversion
    from reports.models import ConversionDay, ConversionDetailHour, ConversionHour

    raw = {(goal, status): (n, revenue) for goal, status, n, revenue in
           Conversion.objects.values("goal", "status").annotate(n=Count("id"), r=Sum("amount_minor"))
           .values_list("goal", "status", "n", "r")}  # fmt: skip
    for model in (ConversionHour, ConversionDetailHour, ConversionDay):
        rolled = {(goal, status): (n, revenue) for goal, status, n, revenue in
                  model.objects.values("goal", "status").annotate(n=Sum("conversions"), r=Sum("revenue_minor"))
                  .values_list("goal", "status", "n", "r")}  # fmt: skip
        if rolled != raw:
            return False
    return True


def measure(size: int, changes: int, seed: int) -> dict:
    from django.db import connection
    from django.utils import timezone

    from reports.rollups import report_rollup_reconcile, report_rollup_refresh

    recreate_database(DB_NAME)
    migrate(dict(os.environ))
    connection.close()
    rnd = random.Random(seed)
    started = time.perf_counter()
    load_hour(size, rnd)
    loaded_s = time.perf_counter() - started
    catch_up_s = catch_up()
    make_changes(changes, size, rnd)
    started = time.perf_counter()
    counted = report_rollup_refresh()
    refresh_s = time.perf_counter() - started
    assert counted["conversions"] == changes, counted
    ok_after_refresh = matches_raw()
    started = time.perf_counter()
    report_rollup_reconcile(day=timezone.now().date())
    reconcile_s = time.perf_counter() - started
    return {"conversions": size, "changes": changes, "load_s": round(loaded_s, 1), "catch_up_s": round(catch_up_s, 1),
            "refresh_ms": round(refresh_s * 1000), "reconcile_s": round(reconcile_s, 1),
            "equal_to_raw": ok_after_refresh and matches_raw()}  # fmt: skip


def markdown(rows: list[dict], about: dict) -> str:
    out = [
        f"**Date:** {about['date']}. Code: `{about['revision']}`. Machine: {about['nproc']} vCPU, PostgreSQL "
        f"{about['postgres']}; tables without statistics (autovacuum off here) until the reconcile "
        "analyzes them (its time includes that ANALYZE).",
        "",
        "| conversions already in the hour | changes since the last refresh | one refresh "
        "| hourly reconcile of the day | report tables = conversions table | loading (COPY) / first catch-up |",
        "|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        out.append(f"| {row['conversions']:,} | {row['changes']:,} (half updates, half new) | {row['refresh_ms']} ms "
                   f"| {row['reconcile_s']} s | {'yes' if row['equal_to_raw'] else '**NO**'} "
                   f"| {row['load_s']} s / {row['catch_up_s']} s |")  # fmt: skip
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    hard_cap(900)
    os.environ.update(bench_env(db_name=DB_NAME, workdir=Path("/tmp/bench-rollup"), REDIS_URL="",
                                REPORT_TIME_ZONE="UTC"))  # fmt: skip
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    about = {**machine(), "revision": git_revision(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    about["postgres"] = postgres_version()
    rows = []
    try:
        for size in args.sizes:
            rows.append(measure(size, args.changes, seed=size))
            print(rows[-1], flush=True)
    finally:
        from django.db import connection

        connection.close()
        drop_database(DB_NAME)
    figures = markdown(rows, about)
    print(figures)
    if not args.no_readme:
        write_readme_section(title="## Reports rollup: conversion changes", begin="<!-- conversion_rollup: begin -->",
                             end="<!-- conversion_rollup: end -->", figures=figures)  # fmt: skip
    return 0 if all(row["equal_to_raw"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

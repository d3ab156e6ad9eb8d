"""Run by tests/conversions/test_click_partitions.py in a process of its own, on a database of its own
(DATABASE_URL): migrates it, sends clicks through the click path, partitions the clicks table with tiny
partitions, sends more clicks and a conversion, and prints what it found as JSON."""

import json

import django
import psycopg

django.setup()

from django.core.management import CommandError, call_command  # noqa: E402
from django.db import IntegrityError, connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from conversions.auth import api_key_create  # noqa: E402
from conversions.click_reads import CLICK_ALONE_WITH_LEAD_SQL, CLICK_WITH_LEAD_SQL  # noqa: E402
from conversions.conversion_store import STORED_SQL  # noqa: E402
from conversions.models import ApiKey, Click, Conversion, TrafficSource  # noqa: E402
from conversions.partitions import click_partitions, extend_click_partitions  # noqa: E402
from tests.factories import TrafficSourceFactory  # noqa: E402

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def visit(client: Client, utm_id: str, ip: str) -> int:
    answer = client.get(f"/l/{utm_id}", HTTP_USER_AGENT=IPHONE, REMOTE_ADDR=ip)
    assert answer.status_code == 302, answer.status_code
    return Click.objects.get(click_id=answer["Location"].rsplit("=", 1)[1]).pk


def duplicate_of(click_id: str, link) -> Click:
    return Click.objects.create(click_id=click_id, campaign=link.campaign, link=link, created_at=timezone.now())


def refused_while_busy() -> dict:
    """partition_clicks while another session reads the clicks table in an open transaction."""
    settings = connection.settings_dict
    with psycopg.connect(dbname=settings["NAME"], host=settings["HOST"], port=settings["PORT"] or 5432,
                         user=settings["USER"], password=settings["PASSWORD"] or None) as reader:  # fmt: skip
        reader.execute("SELECT count(*) FROM conversions_click").fetchone()  # holds its lock until rollback
        try:
            call_command("partition_clicks", block=3, lock_timeout_ms=200)
            message = ""
        except CommandError as error:
            message = str(error)
        reader.rollback()
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'conversions_click'::regclass")
        return {"message": message, "relkind": cursor.fetchone()[0]}


def rejected(action) -> bool:
    try:
        with transaction.atomic():
            action()
    except IntegrityError:
        return True
    return False


def generic_plans_on_many_clicks(link, click_id: str, dedup_key: str) -> dict[str, dict]:
    """The intake's prepared reads of a click (joined to its link, or alone, and the stored conversion's), in
    the generic plans they get once prepared, on a partition of 20,000 clicks without statistics (as on a new
    install): the rows each read from every table it scanned, and whether it built a hash (of a whole table)."""
    extend_click_partitions(block=30_000)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO conversions_click (click_id, campaign_id, link_id, created_at, user_agent, referrer, "
            "landing_url, device_type, os, browser, country, city, is_bot, bot_reason, is_unique, served_landing, "
            "visitor_hash, utm_source, utm_medium, utm_campaign, utm_content, utm_term, subid, sub1, sub2, sub3, "
            "sub4, sub5, ttclid, ttp, extra_params) SELECT 'bulk' || n, %s, %s, now(), '', '', '', '', '', '', '', "
            "'', false, '', false, false, '', '', '', '', '', '', '', '', '', '', '', '', '', '', '{}' "
            "FROM generate_series(1, 20000) n",
            [link.campaign_id, link.pk],
        )
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        plans = {}
        reads = (("click", CLICK_WITH_LEAD_SQL, click_id), ("click_alone", CLICK_ALONE_WITH_LEAD_SQL, click_id),
                 ("stored", STORED_SQL, dedup_key))  # fmt: skip
        for name, sql, value in reads:
            cursor.execute(f"PREPARE probe_{name} AS {sql.replace('%s', '$1')}")
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE probe_{name}(%s)", [value])
            nodes = list(_nodes(cursor.fetchone()[0][0]["Plan"]))
            plans[name] = {
                "rows_read": sum(
                    node["Actual Rows"] * node["Actual Loops"] for node in nodes if "Relation Name" in node
                ),
                "hash": any(node["Node Type"] == "Hash" for node in nodes),
            }
        cursor.execute("RESET plan_cache_mode")
    return plans


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def main() -> dict:
    call_command("migrate", verbosity=0)
    link = TrafficSourceFactory(utm_id="bio_link", redirect_mode=TrafficSource.RedirectMode.DIRECT)
    client = Client()
    before = [visit(client, link.utm_id, f"203.0.113.{n}") for n in range(1, 5)]  # ids 1-4

    refused = refused_while_busy()
    with connection.cursor() as cursor:  # as a run that gave up at the lock after its first step leaves it
        cursor.execute(
            "ALTER TABLE conversions_click ADD CONSTRAINT conversions_click_p0000_bound CHECK (id < 1000) NOT VALID"
        )
    call_command("partition_clicks", block=3)  # p0000: up to id 7, p0001: 8-10
    call_command("partition_clicks", block=3)  # a second run changes nothing
    after = [visit(client, link.utm_id, f"203.0.113.{n}") for n in (5, 6, 7)]  # ids 5-7
    repeat = visit(client, link.utm_id, "203.0.113.1")  # id 8, the first visitor again, in the next partition
    added = extend_click_partitions(block=3)  # 2 ids left ahead (9, 10): p0002 for 11-13

    key = api_key_create(name="bot", scope=ApiKey.Scope.INTAKE)[1]
    repeat_click = Click.objects.get(pk=repeat)
    webhook = client.post(
        "/api/v1/utm/webhook/conversion",
        {"utm_id": repeat_click.click_id, "amount": 1500, "currency": "USD", "transaction_id": "tx-partitioned"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Api-Key {key}",
    )
    conversion = Conversion.objects.get(transaction_id="tx-partitioned")
    repeated = client.post(
        "/api/v1/utm/webhook/conversion",
        {"utm_id": repeat_click.click_id, "amount": 1500, "currency": "USD", "transaction_id": "tx-partitioned"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Api-Key {key}",
    )
    plans = generic_plans_on_many_clicks(link, repeat_click.click_id, conversion.dedup_key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'conversions_click'::regclass")
        kind = cursor.fetchone()[0]
        cursor.execute("SELECT id, tableoid::regclass::text FROM conversions_click ORDER BY id")
        placed = dict(cursor.fetchall())
        cursor.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text, convalidated FROM pg_constraint "
            "WHERE contype = 'f' AND confrelid::regclass::text LIKE 'conversions_click%' ORDER BY 1"
        )
        foreign_keys = cursor.fetchall()
    stray = Conversion(public_id="stray", dedup_key="tx:stray", source="webhook", campaign=link.campaign,
                       click_id=10**9, amount_minor=1, currency="USD", created_at=conversion.created_at,
                       updated_at=conversion.created_at)  # fmt: skip
    return {
        "relkind": kind,
        "partitions": [[p.name, p.lower, p.upper] for p in click_partitions()],
        "added": added.name if added else None,
        "clicks": {str(pk): placed[pk] for pk in before + after + [repeat]},
        "unique": {str(click.pk): click.is_unique for click in Click.objects.filter(pk__lte=repeat).order_by("pk")},
        "webhook_status": webhook.status_code,
        "repeat_status": repeated.status_code,
        "repeat_answer_click_id": repeated.json().get("click_id"),
        "click_id_of_8": repeat_click.click_id,
        "click_reads": plans,
        "conversion_click": conversion.click_id,
        "foreign_keys": foreign_keys,
        "stray_conversion_rejected": rejected(stray.save),
        # click_id is unique within a partition (the new click lands in the last one, with "bulk10")…
        "same_partition_click_id_rejected": rejected(lambda: duplicate_of("bulk10", link)),
        # …not across partitions (click 8 is in another): the caveat docs/scaling.md names.
        "other_partition_click_id_rejected": rejected(lambda: duplicate_of(repeat_click.click_id, link)),
        "next_id_after_partitioning": after[0],
        "refused_while_busy": refused,
        "metrics_click_ids_left": [
            line
            for line in client.get("/metrics").content.decode().splitlines()
            if line.startswith("tracker_click_ids_left ")
        ],  # fmt: skip
    }


print(json.dumps(main()))

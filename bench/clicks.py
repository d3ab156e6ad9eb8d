"""Benchmark: the click path and conversion intake under wrk, against gunicorn on the production stack.

    .venv/bin/python bench/clicks.py                              # everything (~5 min), writes bench/README.md
    .venv/bin/python bench/clicks.py --duration 5 --gunicorn sync4 --no-readme --keep-logs
    .venv/bin/python bench/clicks.py --partition-block 300000 --no-readme  # on a partitioned clicks table

It sets up, and always tears down: the PostgreSQL database `tracker_bench_clicks` on 127.0.0.1:5432
(dropped, created, migrated), a private redis-server, the fake TikTok, one Celery worker
(--concurrency=2) and one celery beat with the product's schedule (rollup every 5 s), and gunicorn
with DEBUG=0 and BENCH_ENDPOINTS=1 (which mounts /bench/redirect, a bare 302 without tracking):
`-w 5` sync (gunicorn.conf.py's default on 2 cores) for every benchmark, then `-w 2 -k gthread --threads 4`
for the click path and the single-conversion endpoints.

Data: a campaign with an offer URL and a connected pixel (a landing view also writes its ViewContent
outbox row), one hot page-mode link, one direct-mode link, 1,000 links for the spread test, a page-mode
link of a campaign without a pixel, a campaign for classic /click links, three intake API keys and 2,000
clicks for the conversions to point at. Intake runs: the webhook, the postback, and the batch webhook with
100 conversions a request (about 10 % repeats in each).

Load: wrk, 2 threads, 10 s a run, a mobile User-Agent and a different X-Forwarded-For on every request
(bench/wrk/*.lua). The bare 302 opens and closes each group of click runs, and ratios are to the mean of
the two. After each click run the clicks stored for that run are counted and every click id
wrk got back is looked up; after each intake run every transaction id answered 2xx (for a batch, each of
its conversions') is looked up and the
conversions are counted against the distinct transaction ids sent. Then the rollup's freshness, then
peak memory. Run on demand only; never part of the test suite. Loopback only: TikTok itself is never
called.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import requests
from common import (
    BIN,
    PG_ADMIN_URL,
    README,
    ROOT,
    Process,
    bench_env,
    cpu_seconds_by_pid,
    drop_database,
    free_port,
    git_revision,
    guarded,
    hard_cap,
    load_average,
    machine,
    machine_cpu_seconds,
    migrate,
    peak_rss_mb,
    process_tree,
    pss_mb,
    recreate_database,
    start_beat,
    start_redis,
    wait_until,
    write_readme_section,
)
from common import start_fake as common_start_fake

DB_NAME = "tracker_bench_clicks"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
WRK_DIR = ROOT / "bench" / "wrk"
PIXEL_CODE = "BENCH0CLICKS000001"
ACCESS_TOKEN = "bench-clicks-access-token-000000000"
USER_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
OFFER_URL = "https://partner.example/offer?click_id={click_id}&sub={subid}&c={country}"
SPREAD_LINKS = 1_000
# Unmeasured load on the 1,000 links before their measured run. A worker reads a link from the database on its
# first click on it and keeps it (LINK_CACHE_MAX_AGE_S). wrk picks links at random and the kernel hands requests
# to any of the 5 workers, so after k clicks a link a worker has not met it with odds 0.8 ** k. Without a lead-in
# ~4,500 of a run's ~11,000 clicks were first reads: a cold start, not a viral hour over many links. 15 s at
# ~950 req/s is ~14 clicks a link: ~4 % of the (worker, link) pairs are left for the measured run.
SPREAD_LEAD_IN_S = 15
INTAKE_CLICKS = 2_000
SETTLE_S = 1.0  # after wrk stops, requests it left in flight are still being answered
SETTLE_MAX_S = 8.0
TEARDOWN_RESERVE_S = 30  # kept out of the runs so that teardown fits in the hard cap
FRESHNESS_TIMEOUT_S = 30

# Ways to use 2 cores: processes only (gunicorn.conf.py's default is 2 × cores + 1 sync workers), or fewer
# processes with threads, which overlap the waits on PostgreSQL's commits and keep connections alive.
GUNICORN_CONFIGS = {
    "gthread2x4": ("-w 2 -k gthread --threads 4", ["-w", "2", "-k", "gthread", "--threads", "4"]),
    "sync5": ("-w 5 (sync, gunicorn.conf.py's default on 2 cores)", ["-w", "5", "-k", "sync", "--threads", "1"]),
    "sync4": ("-w 4 (sync)", ["-w", "4", "-k", "sync", "--threads", "1"]),
}
# Targets of issue #6.
TARGET_RATIO = 0.5
BASELINE_MIN_BUSY_PERCENT = 170  # of 200: the bare run must load both cores for its ratio to count
BASELINE_MAX_DRIFT = 0.2  # the closing bare run within 20 % of the opening one, or the group's ratios get no verdict
TARGET_P99_MS_AT_16 = 25.0
TARGET_INTAKE_PER_S = 1_000
INTAKE_BATCH = 100  # conversions in each POST /api/v1/utm/webhook/conversions of the batch run
TARGET_FRESHNESS_S = 10.0
HOT_VS_SPREAD_TOLERANCE = 0.9  # "as fast": the hot link within 10 % of the spread load's requests/s


# --- environment ---------------------------------------------------------------------------------


def stack_env(*, redis_port: int, fake_port: int, workdir: Path, db_name: str = DB_NAME) -> dict:
    """common.bench_env with what gunicorn needs here: the loopback host and the bare /bench/redirect."""
    return bench_env(db_name=db_name, workdir=workdir, redis_port=redis_port, fake_port=fake_port,
                     drop=("TIKTOK_", "DJANGO_", "WRK_"), ALLOWED_HOSTS="127.0.0.1,localhost",
                     BENCH_ENDPOINTS="1")  # fmt: skip


def postgres_settings() -> dict:
    with psycopg.connect(PG_ADMIN_URL) as admin:
        return {name: admin.execute(f"SHOW {name}").fetchone()[0]
                for name in ("server_version", "max_connections", "shared_buffers", "synchronous_commit",
                             "autovacuum")}  # fmt: skip


def start_fake(port: int, env: dict, logdir: Path) -> Process:
    return common_start_fake(port, env, logdir, pixels={PIXEL_CODE: ACCESS_TOKEN})


def start_worker(env: dict, logdir: Path) -> Process:
    argv = [str(BIN / "celery"), "-A", "tracker", "worker", "--concurrency=2", "--loglevel=WARNING",
            "-n", f"clicks-{os.getpid()}@%h"]  # fmt: skip
    return Process("celery-worker", argv, env=env, logdir=logdir)


def start_gunicorn(config: str, env: dict, logdir: Path) -> tuple[Process, str]:
    port = free_port()
    argv = [str(BIN / "gunicorn"), "tracker.wsgi", "-b", f"127.0.0.1:{port}", *GUNICORN_CONFIGS[config][1]]
    process = Process(f"gunicorn-{config}", argv, env=env, logdir=logdir)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if not process.alive():
            raise RuntimeError(f"gunicorn exited:\n{process.log_text()[-3000:]}")
        try:
            return requests.get(url + "/bench/redirect", allow_redirects=False, timeout=1).status_code == 302
        except requests.RequestException:
            return False

    wait_until(answers, timeout=30, what="gunicorn")
    return process, url


# --- data ----------------------------------------------------------------------------------------


@dataclass
class Fixture:
    """What the runs point at: links by role, the spread links, intake keys, files for the Lua scripts."""

    links: dict = field(default_factory=dict)  # role -> TrafficSource
    classic_campaign: object = None
    spread_ids: list = field(default_factory=list)
    keys: dict = field(default_factory=dict)  # webhook / postback / batch -> raw intake key
    spread_paths_file: Path | None = None
    intake_clicks_file: Path | None = None
    warmup_paths_file: Path | None = None


def create_fixture(workdir: Path) -> Fixture:
    from conversions.auth import api_key_create
    from conversions.models import ApiKey, Campaign, Click, LandingPage, TrafficSource
    from landing.services import new_click_id
    from tiktok_ads.models import Pixel
    from tiktok_ads.pixels import pixel_connect

    pixel, _ = pixel_connect(pixel_code=PIXEL_CODE, access_token=ACCESS_TOKEN, name="bench pixel")
    # Not the default pixel, so the campaign without one sends nothing; a quota a viral day needs.
    Pixel.objects.filter(pk=pixel.pk).update(is_default=False, daily_quota=10_000_000)
    page = LandingPage.objects.create(name="Football", title="Football Insider",
                                      description="Daily predictions and lootboxes.")  # fmt: skip
    viral = Campaign.objects.create(name="Viral video", offer_url=OFFER_URL, pixel=pixel)
    no_pixel = Campaign.objects.create(name="No pixel", offer_url=OFFER_URL)
    classic = Campaign.objects.create(name="Classic links", offer_url=OFFER_URL, pixel=pixel)

    def link(utm_id: str, campaign, mode: str) -> dict:
        return {"campaign": campaign, "utm_id": utm_id, "utm_source": "tiktok", "landing_page": page,
                "telegram_bot": "demo_tracker_bot", "redirect_mode": mode}  # fmt: skip

    fixture = Fixture(classic_campaign=classic)
    for role, campaign, mode in (("hot", viral, "page"), ("direct", viral, "direct"), ("nopixel", no_pixel, "page"),
                                 ("fresh", viral, "page"), ("probe", viral, "page"),
                                 ("probe_direct", viral, "direct")):  # fmt: skip
        fixture.links[role] = TrafficSource.objects.create(**link(f"tt_{role}", campaign, mode))
    spread = TrafficSource.objects.bulk_create(
        [TrafficSource(**link(f"tt_s{n:04d}", viral, "page")) for n in range(SPREAD_LINKS)]
    )
    fixture.spread_ids = [row.pk for row in spread]
    fixture.keys = {name: api_key_create(name=f"bench {name}", scope=ApiKey.Scope.INTAKE)[1]
                    for name in ("webhook", "postback", "batch")}  # fmt: skip
    now = datetime.now(UTC)
    hot = fixture.links["hot"]
    clicks = [Click(click_id=new_click_id(), campaign=viral, link=hot, created_at=now - timedelta(minutes=10),
                    ip="95.123.45.67", user_agent=USER_AGENT, device_type="mobile", served_landing=True)
              for _ in range(INTAKE_CLICKS)]  # fmt: skip
    Click.objects.bulk_create(clicks)
    fixture.spread_paths_file = workdir / "spread-paths.txt"
    fixture.spread_paths_file.write_text("".join(f"/l/tt_s{n:04d}\n" for n in range(SPREAD_LINKS)))
    fixture.intake_clicks_file = workdir / "intake-clicks.txt"
    fixture.intake_clicks_file.write_text("".join(click.click_id + "\n" for click in clicks))
    fixture.warmup_paths_file = workdir / "warmup-paths.txt"
    warmup = ["/bench/redirect", "/l/tt_hot", "/l/tt_direct", "/l/tt_nopixel", classic_path(classic)]
    fixture.warmup_paths_file.write_text(
        "".join(path + "\n" for path in warmup + [f"/l/tt_s{n:04d}" for n in range(50)])
    )
    return fixture


def classic_path(campaign) -> str:
    return f"/click?campaign_id={campaign.pk}&subid=tt_video_42"


# --- CPU: who used the cores during a run -------------------------------------------------------


@dataclass
class CpuSample:
    at: float
    machine: tuple[float, float]
    by_pid: dict
    children_s: float


def cpu_sample() -> CpuSample:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is our child: its time shows here once reaped
    return CpuSample(time.monotonic(), machine_cpu_seconds(), cpu_seconds_by_pid(), usage.ru_utime + usage.ru_stime)


def bench_db_backends() -> set[int]:
    with psycopg.connect(PG_ADMIN_URL) as admin:
        rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (DB_NAME,)).fetchall()
    return {row[0] for row in rows}


BUSY = "machine busy (all processes + kernel)"
OTHER = "everything else (other work on the machine, kernel)"


def cpu_breakdown(before: CpuSample, after: CpuSample, groups: dict[str, set[int]]) -> dict:
    """Percent of one core (200 % = both cores of a 2-core box) used by each group during the run."""
    wall = after.at - before.at

    def used(pids) -> float:
        # A process that started during the run used all its CPU time in it.
        return sum(after.by_pid[pid][1] - before.by_pid.get(pid, ("", 0.0))[1] for pid in pids if pid in after.by_pid)

    percent = {name: round(used(pids) / wall * 100) for name, pids in groups.items()}
    known = set().union(*groups.values())
    postgres_other = {pid for pid, (name, _) in after.by_pid.items() if name == "postgres" and pid not in known}
    percent["postgres, other databases + background"] = round(used(postgres_other) / wall * 100)
    percent["wrk"] = round((after.children_s - before.children_s) / wall * 100)
    cores = os.cpu_count() or 1
    busy = (after.machine[0] - before.machine[0]) / (after.machine[1] - before.machine[1]) * cores * 100
    percent[OTHER] = max(0, round(busy) - sum(percent.values()))
    percent[BUSY] = round(busy)
    return percent


def process_groups(stack: dict) -> dict[str, set[int]]:
    return {
        "gunicorn workers": set(process_tree(stack["gunicorn"].pid)),
        "postgres backends of the bench database (web + Celery)": bench_db_backends(),
        "celery worker + beat": set(process_tree(stack["worker"].pid)) | set(process_tree(stack["beat"].pid)),
        "redis": {stack["redis"].pid},
        "fake TikTok": {stack["fake"].pid},
    }


# --- wrk -----------------------------------------------------------------------------------------


def run_wrk(*, name: str, url: str, script: str, connections: int, duration: int, workdir: Path,
            extra_env: dict | None = None, stack: dict | None = None) -> dict:  # fmt: skip
    """One wrk run; returns its JSON report (bench/wrk/common.lua), click ids answered, and CPU by group."""
    report_path, ids_path = workdir / f"{name}.json", workdir / f"{name}.ids"
    env = {**os.environ, "WRK_REPORT": str(report_path), "WRK_IDS": str(ids_path), "WRK_UA": USER_AGENT,
           **(extra_env or {})}  # fmt: skip
    argv = [WRK, "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--latency", "--timeout", "5s",
            "-s", str(WRK_DIR / script), url]  # fmt: skip
    groups = process_groups(stack) if stack else {}
    before = cpu_sample()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=duration + 30)
    after = cpu_sample()
    groups_after = process_groups(stack) if stack else {}
    # A worker that died during the run (and its CPU time) would be missing from the figures: say so.
    replaced = len(groups.get("gunicorn workers", set()) - groups_after.get("gunicorn workers", set()))
    for name, pids in groups_after.items():
        groups[name] |= pids  # database connections opened during the run count too
    if done.returncode or not report_path.exists():
        raise RuntimeError(f"wrk {name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    report = json.loads(report_path.read_text())
    report["ids"] = ids_path.read_text().split() if ids_path.exists() else []
    report["cpu_percent"] = cpu_breakdown(before, after, groups) if stack else {}
    report["gunicorn_workers_replaced"] = replaced
    report["wrk_stdout"] = done.stdout
    return report


def summarize(report: dict) -> dict:
    statuses = {int(code): n for code, n in report["statuses"].items()}
    seconds = report["duration_us"] / 1e6
    latency = report["latency_us"]
    errors = report["errors"]
    return {
        "requests": report["requests"],
        "requests_per_s": round(report["requests"] / seconds),
        "p50_ms": round(latency["p50"] / 1000, 1),
        "p90_ms": round(latency["p90"] / 1000, 1),
        "p99_ms": round(latency["p99"] / 1000, 1),
        "p999_ms": round(latency["p999"] / 1000, 1),
        "max_ms": round(latency["max"] / 1000, 1),
        "statuses": dict(sorted(statuses.items())),
        "not_2xx_3xx": errors["status"],
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "sent": report["sent"],
        "in_flight_at_stop": report["sent"] - sum(statuses.values()),
        "cpu_percent": report["cpu_percent"],
        "gunicorn_workers_replaced": report.get("gunicorn_workers_replaced", 0),
    }


# --- one click run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClickCase:
    name: str  # bare, hot, spread, direct, classic, nopixel
    label: str
    path: str
    scope: dict | None  # how to find its clicks: Click.objects.filter(**scope); None for the bare view
    paths_file: Path | None = None


def click_cases(fixture: Fixture) -> dict[str, ClickCase]:
    links = fixture.links
    return {case.name: case for case in (
        ClickCase("bare", "bare Django 302 (no tracking)", "/bench/redirect", None),
        ClickCase("hot", "/l/<utm_id>, page mode, pixel (one hot link)", "/l/tt_hot", {"link": links["hot"]}),
        ClickCase("spread", "/l/<utm_id>, page mode, pixel, spread over 1,000 links", "/l/tt_s0000",
                  {"link_id__in": fixture.spread_ids}, fixture.spread_paths_file),
        ClickCase("nopixel", "/l/<utm_id>, page mode, no pixel", "/l/tt_nopixel", {"link": links["nopixel"]}),
        ClickCase("direct", "/l/<utm_id>, direct 302", "/l/tt_direct", {"link": links["direct"]}),
        ClickCase("classic", "/click?campaign_id=…&subid=…", classic_path(fixture.classic_campaign),
                  {"campaign": fixture.classic_campaign, "link__isnull": True}),
    )}  # fmt: skip


def click_run(case: ClickCase, *, connections: int, config: str, base_url: str, duration: int, workdir: Path,
              stack: dict) -> dict:  # fmt: skip
    from django.utils import timezone

    from conversions.models import Click

    name = f"{config}-{case.name}-c{connections}"
    extra_env = {"WRK_PATHS": str(case.paths_file)} if case.paths_file else {}
    lead_in = None
    if case.paths_file:
        lead_in = summarize(run_wrk(name=f"{name}-lead-in", url=base_url + case.path, script="clicks.lua",
                                    connections=connections, duration=SPREAD_LEAD_IN_S, workdir=workdir,
                                    extra_env=extra_env))  # fmt: skip
        print(f"  {config:<11} {case.name:<8} lead-in (links not yet cached): {lead_in['requests_per_s']:,} req/s, "
              f"p99 {lead_in['p99_ms']} ms", flush=True)  # fmt: skip
        time.sleep(SETTLE_S)
    started_at = timezone.now()
    report = run_wrk(name=name, url=base_url + case.path, script="clicks.lua", connections=connections,
                     duration=duration, workdir=workdir, extra_env=extra_env, stack=stack)  # fmt: skip
    clicks = Click.objects.filter(created_at__gte=started_at, **(case.scope or {}))
    wait_until_settled(clicks.count if case.scope is not None else None)
    result = {"case": case.name, "label": case.label, "config": config, "connections": connections,
              **summarize(report)}  # fmt: skip
    if lead_in is not None:
        result["lead_in"] = {key: lead_in[key] for key in ("requests_per_s", "p50_ms", "p99_ms")}
    if case.scope is not None:
        stored = set(clicks.values_list("click_id", flat=True))
        answered_ids = set(report["ids"])
        answered = sum(n for status, n in result["statuses"].items() if status in (200, 302))
        result.update(
            answered_200_302=answered,
            answers_with_click_id=len(report["ids"]),
            stored_clicks=len(stored),
            answered_not_stored=len(answered_ids - stored),  # must be 0: a redirect means a stored click
            stored_not_answered=len(stored - answered_ids),  # requests wrk left in flight, answered after it stopped
        )
    print(_line(result), flush=True)
    return result


def wait_until_settled(count) -> None:
    """Requests wrk left in flight are still answered after it stops: wait until `count()` stops moving."""
    time.sleep(SETTLE_S)
    if count is None:
        return
    deadline, last = time.monotonic() + SETTLE_MAX_S, count()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = count()
        if current == last:
            return
        last = current


def _line(result: dict) -> str:
    text = (f"  {result['config']:<11} {result['case']:<8} c={result['connections']:<3} "
            f"{result['requests_per_s']:>6,} req/s  p50 {result['p50_ms']:>6} ms  p99 {result['p99_ms']:>6} ms  "
            f"statuses {result['statuses']}")  # fmt: skip
    if "stored_clicks" in result:
        text += (f"  stored {result['stored_clicks']:,} (answered {result['answered_200_302']:,}, answered-not-"
                 f"stored {result['answered_not_stored']}, in flight {result['in_flight_at_stop']})")  # fmt: skip
    if "conversions_created" in result:
        text += f"  conversions {result['conversions_created']:,} of {result['distinct_transactions_sent']:,} sent"
    return text


# --- intake --------------------------------------------------------------------------------------


def intake_run(mode: str, *, connections: int, base_url: str, fixture: Fixture, duration: int, workdir: Path,
               stack: dict) -> dict:  # fmt: skip
    from django.db.models import Count

    from conversions.models import Conversion

    prefix = f"bench-{mode}-{int(time.time())}-"
    extra_env = {"WRK_MODE": mode, "WRK_KEY": fixture.keys[mode], "WRK_CLICKS": str(fixture.intake_clicks_file),
                 "WRK_TX_PREFIX": prefix, "WRK_DUP_RATIO": "0.1", "WRK_BATCH": str(INTAKE_BATCH)}  # fmt: skip
    report = run_wrk(name=f"intake-{mode}", url=base_url + "/", script="intake.lua", connections=connections,
                     duration=duration, workdir=workdir, extra_env=extra_env, stack=stack)  # fmt: skip
    rows = Conversion.objects.filter(transaction_id__startswith=prefix)
    wait_until_settled(rows.count)
    stored = set(rows.values_list("transaction_id", flat=True))
    created = rows.count()
    repeated_keys = rows.values("transaction_id").annotate(n=Count("id")).filter(n__gt=1).count()
    answered_ids = set(report["ids"])  # transaction ids of the 2xx answers (echoed in X-Request-ID)
    result = {"case": mode, "config": "", "connections": connections, **summarize(report)}
    seconds = report["duration_us"] / 1e6
    answered_2xx = sum(n for status, n in result["statuses"].items() if 200 <= status < 300)
    per_request = INTAKE_BATCH if mode == "batch" else 1
    if per_request > 1:  # wrk counted conversions sent and batches answered
        result["in_flight_at_stop"] = report["sent"] - sum(result["statuses"].values()) * per_request
    result.update(
        distinct_transactions_sent=report["distinct_keys"],
        duplicates_sent=report["sent"] - report["distinct_keys"],
        answered_201=result["statuses"].get(201, 0),
        answered_200=result["statuses"].get(200, 0),
        answered_2xx_per_s=round(answered_2xx / seconds),
        conversions_per_request=per_request,
        conversions_answered_per_s=round(answered_2xx * per_request / seconds),
        conversions_created=created,
        conversions_per_s=round(created / seconds),
        transaction_ids_stored_twice=repeated_keys,
        answered_transactions=len(answered_ids),
        # must be 0: a 2xx means a stored conversion (None: the tracker did not echo X-Request-ID)
        answered_not_stored=len(answered_ids - stored) if answered_ids or not answered_2xx else None,
        sent_not_stored=report["distinct_keys"] - created,  # requests wrk left in flight that never arrived
    )
    print(_line({**result, "config": "intake"}), flush=True)
    return result


# --- freshness and memory ------------------------------------------------------------------------


def freshness(base_url: str, link) -> dict:
    """One click on a quiet link; seconds until DailyStats (what the admin reads) counts it."""
    from django.db.models import Sum

    from conversions.models import DailyStats
    from conversions.selectors import totals_for

    clicked_at = time.monotonic()
    answer = requests.get(f"{base_url}/l/{link.utm_id}", allow_redirects=False, timeout=10,
                          headers={"User-Agent": USER_AGENT, "X-Forwarded-For": "95.123.45.67"})  # fmt: skip
    answered_ms = (time.monotonic() - clicked_at) * 1000
    started = time.monotonic()
    immediate = totals_for(link=link).clicks
    totals_ms = (time.monotonic() - started) * 1000
    polls, rolled = 0, 0
    while time.monotonic() - clicked_at < FRESHNESS_TIMEOUT_S:
        polls += 1
        rolled = DailyStats.objects.filter(link=link).aggregate(n=Sum("clicks"))["n"] or 0
        if rolled >= 1:
            break
        time.sleep(0.1)
    seconds = time.monotonic() - clicked_at
    return {"status": answer.status_code, "answered_ms": round(answered_ms, 1),
            "totals_for_clicks_at_once": immediate, "totals_for_ms": round(totals_ms, 1),
            "dailystats_clicks": rolled, "seconds_to_dailystats": round(seconds, 2) if rolled else None,
            "polls": polls}  # fmt: skip


def memory(process: Process) -> dict:
    peaks = peak_rss_mb(process.pid)
    main = peaks.pop(process.pid, 0.0)
    return {"main_mb": round(main), "children_mb": sorted(round(mb) for mb in peaks.values()),
            "pss_total_mb": round(sum(pss_mb(process.pid).values()))}  # fmt: skip


# --- in-process probe: one request at a time, no contention -------------------------------------


def probe_click_path(fixture: Fixture, repeats: int) -> dict:
    """One request at a time, before the load: median ms and SQL statements per request through Django
    (test client, full middleware, the same database and Redis), the steps of a click, and what one
    COMMIT costs on this machine's disk."""
    import random

    from django.db import connection
    from django.template.loader import render_to_string
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from landing.enrichment import locate

    client = Client(HTTP_HOST="127.0.0.1", HTTP_USER_AGENT=USER_AGENT)
    rng = random.Random(6)
    click_ids = fixture.intake_clicks_file.read_text().split()
    counter = iter(range(10**9))

    def ip() -> str:
        first = rng.choice((31, 46, 78, 85, 95, 176, 188, 212))
        return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def median_ms(action) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            action()
            times.append((time.perf_counter() - started) * 1000)
        return round(statistics.median(times), 2)

    def statements(action) -> int:
        action()  # warm: caches, connections
        with CaptureQueriesContext(connection) as queries:
            answer = action()
        assert answer.status_code < 400, (answer.status_code, answer.content[:300])
        return len(queries.captured_queries)

    def get(path):
        return lambda: client.get(path, HTTP_X_FORWARDED_FOR=ip())

    def webhook(transaction_id=None):
        n = next(counter)
        body = {"utm_id": click_ids[n % len(click_ids)], "amount": 5000, "currency": "USD", "event": "purchase",
                "transaction_id": transaction_id or f"probe-{n}"}  # fmt: skip
        return client.post("/api/v1/utm/webhook/conversion", data=json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION="Api-Key " + fixture.keys["webhook"])  # fmt: skip

    def postback():
        n = next(counter)
        return client.get(f"/postback?key={fixture.keys['postback']}&click_id={click_ids[n % len(click_ids)]}"
                          f"&payout=7.50&status=approved&txid=probe-pb-{n}&goal=deposit")  # fmt: skip

    requests_by_kind = {
        "bare 302": get("/bench/redirect"),
        "direct link": get("/l/tt_probe_direct"),
        "page + pixel": get("/l/tt_probe"),
        "page, no pixel": get("/l/tt_nopixel"),
        "/click": get(classic_path(fixture.classic_campaign)),
        "webhook, new": webhook,
        "webhook, repeat": lambda: webhook("probe-repeat"),
        "postback, new": postback,
    }
    figures = {kind: {"statements": statements(action), "ms": median_ms(action)}
               for kind, action in requests_by_kind.items()}  # fmt: skip
    probe = fixture.links["probe"]
    context = {"link": probe, "page": probe.landing_page, "title": "Football Insider", "description": "x",
               "logo_url": "", "redirect_text": "Redirecting to Telegram…", "button_text": "Open in Telegram",
               "destination": "https://t.me/demo_tracker_bot?start=abc", "delay_s": 3}  # fmt: skip
    steps = {
        "GeoIP, uncached IP": median_ms(lambda: locate(ip())),
        "render the landing page": median_ms(lambda: render_to_string("landing/page.html", context)),
        **commit_costs(repeats),
    }  # fmt: skip
    return {"requests": figures, "steps_ms": steps, "repeats": repeats}


def commit_costs(repeats: int) -> dict:
    """One INSERT committed on its own, as the direct click path does: with the WAL flushed to disk
    (synchronous_commit on, the default) and without waiting for it (off)."""
    from django.db import connection

    figures = {}
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (id bigserial PRIMARY KEY, at timestamptz)")
        for mode in ("on", "off"):
            cursor.execute(f"SET synchronous_commit TO {mode}")
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                cursor.execute("INSERT INTO bench_commit_probe (at) VALUES (now())")  # autocommit: one COMMIT each
                times.append((time.perf_counter() - started) * 1000)
            figures[f"INSERT + COMMIT, synchronous_commit {mode}"] = round(statistics.median(times), 2)
        cursor.execute("RESET synchronous_commit")
        cursor.execute("DROP TABLE bench_commit_probe")
    return figures


# --- the plan ------------------------------------------------------------------------------------


def full_plan(cases: dict) -> list[tuple]:
    """(kind, case, connections) in order. Hot and spread run back to back; bare opens and closes each group."""
    plan = [("click", cases[name], 16) for name in ("bare", "hot", "spread", "nopixel", "direct", "classic", "bare")]
    plan += [("click", cases[name], 64) for name in ("bare", "hot", "direct", "classic", "bare")]
    # 4 batches of 100 at once keep 400 conversions in flight: 16 would queue each batch for seconds.
    plan += [("intake", "webhook", 16), ("intake", "postback", 16), ("intake", "batch", 4)]
    return plan


def short_plan(cases: dict) -> list[tuple]:
    """The other gunicorn configurations: the click path and the single-conversion endpoints."""
    plan = [("click", cases[name], conns) for conns in (16, 64) for name in ("bare", "hot", "direct", "bare")]
    return plan + [("intake", "webhook", 16), ("intake", "postback", 16)]


def run_config(config: str, *, plan: list, fixture: Fixture, stack: dict, env: dict, logdir: Path,
               workdir: Path, args, deadline: float, first: bool) -> dict:  # fmt: skip
    label = GUNICORN_CONFIGS[config][0]
    print(f"\n== gunicorn {label}", flush=True)
    gunicorn, base_url = start_gunicorn(config, env, logdir)
    stack["gunicorn"] = gunicorn
    outcome = {"config": config, "label": label, "clicks": [], "intake": [], "skipped": []}
    try:
        run_wrk(name=f"{config}-warmup", url=base_url + "/bench/redirect", script="clicks.lua", connections=16,
                duration=args.warmup, workdir=workdir,
                extra_env={"WRK_PATHS": str(fixture.warmup_paths_file)})  # fmt: skip
        for kind, what, connections in plan:
            lead_in_s = SPREAD_LEAD_IN_S + SETTLE_S if getattr(what, "paths_file", None) else 0
            if time.monotonic() + lead_in_s + args.duration + 15 > deadline:
                outcome["skipped"].append(f"{kind} {getattr(what, 'name', what)} c={connections}")
                continue
            if kind == "click":
                outcome["clicks"].append(click_run(what, connections=connections, config=config, base_url=base_url,
                                                   duration=args.duration, workdir=workdir, stack=stack))  # fmt: skip
            else:
                outcome["intake"].append(intake_run(what, connections=connections, base_url=base_url, fixture=fixture,
                                                    duration=args.duration, workdir=workdir, stack=stack))  # fmt: skip
        if first:
            outcome["freshness"] = freshness(base_url, fixture.links["fresh"])
            print(f"  freshness: {outcome['freshness']}", flush=True)
        outcome["gunicorn_memory"] = memory(gunicorn)
        if outcome["skipped"]:
            print(f"  skipped (time cap): {outcome['skipped']}", flush=True)
    finally:
        gunicorn.stop()
        stack.pop("gunicorn", None)
    return outcome


# --- report --------------------------------------------------------------------------------------


def _bares(result: dict, clicks: list[dict]) -> list[dict]:
    """The bare runs that open and close the result's group (same connections)."""
    return [r for r in clicks if r["case"] == "bare" and r["connections"] == result["connections"]]


def _ratio(result: dict, clicks: list[dict]) -> float | None:
    """To the mean of the bare runs before and after the group: a phase of the machine that changes during the
    group's minute falls on the baseline as on the cases."""
    rates = [bare["requests_per_s"] for bare in _bares(result, clicks)]
    return round(result["requests_per_s"] / (sum(rates) / len(rates)), 2) if rates and all(rates) else None


def baseline_saturated(bare: dict | None) -> bool:
    """A ratio means something only when the bare view kept the machine busy: a baseline run during which the
    machine idled (it happened: 122 % of 200 %, the bare 302 at half its speed) makes every ratio look good."""
    busy = (bare or {}).get("cpu_percent", {}).get(BUSY)
    return busy is None or busy >= BASELINE_MIN_BUSY_PERCENT


def baseline_steady(bares: list[dict]) -> bool:
    """Every bare run of the group loaded the machine, and the last within BASELINE_MAX_DRIFT of the first:
    otherwise the machine's speed moved during the group and its ratios get no verdict."""
    rates = [bare["requests_per_s"] for bare in bares]
    return (all(baseline_saturated(bare) for bare in bares) and bool(rates)
            and max(rates) <= min(rates) * (1 + BASELINE_MAX_DRIFT))  # fmt: skip


def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("pass" if ok else "**FAIL**")


def click_table(outcome: dict) -> str:
    lines = ["| case | conns | req/s | ratio to bare (≥ 0.5) | p50 ms | p99 ms (≤ 25 at 16) | max ms "
             "| answered 200/302 | non-2xx/3xx | socket errors | stored clicks | answered, not stored (= 0) "
             "| stored, answered after wrk stopped | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for result in outcome["clicks"]:
        ratio = _ratio(result, outcome["clicks"])
        stored = "stored_clicks" in result
        checks = [baseline_steady(_bares(result, outcome["clicks"]))] if result["case"] == "bare" else []
        if result["case"] != "bare":
            if baseline_steady(_bares(result, outcome["clicks"])):
                checks.append(ratio is not None and ratio >= TARGET_RATIO)
            else:
                checks.append(None)  # the baseline did not load the machine: no verdict on the ratio
            checks.append(result["answered_not_stored"] == 0 and result["not_2xx_3xx"] == 0)
            if result["connections"] == 16:
                checks.append(result["p99_ms"] <= TARGET_P99_MS_AT_16)
        lines.append(
            f"| {result['label']} | {result['connections']} | {result['requests_per_s']:,} | "
            f"{'1' if result['case'] == 'bare' else ratio} | {result['p50_ms']} | {result['p99_ms']} | "
            f"{result['max_ms']} | {result.get('answered_200_302', sum(result['statuses'].values())):,} | "
            f"{result['not_2xx_3xx']} | {result['socket_errors']} | "
            f"{format(result['stored_clicks'], ',') if stored else '–'} | {result.get('answered_not_stored', '–')} | "
            f"{result.get('stored_not_answered', '–')} | {_row_verdict(result, checks)} |"
        )
    return "\n".join(lines)


def _row_verdict(result: dict, checks: list) -> str:
    if result["case"] == "bare":
        if not baseline_saturated(result):
            return "baseline, **machine not saturated: re-run**"
        return "baseline" if checks[0] else "baseline, **the machine's speed moved during the group: re-run**"
    if False in checks:
        return _verdict(False)
    return "ratio not judged (baseline)" if None in checks else _verdict(True)


def hot_vs_spread(outcome: dict) -> str:
    found = {r["case"]: r for r in outcome["clicks"] if r["connections"] == 16 and r["case"] in ("hot", "spread")}
    if len(found) < 2:
        return "(not measured)"
    hot, spread = found["hot"], found["spread"]
    ok = hot["requests_per_s"] >= HOT_VS_SPREAD_TOLERANCE * spread["requests_per_s"]
    return "\n".join([
        "| 16 connections | req/s | p50 ms | p99 ms | stored clicks |",
        "|---|---:|---:|---:|---:|",
        f"| one hot link | {hot['requests_per_s']:,} | {hot['p50_ms']} | {hot['p99_ms']} | {hot['stored_clicks']:,} |",
        f"| 1,000 links, a random one per request | {spread['requests_per_s']:,} | {spread['p50_ms']} | "
        f"{spread['p99_ms']} | {spread['stored_clicks']:,} |",
        f"| hot / spread | {hot['requests_per_s'] / spread['requests_per_s']:.2f} | | | |",
        *_lead_in_row(spread),
        "",
        f"Target: the hot link at least {HOT_VS_SPREAD_TOLERANCE:.0%} of the spread load's requests/s "
        f"(no hot row): **{_verdict(ok)}**.",
    ])  # fmt: skip


def _lead_in_row(spread: dict) -> list[str]:
    lead_in = spread.get("lead_in")
    if lead_in is None:
        return []
    return [f"| (not measured: the {SPREAD_LEAD_IN_S} s before, while each worker read each link once) | "
            f"{lead_in['requests_per_s']:,} | {lead_in['p50_ms']} | {lead_in['p99_ms']} | |"]  # fmt: skip


def intake_table(outcome: dict) -> str:
    lines = ["| endpoint (connections) | conversions/s answered 2xx (≥ 1,000) | new conversions/s | p50 ms | p99 ms "
             "| requests | duplicates sent | 201 / 200 | non-2xx | distinct transaction ids sent | conversions stored "
             "| answered 2xx, not stored (= 0) | stored twice (= 0) | sent, not stored (in flight at stop) "
             "| verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    endpoints = {
        "webhook": "POST /api/v1/utm/webhook/conversion",
        "postback": "GET /postback",
        "batch": f"POST /api/v1/utm/webhook/conversions, {INTAKE_BATCH} conversions a request",
    }
    for r in outcome["intake"]:
        once = r["answered_not_stored"] in (0, None) and r["transaction_ids_stored_twice"] == 0
        once = once and 0 <= r["sent_not_stored"] <= r["in_flight_at_stop"]
        ok = once and r["conversions_answered_per_s"] >= TARGET_INTAKE_PER_S and r["not_2xx_3xx"] == 0
        lines.append(
            f"| {endpoints[r['case']]} ({r['connections']}) | {r['conversions_answered_per_s']:,} | "
            f"{r['conversions_per_s']:,} | "
            f"{r['p50_ms']} | {r['p99_ms']} | {r['requests']:,} | {r['duplicates_sent']:,} | {r['answered_201']:,} / "
            f"{r['answered_200']:,} | {r['not_2xx_3xx']} | {r['distinct_transactions_sent']:,} | "
            f"{r['conversions_created']:,} | {r['answered_not_stored']} | {r['transaction_ids_stored_twice']} | "
            f"{r['sent_not_stored']} ({r['in_flight_at_stop']}) | {_verdict(ok)} |"
        )
    return "\n".join(lines)


def cpu_table(outcome: dict) -> str:
    runs = [r for r in outcome["clicks"] + outcome["intake"] if r["cpu_percent"]]
    if not runs:
        return ""
    groups = list(runs[0]["cpu_percent"])
    per_request = ("gunicorn workers", "postgres backends of the bench database (web + Celery)")
    header = "| run | " + " | ".join(groups) + " | CPU ms per request: gunicorn / PostgreSQL (web + Celery) |"
    lines = [header, "|---|" + "---:|" * (len(groups) + 1)]
    for r in runs:
        cpu = r["cpu_percent"]
        ms = " / ".join(f"{cpu[g] * 10 / r['requests_per_s']:.1f}" if r["requests_per_s"] else "–" for g in per_request)
        lines.append(f"| {r['case']} c={r['connections']} | " + " | ".join(str(cpu.get(g, "")) for g in groups)
                     + f" | {ms} |")  # fmt: skip
    return "\n".join(lines)


def markdown(results: dict) -> str:
    about = results["machine"]
    out = [
        f"**Date:** {about['date']}. Code: `{about['revision']}`.",
        "",
        f"**Machine:** {about['nproc']} vCPU (`{about['cpu']}`), {about['memory_gb']} GB RAM, Linux {about['kernel']}, "
        f"Python {about['python']}, PostgreSQL {about['postgres']['server_version']} (max_connections "
        f"{about['postgres']['max_connections']}, shared_buffers {about['postgres']['shared_buffers']}, "
        f"synchronous_commit {about['postgres']['synchronous_commit']}, autovacuum "
        f"{about['postgres'].get('autovacuum', '?')}: tables are analyzed only when it is on), "
        f"Redis {about['redis']}, wrk "
        f"`{about['wrk']}`. Everything on this one machine: PostgreSQL, Redis, gunicorn, the Celery worker and "
        f"beat, the fake TikTok, wrk and the bench process. Load average before / after: {about['load_before']} / "
        f"{about['load_after']} (other work on the machine makes the figures noisier).",
        "",
        f"**Settings:** product defaults (`LINK_CACHE_TTL_S` 2, `DB_CONN_MAX_AGE` 60, `ROLLUP_INTERVAL_S` 5, "
        f"`INTAKE_REQUESTS_PER_MINUTE` 60,000 per key), `DEBUG=0`, `LOG_LEVEL=WARNING`, no access log. Load: wrk "
        f"{about['duration']} s a run, 2 threads, `--latency`, an iPhone Safari User-Agent, a random public "
        f"X-Forwarded-For per request (gunicorn's peer 127.0.0.1 is a trusted proxy, so GeoIP and the unique "
        f"check see a crowd). Celery: one worker `--concurrency=2` and one beat, sending the ViewContent events "
        f"to the fake TikTok while the load runs."
        + (
            " gunicorn also loaded the repository's `gunicorn.conf.py` (its hooks and timeouts; the bind, workers, "
            "worker class and threads below come from the command line)."
            if about.get("gunicorn_conf_py")
            else ""
        )
        + (
            f" The clicks table was partitioned after the fixture (`manage.py partition_clicks --block "
            f"{about['partition_block']}`): {', '.join(results['partitions'])}."
            if results.get("partitions")
            else ""
        ),
    ]
    for outcome in results["configs"]:
        first = outcome is results["configs"][0]
        scope = " (all benchmarks)" if first else " (click path, single conversions)"
        out += ["", f"### gunicorn {outcome['label']}{scope}", ""]
        out += [f"`gunicorn tracker.wsgi -b 127.0.0.1:PORT {' '.join(GUNICORN_CONFIGS[outcome['config']][1])}`", ""]
        out += [
            "Click path (each ratio is to the mean of the bare 302 runs that open and close its group of the same "
            "connections; it gets no verdict when one of them did not load both cores or the two differ by more "
            f"than {BASELINE_MAX_DRIFT:.0%}):",
            "",
            click_table(outcome),
        ]
        if first:
            out += ["", "One hot link vs. load spread over 1,000 links:", "", hot_vs_spread(outcome)]
        if outcome["intake"]:
            out += ["", "Intake (about 10 % of the conversions sent repeat a transaction id already sent):", "",
                    intake_table(outcome)]  # fmt: skip
        if outcome.get("freshness"):
            fresh = outcome["freshness"]
            seconds = fresh["seconds_to_dailystats"]
            ok = seconds is not None and seconds <= TARGET_FRESHNESS_S
            out += ["", "Freshness (one click on a quiet link right after the load, `ROLLUP_INTERVAL_S` 5):", "",
                    "| click → counted in DailyStats (≤ 10 s) | `totals_for` right after the click | verdict |",
                    "|---:|---|---|",
                    f"| {seconds if seconds is not None else 'not within 30'} s | {fresh['totals_for_clicks_at_once']} "
                    f"click ({fresh['totals_for_ms']} ms: rollup + unrolled tail) | {_verdict(ok)} |"]  # fmt: skip
        cpu = cpu_table(outcome)
        if cpu:
            out += ["", "CPU during each run, % of one core (200 % = the whole 2-core machine):", "", cpu]
        replaced = [f"{r['case']} c={r['connections']}: {r['gunicorn_workers_replaced']}"
                    for r in outcome["clicks"] + outcome["intake"] if r["gunicorn_workers_replaced"]]  # fmt: skip
        if replaced:
            out += ["", f"gunicorn workers that exited during a run (their CPU time is missing above): "
                    f"{', '.join(replaced)}."]  # fmt: skip
        mem = outcome.get("gunicorn_memory")
        if mem:
            out += ["", f"Peak RSS (VmHWM) after the runs: gunicorn master {mem['main_mb']} MB, workers "
                    f"{', '.join(str(mb) for mb in mem['children_mb'])} MB. Together, counting each shared "
                    f"page once (PSS; the workers share the preloaded master's memory): "
                    f"{mem['pss_total_mb']} MB."]  # fmt: skip
        if outcome["skipped"]:
            out += ["", f"Skipped to stay within the time cap: {', '.join(outcome['skipped'])}."]
    celery = results.get("celery_memory")
    if celery:
        out += ["", f"Celery peak RSS (VmHWM) after all runs: worker main {celery['worker']['main_mb']} MB, pool "
                f"processes {', '.join(str(mb) for mb in celery['worker']['children_mb'])} MB; beat "
                f"{celery['beat']['main_mb']} MB."]  # fmt: skip
    probe = results.get("probe")
    if probe:
        kinds = list(probe["requests"])
        out += ["", f"One request at a time before the load, in the bench process (Django test client, full "
                f"middleware, the same database and Redis; median of {probe['repeats']}):", "",
                "| | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds),
                "| ms | " + " | ".join(str(probe["requests"][k]["ms"]) for k in kinds) + " |",
                "| SQL statements | " + " | ".join(str(probe["requests"][k]["statements"]) for k in kinds) + " |",
                "", "Steps, median ms: " + "; ".join(f"{step} {ms}" for step, ms in probe["steps_ms"].items())
                + "."]  # fmt: skip
    out += ["", f"Whole benchmark: {results['total_s']} s."]
    return "\n".join(out)


SECTION_TITLE = "## Click path and intake"
BEGIN, END = "<!-- bench/clicks.py: figures begin -->", "<!-- bench/clicks.py: figures end -->"


def write_readme(figures: str) -> None:
    write_readme_section(title=SECTION_TITLE, begin=BEGIN, end=END, figures=figures)


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load after gunicorn starts")
    parser.add_argument("--gunicorn", nargs="+", default=["sync5", "gthread2x4"], choices=list(GUNICORN_CONFIGS),
                        help="configurations: the first runs everything, the others the click path and the "
                             "single conversions")  # fmt: skip
    parser.add_argument("--probe-repeats", type=int, default=200, help="requests per in-process probe (0: skip)")
    parser.add_argument("--cap", type=int, default=420, help="hard cap for the whole benchmark, seconds")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--no-readme", action="store_true", help="do not write the figures into bench/README.md")
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs and wrk reports")
    parser.add_argument("--partition-block", type=int, metavar="IDS",
                        help="partition the clicks table (manage.py partition_clicks) into blocks of IDS ids first; "
                             "larger than the run's clicks (~250,000): the hourly job does not run")  # fmt: skip
    return parser.parse_args(argv)


def describe_machine() -> dict:
    wrk_version = subprocess.run([WRK, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {**machine(), "postgres": postgres_settings(), "revision": git_revision(),
            "wrk": wrk_version.split(" Copyright")[0].strip(), "load_before": load_average(),
            # gunicorn reads ./gunicorn.conf.py by itself; -b, -w, -k and --threads given here win over it.
            "gunicorn_conf_py": (ROOT / "gunicorn.conf.py").exists(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}  # fmt: skip


def start_services(teardown: ExitStack, *, db_name: str, env: dict, ports: dict, logdir: Path) -> dict:
    """A fresh migrated database, Redis and the fake TikTok, each undone by `teardown`."""
    recreate_database(db_name)
    teardown.callback(drop_database, db_name)
    migrate(env)
    stack = {"redis": start_redis(ports["redis"], env, logdir), "fake": start_fake(ports["fake"], env, logdir)}
    teardown.callback(stack["fake"].stop)
    teardown.callback(stack["redis"].stop)
    return stack


def start_celery(teardown: ExitStack, stack: dict, *, env: dict, logdir: Path) -> None:
    """The Celery worker and beat into `stack`, stopped by `teardown`; returns once the worker answers."""
    stack["worker"], stack["beat"] = start_worker(env, logdir), start_beat(env, logdir)
    teardown.callback(stack["beat"].stop)
    teardown.callback(stack["worker"].stop)
    wait_until(lambda: "ready." in stack["worker"].log_text() or _worker_ready(stack["worker"]), timeout=60,
               what="the Celery worker")  # fmt: skip


def run(args, *, env: dict, ports: dict, workdir: Path, deadline: float) -> dict:
    results = {"configs": []}
    logdir = workdir / "logs"
    logdir.mkdir()
    with ExitStack() as teardown:
        stack = start_services(teardown, db_name=DB_NAME, env=env, ports=ports, logdir=logdir)
        fixture = create_fixture(workdir)
        if args.partition_block:
            from conversions.partitions import clicks_partition

            results["partitions"] = [partition.name for partition in clicks_partition(block=args.partition_block)]
        if args.probe_repeats:
            results["probe"] = probe_click_path(fixture, args.probe_repeats)
            print(f"probe: {results['probe']}", flush=True)
        start_celery(teardown, stack, env=env, logdir=logdir)
        cases = click_cases(fixture)
        for index, config in enumerate(args.gunicorn):
            plan = full_plan(cases) if index == 0 else short_plan(cases)
            results["configs"].append(run_config(config, plan=plan, fixture=fixture, stack=stack, env=env,
                                                 logdir=logdir, workdir=workdir, args=args, deadline=deadline,
                                                 first=index == 0))  # fmt: skip
        results["celery_memory"] = {"worker": memory(stack["worker"]), "beat": memory(stack["beat"])}
    return results


def _worker_ready(worker: Process) -> bool:
    """--loglevel=WARNING hides "ready.": ask the worker itself."""
    if not worker.alive():
        raise RuntimeError(f"the Celery worker exited:\n{worker.log_text()[-3000:]}")
    from tracker.celery import app

    return bool(app.control.ping(timeout=0.5))


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    hard_cap(args.cap)
    deadline = started + args.cap - TEARDOWN_RESERVE_S
    workdir = Path(tempfile.mkdtemp(prefix="clicks-bench-"))
    ports = {"redis": free_port(), "fake": free_port()}
    env = stack_env(redis_port=ports["redis"], fake_port=ports["fake"], workdir=workdir)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    about = {**describe_machine(), "duration": args.duration, "partition_block": args.partition_block}
    print(json.dumps(about), flush=True)
    results = {}
    with guarded(workdir, keep_logs=args.keep_logs) as outcome:
        results = run(args, env=env, ports=ports, workdir=workdir, deadline=deadline)
    failed = outcome["failed"]
    about["load_after"] = load_average()
    results.update(machine=about, total_s=round(time.monotonic() - started))
    if results.get("configs"):
        figures = markdown(results)
        print("\n" + figures)
        if not args.no_readme and not failed:
            write_readme(figures)
            print(f"\nwritten to {README.relative_to(ROOT)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"\ntotal {time.monotonic() - started:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

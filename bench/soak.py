"""Benchmark: a soak of the whole tracker, 10 minutes at half its measured capacity.

    .venv/bin/python bench/soak.py                        # 10 minutes of load (~13 min in all), writes bench/README.md
    .venv/bin/python bench/soak.py --duration 60 --no-readme

It sets up, and always tears down, the production-like stack of bench/clicks.py on its own database
(`tracker_bench_soak`): PostgreSQL on 127.0.0.1:5432, a private redis-server, the fake TikTok with its
10 requests/s limit, one Celery worker (--concurrency=2) and beat with the product's schedule, and gunicorn
as gunicorn.conf.py runs it on 2 cores (5 sync workers), except that workers are never recycled
(GUNICORN_MAX_REQUESTS=0), so that a leak would show. The traffic is bench/wrk/soak.lua: visitors on
1,000 page-mode links and a direct link, the bot's /start and purchases, partner postbacks, with true
duplicates among the conversions; page views, starts and purchases also queue TikTok events.

1. capacity: 20 s of that mix with 16 connections and no pause: answers per second;
2. soak: --duration seconds (600) at half that rate (--share), on a fixed schedule per wrk thread. Every
   10 s the resident memory of gunicorn, the Celery worker and beat, the outbox's depth and the load
   average are sampled;
3. drain: the outbox empties and the rollup catches up;
4. checks: no answer outside 200/201/302 and no socket error; every click, start and conversion that was
   answered is stored (each id looked up), conversions once per transaction id (those still in flight when
   wrk stopped are stored but unanswered: at most one per connection); every TikTok event the
   funnel queued was accepted by the fake exactly once; the rollup's clicks equal the stored clicks; no
   traceback in any log; memory flat (the last 2 minutes' mean within 10 % of minutes 2–3's).

Run on demand only; never part of the test suite. Loopback only: TikTok itself is never called.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import requests
from clicks import (
    WRK,
    WRK_DIR,
    create_fixture,
    stack_env,
    start_celery,
    start_gunicorn,
    start_services,
)
from common import (
    README,
    ROOT,
    free_port,
    git_revision,
    guarded,
    hard_cap,
    load_average,
    machine,
    rss_mb,
    wait_until,
    write_readme_section,
)

DB_NAME = "tracker_bench_soak"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
SECTION_TITLE = "## Soak: 10 minutes at half capacity"
GUNICORN = "sync5"  # what gunicorn.conf.py runs on 2 cores
CONNECTIONS = 16
THREADS = 2
CAPACITY_S = 20
SAMPLE_EVERY_S = 10
DRAIN_TIMEOUT_S = 180
OK_STATUSES = {200, 201, 302}
FLAT_TOLERANCE = 0.10
USER_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
LOG_ERROR = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")


# --- load ------------------------------------------------------------------------------------------


def wrk_argv(*, url: str, duration: int) -> list[str]:
    return [WRK, "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{duration}s", "--latency", "--timeout", "5s",
            "-s", str(WRK_DIR / "soak.lua"), url]  # fmt: skip


def wrk_env(fixture, workdir: Path, name: str, rate: float) -> dict:
    return {**os.environ, "WRK_REPORT": str(workdir / f"{name}.json"), "WRK_IDS": str(workdir / f"{name}.ids"),
            "WRK_UA": USER_AGENT, "WRK_PATHS": str(fixture.spread_paths_file), "WRK_DIRECT": "/l/tt_direct",
            "WRK_KEY": fixture.keys["webhook"], "WRK_RATE": str(rate / THREADS)}  # fmt: skip


def wrk_report(workdir: Path, name: str) -> dict:
    report = json.loads((workdir / f"{name}.json").read_text())
    ids = Counter()
    answered = {"c": set(), "s": set(), "v": set(), "p": set()}
    ids_path = workdir / f"{name}.ids"
    for line in ids_path.read_text().splitlines() if ids_path.exists() else []:
        kind, value = line.split(" ", 1)
        answered[kind].add(value)
        ids[kind] += 1
    statuses = {int(code): n for code, n in report["statuses"].items()}
    seconds = report["duration_us"] / 1e6
    errors = report["errors"]
    return {
        "seconds": round(seconds, 1),
        "answers": sum(statuses.values()),
        "answers_per_s": round(sum(statuses.values()) / seconds, 1),
        "statuses": dict(sorted(statuses.items())),
        "bad_statuses": sum(n for code, n in statuses.items() if code not in OK_STATUSES),
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "p50_ms": round(report["latency_us"]["p50"] / 1000, 1),
        "p99_ms": round(report["latency_us"]["p99"] / 1000, 1),
        "max_ms": round(report["latency_us"]["max"] / 1000, 1),
        "answered_by_kind": dict(ids),
        "answered": answered,
    }


def run_wrk(fixture, *, url: str, workdir: Path, name: str, duration: int, rate: float) -> dict:
    done = subprocess.run(wrk_argv(url=url, duration=duration), cwd=ROOT, capture_output=True, text=True,
                          env=wrk_env(fixture, workdir, name, rate), timeout=duration + 60)  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"wrk {name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wrk_report(workdir, name)


# --- sampling while the soak runs ----------------------------------------------------------------


def group_rss_mb(stack: dict) -> dict:
    """Resident memory now: each gunicorn worker, the Celery worker's processes, beat (MB)."""
    gunicorn = rss_mb(stack["gunicorn"].pid)
    gunicorn.pop(stack["gunicorn"].pid, None)
    worker = rss_mb(stack["worker"].pid)
    return {
        "gunicorn_workers_total": round(sum(gunicorn.values()), 1),
        "gunicorn_worker_max": round(max(gunicorn.values(), default=0), 1),
        "celery_worker_total": round(sum(worker.values()), 1),
        "celery_beat": round(sum(rss_mb(stack["beat"].pid).values()), 1),
    }


def outbox_depth() -> int:
    from tiktok_ads.models import TikTokEvent

    unfinished = (TikTokEvent.Status.QUEUED, TikTokEvent.Status.SENDING, TikTokEvent.Status.RETRYING)
    return TikTokEvent.objects.filter(status__in=unfinished).count()


def sample(stack: dict, started: float) -> dict:
    from django.db import close_old_connections

    close_old_connections()
    return {"t_s": round(time.monotonic() - started), **group_rss_mb(stack), "outbox_depth": outbox_depth(),
            "load": load_average()}  # fmt: skip


def soak(fixture, stack: dict, *, url: str, workdir: Path, duration: int, rate: float) -> tuple[dict, list]:
    argv = wrk_argv(url=url, duration=duration)
    log = open(workdir / "soak-wrk.out", "w")  # noqa: SIM115 - closed below
    wrk = subprocess.Popen(argv, cwd=ROOT, env=wrk_env(fixture, workdir, "soak", rate), stdout=log,
                           stderr=subprocess.STDOUT)  # fmt: skip
    started, samples = time.monotonic(), []
    try:
        while wrk.poll() is None:
            samples.append(sample(stack, started))
            print(f"  {json.dumps(samples[-1])}", flush=True)
            for _ in range(SAMPLE_EVERY_S * 10):
                if wrk.poll() is not None:
                    break
                time.sleep(0.1)
            if time.monotonic() - started > duration + 60:
                wrk.kill()
                raise RuntimeError("wrk did not stop")
    finally:
        log.close()
    if wrk.returncode:
        raise RuntimeError(f"wrk soak failed ({wrk.returncode}):\n{(workdir / 'soak-wrk.out').read_text()}")
    samples.append(sample(stack, started))
    return wrk_report(workdir, "soak"), samples


# --- after the soak -------------------------------------------------------------------------------


def drain(stack: dict) -> dict:
    """Wait for the outbox to empty and the rollup to count every click; how long each took."""
    from django.db import close_old_connections
    from django.db.models import Sum

    from conversions.models import Click, DailyStats

    started = time.monotonic()

    def outbox_empty() -> bool:
        close_old_connections()
        return outbox_depth() == 0

    wait_until(outbox_empty, timeout=DRAIN_TIMEOUT_S, interval=1, what="the TikTok outbox to empty")
    outbox_s = time.monotonic() - started

    def rolled_up() -> bool:
        close_old_connections()
        rolled = DailyStats.objects.aggregate(clicks=Sum("clicks"))["clicks"] or 0
        return rolled == Click.objects.filter(is_bot=False).count()

    wait_until(rolled_up, timeout=60, interval=1, what="the rollup to count every click")
    return {"outbox_s": round(outbox_s, 1), "rollup_s": round(time.monotonic() - started, 1)}


def missing(model, field: str, values: set[str]) -> int:
    """How many of `values` have no row of `model` (looked up in chunks)."""
    values, found = sorted(values), 0
    for index in range(0, len(values), 5000):
        chunk = values[index : index + 5000]
        found += model.objects.filter(**{f"{field}__in": chunk}).values(field).distinct().count()
    return len(values) - found


def stored(answered: dict, fixture_clicks: int) -> dict:
    from django.db.models import Count, Sum

    from conversions.models import BotStart, Click, Conversion, DailyStats

    transactions = answered["v"] | answered["p"]
    per_transaction = (Conversion.objects.filter(transaction_id__startswith="soak-").values("transaction_id")
                       .annotate(n=Count("id")).filter(n__gt=1).count())  # fmt: skip
    return {
        "clicks_answered": len(answered["c"]),
        "clicks_missing": missing(Click, "click_id", answered["c"]),
        "starts_answered": len(answered["s"]),
        "starts_missing": missing(BotStart, "lead__telegram_user_id", {int(user) for user in answered["s"]}),
        "conversions_answered": len(transactions),
        "conversions_missing": missing(Conversion, "transaction_id", transactions),
        "conversions_stored": Conversion.objects.filter(transaction_id__startswith="soak-").count(),
        "transactions_stored_twice": per_transaction,
        "clicks_stored": Click.objects.count() - fixture_clicks,
        "rollup_clicks": DailyStats.objects.aggregate(clicks=Sum("clicks"))["clicks"] or 0,
        "clicks_not_bot": Click.objects.filter(is_bot=False).count(),
    }


def tiktok(fake_url: str) -> dict:
    from tiktok_ads.models import TikTokEvent

    accepted = requests.get(fake_url + "/__fake__/events", timeout=120).json()
    per_event = Counter(item["event_id"] for item in accepted)
    calls = requests.get(fake_url + "/__fake__/requests", timeout=120).json()
    codes = Counter(str(call["code"]) for call in calls if call["path"].endswith("/event/track/"))
    by_status = Counter(TikTokEvent.objects.values_list("status", flat=True))
    sent_ids = set(TikTokEvent.objects.filter(status=TikTokEvent.Status.SENT).values_list("event_id", flat=True))
    return {
        "events_by_status": dict(sorted(by_status.items())),
        "events_by_name": dict(Counter(TikTokEvent.objects.values_list("event", flat=True))),
        "requests": sum(codes.values()),
        "answers_by_code": dict(sorted(codes.items())),
        "accepted_unique": len(per_event),
        "accepted_twice": sum(1 for n in per_event.values() if n > 1),
        "sent_not_accepted": len(sent_ids - set(per_event)),
    }


def log_errors(stack: dict) -> dict:
    found = {}
    for name in ("gunicorn", "worker", "beat"):
        lines = [line for line in stack[name].log_text().splitlines() if LOG_ERROR.search(line)]
        found[name] = {"lines": len(lines), "first": lines[:3]}
    return found


def memory_verdict(samples: list[dict], duration: int) -> dict:
    """Mean of minutes 2–3 (warm) against the mean of the last 2 minutes, per group."""
    warm = [s for s in samples if 60 <= s["t_s"] < 180] or samples[: max(1, len(samples) // 4)]
    last = [s for s in samples if s["t_s"] >= duration - 120] or samples[-max(1, len(samples) // 4) :]
    verdict = {}
    for group in ("gunicorn_workers_total", "gunicorn_worker_max", "celery_worker_total", "celery_beat"):
        before, after = statistics.mean(s[group] for s in warm), statistics.mean(s[group] for s in last)
        verdict[group] = {"warm_mb": round(before, 1), "last_mb": round(after, 1),
                          "growth": round(after / before - 1, 3) if before else 0.0,
                          "peak_mb": max(s[group] for s in samples)}  # fmt: skip
    return verdict


# --- the report ------------------------------------------------------------------------------------


def verdicts(results: dict) -> dict:
    soak_run, kept, sent = results["soak"], results["stored"], results["tiktok"]
    unfinished = sum(n for status, n in sent["events_by_status"].items() if status != "sent")
    return {
        "no errors": soak_run["bad_statuses"] == 0 and soak_run["socket_errors"] == 0
        and all(found["lines"] == 0 for found in results["log_errors"].values()),
        "nothing lost": kept["clicks_missing"] == 0 and kept["starts_missing"] == 0
        and kept["conversions_missing"] == 0 and kept["transactions_stored_twice"] == 0
        and 0 <= kept["conversions_stored"] - kept["conversions_answered"] <= CONNECTIONS
        and unfinished == 0 and sent["accepted_twice"] == 0 and sent["sent_not_accepted"] == 0
        and sent["accepted_unique"] == sent["events_by_status"].get("sent", 0)
        and kept["rollup_clicks"] == kept["clicks_not_bot"],
        "flat memory": all(group["growth"] <= FLAT_TOLERANCE for group in results["memory"].values()),
    }  # fmt: skip


def markdown(results: dict) -> str:
    about, soak_run, kept, sent = results["machine"], results["soak"], results["stored"], results["tiktok"]
    capacity, ok = results["capacity"], results["verdicts"]
    lines = [
        f"**Date:** {about['date']}. Code: `{about['revision']}`. **Machine:** {about['nproc']} vCPU {about['cpu']}, "
        f"{about['memory_gb']} GiB, Python {about['python']}, Redis {about['redis']}, PostgreSQL as configured there. "
        f"Load average before / after: {about['load_before']} / {about.get('load_after', '?')}. "
        f"gunicorn `-w 5` sync (gunicorn.conf.py on 2 cores), Celery worker `--concurrency=2` and beat, the fake "
        f"TikTok with its 10 requests/s limit. Load: wrk, {CONNECTIONS} connections, bench/wrk/soak.lua.",
        "",
        "| | figure |",
        "|---|---:|",
        f"| capacity (20 s, no pause): answers/s, p99 | {capacity['answers_per_s']} /s, {capacity['p99_ms']} ms |",
        f"| soak: rate asked (share of capacity), duration | {results['rate']} /s "
        f"({results['rate'] / capacity['answers_per_s']:.0%}), {soak_run['seconds']:.0f} s |",
        f"| soak: answers/s | {soak_run['answers_per_s']} /s |",
        f"| soak: p50 / p99 / max latency | {soak_run['p50_ms']} / {soak_run['p99_ms']} / {soak_run['max_ms']} ms |",
        f"| answers by status | {', '.join(f'{code}: {n:,}' for code, n in soak_run['statuses'].items())} |",
        f"| answers outside 200/201/302, socket errors | {soak_run['bad_statuses']}, {soak_run['socket_errors']} |",
        f"| clicks answered / missing from the database | {kept['clicks_answered']:,} / {kept['clicks_missing']} |",
        f"| starts answered / missing | {kept['starts_answered']:,} / {kept['starts_missing']} |",
        f"| conversions answered (distinct transaction ids) / stored / missing / stored twice | "
        f"{kept['conversions_answered']:,} / {kept['conversions_stored']:,} / {kept['conversions_missing']} / "
        f"{kept['transactions_stored_twice']} |",
        f"| rollup clicks / stored clicks (not bots) | {kept['rollup_clicks']:,} / {kept['clicks_not_bot']:,} |",
        f"| TikTok events by status | {', '.join(f'{k}: {n:,}' for k, n in sent['events_by_status'].items())} |",
        f"| TikTok requests, answers by code | {sent['requests']:,}, "
        f"{', '.join(f'{k}: {n:,}' for k, n in sent['answers_by_code'].items())} |",
        f"| events accepted by the fake / twice / sent but not there | {sent['accepted_unique']:,} / "
        f"{sent['accepted_twice']} / {sent['sent_not_accepted']} |",
        f"| after the load: outbox empty, rollup caught up | {results['drain']['outbox_s']} s, "
        f"{results['drain']['rollup_s']} s |",
        f"| lines with Traceback/ERROR in gunicorn / worker / beat logs | "
        f"{' / '.join(str(found['lines']) for found in results['log_errors'].values())} |",
        "",
        "| resident memory (MB) | minutes 2–3 | last 2 minutes | growth | peak |",
        "|---|---:|---:|---:|---:|",
    ]
    for group, figures in results["memory"].items():
        lines.append(f"| {group.replace('_', ' ')} | {figures['warm_mb']} | {figures['last_mb']} | "
                     f"{figures['growth']:+.1%} | {figures['peak_mb']} |")  # fmt: skip
    depth = [s["outbox_depth"] for s in results["samples"]]
    lines += [
        "",
        f"TikTok outbox depth every {SAMPLE_EVERY_S} s: median {statistics.median(depth):,.0f}, max {max(depth):,}.",
        "",
        "**Verdict:** " + "; ".join(f"{name}: {'met' if met else 'NOT met'}" for name, met in ok.items()) + ".",
    ]
    return "\n".join(lines)


def write_readme(figures: str) -> None:
    write_readme_section(title=SECTION_TITLE, begin=BEGIN, end=END, figures=figures)


# --- main ----------------------------------------------------------------------------------------


def run(args, *, env: dict, ports: dict, workdir: Path) -> dict:
    from conversions.models import Click

    logdir = workdir / "logs"
    logdir.mkdir()
    results = {}
    with ExitStack() as teardown:
        stack = start_services(teardown, db_name=DB_NAME, env=env, ports=ports, logdir=logdir)
        fixture = create_fixture(workdir)
        fixture_clicks = Click.objects.count()
        start_celery(teardown, stack, env=env, logdir=logdir)
        stack["gunicorn"], url = start_gunicorn(GUNICORN, env, logdir)
        teardown.callback(stack["gunicorn"].stop)

        results["capacity"] = run_wrk(fixture, url=url, workdir=workdir, name="capacity", duration=CAPACITY_S,
                                      rate=0)  # fmt: skip
        results["rate"] = round(results["capacity"]["answers_per_s"] * args.share, 1)
        print(f"capacity {results['capacity']['answers_per_s']}/s; soak at {results['rate']}/s", flush=True)
        results["soak"], results["samples"] = soak(fixture, stack, url=url, workdir=workdir, duration=args.duration,
                                                   rate=results["rate"])  # fmt: skip
        results["drain"] = drain(stack)
        answered = results["soak"].pop("answered")
        for kind, ids in results["capacity"].pop("answered").items():  # the capacity run's are checked too
            answered[kind] |= ids
        results["stored"] = stored(answered, fixture_clicks)
        results["tiktok"] = tiktok(f"http://127.0.0.1:{ports['fake']}")
        results["log_errors"] = log_errors(stack)
        results["memory"] = memory_verdict(results["samples"], args.duration)
    results["verdicts"] = verdicts(results)
    return results


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=600, help="seconds of paced load (default 600)")
    parser.add_argument("--share", type=float, default=0.5, help="share of the measured capacity (default 0.5)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--no-readme", action="store_true", help="do not write the figures into bench/README.md")
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs and wrk reports")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    hard_cap(args.duration + 420)
    workdir = Path(tempfile.mkdtemp(prefix="soak-bench-"))
    ports = {"redis": free_port(), "fake": free_port()}
    env = stack_env(redis_port=ports["redis"], fake_port=ports["fake"], workdir=workdir, db_name=DB_NAME)
    env["GUNICORN_MAX_REQUESTS"] = "0"  # no worker recycling, or a leak would hide behind it
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    about = {**machine(), "revision": git_revision(), "load_before": load_average(),
             "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}  # fmt: skip
    results = {}
    with guarded(workdir, keep_logs=args.keep_logs) as outcome:
        results = run(args, env=env, ports=ports, workdir=workdir)
    failed = outcome["failed"]
    about["load_after"] = load_average()
    results["machine"] = about
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if failed:
        return 1
    figures = markdown(results)
    print("\n" + figures)
    if not args.no_readme:
        write_readme(figures)
        print(f"\nwritten to {README.relative_to(ROOT)}")
    print(f"\ntotal {time.monotonic() - started:.0f}s")
    return 0 if all(results["verdicts"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

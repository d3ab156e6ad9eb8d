"""Benchmark: 100,000 queued TikTok events sent through the outbox to the fake TikTok.

    .venv/bin/python bench/tiktok_events.py                 # 100,000 events, 1 then 2 worker processes
    .venv/bin/python bench/tiktok_events.py --events 20000 --workers 2

For each run it sets up, and always tears down: the PostgreSQL database `tracker_bench` on
127.0.0.1:5432 (dropped, created, migrated), a private redis-server, the fake TikTok with its
10 requests/s limit on, `celery worker --concurrency=N` and one `celery beat` (the product's
sweep). Then it queues the events with bulk_create, wakes the senders and measures until every row
is sent. Product settings are the defaults (batch 1,000, 10 requests/s); only the pixel's daily
quota is raised to the number of events, or half of them would wait for the next UTC day.
Run on demand only; never part of the test suite. Loopback only: TikTok itself is never called.
"""

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import requests
from common import (
    BIN,
    ROOT,
    Process,
    bench_env,
    drop_database,
    free_port,
    git_revision,
    guarded,
    hard_cap,
    machine,
    migrate,
    peak_rss_mb,
    postgres_version,
    recreate_database,
    start_beat,
    start_redis,
    wait_until,
)
from common import start_fake as common_start_fake

DB_NAME = "tracker_bench"
PIXEL_CODE = "BENCH0PIXEL0000001"
ACCESS_TOKEN = "bench-access-token-0000000000000000"
INSERT_CHUNK = 5_000
POLL_S = 0.5
TEARDOWN_RESERVE_S = 25  # kept out of a run's sending time so teardown fits in the hard cap
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Mobile Safari/537.36 musical_ly_2023405030 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/musical_ly",
)


# --- environment ---------------------------------------------------------------------------------


def stack_env(*, redis_port: int, fake_port: int, workdir: Path) -> dict:
    return bench_env(db_name=DB_NAME, workdir=workdir, redis_port=redis_port, fake_port=fake_port)


def start_fake(port: int, env: dict, logdir: Path) -> Process:
    return common_start_fake(port, env, logdir, pixels={PIXEL_CODE: ACCESS_TOKEN})


def start_worker(concurrency: int, env: dict, logdir: Path) -> Process:
    argv = [str(BIN / "celery"), "-A", "tracker", "worker", f"--concurrency={concurrency}", "--loglevel=INFO",
            "-n", f"bench{concurrency}-{os.getpid()}@%h"]  # fmt: skip
    return Process(f"worker-c{concurrency}", argv, env=env, logdir=logdir)


# --- load ----------------------------------------------------------------------------------------


def create_pixel(events: int):
    from tiktok_ads.models import Pixel
    from tiktok_ads.pixels import pixel_connect

    pixel, _ = pixel_connect(pixel_code=PIXEL_CODE, access_token=ACCESS_TOKEN, name="bench")
    Pixel.objects.filter(pk=pixel.pk).update(daily_quota=max(pixel.daily_quota, events))
    pixel.refresh_from_db()
    return pixel


def event_payload(index: int, event_id: str, now_s: int) -> dict:
    """A v1.3 `data` item as the funnel builds it for a purchase (PII hashed, IP and UA plain)."""
    value = round(4.99 + (index % 20) * 5, 2)
    return {
        "event": "CompletePayment",
        "event_time": now_s,
        "event_id": event_id,
        "user": {
            "ttclid": "E.C.P." + hashlib.md5(event_id.encode()).hexdigest() * 2,
            "ip": f"203.0.{index // 250 % 256}.{index % 250 + 1}",
            "user_agent": USER_AGENTS[index % len(USER_AGENTS)],
            "external_id": hashlib.sha256(f"telegram_{100_000_000 + index}".encode()).hexdigest(),
        },
        "properties": {
            "value": value,
            "currency": "USD",
            "content_type": "product",
            "contents": [
                {"content_id": "gold-lootbox", "content_name": "Gold Lootbox", "price": value, "quantity": 1}
            ],  # fmt: skip
            "order_id": f"order-{index}",
        },
        "page": {"url": "https://track.example.com/l/tiktok_abc123", "referrer": "https://www.tiktok.com/"},
    }


def load_events(pixel, events: int) -> float:
    """Queue `events` rows with bulk_create; returns the seconds it took."""
    from tiktok_ads.models import TikTokEvent

    started = time.monotonic()
    now = datetime.now(UTC).replace(microsecond=0)
    now_s = int(now.timestamp())
    for first in range(0, events, INSERT_CHUNK):
        rows = []
        for index in range(first, min(first + INSERT_CHUNK, events)):
            event_id = f"purchase_bench{index:07d}"
            rows.append(TikTokEvent(pixel=pixel, event_id=event_id, event="CompletePayment", event_time=now,
                                    payload=event_payload(index, event_id, now_s), source="conversion",
                                    status=TikTokEvent.Status.QUEUED, next_attempt_at=now))  # fmt: skip
        TikTokEvent.objects.bulk_create(rows)
    return time.monotonic() - started


def probe_costs(pixel) -> dict:
    """One batch's database and JSON costs, measured here before the workers start (rolled back):
    claiming 1,000 rows, marking them sent, encoding the request, the fake's parse and validation."""
    from types import SimpleNamespace

    from django.conf import settings
    from django.db import transaction

    from tiktok_ads.client import track_body
    from tiktok_ads.dispatch import _mark_sent, claim_batch
    from tiktok_ads.fake_server import validate_track_body

    claim_ms, mark_ms, rows = [], [], []
    answer = SimpleNamespace(code=0, message="OK", request_id="probe")
    for _ in range(3):
        with transaction.atomic():
            started = time.monotonic()
            rows = claim_batch(pixel, settings.TIKTOK_BATCH_SIZE)
            claim_ms.append((time.monotonic() - started) * 1000)
            started = time.monotonic()
            _mark_sent(rows, answer)
            mark_ms.append((time.monotonic() - started) * 1000)
            transaction.set_rollback(True)
    started = time.monotonic()
    raw = track_body(pixel.pixel_code, [row.payload_json for row in rows])
    encode_ms = (time.monotonic() - started) * 1000
    started = time.monotonic()
    validate_track_body(json.loads(raw), now=time.time())
    validate_ms = (time.monotonic() - started) * 1000
    return {"claim_ms": round(statistics.median(claim_ms)), "mark_sent_ms": round(statistics.median(mark_ms)),
            "request_kb": round(len(raw) / 1024), "encode_ms": round(encode_ms, 1),
            "fake_parse_validate_ms": round(validate_ms, 1)}  # fmt: skip


# --- measurement ---------------------------------------------------------------------------------


def status_counts(pixel) -> dict:
    from django.db.models import Count

    from tiktok_ads.models import TikTokEvent

    rows = TikTokEvent.objects.filter(pixel=pixel).values("status").annotate(n=Count("id")).order_by()
    return {row["status"]: row["n"] for row in rows}


def wake_senders(pixel, times: int) -> None:
    from tiktok_ads.tasks import flush_pixel

    for _ in range(times):
        flush_pixel.delay(pixel.pk)


def poll_until_sent(pixel, events: int, deadline: float, processes: list[Process]) -> tuple[float, list]:
    """Poll counts by status every 0.5 s until every row is sent; returns (seconds, samples)."""
    started = time.monotonic()
    samples = []
    while True:
        counts = status_counts(pixel)
        elapsed = time.monotonic() - started
        samples.append((round(elapsed, 2), counts))
        if counts.get("sent", 0) >= events:
            return elapsed, samples
        pending = sum(counts.get(s, 0) for s in ("queued", "retrying", "sending"))
        if pending == 0:
            return elapsed, samples  # some rows failed or were skipped: they will never be sent
        if time.monotonic() >= deadline:
            print(f"  ! stopped waiting at {elapsed:.1f}s: {counts}", flush=True)
            return elapsed, samples
        for process in processes:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.log_text()[-3000:]}")
        time.sleep(POLL_S)


def max_in_window(times: list[float], window_s: float = 1.0) -> int:
    """The most timestamps inside any half-open window of `window_s` seconds."""
    times, best, first = sorted(times), 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= window_s:
            first += 1
        best = max(best, last - first + 1)
    return best


def fake_figures(fake_url: str, events: int) -> dict:
    calls = requests.get(fake_url + "/__fake__/requests", timeout=120).json()
    track = [call for call in calls if call["path"].endswith("/event/track/")]
    codes = Counter(str(call["code"]) for call in track)
    accepted = requests.get(fake_url + "/__fake__/events", timeout=120).json()
    per_event = Counter(item["event_id"] for item in accepted)
    return {
        "requests": len(track),
        "answers_by_code": dict(sorted(codes.items())),
        "rate_limited_40100": codes.get("40100", 0),
        "max_requests_in_1s": max_in_window([call["time"] for call in track]),
        "max_accepted_in_1s": max_in_window([call["time"] for call in track if call["code"] == 0]),
        "events_per_ok_request": round(
            statistics.mean(len(call["body"]["data"]) for call in track if call["code"] == 0), 1
        )
        if codes.get("0")
        else 0,  # fmt: skip
        "accepted_events": len(accepted),
        "accepted_unique": len(per_event),
        "duplicated": sum(1 for count in per_event.values() if count > 1),
    }


def batch_timings(pixel, wall_s: float, workers: int, woken_at: float) -> dict:
    """Per-request times from the database: HTTP time (DeliveryAttempt.duration_ms, limiter wait excluded)
    against the time a worker process spends per batch."""
    from django.db.models import Max, Min

    from tiktok_ads.models import DeliveryAttempt, TikTokEvent

    attempts = list(DeliveryAttempt.objects.filter(pixel=pixel).order_by("id"))
    ok = [attempt for attempt in attempts if attempt.ok]
    if not ok:
        return {"attempts": len(attempts), "ok_attempts": 0}
    sent = {row["request_id"]: row["at"] for row in TikTokEvent.objects.filter(pixel=pixel, status="sent")
            .values("request_id").annotate(at=Max("sent_at")).order_by()}  # fmt: skip
    span = TikTokEvent.objects.filter(pixel=pixel, status="sent").aggregate(first=Min("sent_at"), last=Max("sent_at"))
    http_ms = [attempt.duration_ms for attempt in ok]
    # Time a worker process spends per batch: its share of the wall time over the batches it sent.
    per_batch_ms = wall_s * 1000 * workers / len(ok)
    figures = {
        "attempts": len(attempts),
        "ok_attempts": len(ok),
        "http_ms_mean": round(statistics.mean(http_ms)),
        "http_ms_p50": round(statistics.median(http_ms)),
        "http_ms_max": max(http_ms),
        "worker_ms_per_batch": round(per_batch_ms),
        "not_http_ms_per_batch": round(per_batch_ms - statistics.mean(http_ms)),
        "first_to_last_sent_s": round((span["last"] - span["first"]).total_seconds(), 2),
        "first_batch_sent_after_s": round(span["first"].timestamp() - woken_at, 2),
        "last_batch_sent_after_s": round(span["last"].timestamp() - woken_at, 2),
    }
    if workers == 1:
        figures.update(_gaps_one_worker(ok, sent))
    return figures


def _gaps_one_worker(ok, sent) -> dict:
    """One worker sends batches one after another. From a batch's sent_at (taken as its UPDATE starts) to
    the next request leaving: marking 1,000 rows sent, claiming the next 1,000, the quota, the limiter
    wait and any task hand-off."""
    gaps = []
    for previous, current in zip(ok, ok[1:], strict=False):
        if previous.request_id not in sent:
            continue
        request_left = current.created_at.timestamp() - current.duration_ms / 1000
        gaps.append((request_left - sent[previous.request_id].timestamp()) * 1000)
    if not gaps:
        return {}
    return {"gap_between_requests_ms_mean": round(statistics.mean(gaps)),
            "gap_between_requests_ms_p50": round(statistics.median(gaps)),
            "gap_between_requests_ms_max": round(max(gaps))}  # fmt: skip


def worker_rss(worker: Process) -> dict:
    peaks = peak_rss_mb(worker.pid)
    main = peaks.pop(worker.pid, 0.0)
    return {"main_mb": round(main), "children_mb": sorted(round(mb) for mb in peaks.values()),
            "total_mb": round(main + sum(peaks.values()))}  # fmt: skip


# --- one run -------------------------------------------------------------------------------------


def run_once(*, events: int, workers: int, env: dict, ports: dict, workdir: Path, deadline: float) -> dict:
    logdir = workdir / f"c{workers}"
    logdir.mkdir()
    print(f"\n== {events:,} events, celery worker --concurrency={workers}", flush=True)
    with ExitStack() as stack:
        recreate_database(DB_NAME)
        stack.callback(drop_database, DB_NAME)
        migrate(env)
        for process in (start_redis(ports["redis"], env, logdir), start_fake(ports["fake"], env, logdir)):
            stack.callback(process.stop)
        worker = start_worker(workers, env, logdir)
        stack.callback(worker.stop)
        pixel = create_pixel(events)
        load_s = load_events(pixel, events)
        print(f"  queued {events:,} rows in {load_s:.1f}s", flush=True)
        probe = probe_costs(pixel)
        wait_until(lambda: "ready." in worker.log_text(), timeout=60, what="the Celery worker")
        beat = start_beat(env, logdir, loglevel="INFO")
        stack.callback(beat.stop)
        woken_at = time.time()
        wake_senders(pixel, workers)
        wall_s, samples = poll_until_sent(pixel, events, deadline, [worker, beat])
        rss = worker_rss(worker)
        counts = samples[-1][1]
        result = {
            "events": events,
            "workers": workers,
            "load_s": round(load_s, 1),
            "wall_s": round(wall_s, 2),
            "events_per_s": round(counts.get("sent", 0) / wall_s) if wall_s else 0,
            "statuses": counts,
            "lost": events - counts.get("sent", 0),
            "fake": fake_figures(f"http://127.0.0.1:{ports['fake']}", events),
            "batches": batch_timings(pixel, wall_s, workers, woken_at),
            "probe": probe,
            "worker_peak_rss": rss,
        }
        first_to_last, batches = result["batches"].get("first_to_last_sent_s"), result["batches"]["ok_attempts"]
        if first_to_last and batches > 1:
            # From the first batch marked sent to the last: the events of every batch but the first.
            result["steady_events_per_s"] = round(counts.get("sent", 0) * (batches - 1) / batches / first_to_last)
        print(json.dumps(result, indent=1, default=str), flush=True)
        return result


# --- report --------------------------------------------------------------------------------------


def markdown_table(results: list[dict]) -> str:
    rows = [
        ("wall time, wake-up → all sent (s)", lambda r: f"{r['wall_s']:.1f}"),
        ("events/s sustained (events / wall)", lambda r: f"{r['events_per_s']:,}"),
        ("events/s first → last batch", lambda r: f"{r.get('steady_events_per_s', 0):,}"),
        ("requests to the fake", lambda r: str(r["fake"]["requests"])),
        ("answers by code", lambda r: ", ".join(f"{k}: {v}" for k, v in r["fake"]["answers_by_code"].items())),
        ("max requests in any 1 s window", lambda r: str(r["fake"]["max_requests_in_1s"])),
        ("40100 (rate limited) answers", lambda r: str(r["fake"]["rate_limited_40100"])),
        ("lost (rows not sent)", lambda r: str(r["lost"])),
        ("duplicated (event_ids accepted twice)", lambda r: str(r["fake"]["duplicated"])),
        ("HTTP time per request, mean / p50 / max (ms)",
         lambda r: "{http_ms_mean} / {http_ms_p50} / {http_ms_max}".format(**r["batches"])),
        ("worker time per batch: wall × workers / requests (ms)", lambda r: str(r["batches"]["worker_ms_per_batch"])),
        ("  of which not HTTP (ms)", lambda r: str(r["batches"]["not_http_ms_per_batch"])),
        ("gap between requests, 1 worker, mean (ms)", lambda r: str(r["batches"]["gap_between_requests_ms_mean"])),
        ("wake-up → first batch sent (s)", lambda r: str(r["batches"]["first_batch_sent_after_s"])),
        ("probe: claim / mark sent 1,000 rows (ms)", lambda r: "{claim_ms} / {mark_sent_ms}".format(**r["probe"])),
        ("peak RSS, worker main / pool children (MB)",
         lambda r: f"{r['worker_peak_rss']['main_mb']} / {r['worker_peak_rss']['children_mb']}"),
        ("queueing the rows with bulk_create (s)", lambda r: f"{r['load_s']:.1f}"),
    ]  # fmt: skip
    header = "| | " + " | ".join(f"--concurrency={r['workers']}" for r in results) + " |"
    lines = [header, "|---|" + "---:|" * len(results)]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(_safe(cell, r) for r in results) + " |")
    return "\n".join(lines)


def _safe(cell, result) -> str:
    try:
        return cell(result)
    except (KeyError, TypeError):
        return "–"


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events to queue (default 100,000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="Celery --concurrency of each run (default: 1 2)")  # fmt: skip
    parser.add_argument("--cap", type=int, default=300, help="hard cap for the whole benchmark, seconds")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs (printed path)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    hard_cap(args.cap)
    workdir = Path(tempfile.mkdtemp(prefix="tiktok-bench-"))
    ports = {"redis": free_port(), "fake": free_port()}
    env = stack_env(redis_port=ports["redis"], fake_port=ports["fake"], workdir=workdir)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    about = {**machine(), "postgres": postgres_version(), "revision": git_revision(),
             "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}  # fmt: skip
    print(json.dumps(about), flush=True)
    results = []
    with guarded(workdir, keep_logs=args.keep_logs) as outcome:
        for workers in args.workers:
            deadline = started + args.cap - TEARDOWN_RESERVE_S
            results.append(run_once(events=args.events, workers=workers, env=env, ports=ports, workdir=workdir,
                                    deadline=deadline))  # fmt: skip
    failed = outcome["failed"]
    if results:
        print("\n" + markdown_table(results))
    if args.json:
        args.json.write_text(json.dumps({"machine": about, "runs": results}, indent=1, default=str))
    print(f"\ntotal {time.monotonic() - started:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: a 1,000,000-row customer file imported into an audience, then its first sync to TikTok.

    .venv/bin/python bench/audiences_customer_file.py                  # 1,000,000 rows
    .venv/bin/python bench/audiences_customer_file.py --rows 100000 --cap 300

It sets up, and always tears down: the PostgreSQL database `tracker_bench_audiences` on 127.0.0.1:5432
(dropped, created, migrated), a private redis-server (the shared request limiter), the fake TikTok as its
own process with its 10 requests/s limit on, and the CSV in a temporary directory. Then:

1. upload: what the web request does with a large file (customer_file_queue: copied to AUDIENCE_UPLOAD_DIR);
2. import: what the worker task does (customer_file_import_stored), in a fresh process;
3. first sync: what the sync task and its chained runs do (audience_sync until nothing is left), in a
   fresh process: the TikTok audience is created, then every member is sent in batches of
   AUDIENCE_SYNC_BATCH_SIZE (10,000) through the limiter.

Each phase process reports its wall time and its peak resident memory (VmHWM), so the figures are those
of one worker doing that job. PostgreSQL's and the fake's own memory are not counted. Product settings
are the defaults. Run on demand only; never part of the test suite. Loopback only.

The file, like a shop's customer export: email on every row (some upper-case, some padded), a phone on
half of them (80% written in E.164, 20% with spaces, brackets and dashes), a first name and a city;
every 100th row repeats the previous customer, every 500th row has a broken email and no phone.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests
from common import (
    ROOT,
    bench_env,
    drop_database,
    free_port,
    git_revision,
    hard_cap,
    machine,
    migrate,
    postgres_version,
    recreate_database,
    start_fake,
    start_redis,
)

DB_NAME = "tracker_bench_audiences"
PIXEL_CODE = "BENCH0AUDIENCES01"
ACCESS_TOKEN = "bench-audiences-token-000000000000"
ADVERTISER_ID = "7000000000001"
PHONE_PREFIXES = ("+4072", "+4474", "+1212", "+4915", "+3361")  # RO, UK, US, DE, FR mobiles


# --- the file ------------------------------------------------------------------------------------


def phone_for(index: int) -> str:
    """A valid mobile number of one of five countries, unique per index."""
    prefix = PHONE_PREFIXES[index % len(PHONE_PREFIXES)]
    digits = {
        "+4072": f"+4072{index % 10_000_000:07d}",
        "+4474": f"+4474{index % 100_000_000:08d}",
        "+1212": f"+1212{2_000_000 + index % 8_000_000:07d}",
        "+4915": f"+49151{index % 100_000_000:08d}",
        "+3361": f"+336{index % 100_000_000:08d}",
    }[prefix]
    if index % 10 < 2:  # as people type them
        return f"{digits[:3]} ({digits[3:6]}) {digits[6:9]}-{digits[9:]}"
    return digits


def write_file(path: Path, rows: int) -> dict:
    shape = {"rows": rows, "with_phone": 0, "duplicate_rows": 0, "bad_rows": 0}
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("Email,Phone,First name,City\r\n")
        for index in range(rows):
            customer = index
            if index % 100 == 3:
                customer = index - 1  # the same customer twice in the export
                shape["duplicate_rows"] += 1
            email = f"customer{customer}@example{customer % 97}.com"
            if customer % 7 == 0:
                email = f"  {email.upper()} "
            phone = phone_for(customer) if customer % 2 == 0 else ""
            if index % 500 == 7:
                email, phone = f"customer{index}-at-example.com", ""
                shape["bad_rows"] += 1
            shape["with_phone"] += bool(phone)
            out.write(f'{email},{phone},Name{index},"City, {index % 300}"\r\n')
    shape["bytes"] = path.stat().st_size
    return shape


# --- set-up --------------------------------------------------------------------------------------


def stack_env(*, redis_port: int, fake_port: int, workdir: Path) -> dict:
    return bench_env(
        db_name=DB_NAME,
        workdir=workdir,
        redis_port=redis_port,
        fake_port=fake_port,
        drop=("TIKTOK_", "DJANGO_", "AUDIENCE_"),
        AUDIENCE_UPLOAD_DIR=str(workdir / "uploads"),
    )


def run_checked(argv: list[str], env: dict, timeout: float) -> str:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv[:4])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def upload(path: Path) -> dict:
    """What the upload request does with a file over AUDIENCE_IMPORT_INLINE_MAX_BYTES."""
    from audiences.models import Audience
    from audiences.services import audience_create, customer_file_queue
    from tiktok_ads.pixels import pixel_connect

    pixel, _ = pixel_connect(pixel_code=PIXEL_CODE, access_token=ACCESS_TOKEN, advertiser_id=ADVERTISER_ID)
    audience = audience_create(pixel=pixel, name="Customers (bench)", kind=Audience.Kind.CUSTOMER_FILE)
    started = time.monotonic()
    with open(path, "rb") as uploaded:
        record = customer_file_queue(audience=audience, uploaded_file=uploaded, filename=path.name)
    return {"audience_id": audience.pk, "import_id": record.pk, "upload_s": round(time.monotonic() - started, 2)}


# --- the phases, each in its own process ---------------------------------------------------------


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def phase_import(import_id: int) -> dict:
    from audiences.services import customer_file_import_stored

    baseline = peak_rss_mb()
    started = time.monotonic()
    record = customer_file_import_stored(import_id=import_id)
    wall = time.monotonic() - started
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_django_setup_mb": baseline,
        "status": record.status,
        "rows_total": record.rows_total,
        "rows_ok": record.rows_ok,
        "rows_bad": record.rows_bad,
        "ids_total": record.ids_total,
        "members_created": record.ids_changed,
        "duplicates": record.duplicates,
        "errors_total": record.errors_total,
        "errors_kept": len(record.errors),
        "first_error": record.errors[0] if record.errors else None,
        "rows_per_s": round(record.rows_total / wall),
    }


def phase_sync(audience_id: int) -> dict:
    """The sync task and its chain: runs of AUDIENCE_SYNC_TIME_BUDGET_S until nothing is pending."""
    from audiences.sync import audience_sync

    baseline = peak_rss_mb()
    started = time.monotonic()
    runs = []
    while True:
        run = audience_sync(audience_id=audience_id, trigger="bench")
        runs.append(run)
        if not (run.ok and run.more_pending):
            break
    wall = time.monotonic() - started
    added = sum(run.added for run in runs)
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_django_setup_mb": baseline,
        "runs": len(runs),
        "all_ok": all(run.ok for run in runs),
        "members_added": added,
        "requests": sum(run.requests for run in runs),
        "retries": sum(run.retries for run in runs),
        "members_per_s": round(added / wall),
        "last_message": runs[-1].message,
    }


def member_states(audience_id: int) -> dict:
    from django.db.models import Count

    from audiences.models import AudienceMember

    rows = AudienceMember.objects.filter(audience_id=audience_id).values("state").annotate(n=Count("id")).order_by()
    return {row["state"]: row["n"] for row in rows}


def fake_audience_size(fake_url: str) -> dict:
    audiences = requests.get(fake_url + "/__fake__/audiences", timeout=300).json()
    return {audience_id: {kind: len(ids) for kind, ids in audience["members"].items()}
            for audience_id, audience in audiences.items()}  # fmt: skip


def run_phase(name: str, object_id: int, env: dict) -> dict:
    out = run_checked([sys.executable, str(Path(__file__)), "--phase", name, "--id", str(object_id)], env, 900)
    return json.loads(out.strip().splitlines()[-1])


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cap", type=int, default=900, help="hard time cap of the whole run, seconds")
    parser.add_argument("--phase", choices=["import", "sync"], help=argparse.SUPPRESS)
    parser.add_argument("--id", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    if options.phase:  # a child: the environment is already the bench's
        import django

        django.setup()
        result = phase_import(options.id) if options.phase == "import" else phase_sync(options.id)
        print(json.dumps(result), flush=True)
        return 0

    hard_cap(options.cap)
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="bench-audiences-"))
    ports = {"redis": free_port(), "fake": free_port()}
    env = stack_env(redis_port=ports["redis"], fake_port=ports["fake"], workdir=workdir)
    os.environ.update(env)
    with ExitStack() as stack:
        stack.callback(lambda: subprocess.run(["rm", "-rf", str(workdir)], check=False))
        print(f"Writing a {options.rows:,}-row customer file…", flush=True)
        path = workdir / "customers.csv"
        shape = write_file(path, options.rows)
        recreate_database(DB_NAME)
        stack.callback(drop_database, DB_NAME)
        migrate(env, timeout=300)
        fake = start_fake(ports["fake"], env, workdir, pixels={PIXEL_CODE: ACCESS_TOKEN})
        for process in (start_redis(ports["redis"], env, workdir), fake):
            stack.callback(process.stop)

        import django

        django.setup()
        uploaded = upload(path)
        print(f"  upload (copy to AUDIENCE_UPLOAD_DIR): {uploaded['upload_s']}s", flush=True)
        imported = run_phase("import", uploaded["import_id"], env)
        print(f"  import: {json.dumps(imported)}", flush=True)
        synced = run_phase("sync", uploaded["audience_id"], env)
        print(f"  first sync: {json.dumps(synced)}", flush=True)
        result = {
            "machine": machine(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "postgres": postgres_version(),
            "revision": git_revision(),
            "file": shape,
            "upload_s": uploaded["upload_s"],
            "import": imported,
            "first_sync": synced,
            "import_plus_sync_s": round(imported["wall_s"] + synced["wall_s"], 2),
            "member_states_after": member_states(uploaded["audience_id"]),
            "at_fake_tiktok": fake_audience_size(f"http://127.0.0.1:{ports['fake']}"),
        }
        print(json.dumps(result, indent=1, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

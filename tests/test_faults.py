"""Faults, nothing lost: PostgreSQL restarted under load, a Celery worker killed in the middle of a batch.

Both run the real processes (gunicorn, Celery) on loopback; the faults are real (pg_ctl restart, SIGKILL).
"""

import json
import shutil
import threading
import time

import psycopg
import pytest
import requests

from tests.stack import (
    PG_BIN,
    PrivatePostgres,
    RedisServer,
    celery_worker,
    kill_group,
    stack_available,
    stack_env,
    wait_until,
    web_server,
)

pytestmark = pytest.mark.django_db(transaction=True)


def run_manage(env: dict, *argv: str) -> str:
    import subprocess
    import sys

    from tests.stack import ROOT

    return subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=env, check=True, capture_output=True,
                          text=True, timeout=120).stdout  # fmt: skip


@pytest.fixture
def private_postgres(tmp_path):
    if PG_BIN is None or shutil.which("runuser") is None:
        pytest.skip("needs PostgreSQL's server binaries and runuser to start a private cluster")
    postgres = PrivatePostgres()
    postgres.init()
    yield postgres
    postgres.stop()


def test_postgres_restart_under_load_loses_no_acknowledged_conversion(private_postgres, tmp_path):
    env = stack_env(DATABASE_URL=private_postgres.url, REDIS_URL="", DB_CONN_MAX_AGE="60", VAR_DIR=tmp_path)
    run_manage(env, "migrate", "--noinput")
    run_manage(env, "demo_setup")
    intake_key = json.loads((tmp_path / "demo-keys.json").read_text())["intake"]
    answers: dict[str, int] = {}
    stop = threading.Event()

    def send_conversions(web_url: str):
        session = requests.Session()
        session.headers["Authorization"] = f"Api-Key {intake_key}"
        number = 0
        while not stop.is_set():
            transaction_id = f"pg-{number}"
            try:
                response = session.post(f"{web_url}/api/v1/utm/webhook/conversion", timeout=10, json={
                    "utm_id": "tiktok_abc123", "amount": 100, "transaction_id": transaction_id})  # fmt: skip
                answers[transaction_id] = response.status_code
            except requests.RequestException:
                answers[transaction_id] = 0  # no answer at all
            number += 1

    with web_server(env, tmp_path) as web_url:
        sender = threading.Thread(target=send_conversions, args=(web_url,), daemon=True)
        sender.start()
        try:
            wait_until(lambda: len(answers) >= 30, timeout=30, what="load before the restart")
            private_postgres.restart()
            before = len(answers)
            wait_until(lambda: len(answers) >= before + 30, timeout=60, what="load after the restart")
        finally:
            stop.set()
            sender.join(timeout=15)
        # The same gunicorn processes answer again: they recovered without a restart.
        recovered = requests.post(f"{web_url}/api/v1/utm/webhook/conversion", timeout=10,
                                  headers={"Authorization": f"Api-Key {intake_key}"},
                                  json={"utm_id": "tiktok_abc123", "amount": 1, "transaction_id": "after"})  # fmt: skip
        assert recovered.status_code == 201

    with psycopg.connect(private_postgres.url.replace("postgres://", "postgresql://")) as db:
        stored = {row[0] for row in db.execute("SELECT transaction_id FROM conversions_conversion")}
    acknowledged = {tx for tx, status in answers.items() if 200 <= status < 300}
    refused = {tx for tx, status in answers.items() if status >= 500 or status == 0}
    assert acknowledged <= stored  # never a 2xx without its row
    assert not (refused & stored) or all(answers[tx] == 0 for tx in refused & stored)  # a 5xx wrote nothing
    assert {status for status in answers.values()} <= {0, 201, 500, 503}
    assert len(acknowledged) >= 55


@pytest.fixture
def redis_server(tmp_path):
    reason = stack_available()
    if reason:
        pytest.skip(reason)
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_worker_killed_mid_batch_loses_nothing_and_resends_the_same_event_ids(redis_server, tmp_path, db):
    from django.utils import timezone

    from tiktok_ads.fake_server import FakeTikTok
    from tiktok_ads.models import TikTokEvent
    from tiktok_ads.outbox import event_queue
    from tiktok_ads.pixels import pixel_connect

    pixel, _ = pixel_connect(pixel_code="CKILL1", access_token="tok-kill-1234567890")
    now = timezone.now()
    expected = {f"kill_{n}" for n in range(50)}
    for event_id in sorted(expected):
        event_queue(pixel=pixel, event_id=event_id, event="CompletePayment", event_time=now, source="api",
                    payload={"event": "CompletePayment", "event_time": int(now.timestamp()), "event_id": event_id,
                             "user": {"external_id": "b" * 64}})  # fmt: skip

    with FakeTikTok(port=0) as fake:
        fake.set_latency(3.0)  # the batch is in flight long enough to kill its sender
        env = stack_env(REDIS_URL=redis_server.url, TIKTOK_API_BASE_URL=fake.url, TIKTOK_STALE_CLAIM_S="4")
        with celery_worker(env, tmp_path, name="doomed") as doomed:
            wait_until(lambda: TikTokEvent.objects.filter(status="sending").count() == 50, timeout=30,
                       what="the batch claimed by the first worker")  # fmt: skip
            time.sleep(0.5)
            kill_group(doomed)  # SIGKILL: no cleanup, the rows stay `sending`
        fake.set_latency(0)
        with celery_worker(env, tmp_path, name="rescuer"):
            wait_until(lambda: TikTokEvent.objects.filter(status="sent").count() == 50, timeout=60, interval=0.5,
                       what="every event sent by the second worker")  # fmt: skip

        accepted = [event["event_id"] for event in fake.accepted_events()]
    assert set(accepted) == expected  # nothing lost
    assert len(accepted) in (50, 100)  # a resend, if the killed request also arrived, repeats the same ids

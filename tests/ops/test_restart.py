"""A deploy restarts gunicorn (the application is preloaded in its master, so new code needs a new master):
with the listening socket held by systemd (deploy/systemd/tracker-web.socket), visitors who arrive while
the old master stops and the new one loads wait in the socket's queue. None is refused, and every redirect
they get is a stored click."""

import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from conversions.models import Click, TrafficSource
from tests.factories import TrafficSourceFactory
from tests.stack import BIN, ROOT, stack_available, stack_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# What systemd does for a socket-activated service: the socket as descriptor 3, LISTEN_FDS=1 and LISTEN_PID
# set to the pid of the process that then execs gunicorn (so the pid is gunicorn's own).
SOCKET_ACTIVATION = (
    "import os, sys\n"
    "os.dup2(int(sys.argv[1]), 3)\n"
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def start_gunicorn(listener: socket.socket, env: dict, log) -> subprocess.Popen:
    argv = [sys.executable, "-c", SOCKET_ACTIVATION, str(listener.fileno()), str(BIN / "gunicorn"), "tracker.wsgi",
            "-w", "2"]  # fmt: skip
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            pass_fds=(listener.fileno(),))  # fmt: skip


def test_a_restart_on_a_socket_held_by_systemd_refuses_no_visitor_and_loses_no_click(tmp_path):
    reason = stack_available()
    if reason:
        pytest.skip(reason)
    TrafficSourceFactory(utm_id="restart1", redirect_mode=TrafficSource.RedirectMode.DIRECT)
    env = stack_env(REDIS_URL="")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/l/restart1"
    answers: list[tuple[float, float, int, str]] = []  # (sent at, answered at, status, click id)
    failures: list[str] = []
    stop = threading.Event()

    def visitor():
        while not stop.is_set():
            sent_at = time.monotonic()
            try:
                response = requests.get(url, allow_redirects=False, timeout=60, headers={"Connection": "close"})
            except requests.RequestException as error:
                failures.append(repr(error))
                continue
            start = parse_qs(urlsplit(response.headers.get("Location", "")).query).get("start", [""])[0]
            answers.append((sent_at, time.monotonic(), response.status_code, start))

    with open(tmp_path / "gunicorn.log", "w") as log:
        old = start_gunicorn(listener, env, log)
        new = None
        visitors = [threading.Thread(target=visitor, daemon=True) for _ in range(4)]
        try:
            wait_until(lambda: requests.get(url, allow_redirects=False, timeout=5).status_code == 302, timeout=30,
                       what="the first gunicorn")  # fmt: skip
            for thread in visitors:
                thread.start()
            wait_until(lambda: len(answers) >= 50, timeout=30, what="clicks before the restart")
            old.send_signal(signal.SIGTERM)  # systemctl restart: stop, then start
            old.wait(timeout=40)
            stopped_at, before = time.monotonic(), len(answers)
            new = start_gunicorn(listener, env, log)
            wait_until(lambda: len(answers) >= before + 50, timeout=60, what="clicks after the restart")
        finally:
            stop.set()
            for thread in visitors:
                thread.join(timeout=70)
            for process in (old, new):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(timeout=40)
    listener.close()

    assert failures == []  # no visitor was refused or left without an answer
    assert {status for _, _, status, _ in answers} == {302}
    # Sent before the old master had exited, answered after: they waited in the socket's queue for the new one.
    assert [sent for sent, answered, _, _ in answers if sent < stopped_at < answered]
    assert sum(1 for _, answered, _, _ in answers if answered > stopped_at) >= 50  # the new master, same socket
    stored = set(Click.objects.filter(link__utm_id="restart1").values_list("click_id", flat=True))
    assert {click_id for _, _, _, click_id in answers} <= stored

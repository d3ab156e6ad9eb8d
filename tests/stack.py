"""The production-like stack as subprocesses for end-to-end tests: a private Redis, gunicorn and a
Celery worker (with beat), all on loopback and pointed at the test database."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import requests
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test_… database)."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def stack_available() -> str | None:
    """Why the stack cannot run here, or None."""
    if connection.vendor != "postgresql":
        return "the worker must share the test database: needs PostgreSQL"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    return None


class RedisServer:
    """A private redis-server on its own port: tests may stop and restart it freely."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=10, what="redis-server")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def stack_env(**overrides) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "COV_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tracker.settings",
        DEBUG="0",
        DATABASE_URL=test_database_url(),
        DB_CONN_MAX_AGE="0",
        TIKTOK_SWEEP_INTERVAL_S="1",
        TIKTOK_RETRY_BASE_S="0.2",
        TIKTOK_RETRY_MAX_S="1",
        TIKTOK_STALE_CLAIM_S="5",
        ROLLUP_INTERVAL_S="1",
        PYTHONUNBUFFERED="1",
    )
    env.update({key: str(value) for key, value in overrides.items()})
    return env


@contextmanager
def web_server(env: dict, logdir: Path):
    port = free_port()
    log = open(logdir / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "tracker.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--access-logfile", "-"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _http_ok(url + "/api/schema"), timeout=30, what="gunicorn")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def celery_worker(env: dict, logdir: Path, *, concurrency: int = 2, beat: bool = True, name: str = "celery"):
    """A worker in its own process group (kill_group() ends it and its pool at once, like a crash)."""
    log_path = logdir / f"{name}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    argv = [str(BIN / "celery"), "-A", "tracker", "worker", "--loglevel=INFO", f"--concurrency={concurrency}",
            "-n", f"{name}{free_port()}@%h"]  # fmt: skip
    if beat:
        argv += ["--beat", "-s", str(logdir / f"{name}-beat-schedule")]
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "ready." in log_path.read_text(), timeout=30, what="the Celery worker")
        yield process
    finally:
        kill_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill_group(process, signal.SIGKILL)
        log.close()


def kill_group(process: subprocess.Popen, sig=signal.SIGKILL) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


PG_BIN = (
    next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
    if Path("/usr/lib/postgresql").exists()
    else None
)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on its own port, run as the postgres user, that a test may restart."""

    def __init__(self):
        # Not under pytest's tmp_path: its parents are private to root and the postgres user must enter.
        self.root = Path(tempfile.mkdtemp(prefix="tracker-pg-"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.datadir = self.root / "pgdata"
        self.logfile = self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/tracker"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self.datadir.mkdir()
        shutil.chown(self.root, "postgres", "postgres")
        shutil.chown(self.datadir, "postgres", "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres")
        self.start()
        self._as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "tracker")

    def start(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w",
                          "-o", f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1", "start")  # fmt: skip

    def stop(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-m", "fast",
                          "-w", "restart",
                          "-o", f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1")  # fmt: skip

"""Helpers shared by the benchmarks: the stack (environment, database, fake TikTok, beat), subprocesses that
are always stopped, free ports, /proc figures, the machine, bench/README.md sections.

Nothing here imports Django: a benchmark sets its environment first, then calls django.setup().
"""

import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
README = ROOT / "bench" / "README.md"
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


class BenchTimeout(Exception):
    """The hard time cap of a benchmark was reached."""


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
    raise BenchTimeout(f"timed out after {timeout:.0f}s waiting for {what}")


def hard_cap(seconds: int) -> None:
    """Raise BenchTimeout in the main thread after `seconds`, so `finally` blocks still tear down."""

    def _expired(signum, frame):
        raise BenchTimeout(f"hard cap of {seconds}s reached")

    signal.signal(signal.SIGALRM, _expired)
    signal.signal(signal.SIGTERM, _expired)
    signal.alarm(seconds)


def cancel_hard_cap() -> None:
    signal.alarm(0)


class Process:
    """A subprocess in its own process group, logging to a file; stop() ends it and its children."""

    def __init__(self, name: str, argv: list[str], *, env: dict, logdir: Path):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace_s)
        # The group is ours (start_new_session): children left behind (prefork pool) go with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=5)
        self._log.close()


def tcp_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(port: int, env: dict, logdir: Path) -> Process:
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(logdir)]  # fmt: skip
    process = Process("redis", argv, env=env, logdir=logdir)
    wait_until(lambda: redis_answers(port), timeout=10, what="redis-server")
    return process


# --- /proc: memory of a process tree ----------------------------------------------------------


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _proc_stats():
    """(pid, the text of /proc/<pid>/stat) of every running process."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile


def children_of(pid: int) -> list[int]:
    # Field 4 is the parent pid; the command name (field 2) may contain spaces, so split after ')'.
    return [child for child, stat in _proc_stats() if int(stat.rsplit(")", 1)[1].split()[1]) == pid]


def peak_rss_mb(pid: int) -> dict[int, float]:
    """VmHWM (peak resident set) of a process and all its descendants, in MB, by pid."""
    return {current: _status_kb(current, "VmHWM") / 1024 for current in process_tree(pid)}


def pss_mb(pid: int) -> dict[int, float]:
    """Proportional set size now (each shared page divided among the processes that share it) of a process
    and all its descendants, in MB, by pid: what they cost together, where RSS counts shared pages in each."""
    return {current: _smaps_kb(current, "Pss") / 1024 for current in process_tree(pid)}


def _smaps_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        return next(int(line.split()[1]) for line in rollup if line.startswith(f"{field}:"))


# --- the machine --------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gb() -> float:
    return _meminfo_kb("MemTotal") / 1024 / 1024


def _meminfo_kb(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def redis_version() -> str:
    if shutil.which("redis-server") is None:
        return "not installed"
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    version = next((part for part in out.split() if part.startswith("v=")), "v=?")
    return version[2:]


def machine() -> dict:
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(memory_gb(), 1),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": redis_version(),
    }


def git_revision() -> str:
    """The commit the checkout is on, and whether the working tree differs from it (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        # --no-optional-locks: a read-only look, git must not even refresh its index.
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


# --- CPU time from /proc: who used the cores during a run -----------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (pids)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children_of(current))
    return tree


def cpu_seconds_by_pid() -> dict[int, tuple[str, float]]:
    """User + system CPU seconds each running process has used so far, with its name: {pid: (name, s)}."""
    found = {}
    for pid, stat in _proc_stats():
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state): utime is 14, stime 15
        found[pid] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores together since boot, from /proc/stat."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def rss_mb(pid: int) -> dict[int, float]:
    """VmRSS (resident set now) of a process and all its descendants, in MB, by pid."""
    return {current: _status_kb(current, "VmRSS") / 1024 for current in process_tree(pid)}


@contextlib.contextmanager
def guarded(workdir: Path, *, keep_logs: bool):
    """The body of a benchmark's main(): a timeout or a stack that failed is reported, not raised; then the
    hard cap is cancelled and the work folder removed (kept when asked, or when the run failed).
    Yields a dict whose "failed" tells how the body ended."""
    outcome = {"failed": False}
    try:
        yield outcome
    except (BenchTimeout, RuntimeError) as error:
        outcome["failed"] = True
        print(f"\nbenchmark stopped: {error}", flush=True)
    finally:
        cancel_hard_cap()
        if keep_logs or outcome["failed"]:
            print(f"logs: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# --- the stack ------------------------------------------------------------------------------------


def bench_env(*, db_name: str, workdir: Path, redis_port: int | None = None, fake_port: int | None = None,
              drop: tuple[str, ...] = ("TIKTOK_", "DJANGO_"), **extra: str) -> dict:  # fmt: skip
    """What every process of a run sees (the bench process itself, migrate, gunicorn, Celery): production
    settings on the run's own database, Redis and fake TikTok; variables starting with `drop` left out."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
    env.update(
        DJANGO_SETTINGS_MODULE="tracker.settings",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{db_name}",
        DEBUG="0",
        SECRET_KEY="bench-" + Fernet.generate_key().decode(),
        TIKTOK_TOKEN_KEYS=Fernet.generate_key().decode(),
        VAR_DIR=str(workdir / "var"),  # static root and friends out of the checkout
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    if redis_port is not None:
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    if fake_port is not None:
        env["TIKTOK_API_BASE_URL"] = f"http://127.0.0.1:{fake_port}"
    env.update(extra)
    return env


def _close_django_connections() -> None:
    """A dropped database must not hold this process's connections (when Django is loaded at all)."""
    if "django.db" in sys.modules:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()


def drop_database(db_name: str) -> None:
    _close_django_connections()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


def recreate_database(db_name: str) -> None:
    drop_database(db_name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {db_name}")


def postgres_version() -> str:
    with psycopg.connect(PG_ADMIN_URL) as admin:
        return admin.execute("SHOW server_version").fetchone()[0]


def migrate(env: dict, timeout: float = 180) -> None:
    done = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"migrate failed:\n{done.stdout}\n{done.stderr}")


def start_fake(port: int, env: dict, logdir: Path, *, pixels: dict[str, str]) -> Process:
    """The fake TikTok with its 10 requests/s limit and these pixels (code → access token)."""
    argv = [sys.executable, "-m", "tiktok_ads.fake_server", "--port", str(port), "--rate-limit", "10"]
    for code, token in pixels.items():
        argv += ["--pixel", f"{code}:{token}"]
    process = Process("fake-tiktok", argv, env=env, logdir=logdir)
    wait_until(lambda: tcp_answers(port), timeout=15, what="the fake TikTok")
    return process


def start_beat(env: dict, logdir: Path, *, loglevel: str = "WARNING") -> Process:
    argv = [str(BIN / "celery"), "-A", "tracker", "beat", f"--loglevel={loglevel}", "-s", str(logdir / "beat-schedule")]
    return Process("celery-beat", argv, env=env, logdir=logdir)


def write_readme_section(*, title: str, begin: str, end: str, figures: str) -> None:
    """Replace the figures between a section's markers in bench/README.md (or add the section at the end);
    the rest of the file is untouched."""
    text = README.read_text()  # read right before writing: other benchmarks write this file too
    block = f"{begin}\n{figures}\n{end}"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, count=1, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n{title}\n\n{block}\n"
    README.write_text(text)


# --- loading rows fast ---------------------------------------------------------------------------

# The clicks table's text columns a loaded row leaves empty (they are NOT NULL).
EMPTY_CLICK_COLUMNS = [
    "user_agent",
    "referrer",
    "landing_url",
    "bot_reason",
    "visitor_hash",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
    "ttclid",
    "ttp",
]
EMPTY_CLICK_TEXT = [""] * len(EMPTY_CLICK_COLUMNS)


def copy_rows(table: str, columns: list[str], rows) -> None:
    from django.db import connection

    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)

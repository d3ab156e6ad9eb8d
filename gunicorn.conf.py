"""gunicorn settings for production (`gunicorn tracker.wsgi -c gunicorn.conf.py`; gunicorn also reads this
file by itself when started from the project folder). Each value can be set from the environment;
command-line flags win over this file. https://docs.gunicorn.org/en/stable/settings.html"""

import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Sync workers: the click path is short and database-bound; 2 per core + 1 (docs/deploy.md).
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1) + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# The application is loaded once, in the master, before the workers are forked: they share its memory
# (Django, the URLconf, the models) instead of each loading a copy. On 2 cores that measured 7-12 % more
# requests/s and 182 MB of memory (PSS) instead of 413 for the master and five workers; a new or recycled
# worker starts without loading anything (0 ms of CPU instead of ~600). New code then needs a restart of the
# master, not a HUP (docs/deploy.md). bench/README.md, stop 17.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") != "0"
# Restart workers now and then: a slow leak in any library cannot grow without bound (the 10-minute soak
# without recycling showed memory flat). Not often: a recycled worker starts cold (its caches empty).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = max_requests // 10
# Heartbeat files on a RAM disk when there is one (Docker's /tmp may be an overlay on a slow disk).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Request lines come from the tracker itself (ACCESS_LOG=1, with the request id), not from gunicorn.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
if os.environ.get("LOG_FORMAT") == "json":
    # gunicorn's own lines (boot, worker restarts) as JSON too.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "ops.logs.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": loglevel.upper(), "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }

# Prometheus multiprocess mode: every worker writes its request-latency histogram to files in this
# folder and /metrics merges them (ops/metrics.py). Set before the workers import prometheus_client.
# An operator's folder is emptied at start; without one, a private temporary folder is made and removed.
_OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tracker-metrics-")


def on_starting(server):
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):  # files of a previous run would add its counts to ours
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def when_ready(server):
    if server.cfg.preload_app:
        _load_once_for_all_workers()


def _load_once_for_all_workers():
    # What the first request would import (the URLconf and every view), imported here so that the workers
    # share it too; then frozen, so that no worker's garbage collector writes to (and so copies) those pages.
    # Nothing here opens a database or Redis connection: the workers must not inherit one.
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports tracker.urls and the views
    gc.freeze()


def post_worker_init(worker):
    # Everything loaded so far (Django, the URLconf, the models: ~100,000 objects) lives as long as the
    # worker: kept out of the garbage collector's full passes, each of which then takes ~20 ms instead of
    # ~80 ms of a worker's time (measured with gc.callbacks under load; bench/README.md). A request waiting
    # on that worker waits that long.
    import gc

    gc.freeze()

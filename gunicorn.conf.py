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
# Restart workers now and then: a slow leak in any library cannot grow without bound. Not often: a restart
# costs about a second of CPU, and at 1,000 clicks/s 10,000 requests would recycle each worker every
# ~10 s (bench/README.md; the 10-minute soak without recycling showed memory flat).
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


def post_worker_init(worker):
    # Everything loaded so far (Django, the URLconf, the models: ~100,000 objects) lives as long as the
    # worker: kept out of the garbage collector's full passes, each of which then takes ~20 ms instead of
    # ~80 ms of a worker's time (measured with gc.callbacks under load; bench/README.md). A request waiting
    # on that worker waits that long.
    import gc

    gc.freeze()

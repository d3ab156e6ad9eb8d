"""Settings for the tracker: one file, everything from the environment.

With no environment at all the project runs on SQLite and a filesystem Celery broker
(`make run`); DATABASE_URL and REDIS_URL switch it to PostgreSQL and Redis. The README
lists every variable.
"""

from pathlib import Path

import environ
from celery.schedules import schedule

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# Without DEBUG a real secret is required: booting production with a known key is worse than failing.
SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-key-only-for-debug") if DEBUG else env.str("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Used to print ready-to-copy tracking URLs in the admin and the API.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "conversions",
    "landing",
    "tiktok_ads",
    "audiences",
    "reports",
    "ops",
]

MIDDLEWARE = [
    "ops.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "ops.middleware.LazyMessageMiddleware",  # Django's, with the storage built on first use
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tracker.urls"
WSGI_APPLICATION = "tracker.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url: str) -> dict:
    database = env.db_url_config(url)
    # Persistent connections: the click path should not pay a connection set-up per request.
    database["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    database["CONN_HEALTH_CHECKS"] = True
    if database["ENGINE"] == "django.db.backends.postgresql":
        database["ENGINE"] = "tracker.db"  # the same backend, with a health check without a round trip
        # Django's own cursors bind on the client and never prepare. psycopg's cursors prepare only a statement
        # that asks for it (the click INSERT, landing/click_store.py): no query reaches this threshold by
        # repetition. DB_PREPARED_STATEMENTS=0 prepares nothing (PgBouncer in transaction mode before 1.21).
        database.setdefault("OPTIONS", {})["prepare_threshold"] = (
            2**31 - 1 if env.bool("DB_PREPARED_STATEMENTS", default=True) else None
        )
    return database


DATABASES = {"default": _database(env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'tracker.sqlite3'}"))}
# A read replica of the default database for the report pages and the report API (tracker/db/replica.py,
# docs/scaling.md). Under the test runner it reads the test database (MIRROR).
REPORTS_DATABASE_URL = env.str("REPORTS_DATABASE_URL", default="")
if REPORTS_DATABASE_URL:
    DATABASES["reports"] = {**_database(REPORTS_DATABASE_URL), "TEST": {"MIRROR": "default"}}
    DATABASE_ROUTERS = ["tracker.db.replica.ReportsReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Request bodies above this are refused with 413. Intake bodies are a few hundred bytes; a batch of
# 1,000 TikTok events is about 0.6 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("API_MAX_BODY_BYTES", default=2 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["conversions.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["conversions.auth.HasManagementScope"],
    "DEFAULT_PARSER_CLASSES": ["conversions.parsers.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "conversions.errors.json_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tracker API",
    "DESCRIPTION": "Cookie-less S2S click and conversion tracker: bot, partner and management API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# The cache holds throttling counters: shared in Redis when there is one, per process otherwise.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery: Redis when REDIS_URL is set, otherwise a filesystem broker that needs no server.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_DIR = VAR_DIR / "celery-broker"
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tracker",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CELERY_BROKER_URL = "filesystem://"
    (CELERY_BROKER_DIR / "out").mkdir(parents=True, exist_ok=True)
    (CELERY_BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "out"),
        "data_folder_out": str(CELERY_BROKER_DIR / "out"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
ROLLUP_INTERVAL_S = env.float("ROLLUP_INTERVAL_S", default=5.0)
CELERY_BEAT_SCHEDULE = {
    "rollup-refresh": {"task": "conversions.tasks.rollup_refresh", "schedule": schedule(ROLLUP_INTERVAL_S)},
    "rollup-reconcile": {"task": "conversions.tasks.rollup_reconcile", "schedule": schedule(3600)},
    "purge-old-clicks": {"task": "conversions.tasks.purge_old_clicks", "schedule": schedule(24 * 3600)},
    "extend-click-partitions": {"task": "conversions.tasks.extend_click_partitions", "schedule": schedule(3600)},
}

# --- Tracking
# Peers allowed to set X-Forwarded-For (CIDRs). Anyone else's header is ignored.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=["127.0.0.1/32", "::1/128"])
GEOIP_PATH = env.str("GEOIP_PATH", default="")  # empty: the GeoLite2 City file of maxminddb-geolite2
ATTRIBUTION_WINDOW_DAYS = env.int("ATTRIBUTION_WINDOW_DAYS", default=28)
UNIQUE_CLICK_WINDOW_HOURS = env.int("UNIQUE_CLICK_WINDOW_HOURS", default=24)
LANDING_REDIRECT_DELAY_S = env.int("LANDING_REDIRECT_DELAY_S", default=3)
DEFAULT_CURRENCY = env.str("DEFAULT_CURRENCY", default="USD")
# "truncate" stores IPv4 addresses without their last octet and IPv6 without their last 80 bits
# (GeoIP still sees the full address); "none" stores them whole.
IP_ANONYMIZATION = env.str("IP_ANONYMIZATION", default="none")
if IP_ANONYMIZATION not in ("none", "truncate"):
    raise environ.ImproperlyConfigured('IP_ANONYMIZATION must be "none" or "truncate".')
# Clicks older than this many days are deleted (or, when a start or conversion refers to them,
# stripped of IP, user agent, referrer and parameters) by a daily job. 0 keeps them forever.
RETENTION_DAYS = env.int("RETENTION_DAYS", default=0)
# Per API key and minute on the bot / partner intake endpoints (0: no limit); 429 beyond it.
INTAKE_REQUESTS_PER_MINUTE = env.int("INTAKE_REQUESTS_PER_MINUTE", default=60_000)
# The everyday webhook and GET postback answered without DRF's machinery (conversions/fast_intake.py).
INTAKE_FAST_PATH = env.bool("INTAKE_FAST_PATH", default=True)
# Tracking links and the intake served without the middleware that does nothing for them (tracker/hot_paths.py).
HOT_PATH_HANDLER = env.bool("HOT_PATH_HANDLER", default=True)
ADMIN_LOGIN_MAX_FAILURES = env.int("ADMIN_LOGIN_MAX_FAILURES", default=5)
ADMIN_LOGIN_LOCKOUT_S = env.int("ADMIN_LOGIN_LOCKOUT_S", default=900)
# Seconds between a worker's looks at whether a link, campaign, pixel or landing page changed (0: no cache,
# read them on every click and conversion). Pausing a link takes effect within this time
# (conversions/click_settings.py).
LINK_CACHE_TTL_S = env.float("LINK_CACHE_TTL_S", default=2.0)
# Seconds a worker keeps a cached link, campaign or pixel at most, changed or not (on PostgreSQL).
LINK_CACHE_MAX_AGE_S = env.float("LINK_CACHE_MAX_AGE_S", default=300.0)
# Seconds a worker trusts an API key it has checked (0: read it on every request). Revoking a key takes
# effect within this time (at once in the worker that saved the change).
API_KEY_CACHE_TTL_S = env.float("API_KEY_CACHE_TTL_S", default=2.0)
# bench/clicks.py only: mounts /bench/redirect, a bare 302 without tracking (the click path's baseline).
BENCH_ENDPOINTS = env.bool("BENCH_ENDPOINTS", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- TikTok Events API
TIKTOK_API_BASE_URL = env.str("TIKTOK_API_BASE_URL", default="https://business-api.tiktok.com")
TIKTOK_HTTP_TIMEOUT = env.float("TIKTOK_HTTP_TIMEOUT", default=10.0)
# Fernet keys (newest first) that encrypt pixel access tokens at rest. Generate one with
# `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.
TIKTOK_TOKEN_KEYS = env.list("TIKTOK_TOKEN_KEYS", default=[])
if not TIKTOK_TOKEN_KEYS:
    if not DEBUG:
        raise environ.ImproperlyConfigured("Set TIKTOK_TOKEN_KEYS (a Fernet key) to encrypt TikTok access tokens.")
    import base64
    import hashlib

    TIKTOK_TOKEN_KEYS = [base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()]
# The seed's variables configure a default pixel (kept in step by the outbox sweep).
TIKTOK_PIXEL_ID = env.str("TIKTOK_PIXEL_ID", default="")
TIKTOK_ACCESS_TOKEN = env.str("TIKTOK_ACCESS_TOKEN", default="")
TIKTOK_ADVERTISER_ID = env.str("TIKTOK_ADVERTISER_ID", default="")
TIKTOK_TEST_MODE = env.bool("TIKTOK_TEST_MODE", default=False)
TIKTOK_TEST_EVENT_CODE = env.str("TIKTOK_TEST_EVENT_CODE", default="")
TIKTOK_PARTNER_NAME = env.str("TIKTOK_PARTNER_NAME", default="")
# Limits (seed: 1,000 events a request, 10 requests/s, 50,000 events/day per pixel).
TIKTOK_BATCH_SIZE = env.int("TIKTOK_BATCH_SIZE", default=1000)
TIKTOK_MAX_REQUESTS_PER_S = env.int("TIKTOK_MAX_REQUESTS_PER_S", default=10)
TIKTOK_DAILY_QUOTA = env.int("TIKTOK_DAILY_QUOTA", default=50_000)
TIKTOK_MAX_ATTEMPTS = env.int("TIKTOK_MAX_ATTEMPTS", default=12)
TIKTOK_RETRY_BASE_S = env.float("TIKTOK_RETRY_BASE_S", default=10.0)
TIKTOK_RETRY_MAX_S = env.float("TIKTOK_RETRY_MAX_S", default=3600.0)
# A row claimed for sending longer ago than this belonged to a worker that died: it is queued again.
TIKTOK_STALE_CLAIM_S = env.int("TIKTOK_STALE_CLAIM_S", default=120)
# TikTok takes events up to 7 days old (TIKTOK.md, fake server); older ones fail as too old.
TIKTOK_MAX_EVENT_AGE_DAYS = env.int("TIKTOK_MAX_EVENT_AGE_DAYS", default=7)
TIKTOK_CONSENT_REQUIRED = env.bool("TIKTOK_CONSENT_REQUIRED", default=False)
TIKTOK_SWEEP_INTERVAL_S = env.float("TIKTOK_SWEEP_INTERVAL_S", default=10.0)
CELERY_BEAT_SCHEDULE["tiktok-sweep"] = {
    "task": "tiktok_ads.tasks.sweep_outbox",
    "schedule": schedule(TIKTOK_SWEEP_INTERVAL_S),
}
# Publishing a task must not hold a web request when the broker is down: the outbox row is already
# committed and the sweep will send it.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=1.0)

# --- Audiences (the audiences app)
# Members per segment/mapping request. TikTok publishes no limit; TIKTOK.md: keep it modest (1,000-10,000).
AUDIENCE_SYNC_BATCH_SIZE = env.int("AUDIENCE_SYNC_BATCH_SIZE", default=10_000)
# How often the beat job refreshes rule audiences and sends every auto-sync audience's changes.
AUDIENCE_SYNC_INTERVAL_S = env.float("AUDIENCE_SYNC_INTERVAL_S", default=300.0)
# One sync task's time; what is left goes on in a chained task (a million members take ~20 s at 10 req/s).
AUDIENCE_SYNC_TIME_BUDGET_S = env.float("AUDIENCE_SYNC_TIME_BUDGET_S", default=45.0)
# Retryable answers (40100, 5xx, timeouts): attempts per request, backoff base · 2^(n-1) capped, with jitter.
AUDIENCE_SYNC_MAX_ATTEMPTS = env.int("AUDIENCE_SYNC_MAX_ATTEMPTS", default=4)
AUDIENCE_SYNC_RETRY_BASE_S = env.float("AUDIENCE_SYNC_RETRY_BASE_S", default=2.0)
AUDIENCE_SYNC_RETRY_MAX_S = env.float("AUDIENCE_SYNC_RETRY_MAX_S", default=30.0)
# Customer files up to this size are imported during the upload; larger ones wait in
# AUDIENCE_UPLOAD_DIR for a worker (deleted after the import) so the upload request stays short.
AUDIENCE_IMPORT_INLINE_MAX_BYTES = env.int("AUDIENCE_IMPORT_INLINE_MAX_BYTES", default=10 * 1024 * 1024)
AUDIENCE_UPLOAD_DIR = Path(env.str("AUDIENCE_UPLOAD_DIR", default=str(VAR_DIR / "audience-uploads")))
CELERY_BEAT_SCHEDULE["audiences-sync"] = {
    "task": "audiences.tasks.sync_all",
    "schedule": schedule(AUDIENCE_SYNC_INTERVAL_S),
}

# --- Reports and automation rules (the reports app)
# Days of reports and of daily spend are days of this zone (a report may pick another per request).
# The rollups are hourly in UTC: zones with whole-hour offsets group into days exactly.
REPORT_TIME_ZONE = env.str("REPORT_TIME_ZONE", default=TIME_ZONE)
REPORT_ROLLUP_INTERVAL_S = env.float("REPORT_ROLLUP_INTERVAL_S", default=10.0)
RULES_INTERVAL_S = env.float("RULES_INTERVAL_S", default=300.0)
# Seconds a rule's webhook may take; an answer other than 2xx is logged on the firing, not retried.
RULES_WEBHOOK_TIMEOUT_S = env.float("RULES_WEBHOOK_TIMEOUT_S", default=10.0)
# Rule emails: Django's email backend (SMTP from EMAIL_URL, e.g. smtp+tls://user:pass@host:587).
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST, EMAIL_PORT = _email.get("EMAIL_HOST", ""), _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_USER", ""), _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS, EMAIL_USE_SSL = _email.get("EMAIL_USE_TLS", False), _email.get("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="tracker@localhost")
CELERY_BEAT_SCHEDULE["reports-rollup"] = {
    "task": "reports.tasks.report_rollup_refresh",
    "schedule": schedule(REPORT_ROLLUP_INTERVAL_S),
}
CELERY_BEAT_SCHEDULE["reports-reconcile"] = {
    "task": "reports.tasks.report_rollup_reconcile",
    "schedule": schedule(3600),
}
CELERY_BEAT_SCHEDULE["rules-evaluate"] = {
    "task": "reports.tasks.rules_evaluate",
    "schedule": schedule(RULES_INTERVAL_S),
}

# --- Operations: health, metrics, logs, deployment (the ops app)
from ops.envparse import parse_aliases  # noqa: E402 - plain-Python helpers, no Django imports
from ops.logs import logging_config  # noqa: E402

# Logs: plain text for `make run`, one JSON object per line in production; both carry the request id
# (docs/observability.md). LOG_LEVEL above still sets the level.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
# One line per request (method, path without the query string, status, duration) from ops.middleware.
ACCESS_LOG = env.bool("ACCESS_LOG", default=False)
try:
    LOGGING = logging_config(log_format=LOG_FORMAT, level=env.str("LOG_LEVEL", default="INFO"))
except ValueError as exc:
    raise environ.ImproperlyConfigured(str(exc)) from exc
# Celery replaces the root logger's handlers unless told not to: in JSON mode the worker logs through
# LOGGING like the web; in plain mode `make run` keeps Celery's own --loglevel (quiet).
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"
# /metrics (Prometheus): with a token set, scrapers must send "Authorization: Bearer <token>".
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# /healthz: seconds the broker (Redis PING) may take to answer before it counts as down.
HEALTHZ_TIMEOUT_S = env.float("HEALTHZ_TIMEOUT_S", default=1.0)

# Production security, each switched by the variable of Django's name
# (https://docs.djangoproject.com/en/5.2/ref/settings/#secure-ssl-redirect and neighbours).
# deploy/production.env.example turns them all on: `make prod-check` is then clean.
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    # Believe the reverse proxy's X-Forwarded-Proto; only behind a proxy that always sets it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

# Partner networks' own parameter names, added to the built-in aliases (docs/postbacks.md), e.g.
# POSTBACK_PARAM_ALIASES=click_id:clickref|s2,payout:commission
try:
    POSTBACK_PARAM_ALIASES = parse_aliases(env.str("POSTBACK_PARAM_ALIASES", default=""))
except ValueError as exc:
    raise environ.ImproperlyConfigured(f"POSTBACK_PARAM_ALIASES: {exc}") from exc

# TikTok Login Kit (optional): links a Telegram user to a TikTok account (docs/telegram-bot.md).
# https://developers.tiktok.com/doc/login-kit-web and .../doc/oauth-user-access-token-management
TIKTOK_LOGIN_CLIENT_KEY = env.str("TIKTOK_LOGIN_CLIENT_KEY", default="")
TIKTOK_LOGIN_CLIENT_SECRET = env.str("TIKTOK_LOGIN_CLIENT_SECRET", default="")
TIKTOK_LOGIN_AUTH_URL = env.str("TIKTOK_LOGIN_AUTH_URL", default="https://www.tiktok.com/v2/auth/authorize/")
TIKTOK_LOGIN_API_BASE_URL = env.str("TIKTOK_LOGIN_API_BASE_URL", default="https://open.tiktokapis.com")
TIKTOK_LOGIN_SCOPES = env.str("TIKTOK_LOGIN_SCOPES", default="user.info.basic")
# Empty: PUBLIC_BASE_URL + /tiktok/callback. It must be registered, exactly, in the TikTok app.
TIKTOK_LOGIN_REDIRECT_URI = env.str("TIKTOK_LOGIN_REDIRECT_URI", default="")
# How long a link the bot hands out stays valid (the signed `state`).
TIKTOK_LOGIN_STATE_MAX_AGE_S = env.int("TIKTOK_LOGIN_STATE_MAX_AGE_S", default=600)

# The tracker's one image: web (gunicorn), worker and beat (Celery) run from it with the Procfile's
# commands (docker-compose.yml). Python as in pyproject.toml; only PyPI wheels, no compilers.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 10001 tracker

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected into the image and served by whitenoise (no nginx needed for them).
# DEBUG=1 only lets settings load without production secrets; nothing else runs here.
RUN DEBUG=1 VAR_DIR=/tmp/build-var STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-var \
    && mkdir -p /app/var \
    && chown tracker /app/var

ENV STATIC_ROOT=/app/staticfiles \
    VAR_DIR=/app/var \
    LOG_FORMAT=json \
    ACCESS_LOG=1

USER tracker
EXPOSE 8000
# /healthz answers whatever the Host header (see ops/views.py): 200 when the database and broker answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["gunicorn", "tracker.wsgi", "-c", "gunicorn.conf.py"]

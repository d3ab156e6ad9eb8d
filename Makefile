# One Makefile: `make run` (demo on the embedded default) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
# PostgreSQL for tests when it answers; SQLite otherwise (tests that need row locks then skip).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/tracker
TEST_REDIS_URL ?= redis://127.0.0.1:6379/14

export DJANGO_SETTINGS_MODULE := tracker.settings

.PHONY: install run test lint-check pytest lint format migrate demo worker clean

$(BIN)/.installed: requirements.txt requirements-dev.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

install: $(BIN)/.installed

migrate: install
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput

demo: migrate
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py demo_setup --base-url http://127.0.0.1:$(PORT)

# The web server and a Celery worker (with its beat) on SQLite and the filesystem broker,
# unless DATABASE_URL / REDIS_URL say otherwise. Ctrl-C stops both.
run: demo
	@echo "Starting the web server on http://127.0.0.1:$(PORT) and a Celery worker…"
	DEBUG=$${DEBUG:-1} $(BIN)/celery -A tracker worker --beat --loglevel=WARNING --concurrency=1 \
		--schedule=var/celerybeat-schedule & \
	WORKER=$$!; trap "kill $$WORKER 2>/dev/null" EXIT INT TERM; \
	DEBUG=$${DEBUG:-1} PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://127.0.0.1:$(PORT)} \
		$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

worker: install
	DEBUG=$${DEBUG:-1} $(BIN)/celery -A tracker worker --beat --loglevel=INFO

test: install lint-check pytest

lint-check: install
	$(BIN)/ruff check .
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run >/dev/null

# The suite alone (PYTEST_ARGS picks tests), without the lint and migration checks.
pytest: install
	@DBURL=$$($(BIN)/python scripts/pick_test_database.py "$(TEST_DATABASE_URL)"); \
	echo "Tests run on $$DBURL"; \
	DEBUG=0 SECRET_KEY=test-secret-key TIKTOK_TOKEN_KEYS=dHJhY2tlci10ZXN0LXN1aXRlLWZlcm5ldC1rZXktMzI= \
		DATABASE_URL=$$DBURL REDIS_URL=$(TEST_REDIS_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var $(VENV)

# --- Production processes (the Procfile's commands; docker-compose.yml runs the same). Set the
# production environment first (deploy/production.env.example, docs/deploy.md).
.PHONY: prod-web prod-worker prod-beat prod-check

prod-web: install
	$(BIN)/gunicorn tracker.wsgi -c gunicorn.conf.py

prod-worker: install
	$(BIN)/celery -A tracker worker --loglevel=INFO --concurrency=2

prod-beat: install
	$(BIN)/celery -A tracker beat --loglevel=INFO --schedule=var/celerybeat-schedule

# `manage.py check --deploy` with the documented production environment and throw-away secrets.
prod-check: install
	@set -a; . deploy/production.env.example; set +a; \
	SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))') \
	TIKTOK_TOKEN_KEYS=$$($(BIN)/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
	DATABASE_URL=sqlite:///$$(mktemp -d)/check.sqlite3 \
		$(BIN)/python manage.py check --deploy --fail-level WARNING

# --- Benchmarks (bench/README.md): each starts its own production-like stack on loopback (PostgreSQL at
# 127.0.0.1:5432, a private Redis, gunicorn, Celery, the fake TikTok), runs with a time cap and tears it
# down. They run one after another; one that fails does not stop the others, but fails the target.
.PHONY: bench

BENCHMARKS ?= clicks tiktok_events reports conversion_rollup audiences_customer_file soak

bench: install
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	@failed=""; \
	for name in $(BENCHMARKS); do \
		if test -f bench/$$name.py; then \
			echo "== bench/$$name.py"; \
			$(BIN)/python bench/$$name.py || failed="$$failed $$name"; \
		fi; \
	done; \
	if test -n "$$failed"; then echo "benchmarks that failed:$$failed"; exit 1; fi

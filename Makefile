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

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
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

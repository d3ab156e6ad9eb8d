"""gunicorn.conf.py: the master loads the application once for every worker (preload), and what is loaded
at start is frozen, so the collector's full passes skip it."""

import os
import subprocess
import sys
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def test_a_worker_freezes_what_it_loaded(tmp_path):
    script = (
        "import gc, runpy\n"
        f"conf = runpy.run_path({str(CONF)!r})\n"
        "assert gc.get_freeze_count() == 0\n"
        "conf['post_worker_init'](None)\n"
        "print(gc.get_freeze_count())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}  # else the file makes its own folder
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)

    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 1_000


def _run_when_ready(tmp_path, *, preload: bool) -> list[str]:
    """gunicorn.conf.py's when_ready hook in a fresh interpreter with Django set up, as in the master."""
    script = (
        "import gc, runpy, sys, types, django\n"
        "django.setup()\n"
        f"conf = runpy.run_path({str(CONF)!r})\n"
        "before = gc.get_freeze_count()\n"
        f"conf['when_ready'](types.SimpleNamespace(cfg=types.SimpleNamespace(preload_app={preload})))\n"
        "from django.db import connections\n"
        "print(before, gc.get_freeze_count(), 'landing.views' in sys.modules, 'conversions.apis' in sys.modules,\n"
        "      connections['default'].connection is None)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "tracker.settings"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_preloading_master_imports_the_views_and_freezes_them_without_connecting(tmp_path):
    before, after, views, apis, unconnected = _run_when_ready(tmp_path, preload=True)

    assert int(before) == 0 and int(after) > 1_000
    assert views == apis == "True"  # what the first request would import, now shared by every worker
    assert unconnected == "True"  # a connection opened here would be inherited by every worker


def test_without_preloading_the_master_loads_nothing(tmp_path):
    before, after, views, apis, unconnected = _run_when_ready(tmp_path, preload=False)

    assert int(before) == int(after) == 0
    assert views == apis == "False"
    assert unconnected == "True"


def test_the_application_is_preloaded_unless_turned_off(tmp_path):
    script = f"import runpy; print(runpy.run_path({str(CONF)!r})['preload_app'])"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    answers = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                       env={**env, **extra}).stdout.strip()
        for extra in ({}, {"GUNICORN_PRELOAD": "0"})
    ]  # fmt: skip

    assert answers == ["True", "False"]

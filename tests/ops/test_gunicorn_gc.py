"""A gunicorn worker freezes what it loaded at start, so the collector's full passes skip it."""

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

"""CPU per request of the click path and intake, in-process, and where it goes (cProfile).

    .venv/bin/python bench/profile_requests.py                       # every kind, 2,000 requests each
    .venv/bin/python bench/profile_requests.py --kinds webhook postback --profile webhook --top 40

Each request goes through the product's WSGI application (tracker.wsgi: the click paths through their own
handler, the rest through all the middleware) directly, with the product settings of bench/clicks.py, its
database, Redis and fixture, without gunicorn or the network, one at a time. The
figure is `time.process_time` per request: the CPU this process spent, which is what two cores share
under load, and is steadier than wall time on a machine whose speed moves from minute to minute. The
kinds run interleaved in rounds, so a slow minute falls on all of them. PostgreSQL's own CPU is not in
it. Use it to compare a change back to back; bench/clicks.py measures the stack under load.

    .venv/bin/python bench/profile_requests.py --instructions 300 --kinds bare direct webhook

counts instead the instructions the web process runs per request, under valgrind's callgrind: one child
process makes 0 requests of a kind, another the same setup and N more, and the difference is divided by N.
The count does not move with the machine's speed (the same code gives the same count within ~1 %), so a
change of a few per cent shows in one run, where CPU time needs many. It leaves out what the kernel does
for the process (the socket calls to PostgreSQL) and the debounced Celery wake-up of the TikTok sender,
which is timed (under valgrind's slowdown it would fire every few requests instead of about twice a second).
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import re
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from clicks import USER_AGENT, Fixture, classic_path, create_fixture, stack_env, start_services
from common import BIN, ROOT, free_port, guarded, hard_cap

DB_NAME = "tracker_bench_profile"


def wsgi_caller():
    """call(method, path, body=None, headers={}) -> (status, body) through the product's WSGI application
    (tracker.wsgi: what gunicorn serves)."""
    from tracker.wsgi import application as handler

    def call(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[str, bytes]:
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_USER_AGENT": USER_AGENT, "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(body)),
        }  # fmt: skip
        environ.update(headers or {})
        answer = {}

        def start_response(status, response_headers, exc_info=None):
            answer["status"] = status

        response = handler(environ, start_response)
        content = b"".join(response)
        response.close()
        return answer["status"], content

    return call


def request_kinds(fixture, call) -> dict:
    """kind -> a function that makes one request of that kind."""
    rng = random.Random(6)
    click_ids = fixture.intake_clicks_file.read_text().split()
    counter = iter(range(10**9))
    webhook_key = {"HTTP_AUTHORIZATION": "Api-Key " + fixture.keys["webhook"], "CONTENT_TYPE": "application/json"}

    def visitor() -> dict:
        first = rng.choice((31, 46, 78, 85, 95, 176, 188, 212))
        return {"HTTP_X_FORWARDED_FOR": f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"}

    def get(path):
        return lambda: call("GET", path, headers=visitor())

    def webhook(transaction_id: str = ""):
        n = next(counter)
        body = {"utm_id": click_ids[n % len(click_ids)], "amount": 5000, "currency": "USD", "event": "purchase",
                "transaction_id": transaction_id or f"profile-{os.getpid()}-{n}"}  # fmt: skip
        return call("POST", "/api/v1/utm/webhook/conversion", json.dumps(body).encode(), webhook_key)

    def postback():
        n = next(counter)
        return call("GET", f"/postback?key={fixture.keys['postback']}&click_id={click_ids[n % len(click_ids)]}"
                           f"&payout=7.50&status=approved&txid=profile-pb-{os.getpid()}-{n}&goal=deposit")  # fmt: skip

    spread = iter(range(10**9))
    return {
        "bare": get("/bench/redirect"),
        "direct": get("/l/tt_direct"),
        "page": get("/l/tt_hot"),
        "nopixel": get("/l/tt_nopixel"),
        "classic": get(classic_path(fixture.classic_campaign)),
        "spread": lambda: call("GET", f"/l/tt_s{next(spread) % 1000:04d}", headers=visitor()),
        "webhook": webhook,
        "repeat": lambda: webhook("profile-repeat"),  # the same transaction again: answered "unchanged"
        "postback": postback,
    }


def measure(kinds: dict, *, requests: int, rounds: int) -> dict:
    """CPU µs per request of each kind, the median of `rounds` interleaved rounds."""
    per_round = max(requests // rounds, 1)
    samples = {name: [] for name in kinds}
    for _ in range(rounds):
        for name, action in kinds.items():
            started = time.process_time()
            for _ in range(per_round):
                status, body = action()
                assert status[:1] in "23", (name, status, body[:300])
            samples[name].append((time.process_time() - started) / per_round * 1e6)
    return {name: round(sorted(values)[len(values) // 2]) for name, values in samples.items()}


def profile(action, *, requests: int, top: int) -> str:
    # CPU time, as measure() counts: wall time would put the waits on PostgreSQL at the top.
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(requests):
        action()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", help="request kinds to measure (default: all)")
    parser.add_argument("--requests", type=int, default=2_000, help="requests of each kind (default 2,000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    parser.add_argument("--profile", help="also cProfile this kind")
    parser.add_argument("--top", type=int, default=30, help="functions shown by the profile")
    parser.add_argument("--instructions", type=int, metavar="N",
                        help="count instructions per request over N requests of each kind (valgrind)")  # fmt: skip
    parser.add_argument("--cap", type=int, help="hard cap, seconds (default 600; 3,600 with --instructions)")
    parser.add_argument("--child", nargs=3, metavar=("FIXTURE", "KIND", "N"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- instructions (valgrind) ---------------------------------------------------------------------


def instructions(kinds: list[str], *, fixture: Fixture, env: dict, workdir: Path, requests: int) -> dict:
    """Instructions per request of each kind: (count with N requests - count with none) / N."""
    saved = workdir / "fixture.json"
    saved.write_text(json.dumps({"keys": fixture.keys, "intake_clicks_file": str(fixture.intake_clicks_file),
                                 "classic_campaign": fixture.classic_campaign.pk}))  # fmt: skip
    # Caches that expire by the clock would expire more often under valgrind's slowdown.
    child_env = {**env, "LINK_CACHE_TTL_S": "3600", "API_KEY_CACHE_TTL_S": "3600", "PYTHONHASHSEED": "0"}
    figures = {}
    for kind in kinds:
        counts = [_counted_child(saved, kind, n, child_env) for n in (0, requests)]
        figures[kind] = round((counts[1] - counts[0]) / requests)
        print(f"  {kind}: {figures[kind]:,} instructions a request", flush=True)
    return figures


def _counted_child(saved: Path, kind: str, requests: int, env: dict) -> int:
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(BIN / "python"),
            str(Path(__file__)), "--child", str(saved), kind, str(requests)]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    found = re.search(r"Collected : ([\d,]+)", done.stderr)
    if done.returncode or found is None:
        raise RuntimeError(f"valgrind child {kind} {requests} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


def child(saved: str, kind: str, requests: int) -> int:
    """Run under valgrind: `requests` requests of `kind`, after the same setup as every other child."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from conversions.models import Campaign
    from tiktok_ads import outbox

    outbox.schedule_flush = lambda pixel_id: None  # timed: see the module's docstring
    data = json.loads(Path(saved).read_text())
    fixture = Fixture(keys=data["keys"], intake_clicks_file=Path(data["intake_clicks_file"]),
                      classic_campaign=Campaign.objects.get(pk=data["classic_campaign"]))  # fmt: skip
    action = request_kinds(fixture, wsgi_caller())[kind]
    for _ in range(3):  # connection, caches, prepared statements
        action()
    for _ in range(requests):
        action()
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))
    hard_cap(args.cap or (3600 if args.instructions else 600))
    workdir = Path(tempfile.mkdtemp(prefix="profile-bench-"))
    ports = {"redis": free_port(), "fake": free_port()}
    env = stack_env(redis_port=ports["redis"], fake_port=ports["fake"], workdir=workdir, db_name=DB_NAME)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    with guarded(workdir, keep_logs=False) as outcome, ExitStack() as teardown:
        start_services(teardown, db_name=DB_NAME, env=env, ports=ports, logdir=workdir)
        fixture = create_fixture(workdir)
        kinds = request_kinds(fixture, wsgi_caller())
        chosen = {name: kinds[name] for name in (args.kinds or kinds)}
        if args.instructions:
            figures = instructions(list(chosen), fixture=fixture, env=env, workdir=workdir, requests=args.instructions)
            print("Instructions per request (callgrind): " + json.dumps(figures))
        else:
            for action in chosen.values():  # warm: connections, caches, prepared statements
                for _ in range(50):
                    action()
            figures = measure(chosen, requests=args.requests, rounds=args.rounds)
            print("CPU µs per request (median of rounds): " + json.dumps(figures))
            if args.profile:
                print(profile(kinds[args.profile], requests=args.requests, top=args.top))
    return 1 if outcome["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Compare ways to run the web tier on this machine: gunicorn options and settings, alternated round by round.

    .venv/bin/python bench/compare.py --variant w5 "-w 5" --variant w4 "-w 4"
    .venv/bin/python bench/compare.py --variant off "-w 5" HOT_PATH_HANDLER=0 --variant on "-w 5" \\
        --cases bare direct webhook --rounds 3

A variant is a name, gunicorn's options and any environment settings (KEY=VALUE) for gunicorn only. Each
round starts every variant's gunicorn in turn on the same stack as bench/clicks.py (its database, Redis,
fake TikTok, Celery worker and beat, fixture) and runs the cases one after the other, 16 connections each
unless --connections says otherwise: the click cases of bench/clicks.py (bare, hot, spread, nopixel, direct,
classic) and the single-conversion intake (webhook, postback). A round takes one variant after the other, so
a slow minute of the machine falls on all of them and not on one (bench/clicks.py's configurations run one
after the other and cannot tell a few per cent apart). The table gives each variant's median over the
rounds, and a click case's ratio to the bare 302 runs of the same round and variant. Stored clicks and
conversions are counted after every run, as bench/clicks.py does. Nothing is written to bench/README.md;
--json keeps every run. Loopback only.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import clicks
from common import ROOT, free_port, guarded, hard_cap

INTAKE_CASES = ("webhook", "postback")
CLICK_CASES = ("bare", "hot", "spread", "nopixel", "direct", "classic")
CPU_GROUPS = (clicks.BUSY, "gunicorn workers", "postgres backends of the bench database (web + Celery)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", nargs="+", action="append", required=True, metavar="NAME OPTIONS [KEY=VALUE]",
                        help="a name, gunicorn's options in one argument, then environment settings")  # fmt: skip
    parser.add_argument("--cases", nargs="+", default=["bare", "direct", "nopixel", "bare"],
                        choices=CLICK_CASES + INTAKE_CASES, help="run in this order in every round")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16, help="wrk's connections in every run (default 16)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (default 10)")
    parser.add_argument("--json", type=Path, help="write every run's figures to this file")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    args.variants = [_variant(spec, parser) for spec in args.variant]
    if len({variant["name"] for variant in args.variants}) < len(args.variants):
        parser.error("each --variant needs its own name")
    return args


def _variant(spec: list[str], parser) -> dict:
    if len(spec) < 2 or not all("=" in setting for setting in spec[2:]):
        parser.error(f'--variant {" ".join(spec)}: give NAME, "GUNICORN OPTIONS", then KEY=VALUE settings')
    return {"name": spec[0], "options": spec[1].split(), "env": dict(setting.split("=", 1) for setting in spec[2:])}


def estimated_seconds(args) -> int:
    per_variant = 25 + len(args.cases) * (args.duration + 4)  # start, warm-up, settle after each run
    per_variant += args.cases.count("spread") * (clicks.SPREAD_LEAD_IN_S + 2)
    return 120 + args.rounds * len(args.variants) * per_variant  # 120: database, fixture, Celery


def run_variant(variant: dict, *, cases: list[str], click_cases: dict, fixture, stack: dict, env: dict,
                logdir: Path, workdir: Path, duration: int, connections: int) -> list[dict]:  # fmt: skip
    name = variant["name"]
    clicks.GUNICORN_CONFIGS[name] = (" ".join(variant["options"]), variant["options"])
    gunicorn, base_url = clicks.start_gunicorn(name, {**env, **variant["env"]}, logdir)
    stack["gunicorn"] = gunicorn
    try:
        clicks.run_wrk(name=f"{name}-warmup", url=base_url + "/bench/redirect", script="clicks.lua",
                       connections=connections, duration=3, workdir=workdir,
                       extra_env={"WRK_PATHS": str(fixture.warmup_paths_file)})  # fmt: skip
        runs = []
        for case in cases:
            if case in INTAKE_CASES:
                result = clicks.intake_run(case, connections=connections, base_url=base_url, fixture=fixture,
                                           duration=duration, workdir=workdir, stack=stack)  # fmt: skip
                result["req_s"] = result["conversions_answered_per_s"]
            else:
                result = clicks.click_run(click_cases[case], connections=connections, config=name, base_url=base_url,
                                          duration=duration, workdir=workdir, stack=stack)  # fmt: skip
                result["req_s"] = result["requests_per_s"]
            runs.append({"variant": name, "case": case, **result})
        return runs
    finally:
        gunicorn.stop()
        stack.pop("gunicorn", None)


def with_ratios(runs: list[dict]) -> list[dict]:
    """Each click run's ratio to the mean of the bare runs among `runs` (one round of one variant)."""
    bare = [run["req_s"] for run in runs if run["case"] == "bare"]
    for run in runs:
        if run["case"] not in INTAKE_CASES and run["case"] != "bare" and bare:
            run["ratio"] = round(run["req_s"] / statistics.mean(bare), 3)
    return runs


def cpu_us(run: dict, group: str) -> float:
    """CPU µs the group used per request answered (machine: every process and the kernel)."""
    return run["cpu_percent"][group] * 1e4 / run["req_s"] if run["req_s"] else 0.0


def table(runs_done: list[dict], variants: list[dict], cases: list[str]) -> str:
    lines = [
        "| variant | case | req/s (median; each run) | ratio to bare (median; each run) | p99 ms (median) "
        "| CPU µs a request (median): machine / gunicorn / PostgreSQL | answered, not stored |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for variant in variants:
        for case in dict.fromkeys(cases):
            runs = [run for run in runs_done if run["variant"] == variant["name"] and run["case"] == case]
            rates = [run["req_s"] for run in runs]
            ratios = [run["ratio"] for run in runs if "ratio" in run]
            ratio = f"{statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)})" if ratios else "–"
            lost = sum(run.get("answered_not_stored") or 0 for run in runs) if case != "bare" else "–"
            rate = f"{statistics.median(rates):,.0f} ({', '.join(f'{each:,}' for each in rates)})"
            p99 = statistics.median(run["p99_ms"] for run in runs)
            cpu = " / ".join(f"{statistics.median(cpu_us(run, group) for run in runs):.0f}" for group in CPU_GROUPS)
            lines.append(f"| {variant['name']} | {case} | {rate} | {ratio} | {p99:.1f} | {cpu} | {lost} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    hard_cap(estimated_seconds(args) + 120)
    workdir = Path(tempfile.mkdtemp(prefix="compare-bench-"))
    ports = {"redis": free_port(), "fake": free_port()}
    env = clicks.stack_env(redis_port=ports["redis"], fake_port=ports["fake"], workdir=workdir)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    print(json.dumps({**clicks.describe_machine(), "variants": args.variants, "cases": args.cases}), flush=True)
    runs_done: list[dict] = []
    with guarded(workdir, keep_logs=args.keep_logs) as outcome, ExitStack() as teardown:
        logdir = workdir / "logs"
        logdir.mkdir()
        stack = clicks.start_services(teardown, db_name=clicks.DB_NAME, env=env, ports=ports, logdir=logdir)
        fixture = clicks.create_fixture(workdir)
        clicks.start_celery(teardown, stack, env=env, logdir=logdir)
        click_cases = clicks.click_cases(fixture)
        for number in range(1, args.rounds + 1):
            print(f"\n== round {number} of {args.rounds}", flush=True)
            for variant in args.variants:
                settings = " ".join(f"{key}={value}" for key, value in variant["env"].items())
                print(f"-- {variant['name']}: gunicorn {' '.join(variant['options'])} {settings}", flush=True)
                runs = run_variant(variant, cases=args.cases, click_cases=click_cases, fixture=fixture, stack=stack,
                                   env=env, logdir=logdir, workdir=workdir, duration=args.duration,
                                   connections=args.connections)  # fmt: skip
                runs_done += [{"round": number, **run} for run in with_ratios(runs)]
    if runs_done and not outcome["failed"]:
        print("\n" + table(runs_done, args.variants, args.cases))
    if args.json:
        args.json.write_text(json.dumps(runs_done, indent=1, default=str))
    print(f"\ntotal {time.monotonic() - started:.0f}s")
    return 1 if outcome["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

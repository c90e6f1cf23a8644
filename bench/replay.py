"""The full CDNOW replay over HTTP against PostgreSQL, timed: `python -m bench.replay`.

Makes a fresh database, serves the app under gunicorn as in production, runs
`flask demo replay-cdnow` against it and writes the figures into docs/benchmarks.md between
the `cdnow-replay` markers. Not a test: CI does not run it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
START, END = "<!-- cdnow-replay:start -->", "<!-- cdnow-replay:end -->"
BIN = os.path.join(ROOT, ".venv", "bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _psql(sql: str, admin_url: str) -> None:
    subprocess.run(["psql", admin_url, "-qc", sql], check=True)


def _wait(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server at {url} did not become ready")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server (libpq URL)")
    ap.add_argument("--database", default="alliance_replay_bench")
    ap.add_argument("--file", default="master")
    ap.add_argument("--customers", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = ap.parse_args(argv)

    admin = f"{args.pg}/postgres"
    _psql(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)', admin)
    _psql(f'CREATE DATABASE "{args.database}"', admin)
    url = args.pg.replace("postgresql://", "postgresql+psycopg://") + f"/{args.database}"
    env = {**os.environ, "DATABASE_URL": url, "FLASK_APP": "wsgi:app", "RATELIMIT_DEFAULT": "1000000 per minute",
           "LOG_LEVEL": "WARNING", "SEED_DEMO": "0"}
    subprocess.run([f"{BIN}/flask", "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([f"{BIN}/gunicorn", "-w", str(args.workers), "-k", "gthread", "--threads",
                               str(args.threads), "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"],
                              cwd=ROOT, env=env)
    try:
        _wait(base)
        cmd = [f"{BIN}/flask", "demo", "replay-cdnow", "--url", base, "--file", args.file, "--no-progress",
               "--concurrency", str(args.concurrency), "--alliance", "yunxiu-cdnow", "--fresh"]
        if args.customers:
            cmd += ["--customers", str(args.customers)]
        started = time.monotonic()
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(10)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr[-4000:])
    if done.returncode != 0:
        return done.returncode
    result = json.loads(done.stdout.strip().splitlines()[-1])
    table = done.stdout.strip().splitlines()[:-2]
    pg_version = subprocess.run(["psql", admin, "-Atc", "show server_version"], capture_output=True,
                                text=True).stdout.strip()
    section = "\n".join([
        START,
        "## The CDNOW replay over HTTP (issue: the main job on real input)",
        "",
        f"Measured {dt.date.today().isoformat()} by `python -m bench.replay` on {os.cpu_count()} cores, "
        f"PostgreSQL {pg_version}, gunicorn {args.workers} workers x {args.threads} threads (gthread), "
        f"the replaying partners at concurrency {args.concurrency}, client and server on the same machine.",
        "",
        "| file | purchases | customers | requests | replay s | of which month-end expiry s | requests/s "
        "| whole command s | reconciled | verify |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {args.file} | {result['purchases']} | {result['customers']} | {result['requests']} | "
        f"{result['seconds']} | {result['expiry_seconds']} | {result['requests_per_second']} | {wall:.1f} | "
        f"{result['reconciled']} | "
        f"{'clean' if result['verify_clean'] else 'FAULTS'} |",
        "",
        "The reconciliation it printed:",
        "",
        "```",
        *table,
        "```",
        "",
        "What bounds it: see the analysis below the table, kept by hand.",
        END,
    ])
    if not args.no_write:
        text = open(DOC, encoding="utf-8").read() if os.path.exists(DOC) else "# Benchmarks\n"
        if START in text:
            text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        with open(DOC, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

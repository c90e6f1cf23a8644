"""Run every benchmark against one PostgreSQL server and write docs/benchmarks.md: ``python -m bench.run``.

1. the ceiling: pgbench TPC-B-like, scale 10, a warm-up pass thrown away, median of three passes at 4 and 16 clients;
2. the ledger through its service layer at 4 and 16 worker processes, spread over three tenants and hot;
3. the partner API under gunicorn at 16 connections: OAuth-authenticated idempotent earns, and /healthz;
4. ``flask ledger verify`` on the books the run wrote.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import time

from bench import api_load, ceiling, ledger_load, report
from bench.seed import migrate, opening_balances, seed
from bench.stats import median_pass

OPENING_POINTS = 1000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_SETTINGS = ("server_version", "shared_buffers", "max_connections", "synchronous_commit", "fsync",
               "full_page_writes", "wal_level", "wal_buffers", "max_wal_size", "checkpoint_timeout", "work_mem",
               "effective_cache_size", "random_page_cost", "jit")


def log(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------- databases and facts

def _admin(host: str, port: int, user: str):
    import psycopg

    return psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True)


def recreate_database(name: str, *, host: str, port: int, user: str) -> None:
    with _admin(host, port, user) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str, *, host: str, port: int, user: str) -> None:
    with _admin(host, port, user) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            kb = int(fh.readline().split()[1])
        return f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine_facts(*, host: str, port: int, user: str, with_pg: bool) -> dict:
    facts = {"cores": os.cpu_count(), "CPU": _cpu_model(), "memory": _memory(),
             "OS": f"{platform.system()} {platform.release()} ({_os_release()})",
             "Python": platform.python_version(), "load average at start": _loadavg()}
    if with_pg:
        with _admin(host, port, user) as conn:
            rows = dict(conn.execute(
                "SELECT name, CASE unit WHEN '8kB' THEN pg_size_pretty(setting::bigint * 8192) "
                "WHEN 'kB' THEN pg_size_pretty(setting::bigint * 1024) "
                "ELSE setting || COALESCE(' ' || unit, '') END FROM pg_settings WHERE name = ANY(%s)",
                [list(PG_SETTINGS)]).fetchall())
        facts["PostgreSQL"] = rows.pop("server_version", "?") + f" at {host}:{port} (TCP, same machine)"
        facts["PostgreSQL settings"] = ", ".join(f"{k}={rows[k]}" for k in PG_SETTINGS if k in rows)
    settings = api_load.server_settings()
    facts["gunicorn"] = (f"{settings['workers']} workers, {settings['worker_class']}, "
                         f"{settings['threads']} thread(s) each")
    return facts


def _os_release() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "unknown"


def _redis_url(url: str) -> str:
    """Return ``url`` when Redis answers there, else '' (rate limits then live in process memory)."""
    if not url:
        return ""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return url if sock.recv(16).startswith(b"+PONG") else ""
    except OSError:
        return ""


def verify_books(database_url: str) -> dict:
    """Run ``flask ledger verify`` (the operator command) on the benchmark database."""
    env = {**os.environ, "DATABASE_URL": database_url, "FLASK_APP": "wsgi:app", "LOG_LEVEL": "WARNING",
           "SEED_DEMO": "0"}
    proc = subprocess.run([sys.executable, "-m", "flask", "ledger", "verify"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        out = {"ok": False, "faults": [proc.stderr[-1000:]]}
    out["exit"] = proc.returncode
    out["ok"] = bool(out.get("ok")) and proc.returncode == 0
    return out


def count_postings(database_url: str) -> int:
    import sqlalchemy as sa

    from api.extensions import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM ledger_transactions")).scalar_one()
    finally:
        engine.dispose()


def _merged(counters) -> dict:
    out: dict[str, int] = {}
    for counter in counters:
        for key, n in counter.items():
            out[key] = out.get(key, 0) + n
    return out


# ---------------------------------------------------------------- the run

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the ledger and the partner API against PostgreSQL.")
    parser.add_argument("--pg-host", default=os.environ.get("BENCH_PG_HOST", "127.0.0.1"))
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("BENCH_PG_PORT", "5432")))
    parser.add_argument("--pg-user", default=os.environ.get("BENCH_PG_USER", "postgres"))
    parser.add_argument("--database", default="alliance_bench", help="the platform's database (recreated)")
    parser.add_argument("--ceiling-database", default="pgbench_ceiling", help="pgbench's database (recreated)")
    parser.add_argument("--database-url", help="run the platform on this URL instead (e.g. SQLite for a smoke run)")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=15, help="length of each pgbench pass")
    parser.add_argument("--pass-seconds", type=float, default=5,
                        help="length of each ledger and API pass (spread/hot and earn/trivial alternate)")
    parser.add_argument("--subject-passes", type=int, default=3,
                        help="ledger and API passes per figure; the median pass is reported")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each ledger/API pass")
    parser.add_argument("--passes", type=int, default=3, help="pgbench passes per client count")
    parser.add_argument("--scale", type=int, default=ceiling.SCALE, help="pgbench scale factor")
    parser.add_argument("--warmup-ops", type=int, default=ledger_load.WARMUP_OPS,
                        help="unmeasured operations per ledger worker before each pass")
    parser.add_argument("--workers", default="4,16", help="ledger worker counts")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: ceiling, ledger, api")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument("--results-dir", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks.md"),
                        help="where to write the table ('' to skip)")
    parser.add_argument("--keep", action="store_true", help="keep the databases after the run")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    pg = {"host": args.pg_host, "port": args.pg_port, "user": args.pg_user}
    workers = [int(w) for w in args.workers.split(",") if w]
    database_url = args.database_url or (
        f"postgresql+psycopg://{args.pg_user}@{args.pg_host}:{args.pg_port}/{args.database}")
    on_pg = database_url.startswith("postgresql")
    os.makedirs(args.results_dir, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, dict] = {}
    notes: list[str] = []

    facts = machine_facts(**pg, with_pg=on_pg or "ceiling" not in skip)
    log("== machine: " + "; ".join(f"{k}: {v}" for k, v in facts.items()))

    if "ceiling" not in skip:
        if ceiling.pgbench_path() is None:
            raise SystemExit("pgbench not found (PostgreSQL client tools); run with --skip ceiling")
        log(f"== ceiling: pgbench -i -s {args.scale}, then TPC-B-like passes of {args.seconds:g}s")
        recreate_database(args.ceiling_database, **pg)
        ceiling.initialise(args.ceiling_database, scale=args.scale, **pg)
        facts["pgbench"] = (f"scale {args.scale}, built-in tpcb-like script, simple protocol, -j {os.cpu_count()}; "
                            f"one {int(args.seconds)}s warm-up pass thrown away, median of {args.passes}")
        measured = ceiling.measure(args.ceiling_database, clients=sorted(set(workers) | {args.connections}),
                                   passes=args.passes, seconds=int(args.seconds),
                                   warmup_seconds=int(args.seconds), log=log, **pg)
        for clients, row in measured.items():
            results[f"pgbench_{clients}"] = row
        if not args.keep:
            drop_database(args.ceiling_database, **pg)

    if on_pg and not args.database_url:
        recreate_database(args.database, **pg)
    log(f"== seeding {args.members} members, three tenants, one client each")
    migrate(database_url)
    plan = seed(database_url, members=args.members)
    plan_path = os.path.join(args.results_dir, "plan.json")
    plan.dump(plan_path)
    opened = opening_balances(database_url, plan, points=OPENING_POINTS)
    log(f"  {opened} opening earns of {OPENING_POINTS} points written")

    if "ledger" not in skip:
        for n in workers:
            phases = [(mode, args.pass_seconds) for _ in range(args.subject_passes) for mode in ("spread", "hot")]
            passes = ledger_load.run(plan_path, workers=n, phases=phases, warmup=args.warmup,
                                     warmup_ops=args.warmup_ops, seed=n)
            for mode in ("spread", "hot"):
                row = median_pass([p for p in passes if p["mode"] == mode])
                results[f"ledger_{mode}_{n}"] = row
                log(f"== ledger {mode}, {n} workers: {row['throughput']:.0f} postings/s (passes {row['passes']}), "
                    f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, declined {row['declined']}, "
                    f"mix {row['kinds']}")

    if "api" not in skip:
        redis_url = _redis_url(args.redis_url)
        if args.redis_url and not redis_url:
            notes.append("Redis did not answer: the rate limiter kept its counters in process memory.")
        facts["rate limits"] = f"Flask-Limiter in {'Redis' if redis_url else 'process memory'}, limit lifted"
        server_log = os.path.join(args.results_dir, "gunicorn.log")
        with api_load.gunicorn(database_url, log_path=server_log, redis_url=redis_url) as url:
            passes: dict[str, list[dict]] = {"earn": [], "trivial": []}
            for i in range(args.subject_passes):
                for scenario in ("earn", "trivial"):
                    passes[scenario].append(api_load.load(
                        url, scenario=scenario, connections=args.connections, duration=args.pass_seconds,
                        warmup=max(args.warmup, 1), plan_path=plan_path, seed=i + 1))
        for scenario, rows in passes.items():
            row = median_pass(rows)
            row["statuses"] = _merged(r["statuses"] for r in rows)
            row["failures"] = sum(r["failures"] for r in rows)
            row["errors"] = [e for r in rows for e in r["errors"]][:20]
            results[f"api_{scenario}"] = row
            log(f"== API {scenario}, {args.connections} connections: {row['throughput']:.0f} req/s "
                f"(passes {row['passes']}), p50 {row['p50_ms'] or 0:.2f} ms, p99 {row['p99_ms'] or 0:.2f} ms, "
                f"statuses {row['statuses']}")
            if row["failures"] or row["errors"]:
                notes.append(f"API {scenario}: {row['failures']} non-2xx answers, errors {row['errors'][:3]}")

    log("== flask ledger verify")
    verify = verify_books(database_url)
    verify["postings"] = count_postings(database_url)
    log(f"  {'clean' if verify['ok'] else 'FAULTS'}: {verify['postings']} transactions; "
        f"faults {verify.get('faults', [])[:5]}")

    facts["finished"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts["run took"] = f"{time.perf_counter() - started:.0f} s"
    facts["load average at end"] = _loadavg()
    with open(os.path.join(args.results_dir, "results.json"), "w", encoding="utf-8") as fh:
        json.dump({"facts": facts, "results": {k: {kk: vv for kk, vv in v.items()} for k, v in results.items()},
                   "verify": verify, "notes": notes}, fh, indent=1, default=str)
    print()
    print(report.table(results))
    print()
    print(report.goals_markdown(results))
    if args.docs:
        report.write_docs(args.docs, report.results_markdown(results, facts, verify, notes), DOC_TEMPLATE)
        log(f"\nwrote {os.path.relpath(args.docs, ROOT)}")
    if on_pg and not args.database_url and not args.keep:
        drop_database(args.database, **pg)
    return 0 if verify["ok"] else 1


DOC_TEMPLATE = """# Benchmarks

How fast the platform posts points, next to the fastest the same PostgreSQL server does on the
same machine in the same run. Run it with `make bench` (about five minutes).

""" + report.START + "\n" + report.END + "\n"


if __name__ == "__main__":
    sys.exit(main())

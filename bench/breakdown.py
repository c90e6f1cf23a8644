"""Where a posting's time goes, in one process: ``python -m bench.breakdown`` (docs/benchmarks.md quotes it).

Seeds ``alliance_bench`` (recreated, then dropped), then for each ledger operation and for the API
earn (through the Flask test client, no server) prints the statements sent per operation, the
process CPU per operation, and a cProfile breakdown of the mix by package.
"""
from __future__ import annotations

import argparse
import base64
import collections
import cProfile
import logging
import os
import pstats
import random
import tempfile
import time

import sqlalchemy as sa

from bench import ledger_load
from bench.run import drop_database, recreate_database
from bench.seed import migrate, opening_balances, seed

BUCKETS = (("sqlalchemy/orm", "SQLAlchemy ORM (session, unit of work, loading)"),
           ("sqlalchemy/sql", "SQLAlchemy SQL (statements, cache keys, compiling)"),
           ("sqlalchemy/engine", "SQLAlchemy engine and pool"), ("sqlalchemy/pool", "SQLAlchemy engine and pool"),
           ("sqlalchemy", "SQLAlchemy, other"), ("psycopg", "psycopg (driver; wall time includes I/O)"),
           ("/ledger/", "ledger, tenants, alliance code"), ("/tenants/", "ledger, tenants, alliance code"),
           ("/alliance/", "ledger, tenants, alliance code"), ("flask", "Flask, Werkzeug, smorest, webargs"),
           ("werkzeug", "Flask, Werkzeug, smorest, webargs"), ("webargs", "Flask, Werkzeug, smorest, webargs"),
           ("marshmallow", "Flask, Werkzeug, smorest, webargs"), ("authlib", "Authlib"),
           ("flask_limiter", "Flask-Limiter"), ("limits", "Flask-Limiter"))


def _bucket(path: str) -> str:
    for needle, name in BUCKETS:
        if needle in path:
            return name
    return "other (builtins, stdlib, api/)"


def _profile(fn, n: int) -> list[tuple[str, float]]:
    prof = cProfile.Profile()
    prof.enable()
    fn(n)
    prof.disable()
    totals: dict[str, float] = collections.Counter()
    for (path, _line, _name), (_cc, _nc, tottime, _ct, _callers) in pstats.Stats(prof).stats.items():
        totals[_bucket(path)] += tottime
    whole = sum(totals.values()) or 1
    return [(name, value / whole) for name, value in sorted(totals.items(), key=lambda kv: -kv[1])]


class StatementCounter:
    def __init__(self, engine: sa.Engine):
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._hit)

    def _hit(self, *args) -> None:
        self.count += 1


def ledger_breakdown(plan_path: str, plan, n: int) -> None:
    worker = ledger_load._Worker(0, plan, "spread", 99)
    counter = StatementCounter(worker.engine)
    rng = random.Random(5)
    try:
        def member():
            return rng.choice(plan.member_ids)

        tenant = plan.tenant_ids[0]
        ops = {
            "earn": lambda: worker.earn(tenant, member(), 50),
            "redeem": lambda: worker.redeem(tenant, member(), 5),
            "hold + capture": lambda: worker.settle(tenant, worker.hold(tenant, member(), 10), 5),
            "hold + void": lambda: worker.settle(tenant, worker.hold(tenant, member(), 10), None),
        }
        print(f"{'ledger operation':<18} {'statements':>10} {'CPU ms':>8} {'wall ms':>8}")
        for name, op in ops.items():
            for _ in range(30):
                op()
            counter.count = 0
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(n):
                op()
            print(f"{name:<18} {counter.count / n:>10.1f} {(time.process_time() - cpu) / n * 1000:>8.2f} "
                  f"{(time.perf_counter() - wall) / n * 1000:>8.2f}")
        print("\nprofile of the mix (share of the profiled time; BEGIN/COMMIT and a pool pre-ping come on top):")
        for name, share in _profile(lambda k: [worker.one(lambda *a: None) for _ in range(k)], n):
            print(f"  {share * 100:5.1f}%  {name}")
    finally:
        worker.close()


def api_breakdown(plan, n: int) -> None:
    from api import create_app

    app = create_app({"DATABASE_URL": plan.database_url, "RATELIMIT_DEFAULT": "100000000 per minute",
                      "SEED_DEMO": False, "LOG_LEVEL": "INFO"})
    null = open(os.devnull, "w")  # noqa: SIM115 (closed below)
    handlers = logging.getLogger("alliance").handlers
    streams = [h.setStream(null) for h in handlers if isinstance(h, logging.StreamHandler)]
    counter = StatementCounter(app.extensions["database"].engine)
    try:
        client = app.test_client()
        creds = plan.clients[0]
        basic = base64.b64encode(f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
        token = client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "points:earn"},
                            headers={"Authorization": f"Basic {basic}"}).get_json()["access_token"]
        members = plan.pairwise[str(creds["tenant_id"])]
        seq = iter(range(10**9))

        def earn(k):
            for _ in range(k):
                i = next(seq)
                resp = client.post(f"/api/v1/members/{random.choice(members)}/earnings",
                                   json={"points": 10, "reference": f"b{i}"},
                                   headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"bd-{i}"})
                assert resp.status_code == 201, resp.get_json()

        def trivial(k):
            for _ in range(k):
                assert client.get("/healthz").status_code == 200

        print(f"\n{'API request':<18} {'statements':>10} {'CPU ms':>8} {'wall ms':>8}")
        for name, fn in (("earn", earn), ("GET /healthz", trivial)):
            fn(30)
            counter.count = 0
            cpu, wall = time.process_time(), time.perf_counter()
            fn(n)
            print(f"{name:<18} {counter.count / n:>10.1f} {(time.process_time() - cpu) / n * 1000:>8.2f} "
                  f"{(time.perf_counter() - wall) / n * 1000:>8.2f}")
        print("\nprofile of the API earn (in process, no server):")
        for name, share in _profile(earn, n):
            print(f"  {share * 100:5.1f}%  {name}")
    finally:
        for handler, stream in zip([h for h in handlers if isinstance(h, logging.StreamHandler)], streams,
                                   strict=True):
            handler.setStream(stream)
        null.close()
        app.extensions["database"].dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--database", default="alliance_bench")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("-n", type=int, default=300, help="operations per measurement")
    args = parser.parse_args(argv)
    pg = {"host": args.pg_host, "port": args.pg_port, "user": args.pg_user}
    url = f"postgresql+psycopg://{args.pg_user}@{args.pg_host}:{args.pg_port}/{args.database}"
    recreate_database(args.database, **pg)
    try:
        migrate(url)
        plan = seed(url, members=args.members)
        opening_balances(url, plan, points=100_000)
        with tempfile.TemporaryDirectory() as tmp:
            plan_path = os.path.join(tmp, "plan.json")
            plan.dump(plan_path)
            ledger_breakdown(plan_path, plan, args.n)
            api_breakdown(plan, args.n)
    finally:
        drop_database(args.database, **pg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

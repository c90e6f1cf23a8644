"""The demo alliance: `flask seed-demo` (run by `make run`) and `flask demo replay-cdnow | reconcile`."""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import os
import sys
import threading
import time

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup

from alliance import cdnow
from alliance import demo as scenario
from api.extensions import db_session
from tenants import services as tenancy
from tenants.isolation import platform_scope
from tenants.models import Alliance
from tenants.uow import run_unit

#: What the replaying partner systems may do.
REPLAY_SCOPES = "members:read members:write points:read points:earn points:redeem visits:write"
FILES = {"master": cdnow.MASTER_FILE, "sample": cdnow.SAMPLE_FILE}

demo_cli = AppGroup("demo", help="Replay the CDNOW purchase histories and reconcile the books.")


def _credentials_path() -> str:
    return os.path.join(current_app.instance_path, "demo-credentials.json")


def _issue_clients(session, tenants, scopes: str, name: str) -> dict[str, tuple[str, str]]:
    issued = {code: tenancy.create_client(session, tenant=t, scopes=scopes, name=name) for code, t in tenants.items()}
    return {code: (i.client.client_id, i.secret) for code, i in issued.items()}


def _showcase_member_id(session, alliance_code: str, tenant_code: str) -> str | None:
    """The tenant's pairwise id of the member with the most points still valid today."""
    from alliance.models import MemberLink
    from ledger.models import Lot
    from tenants.db import utcnow

    with platform_scope(session):
        tenant = tenancy.get_tenant(session, alliance_code=alliance_code, code=tenant_code)
        return session.scalar(
            sa.select(MemberLink.pairwise_id).join(Lot, Lot.member_id == MemberLink.member_id)
            .where(MemberLink.tenant_id == tenant.id, Lot.remaining > 0, Lot.expires_at > utcnow())
            .group_by(MemberLink.pairwise_id).order_by(sa.func.sum(Lot.remaining).desc(), MemberLink.pairwise_id)
            .limit(1))


def _banner(info: dict) -> str:
    base = "http://127.0.0.1:5000"
    client_id, secret = info["client_id"], info["client_secret"]
    take = (f"TOKEN=$(curl -s -u '{client_id}:{secret}' -d grant_type=client_credentials {base}/oauth/token"
            " | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')")
    lines = [
        f"Demo alliance {info['alliance']!r}: {info['members']} members, {info['purchases']} purchases "
        f"replayed from data/cdnow/CDNOW_sample.txt (dates moved {info.get('shift_years', 0)} years forward).",
        f"Browse the partner API: {base}/api/docs    health: {base}/readyz",
        f"Credentials of the demo partner {info['tenant']!r} are in {info['path']}. Try:",
        f"  {take}",
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/transactions?limit=3'",
    ]
    if info.get("member_id"):
        lines.append(f"  curl -s -H \"Authorization: Bearer $TOKEN\" {base}/api/v1/members/{info['member_id']}/balance")
    return "\n".join(lines)


def register(app: Flask) -> None:
    @app.cli.command("seed-demo")
    @click.option("--file", "path", default=cdnow.SAMPLE_FILE, show_default=True, help="a CDNOW file to seed from")
    def seed_demo(path):
        """Seed the demo alliance from the CDNOW sample when the database is empty."""
        session = db_session()
        cred_path = _credentials_path()
        if not current_app.config["SEED_DEMO"]:
            click.echo("SEED_DEMO is off: not seeding.")
            return
        with platform_scope(session):
            empty = session.scalar(sa.select(sa.func.count()).select_from(Alliance)) == 0
        if not empty:
            if os.path.exists(cred_path):
                with open(cred_path, encoding="utf-8") as fh:
                    click.echo(_banner(json.load(fh)))
            else:
                click.echo("The database holds data already: not seeding the demo alliance.")
            return
        started = time.monotonic()
        # Moved forward by whole years, so that the newest points are still valid today.
        shift = cdnow.demo_shift(dt.date.today())
        purchases = cdnow.load(path, shift_years=shift)
        scenic = cdnow.PARTNERS[0].code

        def work(s):
            scenario.seed(s, purchases)
            _, tenants = scenario.ensure_alliance(s)
            from tenants.services import SCOPES

            return _issue_clients(s, tenants, " ".join(SCOPES), "demo")

        with platform_scope(session):
            creds = run_unit(session, work)
        info = {"alliance": cdnow.DEMO.code, "tenant": scenic, "client_id": creds[scenic][0],
                "client_secret": creds[scenic][1], "members": len({p.customer for p in purchases}),
                "purchases": len(purchases), "shift_years": shift, "member_id": _showcase_member_id(session, cdnow.DEMO.code, scenic),
                "path": cred_path, "partners": {code: {"client_id": c, "client_secret": s}
                                                for code, (c, s) in creds.items()}}
        os.makedirs(current_app.instance_path, exist_ok=True)
        with open(cred_path, "w", encoding="utf-8") as fh:
            json.dump(info, fh, ensure_ascii=False, indent=2)
        os.chmod(cred_path, 0o600)
        click.echo(f"Seeded in {time.monotonic() - started:.1f}s.")
        click.echo(_banner(info))

    app.cli.add_command(demo_cli)


def _stop(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(2)


def _purchases(which: str, customers: int | None):
    """Load the CDNOW file named (master, sample or a path); stop with a message when it is no such file."""
    path = FILES.get(which, which)
    if not os.path.isfile(path):
        _stop(f"no such file: {path} (use master, sample or a path to a CDNOW file)")
    try:
        purchases = cdnow.load(path, customers=customers)
    except (ValueError, UnicodeDecodeError) as exc:
        _stop(f"{path} is not a CDNOW file: {exc}")
    if not purchases:
        _stop(f"{path} holds no CDNOW purchases")
    return purchases, path


def _has_postings(alliance_code: str) -> bool:
    from ledger.models import Transaction

    session = db_session()
    with platform_scope(session):
        alliance = session.scalar(sa.select(Alliance).where(Alliance.code == alliance_code))
        found = alliance is not None and session.scalar(
            sa.select(Transaction.id).where(Transaction.alliance_id == alliance.id).limit(1)) is not None
    session.rollback()
    return found


def _journal_path(alliance_code: str) -> str:
    return os.path.join(current_app.instance_path, f"replay-{alliance_code}.jsonl")


def _replay_clients(alliance_code: str) -> dict[str, tuple[str, str]]:
    """The partners' API clients of earlier runs (kept in instance/), or new ones."""
    from tenants.models import ApiClient

    path = os.path.join(current_app.instance_path, f"replay-{alliance_code}-clients.json")
    session = db_session()
    with platform_scope(session):
        _, tenants = run_unit(session, lambda s: scenario.ensure_alliance(s, code=alliance_code))
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                kept = {code: tuple(pair) for code, pair in json.load(fh).items()}
            alive = set(session.scalars(sa.select(ApiClient.client_id).where(
                ApiClient.client_id.in_([c for c, _ in kept.values()]), ApiClient.revoked_at.is_(None),
                ApiClient.tenant_id.in_([t.id for t in tenants.values()]))))
            session.rollback()
            if set(kept) == set(tenants) and all(c in alive for c, _ in kept.values()):
                return kept
        creds = run_unit(session, lambda s: _issue_clients(s, tenants, REPLAY_SCOPES, "cdnow-replay"))
    os.makedirs(current_app.instance_path, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(creds, fh)
    os.chmod(path, 0o600)
    return creds


def _expire_in_db(alliance_code: str, spent: dict | None = None):
    """The operator's month-end expiry run, in the database; ``spent["seconds"]`` adds up its time."""
    from api.cli import expire_in_batches

    def expire(month_end):
        started = time.monotonic()
        session = db_session()
        with platform_scope(session):
            alliance_id = tenancy.get_alliance(session, alliance_code).id
        expire_in_batches(session, as_of=cdnow.end_of_day(month_end), alliance_id=alliance_id)
        if spent is not None:
            spent["seconds"] = spent.get("seconds", 0.0) + time.monotonic() - started

    return expire


def _api_balances(partners, member_ids: dict[str, tuple], purchases, connections: int) -> dict[str, int]:
    """Each member's points through their first partner's API, as of the end of the last month."""
    as_of = cdnow.end_of_day(cdnow.months(purchases)[-1])

    def one(customer):
        partner, member_id = member_ids[customer]
        return customer, partners.balance(partner, member_id, as_of)["balance"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=connections) as pool:
        return dict(pool.map(one, sorted(member_ids)))


def _report(purchases, alliance_code: str, api_balances: dict[str, int] | None) -> scenario.Report:
    session = db_session()
    recorded = scenario.books(session, alliance_code=alliance_code)
    session.rollback()
    return scenario.reconcile(cdnow.expected(purchases), recorded, api_balances=api_balances,
                              summary=cdnow.published_summary(), sample=cdnow.sample_ids())


def _verify() -> list[str]:
    from ledger.verify import verify

    session = db_session()
    with platform_scope(session):
        faults = verify(session)
    session.rollback()
    return faults


@demo_cli.command("replay-cdnow")
@click.option("--url", default="http://127.0.0.1:5000", show_default=True, help="the running server")
@click.option("--file", "which", default="master", show_default=True,
              help="master (69,659 purchases), sample (6,919) or a path to a CDNOW file")
@click.option("--customers", type=click.IntRange(min=1), default=None, help="only the first N customers")
@click.option("--alliance", "alliance_code", default="yunxiu-cdnow", show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--journal", "journal_path", default=None,
              help="where decisions and finished months are kept (default instance/replay-ALLIANCE.jsonl)")
@click.option("--fresh", is_flag=True, help="forget an earlier run's journal")
@click.option("--progress/--no-progress", default=None, help="a progress bar (default: on a terminal)")
def replay_cdnow(url, which, customers, alliance_code, concurrency, journal_path, fresh, progress):
    """Act as the three partners' systems: enrol, earn and redeem every purchase over HTTP, then reconcile.

    Run it with the server's DATABASE_URL: month-end expiry is the operator's job, done here in
    the database at each month's end, as `flask ledger expire` would.
    """
    from api.replay import FileJournal, HttpPartners, ReplayError, check_server

    purchases, path = _purchases(which, customers)
    journal_path = journal_path or _journal_path(alliance_code)
    run = {"alliance": alliance_code, "file": os.path.basename(path), "customers": customers}
    try:
        check_server(url)
        FileJournal.check(journal_path, run=run, fresh=fresh)
    except ReplayError as exc:
        _stop(f"replay refused: {exc}")
    if fresh and _has_postings(alliance_code):
        _stop(f"replay refused: alliance {alliance_code!r} has postings already; --fresh would take its "
              "redemption decisions anew on a changed balance. Replay into a new --alliance.")
    creds = _replay_clients(alliance_code)
    lock = threading.Lock()
    if progress is None:
        progress = sys.stderr.isatty()
    bar = click.progressbar(length=len(purchases), label="purchases", file=sys.stderr).__enter__() \
        if progress else None

    def tick():
        if bar is not None:
            with lock:
                bar.update(1)

    expiry: dict = {}
    partners = HttpPartners(url, creds, connections=concurrency, expire=_expire_in_db(alliance_code, expiry),
                            on_purchase=tick)
    started = time.monotonic()
    try:
        journal = FileJournal(journal_path, run=run, fresh=fresh)
        if bar is not None:
            bar.update(sum(1 for p in purchases if journal.month_done(cdnow.month_end(p.day))))

        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
            def run_members(work, batches):
                list(pool.map(work, batches))

            member_ids = scenario.play(purchases, partners, journal=journal, run_members=run_members)
        if bar is not None:
            bar.render_finish()
        elapsed = time.monotonic() - started
        posted = partners.requests
        api_balances = _api_balances(partners, member_ids, purchases, concurrency)
    except ReplayError as exc:
        _stop(f"replay failed: {exc} (run the same command again to resume)")
    finally:
        partners.close()
    report = _report(purchases, alliance_code, api_balances)
    faults = _verify()
    click.echo(report.table())
    click.echo(f"flask ledger verify: {'clean' if not faults else f'{len(faults)} faults'}")
    click.echo(json.dumps({"purchases": len(purchases), "customers": len(member_ids), "requests": posted,
                           "seconds": round(elapsed, 1), "expiry_seconds": round(expiry.get("seconds", 0.0), 1),
                           "requests_per_second": round(posted / elapsed, 1)
                           if elapsed else None, "reconciled": report.ok, "verify_clean": not faults}))
    for line in report.mismatches + faults[:20]:
        click.echo(line, err=True)
    if not report.ok or faults:
        sys.exit(1)


@demo_cli.command("reconcile")
@click.option("--file", "which", default=None, help="master, sample or a path (default: the replay's own)")
@click.option("--customers", type=click.IntRange(min=1), default=None, help="(default: the replay's own)")
@click.option("--alliance", "alliance_code", default="yunxiu-cdnow", show_default=True)
def reconcile(which, customers, alliance_code):
    """Compare the books of a replayed alliance with the file, without calling the API."""
    from tenants.errors import AllianceNotFound

    journal = _journal_path(alliance_code)
    if which is None and os.path.exists(journal):
        with open(journal, encoding="utf-8") as fh:
            run = json.loads(fh.readline())["run"]
        which, customers = os.path.join(cdnow.DATA_DIR, run["file"]), customers or run["customers"]
    purchases, _ = _purchases(which or "master", customers)
    try:
        report = _report(purchases, alliance_code, None)
    except AllianceNotFound:
        _stop(f"no alliance {alliance_code!r}: replay into it first (flask demo replay-cdnow)")
    click.echo(report.table())
    for line in report.mismatches:
        click.echo(line, err=True)
    if not report.ok:
        sys.exit(1)

"""Operator commands; each prints one JSON object."""
from __future__ import annotations

import datetime as dt
import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup

from api.extensions import db_session
from tenants.isolation import platform_scope
from tenants.uow import run_unit


def _emit(obj: dict) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


def _fail(code: str, message: str) -> None:
    click.echo(json.dumps({"error": code, "detail": message}, ensure_ascii=False), err=True)
    sys.exit(2)


def _run(work):
    """Run an operator use case platform-wide in one unit of work; errors exit 2 with JSON."""
    import sqlalchemy.exc as sa_exc

    from alliance.errors import AllianceError
    from ledger.errors import LedgerError
    from tenants.errors import TenancyError

    session = db_session()
    try:
        with platform_scope(session):
            return run_unit(session, work)
    except (TenancyError, AllianceError, LedgerError) as exc:
        _fail(getattr(exc, "code", "error"), str(exc))
    except sa_exc.DBAPIError as exc:  # a constraint the services did not foresee: still one JSON object
        _fail("database_refused", str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__)


def _run_batches(work):
    """Run work that commits its own batches; domain errors exit 2 with JSON, like _run."""
    from alliance.errors import AllianceError
    from ledger.errors import LedgerError
    from tenants.errors import TenancyError

    try:
        return work(db_session())
    except (TenancyError, AllianceError, LedgerError) as exc:
        _fail(getattr(exc, "code", "error"), str(exc))


alliances = AppGroup("alliances", help="Create and list alliances.")
tenants_cli = AppGroup("tenants", help="Create tenants and change their status.")
clients = AppGroup("clients", help="Create API clients for a tenant.")
members = AppGroup("members", help="Operator actions on members.")
staff = AppGroup("staff", help="Create portal users for a tenant or the alliance operator.")
ledger_cli = AppGroup("ledger", help="Verify the books and expire due points and holds.")


@alliances.command("create")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--timezone", default="Asia/Shanghai", show_default=True)
@click.option("--currency", default="CNY", show_default=True)
@click.option("--expiry-months", type=click.IntRange(min=1, max=1200), default=None,
              help="points expire N months after the earn, at that day's end; never without it")
@click.option("--point-value", type=click.IntRange(min=0, max=1_000_000), default=1, show_default=True,
              help="value of one point in minor units, for clearing")
def create_alliance(code, name, timezone, currency, expiry_months, point_value):
    from tenants.services import create_alliance as create

    a = _run(lambda s: create(s, code=code, name=name, timezone=timezone, currency=currency,
                              expiry_months=expiry_months, point_value_minor=point_value))
    _emit({"id": a.id, "code": a.code, "name": a.name, "timezone": a.timezone, "currency": a.currency,
           "expiry_months": a.expiry_months, "point_value_minor": a.point_value_minor})


@tenants_cli.command("create")
@click.option("--alliance", "alliance_code", required=True)
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--kind", required=True,
              type=click.Choice(["scenic_area", "homestay", "hotel", "brand", "agency", "other"]))
@click.option("--earn-points", type=click.IntRange(min=0, max=1_000_000), default=1, show_default=True)
@click.option("--earn-per-minor", type=click.IntRange(min=1, max=1_000_000_000), default=100, show_default=True,
              help="earn rule: EARN_POINTS points for every EARN_PER_MINOR minor units (fen)")
@click.option("--rounding", type=click.Choice(["floor", "half_up", "ceil"]), default="floor", show_default=True)
def create_tenant(alliance_code, code, name, kind, earn_points, earn_per_minor, rounding):
    from tenants.services import create_tenant as create

    t = _run(lambda s: create(s, alliance_code=alliance_code, code=code, name=name, kind=kind,
                              earn_points=earn_points, earn_per_minor=earn_per_minor, earn_rounding=rounding))
    _emit({"id": t.id, "alliance": alliance_code, "code": t.code, "name": t.name, "kind": t.kind,
           "status": t.status, "earn_points": t.earn_points, "earn_per_minor": t.earn_per_minor,
           "earn_rounding": t.earn_rounding})


@tenants_cli.command("set-status")
@click.option("--alliance", "alliance_code", required=True)
@click.option("--code", required=True)
@click.option("--status", required=True, type=click.Choice(["active", "suspended"]))
def tenant_status(alliance_code, code, status):
    from tenants.services import set_tenant_status

    t = _run(lambda s: set_tenant_status(s, alliance_code=alliance_code, code=code, status=status))
    _emit({"code": t.code, "status": t.status})


@staff.command("create")
@click.option("--alliance", "alliance_code", required=True)
@click.option("--tenant", "tenant_code", default=None, help="the tenant's code; without it, the alliance operator")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["owner", "admin", "operator", "analyst"]))
@click.option("--password", prompt=True, hide_input=True, help="prompted for when not given")
def create_staff(alliance_code, tenant_code, email, role, password):
    from tenants.services import create_staff_user

    user = _run(lambda s: create_staff_user(s, alliance_code=alliance_code, tenant_code=tenant_code, email=email,
                                            password=password, role=role))
    _emit({"id": user.id, "alliance": alliance_code, "tenant": tenant_code, "email": user.email, "role": user.role})


@clients.command("create")
@click.option("--alliance", "alliance_code", required=True)
@click.option("--tenant", "tenant_code", required=True)
@click.option("--scopes", required=True, help='space-separated, e.g. "members:read points:earn"')
@click.option("--name", default="")
def create_client(alliance_code, tenant_code, scopes, name):
    from tenants.services import create_client as create
    from tenants.services import get_tenant

    def work(s):
        return create(s, tenant=get_tenant(s, alliance_code=alliance_code, code=tenant_code), scopes=scopes, name=name)

    issued = _run(work)
    _emit({"client_id": issued.client.client_id, "client_secret": issued.secret,
           "tenant": tenant_code, "scopes": issued.client.scopes})


@members.command("merge")
@click.option("--alliance", "alliance_code", required=True)
@click.option("--from", "from_no", required=True, help="member_no merged away")
@click.option("--into", "into_no", required=True, help="member_no that survives")
@click.option("--actor", default="operator", show_default=True)
def merge(alliance_code, from_no, into_no, actor):
    from alliance.services import merge_members
    from tenants.services import get_alliance

    def work(s):
        alliance = get_alliance(s, alliance_code)
        return merge_members(s, alliance_id=alliance.id, from_member_no=from_no, into_member_no=into_no, actor=actor)

    record = _run(work)
    _emit({"merged": from_no, "into": into_no, "merge_id": getattr(record, "id", None)})


@ledger_cli.command("verify")
def verify():
    from ledger.verify import verify as run_verify

    session = db_session()
    with platform_scope(session):
        faults = run_verify(session)
    _emit({"ok": not faults, "faults": faults})
    if faults:
        sys.exit(1)


EXPIRY_BATCH = 500


def expire_in_batches(session, *, as_of: dt.datetime, alliance_id: int | None = None) -> dict[str, int]:
    """Expire what is due in units of work of EXPIRY_BATCH members: locks are held briefly, and a
    crash loses at most one batch (the next run picks it up)."""
    from ledger.services import due_members, expire_due

    totals = {"members": 0, "holds": 0, "lots": 0, "points": 0}
    with platform_scope(session):
        due = due_members(session, as_of=as_of, alliance_id=alliance_id)
        session.rollback()
        for start in range(0, len(due), EXPIRY_BATCH):
            batch = due[start:start + EXPIRY_BATCH]
            done = run_unit(session, lambda s, batch=batch: expire_due(s, as_of=as_of, members=batch))
            for key, value in done.items():
                totals[key] += value
    return totals


@ledger_cli.command("expire")
@click.option("--as-of", "as_of", default=None,
              help="YYYY-MM-DD: expire what is due by the end of that day in each alliance's timezone")
def expire(as_of):
    import zoneinfo

    import sqlalchemy as sa

    from tenants.models import Alliance

    if not as_of:
        instant = dt.datetime.now(dt.timezone.utc)
        _emit({"as_of": instant.isoformat(), **_run_batches(lambda s: expire_in_batches(s, as_of=instant))})
        return
    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError:
        _fail("validation_error", "--as-of must be YYYY-MM-DD")

    def work(s):
        totals = {"members": 0, "holds": 0, "lots": 0, "points": 0}
        cutoffs = {}
        with platform_scope(s):
            alliances = [(a.id, a.code, a.timezone) for a in s.scalars(sa.select(Alliance).order_by(Alliance.id))]
        for alliance_id, code, timezone in alliances:
            try:
                cutoff = dt.datetime.combine(day, dt.time.max, tzinfo=zoneinfo.ZoneInfo(timezone))
                cutoff = cutoff.astimezone(dt.timezone.utc)
            except OverflowError:
                cutoff = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
            cutoffs[code] = cutoff.isoformat()
            for key, value in expire_in_batches(s, as_of=cutoff, alliance_id=alliance_id).items():
                totals[key] += value
        return {"as_of": day.isoformat(), "cutoffs": cutoffs, **totals}

    _emit(_run_batches(work))


def register(app: Flask) -> None:
    for group in (alliances, tenants_cli, clients, staff, members, ledger_cli):
        app.cli.add_command(group)
    from api import demo

    demo.register(app)

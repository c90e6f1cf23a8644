"""Build the benchmark database: migrations, one alliance, three tenants, members with consent, clients."""
from __future__ import annotations

import dataclasses
import json
import secrets
import uuid

import sqlalchemy as sa
import sqlalchemy.orm as so

from alliance.models import ConsentEvent, Member, MemberLink
from ledger import rules
from ledger.models import Account, Entry, Lot, Transaction
from tenants.db import utcnow
from tenants.isolation import platform_scope

ALLIANCE = "bench"
TENANTS = (("summit", "scenic_area"), ("stay", "homestay"), ("tea", "brand"))
SCOPES = "points:earn points:redeem points:hold points:read"


@dataclasses.dataclass
class Plan:
    """What the workers and the load generator need to know about the seeded data."""

    database_url: str
    alliance_id: int
    expiry_months: int | None
    timezone: str
    tenant_ids: list[int]
    member_ids: list[int]
    #: tenant id (as str, JSON keys) -> pairwise ids in member_ids order.
    pairwise: dict[str, list[str]]
    #: one client per tenant: {"tenant_id", "client_id", "client_secret"}.
    clients: list[dict]

    def dump(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(dataclasses.asdict(self), fh)

    @classmethod
    def load(cls, path: str) -> Plan:
        with open(path, encoding="utf-8") as fh:
            return cls(**json.load(fh))


def migrate(database_url: str) -> None:
    """Reset the database and build the schema with the migrations, as production does."""
    from flask_migrate import upgrade

    from api import MIGRATIONS_DIR, create_app
    from api.extensions import make_engine

    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
                conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()
    app = create_app({"DATABASE_URL": database_url, "SEED_DEMO": False, "LOG_LEVEL": "WARNING"})
    try:
        with app.app_context():
            upgrade(directory=MIGRATIONS_DIR)
    finally:
        app.extensions["database"].dispose()


def seed(database_url: str, *, members: int, expiry_months: int | None = 12) -> Plan:
    """Create the alliance, its tenants and clients, and ``members`` members linked to every tenant."""
    from api.extensions import make_engine
    from tenants import services as tenancy

    engine = make_engine(database_url)
    try:
        with so.Session(engine, expire_on_commit=False) as session, platform_scope(session):
            alliance = tenancy.create_alliance(session, code=ALLIANCE, name="Benchmark alliance",
                                               expiry_months=expiry_months)
            tenants = [tenancy.create_tenant(session, alliance_code=ALLIANCE, code=code, name=code.title(), kind=kind)
                       for code, kind in TENANTS]
            clients = []
            for tenant in tenants:
                issued = tenancy.create_client(session, tenant=tenant, scopes=SCOPES, name="bench")
                clients.append({"tenant_id": tenant.id, "client_id": issued.client.client_id,
                                "client_secret": issued.secret})
            now = utcnow()
            session.execute(sa.insert(Member), [
                {"alliance_id": alliance.id, "member_no": f"9{i:011d}", "name": f"Member {i}", "status": "active",
                 "created_at": now} for i in range(members)])
            member_ids = list(session.scalars(sa.select(Member.id).where(Member.alliance_id == alliance.id)
                                              .order_by(Member.id)))
            pairwise: dict[str, list[str]] = {}
            for tenant in tenants:
                ids = ["mbr_" + secrets.token_urlsafe(16)[:22] for _ in member_ids]
                pairwise[str(tenant.id)] = ids
                session.execute(sa.insert(MemberLink), [
                    {"alliance_id": alliance.id, "member_id": m, "tenant_id": tenant.id, "pairwise_id": p,
                     "created_at": now} for m, p in zip(member_ids, ids, strict=True)])
                session.execute(sa.insert(ConsentEvent), [
                    {"alliance_id": alliance.id, "member_id": m, "tenant_id": tenant.id, "purpose": "loyalty",
                     "granted": True, "channel": "bench", "terms_version": "2026-01", "captured_at": now,
                     "recorded_at": now} for m in member_ids])
            session.commit()
            if engine.dialect.name == "postgresql":
                session.connection().exec_driver_sql("ANALYZE")
                session.commit()
            return Plan(database_url=database_url, alliance_id=alliance.id, expiry_months=alliance.expiry_months,
                        timezone=alliance.timezone, tenant_ids=[t.id for t in tenants], member_ids=member_ids,
                        pairwise=pairwise, clients=clients)
    finally:
        engine.dispose()


def opening_balances(database_url: str, plan: Plan, *, points: int) -> int:
    """Give every member an opening earn of ``points``, written in bulk exactly as ``ledger.earn`` writes one.

    The accounts, the earn transaction with its two entries, and the lot are the rows an earn at a
    round-robin tenant makes (without an idempotency key); ``flask ledger verify`` checks them with
    everything else after the run.
    """
    from api.extensions import make_engine

    engine = make_engine(database_url)
    now = utcnow()
    expires_at = rules.lot_expiry(now, plan.expiry_months, plan.timezone)
    tenants = plan.tenant_ids
    try:
        with so.Session(engine) as session, platform_scope(session):
            session.execute(sa.insert(Account), [
                {"alliance_id": plan.alliance_id, "kind": "issued", "tenant_id": t, "owner_key": f"t:{t}",
                 "balance": 0, "version": 1} for t in tenants])
            session.execute(sa.insert(Account), [
                {"alliance_id": plan.alliance_id, "kind": kind, "member_id": m, "owner_key": f"m:{m}",
                 "balance": points if kind == "available" else 0, "version": 1}
                for m in plan.member_ids for kind in ("available", "held", "shortfall")])
            ids = {(kind, owner): id_ for id_, kind, owner in session.execute(
                sa.select(Account.id, Account.kind, Account.owner_key)
                .where(Account.alliance_id == plan.alliance_id, Account.kind.in_(("issued", "available"))))}
            txs, entries, lots = [], [], []
            for i, member in enumerate(plan.member_ids):
                tenant = tenants[i % len(tenants)]
                tx_id = uuid.uuid4()
                txs.append({"id": tx_id, "alliance_id": plan.alliance_id, "tenant_id": tenant, "member_id": member,
                            "kind": "earn", "points": points, "member_delta": points, "reference": "opening",
                            "occurred_at": now, "posted_at": now, "description": "opening balance"})
                entries += [{"transaction_id": tx_id, "account_id": ids[("issued", f"t:{tenant}")], "amount": -points},
                            {"transaction_id": tx_id, "account_id": ids[("available", f"m:{member}")],
                             "amount": points}]
                lots.append({"alliance_id": plan.alliance_id, "member_id": member, "issuer_tenant_id": tenant,
                             "earn_transaction_id": tx_id, "points": points, "remaining": points,
                             "expires_at": expires_at, "created_at": now})
            session.execute(sa.insert(Transaction), txs)
            session.execute(sa.insert(Entry), entries)
            session.execute(sa.insert(Lot), lots)
            session.commit()
            if engine.dialect.name == "postgresql":
                session.connection().exec_driver_sql("ANALYZE")
                session.commit()
    finally:
        engine.dispose()
    return len(txs)

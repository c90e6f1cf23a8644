"""Ledger use cases. Each takes the session first, only flushes, and never commits.

Locking: an operation that checks or changes a member's balance first get-or-creates every
account it will touch, then locks that member's accounts (``SELECT ... FOR UPDATE`` ordered by
id) and re-reads what it checks under the lock. System accounts are never locked or updated:
their totals are derived by summing entries, so concurrent earns do not queue on a hot row.

Idempotency: with an ``idempotency_key`` the key row is inserted first; a replay with the same
fingerprint raises :class:`IdempotencyReplay` (``.record`` and ``.result`` = the original
Transaction or Hold), a different fingerprint raises :class:`IdempotencyKeyReused`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import postgresql, sqlite

from ledger import rules
from ledger.errors import (
    AlreadyReversed,
    CaptureExceedsHold,
    HoldAlreadyResolved,
    HoldExpired,
    HoldNotFound,
    IdempotencyKeyReused,
    IdempotencyReplay,
    InsufficientPoints,
    LedgerValidationError,
    NotReversible,
    ReversalExceedsOriginal,
    TransactionNotFound,
)
from ledger.models import MEMBER_KINDS, Account, Entry, Hold, IdempotencyKey, Lot, LotConsumption, Transaction
from tenants.db import utcnow
from tenants.isolation import platform_scope

PLATFORM = {"platform": True}
DEFAULT_HOLD_TTL = dt.timedelta(days=7)
REVERSIBLE_KINDS = ("earn", "redeem", "capture")


@dataclasses.dataclass(frozen=True)
class Balance:
    """A member's points: ``balance`` = booked available + held; shortfall is a debt (<= 0)."""

    member_id: int
    balance: int
    available: int
    held: int
    shortfall: int
    #: (expires_at, points) of lots with points remaining and an expiry date, soonest first.
    expiring: list[tuple[dt.datetime, int]]
    #: Points past their expiry at the ``as_of`` asked for, not yet removed by an expiry run.
    pending_expiry: int = 0


# --- small helpers ---------------------------------------------------------------------------

def _check_points(points: Any, name: str = "points") -> int:
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
        raise LedgerValidationError(f"{name} must be a positive whole number")
    return points


def _aware(value: dt.datetime | None, name: str) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise LedgerValidationError(f"{name} must include a timezone")
    return value


def _insert(session: so.Session, table):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(dialect)


def claim_idempotency_key(session: so.Session, *, tenant_id: int, key: str,
                          fingerprint: str | None) -> IdempotencyKey:
    """Insert the tenant's key (flushed) or raise IdempotencyReplay / IdempotencyKeyReused.

    On PostgreSQL a concurrent claim of the same key waits for the first to commit, then sees it.
    """
    if not key or len(key) > 255:
        raise LedgerValidationError("idempotency key must be 1-255 characters")
    fingerprint = fingerprint or ""
    session.flush()
    # One round trip for a new key: the INSERT returns the row as an entity; only a conflict reads it.
    stmt = (_insert(session, IdempotencyKey)
            .values(tenant_id=tenant_id, key=key, fingerprint=fingerprint, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
            .returning(IdempotencyKey))
    created = session.scalars(stmt, execution_options={"populate_existing": True}).one_or_none()
    if created is not None:
        return created
    record = session.execute(
        sa.select(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key)
        .execution_options(populate_existing=True, **PLATFORM)).scalar_one()
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    result = None
    if record.transaction_id is not None:
        result = _get(session, Transaction, record.transaction_id)
    elif record.hold_id is not None:
        result = _get(session, Hold, record.hold_id)
    raise IdempotencyReplay(record, result)


def _claim(session, tenant_id, key, fingerprint) -> IdempotencyKey | None:
    if key is None:
        return None
    return claim_idempotency_key(session, tenant_id=tenant_id, key=key, fingerprint=fingerprint)


def _get(session: so.Session, model, id_, *, tenant_id: int | None = None, lock: bool = False):
    stmt = sa.select(model).where(model.id == id_).execution_options(populate_existing=True, **PLATFORM)
    if tenant_id is not None:
        stmt = stmt.where(model.tenant_id == tenant_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def _owner_key(kind: str, member_id: int | None, tenant_id: int | None) -> str:
    return f"m:{member_id}" if kind in ("available", "held", "shortfall") else f"t:{tenant_id}"


def _account(session: so.Session, *, alliance_id: int, kind: str, member_id: int | None = None,
             tenant_id: int | None = None) -> Account:
    """Get or create one account, race-safe (INSERT ... ON CONFLICT DO NOTHING, then SELECT)."""
    owner = _owner_key(kind, member_id, tenant_id)
    stmt = sa.select(Account).where(Account.alliance_id == alliance_id, Account.kind == kind,
                                    Account.owner_key == owner)
    account = session.execute(stmt).scalar_one_or_none()
    if account is None:
        session.execute(
            _insert(session, Account.__table__)
            .values(alliance_id=alliance_id, kind=kind, member_id=member_id, tenant_id=tenant_id,
                    owner_key=owner, balance=0, version=1)
            .on_conflict_do_nothing(index_elements=["alliance_id", "kind", "owner_key"]))
        account = session.execute(stmt).scalar_one()
    return account


def _member_account_query(alliance_id: int, member_id: int):
    return (sa.select(Account).where(Account.alliance_id == alliance_id, Account.owner_key == f"m:{member_id}",
                                     Account.kind.in_(MEMBER_KINDS)).order_by(Account.id))


def _member_accounts(session: so.Session, alliance_id: int, member_id: int) -> dict[str, Account]:
    """Get the member's three accounts in one query, creating any that are missing."""
    found = {a.kind: a for a in session.execute(_member_account_query(alliance_id, member_id)).scalars()}
    for kind in MEMBER_KINDS:
        if kind not in found:
            found[kind] = _account(session, alliance_id=alliance_id, kind=kind, member_id=member_id)
    return {kind: found[kind] for kind in MEMBER_KINDS}


def _lock(session: so.Session, *accounts_by_member: dict[str, Account]) -> None:
    """Lock the given member accounts in id order and refresh their balances."""
    ids = sorted({a.id for accounts in accounts_by_member for a in accounts.values()})
    session.flush()
    session.execute(sa.select(Account).where(Account.id.in_(ids)).order_by(Account.id)
                    .with_for_update().execution_options(populate_existing=True)).all()


def _locked_member(session: so.Session, alliance_id: int, member_id: int) -> dict[str, Account]:
    """Lock the member's accounts (in id order) and return them fresh.

    A member's three accounts are created together, so they all exist or none do: one
    ``SELECT ... FOR UPDATE`` finds and locks them. For a new member nothing was locked, and the
    accounts are created first and locked after, as everywhere else.
    """
    session.flush()
    locked = {a.kind: a for a in session.execute(
        _member_account_query(alliance_id, member_id).with_for_update()
        .execution_options(populate_existing=True)).scalars()}
    if len(locked) == len(MEMBER_KINDS):
        return {kind: locked[kind] for kind in MEMBER_KINDS}
    accounts = _member_accounts(session, alliance_id, member_id)
    _lock(session, accounts)
    return accounts


def _new_tx(session: so.Session, *, alliance_id: int, tenant_id: int | None, member_id: int, kind: str,
            points: int, member_delta: int, now: dt.datetime, occurred_at: dt.datetime | None = None,
            reference=None, description=None, meta=None, reverses_id=None, hold_id=None,
            idempotency_key=None, tx_id: uuid.UUID | None = None) -> Transaction:
    tx = Transaction(id=tx_id or uuid.uuid4(), alliance_id=alliance_id, tenant_id=tenant_id, member_id=member_id,
                     kind=kind, points=points, member_delta=member_delta, reference=reference,
                     occurred_at=occurred_at or now, posted_at=now, description=description, meta=meta,
                     reverses_id=reverses_id, hold_id=hold_id, idempotency_key=idempotency_key, entries=[])
    session.add(tx)
    return tx


def _post(session: so.Session, tx: Transaction, legs: list[tuple[Account, int]]) -> None:
    """Add the entries of ``tx`` (merging legs per account), update cached member balances, flush."""
    totals: dict[int, int] = defaultdict(int)
    accounts: dict[int, Account] = {}
    for account, amount in legs:
        totals[account.id] += amount
        accounts[account.id] = account
    nonzero = [(accounts[i], amount) for i, amount in totals.items() if amount]
    if sum(amount for _, amount in nonzero) != 0:
        raise AssertionError(f"unbalanced transaction {tx.kind}: {nonzero}")
    if len(nonzero) < 2:
        raise AssertionError(f"transaction {tx.kind} needs two or more entries: {nonzero}")
    for account, amount in nonzero:
        if account.member_id is not None:
            account.balance += amount
            if account.kind in ("available", "held") and account.balance < 0:
                raise AssertionError(f"{account.kind} account {account.id} would go negative")
        tx.entries.append(Entry(account_id=account.id, amount=amount))
    session.flush()


def _consume(session: so.Session, tx: Transaction, lot: Lot, points: int) -> None:
    """Record ``points`` taken from (positive) or restored to (negative) ``lot`` by ``tx``."""
    if points:
        lot.remaining -= points
        session.add(LotConsumption(lot_id=lot.id, transaction_id=tx.id, points=points))


def _open_lots(session: so.Session, member_id: int) -> list[Lot]:
    session.flush()
    return list(session.execute(
        sa.select(Lot).where(Lot.member_id == member_id, Lot.remaining > 0)
        .execution_options(populate_existing=True)).scalars())


def _consume_fresh(session: so.Session, tx: Transaction, member_id: int, points: int,
                   first: list[Lot] = ()) -> None:
    """Consume ``points`` from the member's lots: ``first`` lots, then soonest-expiring first."""
    left = points
    for lot in first:
        take = min(left, lot.remaining)
        _consume(session, tx, lot, take)
        left -= take
    if left:
        for lot, take in rules.plan_consumption(_open_lots(session, member_id), left):
            _consume(session, tx, lot, take)


def _restore_consumption(session: so.Session, tx: Transaction, source_tx_ids: list[uuid.UUID],
                         points: int | None = None) -> int:
    """Give back to lots what ``source_tx_ids`` consumed and was not given back; last taken first.

    Only positive consumption rows of the sources count; earlier restorations are the negative
    rows of reversals of those sources. With ``points`` None everything is restored.
    """
    rows = session.execute(
        sa.select(LotConsumption.lot_id, LotConsumption.points, LotConsumption.id)
        .where(LotConsumption.transaction_id.in_(source_tx_ids), LotConsumption.points > 0)
        .order_by(LotConsumption.id.desc())).all()
    reversal_ids = session.execute(
        sa.select(Transaction.id).where(Transaction.reverses_id.in_(source_tx_ids))
        .execution_options(**PLATFORM)).scalars().all()
    restored: dict[int, int] = defaultdict(int)
    if reversal_ids:
        for lot_id, pts in session.execute(
                sa.select(LotConsumption.lot_id, LotConsumption.points)
                .where(LotConsumption.transaction_id.in_(reversal_ids), LotConsumption.points < 0)):
            restored[lot_id] += -pts
    left = points
    done = 0
    # Walk consumption newest first; earlier restorations are charged against the newest rows.
    per_lot: list[tuple[int, int]] = []
    for lot_id, pts, _ in rows:
        already = min(restored[lot_id], pts)
        restored[lot_id] -= already
        if pts - already:
            per_lot.append((lot_id, pts - already))
    session.flush()
    lots = {lot.id: lot for lot in session.execute(
        sa.select(Lot).where(Lot.id.in_([lot_id for lot_id, _ in per_lot]))
        .execution_options(populate_existing=True)).scalars()} if per_lot else {}
    for lot_id, pts in per_lot:
        give = pts if left is None else min(pts, left)
        if give <= 0:
            break
        _consume(session, tx, lots[lot_id], -give)
        done += give
        if left is not None:
            left -= give
    if points is not None and done != points:
        raise AssertionError(f"could restore only {done} of {points} points")
    return done


# --- expiry ----------------------------------------------------------------------------------

def _release_hold(session, hold: Hold, accounts: dict[str, Account], *, kind: str, status: str,
                  now: dt.datetime, **extra) -> Transaction:
    tx = _new_tx(session, alliance_id=hold.alliance_id, tenant_id=hold.tenant_id, member_id=hold.member_id,
                 kind=kind, points=hold.points, member_delta=0, now=now, reference=hold.reference,
                 hold_id=hold.id, **extra)
    session.flush()
    _restore_consumption(session, tx, [hold.transaction_id])
    hold.status, hold.resolved_at = status, now
    _post(session, tx, [(accounts["held"], -hold.points), (accounts["available"], hold.points)])
    return tx


def _breakage(session: so.Session, cache: dict, alliance_id: int, issuer_id: int) -> Account:
    """The issuer's breakage account, looked up once per run (system accounts are never locked)."""
    key = (alliance_id, issuer_id)
    if key not in cache:
        cache[key] = _account(session, alliance_id=alliance_id, kind="breakage", tenant_id=issuer_id)
    return cache[key]


def _due_issuers(session: so.Session, member_id: int, as_of: dt.datetime) -> list[int]:
    return list(session.execute(sa.select(Lot.issuer_tenant_id).where(
        Lot.member_id == member_id, Lot.remaining > 0, Lot.expires_at <= as_of).distinct()).scalars())


def _expire_member(session: so.Session, *, alliance_id: int, member_id: int, accounts: dict[str, Account],
                   as_of: dt.datetime, now: dt.datetime, breakage: dict | None = None) -> dict[str, int]:
    """Expire the member's due holds, then due lots (one expiry transaction). Caller holds the lock."""
    breakage = {} if breakage is None else breakage
    out = {"holds": 0, "lots": 0, "points": 0}
    holds = session.execute(
        sa.select(Hold).where(Hold.member_id == member_id, Hold.status == "active", Hold.expires_at <= as_of)
        .order_by(Hold.expires_at, Hold.id).execution_options(populate_existing=True, **PLATFORM)).scalars().all()
    for hold in holds:
        _release_hold(session, hold, accounts, kind="hold_expiry", status="expired", now=now)
        out["holds"] += 1
    lots = session.execute(
        sa.select(Lot).where(Lot.member_id == member_id, Lot.remaining > 0, Lot.expires_at <= as_of)
        .order_by(Lot.expires_at, Lot.id).execution_options(populate_existing=True)).scalars().all()
    if lots:
        total = sum(lot.remaining for lot in lots)
        issuers = {lot.issuer_tenant_id for lot in lots}
        tx = _new_tx(session, alliance_id=alliance_id, tenant_id=issuers.pop() if len(issuers) == 1 else None,
                     member_id=member_id, kind="expiry", points=total, member_delta=-total, now=now,
                     occurred_at=as_of)
        session.flush()
        legs: list[tuple[Account, int]] = [(accounts["available"], -total)]
        for lot in lots:
            legs.append((_breakage(session, breakage, alliance_id, lot.issuer_tenant_id), lot.remaining))
            _consume(session, tx, lot, lot.remaining)
        _post(session, tx, legs)
        out["lots"], out["points"] = len(lots), total
    return out


def due_members(session: so.Session, *, as_of: dt.datetime, alliance_id: int | None = None) -> list[tuple[int, int]]:
    """(alliance id, member id) of every member with a lot or an active hold due as of ``as_of``, by id."""
    _aware(as_of, "as_of")
    lot_q = sa.select(Lot.alliance_id, Lot.member_id).where(Lot.remaining > 0, Lot.expires_at <= as_of)
    hold_q = (sa.select(Hold.alliance_id, Hold.member_id)
              .where(Hold.status == "active", Hold.expires_at <= as_of))
    if alliance_id is not None:
        lot_q = lot_q.where(Lot.alliance_id == alliance_id)
        hold_q = hold_q.where(Hold.alliance_id == alliance_id)
    members = set(session.execute(lot_q.distinct()).all())
    members |= set(session.execute(hold_q.distinct().execution_options(**PLATFORM)).all())
    return sorted(members, key=lambda m: m[1])


def expire_due(session: so.Session, *, as_of: dt.datetime, alliance_id: int | None = None,
               now: dt.datetime | None = None, members: list[tuple[int, int]] | None = None) -> dict[str, int]:
    """Expire holds and lots due as of ``as_of``; safe to run twice or concurrently.

    ``members`` (from :func:`due_members`) limits the run to those, so that a caller can expire
    in batches of its own units of work and hold each member's lock only briefly.
    """
    _aware(as_of, "as_of")
    now = now or utcnow()
    if members is None:
        members = due_members(session, as_of=as_of, alliance_id=alliance_id)
    totals = {"members": 0, "holds": 0, "lots": 0, "points": 0}
    breakage: dict = {}
    for member_alliance, member_id in members:
        for issuer in _due_issuers(session, member_id, as_of):
            _breakage(session, breakage, member_alliance, issuer)
        accounts = _locked_member(session, member_alliance, member_id)
        done = _expire_member(session, alliance_id=member_alliance, member_id=member_id, accounts=accounts,
                              as_of=as_of, now=now, breakage=breakage)
        if done["holds"] or done["lots"]:
            totals["members"] += 1
        for k in ("holds", "lots", "points"):
            totals[k] += done[k]
    session.flush()
    return totals


# --- postings --------------------------------------------------------------------------------

def earn(session: so.Session, *, alliance_id: int, tenant_id: int, member_id: int, points: int,
         expiry_months: int | None, timezone: str, reference: str | None = None,
         occurred_at: dt.datetime | None = None, description: str | None = None,
         meta: dict | None = None, idempotency_key: str | None = None, fingerprint: str | None = None,
         now: dt.datetime | None = None) -> Transaction:
    """Credit points issued by ``tenant_id``: repay any shortfall first, put the rest in a new lot."""
    _check_points(points)
    _aware(occurred_at, "occurred_at")
    now = now or utcnow()
    occurred_at = occurred_at or now
    record = _claim(session, tenant_id, idempotency_key, fingerprint)
    issued = _account(session, alliance_id=alliance_id, kind="issued", tenant_id=tenant_id)
    accounts = _locked_member(session, alliance_id, member_id)
    repay = min(points, -accounts["shortfall"].balance)
    tx = _new_tx(session, alliance_id=alliance_id, tenant_id=tenant_id, member_id=member_id, kind="earn",
                 points=points, member_delta=points, now=now, occurred_at=occurred_at, reference=reference,
                 description=description, meta=meta, idempotency_key=idempotency_key)
    session.flush()
    if points - repay:
        session.add(Lot(alliance_id=alliance_id, member_id=member_id, issuer_tenant_id=tenant_id,
                        earn_transaction_id=tx.id, points=points - repay, remaining=points - repay,
                        expires_at=rules.lot_expiry(occurred_at, expiry_months, timezone), created_at=now))
    _post(session, tx, [(issued, -points), (accounts["shortfall"], repay),
                        (accounts["available"], points - repay)])
    if record is not None:
        record.transaction_id = tx.id
        session.flush()
    return tx


def redeem(session: so.Session, *, alliance_id: int, tenant_id: int, member_id: int, points: int,
           reference: str | None = None, occurred_at: dt.datetime | None = None,
           description: str | None = None, meta: dict | None = None, idempotency_key: str | None = None,
           fingerprint: str | None = None, now: dt.datetime | None = None) -> Transaction:
    """Spend available points at ``tenant_id``, soonest-expiring lots first."""
    _check_points(points)
    _aware(occurred_at, "occurred_at")
    now = now or utcnow()
    record = _claim(session, tenant_id, idempotency_key, fingerprint)
    redeemed = _account(session, alliance_id=alliance_id, kind="redeemed", tenant_id=tenant_id)
    # Judged at its business time: a late-posted redemption may spend what was valid then, but
    # never what an expiry run already removed.
    # never what an expiry run already removed, nor what was earned after it.
    at = occurred_at or now
    accounts = _prepare_spend(session, alliance_id, member_id, at, now)
    valid = _lots_valid_at(session, member_id, at) if at < now else None
    usable = accounts["available"].balance if valid is None else sum(lot.remaining for lot in valid)
    if usable < points:
        raise InsufficientPoints(usable, points)
    tx = _new_tx(session, alliance_id=alliance_id, tenant_id=tenant_id, member_id=member_id, kind="redeem",
                 points=points, member_delta=-points, now=now, occurred_at=occurred_at, reference=reference,
                 description=description, meta=meta, idempotency_key=idempotency_key)
    session.flush()
    if valid is None:
        _consume_fresh(session, tx, member_id, points)
    else:
        for lot, take in rules.plan_consumption(valid, points):
            _consume(session, tx, lot, take)
    _post(session, tx, [(accounts["available"], -points), (redeemed, points)])
    if record is not None:
        record.transaction_id = tx.id
        session.flush()
    return tx


def _valid_at(member_id: int, at: dt.datetime):
    """Lots of the member with points left, earned by ``at`` and not expired by then."""
    return (Lot.member_id == member_id, Lot.remaining > 0, Transaction.occurred_at <= at,
            sa.or_(Lot.expires_at.is_(None), Lot.expires_at > at))


def _lots_valid_at(session: so.Session, member_id: int, at: dt.datetime) -> list[Lot]:
    session.flush()
    return list(session.execute(
        sa.select(Lot).join(Transaction, Transaction.id == Lot.earn_transaction_id).where(*_valid_at(member_id, at))
        .execution_options(populate_existing=True, **PLATFORM)).scalars())


def _prepare_spend(session, alliance_id, member_id, as_of, now) -> dict[str, Account]:
    """Lock the member and expire what is due as of ``as_of`` (holds and lots) under the lock."""
    breakage: dict = {}
    for issuer in _due_issuers(session, member_id, as_of):
        _breakage(session, breakage, alliance_id, issuer)
    accounts = _locked_member(session, alliance_id, member_id)
    _expire_member(session, alliance_id=alliance_id, member_id=member_id, accounts=accounts, as_of=as_of, now=now,
                   breakage=breakage)
    return accounts


def create_hold(session: so.Session, *, alliance_id: int, tenant_id: int, member_id: int, points: int,
                expires_at: dt.datetime | None = None, reference: str | None = None,
                description: str | None = None, meta: dict | None = None, idempotency_key: str | None = None,
                fingerprint: str | None = None, now: dt.datetime | None = None) -> Hold:
    """Reserve available points for ``tenant_id`` until captured, voided or ``expires_at``."""
    _check_points(points)
    _aware(expires_at, "expires_at")
    now = now or utcnow()
    expires_at = expires_at or now + DEFAULT_HOLD_TTL
    if expires_at <= now:
        raise LedgerValidationError("expires_at must be in the future")
    record = _claim(session, tenant_id, idempotency_key, fingerprint)
    accounts = _prepare_spend(session, alliance_id, member_id, now, now)
    available = accounts["available"].balance
    if available < points:
        raise InsufficientPoints(available, points)
    tx_id = uuid.uuid4()  # known up front, so the hold is inserted with it (no UPDATE afterwards)
    hold = Hold(id=uuid.uuid4(), alliance_id=alliance_id, tenant_id=tenant_id, member_id=member_id,
                points=points, status="active", reference=reference, expires_at=expires_at, created_at=now,
                transaction_id=tx_id)
    session.add(hold)
    session.flush()
    tx = _new_tx(session, alliance_id=alliance_id, tenant_id=tenant_id, member_id=member_id, kind="hold",
                 points=points, member_delta=0, now=now, reference=reference, description=description,
                 meta=meta, hold_id=hold.id, idempotency_key=idempotency_key, tx_id=tx_id)
    session.flush()
    _consume_fresh(session, tx, member_id, points)
    _post(session, tx, [(accounts["available"], -points), (accounts["held"], points)])
    if record is not None:
        record.hold_id = hold.id
        session.flush()
    return hold


def _active_hold(session, tenant_id, hold_id, now, hold: Hold | None = None) -> tuple[Hold, dict[str, Account]]:
    """Find the tenant's hold (unless the caller just read it), lock its member, check it is active and unexpired."""
    if hold is None:
        hold = _get(session, Hold, hold_id, tenant_id=tenant_id)
    if hold is None:
        raise HoldNotFound()
    member_id = hold.member_id
    accounts = _locked_member(session, hold.alliance_id, member_id)
    hold = _get(session, Hold, hold_id, tenant_id=tenant_id, lock=True)
    if hold.member_id != member_id:  # moved by a member merge meanwhile: lock the survivor too
        accounts = _locked_member(session, hold.alliance_id, hold.member_id)
    if hold.status == "expired":
        raise HoldExpired()
    if hold.status != "active":
        raise HoldAlreadyResolved(hold.status)
    if hold.expires_at <= now:
        raise HoldExpired("active")
    return hold, accounts


def capture_hold(session: so.Session, *, tenant_id: int, hold_id: uuid.UUID, points: int | None = None,
                 description: str | None = None, meta: dict | None = None, idempotency_key: str | None = None,
                 fingerprint: str | None = None, now: dt.datetime | None = None) -> Transaction:
    """Redeem ``points`` (default all) of an active hold; the rest goes back to available.

    A hold past its ``expires_at`` raises HoldExpired and changes nothing; expire_due (or the
    member's next redemption or hold) releases it.
    """
    if points is not None:
        _check_points(points)
    now = now or utcnow()
    record = _claim(session, tenant_id, idempotency_key, fingerprint)
    hold = _get(session, Hold, hold_id, tenant_id=tenant_id)
    if hold is None:
        raise HoldNotFound()
    redeemed = _account(session, alliance_id=hold.alliance_id, kind="redeemed", tenant_id=hold.tenant_id)
    hold, accounts = _active_hold(session, tenant_id, hold_id, now, hold)
    points = hold.points if points is None else points
    if points > hold.points:
        raise CaptureExceedsHold(hold.points, points)
    tx = _new_tx(session, alliance_id=hold.alliance_id, tenant_id=hold.tenant_id, member_id=hold.member_id,
                 kind="capture", points=points, member_delta=-points, now=now, reference=hold.reference,
                 description=description, meta=meta, hold_id=hold.id, idempotency_key=idempotency_key)
    session.flush()
    _restore_consumption(session, tx, [hold.transaction_id])
    session.flush()
    _consume_fresh(session, tx, hold.member_id, points)
    hold.status, hold.resolved_at, hold.captured_points = "captured", now, points
    _post(session, tx, [(accounts["held"], -hold.points), (accounts["available"], hold.points - points),
                        (redeemed, points)])
    if record is not None:
        record.transaction_id = tx.id
        session.flush()
    return tx


def void_hold(session: so.Session, *, tenant_id: int, hold_id: uuid.UUID, description: str | None = None,
              meta: dict | None = None, idempotency_key: str | None = None, fingerprint: str | None = None,
              now: dt.datetime | None = None) -> Transaction:
    """Release an active hold in full."""
    now = now or utcnow()
    record = _claim(session, tenant_id, idempotency_key, fingerprint)
    hold, accounts = _active_hold(session, tenant_id, hold_id, now)
    tx = _release_hold(session, hold, accounts, kind="void", status="voided", now=now, description=description,
                       meta=meta, idempotency_key=idempotency_key)
    if record is not None:
        record.transaction_id = tx.id
    session.flush()
    return tx


def reverse(session: so.Session, *, tenant_id: int, transaction_id: uuid.UUID, points: int | None = None,
            reason: str | None = None, meta: dict | None = None, idempotency_key: str | None = None,
            fingerprint: str | None = None, member_id: int | None = None,
            now: dt.datetime | None = None) -> Transaction:
    """Reverse an earn, redeem or capture of ``tenant_id`` in whole (default) or in part.

    Earn: take the points back from the earn's own lot, then other lots soonest-first, as far as
    the member's available balance goes; the rest is recorded as the member's shortfall (debt),
    which later earns repay first. Redeem/capture: give the points back to the lots they came from.
    ``member_id`` is whom the reversal posts to when it is not the original's member: the
    survivor the original's member was merged into (its lots moved there with the merge).
    """
    if points is not None:
        _check_points(points)
    now = now or utcnow()
    record = _claim(session, tenant_id, idempotency_key, fingerprint)
    original = _get(session, Transaction, transaction_id, tenant_id=tenant_id)
    if original is None:
        raise TransactionNotFound()
    if original.kind not in REVERSIBLE_KINDS:
        raise NotReversible(f"A {original.kind} transaction cannot be reversed.")
    system_kind = "issued" if original.kind == "earn" else "redeemed"
    system = _account(session, alliance_id=original.alliance_id, kind=system_kind, tenant_id=original.tenant_id)
    member_id = member_id or original.member_id
    accounts = _locked_member(session, original.alliance_id, member_id)
    reversed_so_far = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(Transaction.points), 0))
        .where(Transaction.reverses_id == original.id).execution_options(**PLATFORM)).scalar_one()
    reversible = original.points - int(reversed_so_far)  # SUM(bigint) is numeric on PostgreSQL
    if reversible <= 0:
        raise AlreadyReversed()
    points = reversible if points is None else points
    if points > reversible:
        raise ReversalExceedsOriginal(reversible, points)
    sign = -1 if original.kind == "earn" else 1
    tx = _new_tx(session, alliance_id=original.alliance_id, tenant_id=tenant_id, member_id=member_id,
                 kind="reversal", points=points, member_delta=sign * points, now=now,
                 reference=original.reference, description=reason, meta=meta, reverses_id=original.id,
                 hold_id=original.hold_id, idempotency_key=idempotency_key)
    session.flush()
    if original.kind == "earn":
        covered = min(points, accounts["available"].balance)
        own = session.execute(sa.select(Lot).where(Lot.earn_transaction_id == original.id,
                                                   Lot.member_id == member_id, Lot.remaining > 0)
                              .execution_options(populate_existing=True)).scalars().all()
        _consume_fresh(session, tx, member_id, covered, first=list(own))
        _post(session, tx, [(system, points), (accounts["available"], -covered),
                            (accounts["shortfall"], -(points - covered))])
    else:
        _restore_consumption(session, tx, [original.id], points)
        _post(session, tx, [(system, -points), (accounts["available"], points)])
    if record is not None:
        record.transaction_id = tx.id
        session.flush()
    return tx


def merge_balances(session: so.Session, *, alliance_id: int, tenant_id: int | None, from_member_id: int,
                   into_member_id: int, now: dt.datetime | None = None) -> Transaction | None:
    """Move a member's available, held and shortfall balances, lots and active holds to the survivor.

    Returns the ``merge`` transaction (on the survivor), or None when there was nothing to move.
    Past transactions keep their member; a later reversal of one of them posts to that member.
    """
    if from_member_id == into_member_id:
        raise LedgerValidationError("cannot merge a member into itself")
    now = now or utcnow()
    source = _member_accounts(session, alliance_id, from_member_id)
    target = _member_accounts(session, alliance_id, into_member_id)
    _lock(session, source, target)
    session.execute(sa.update(Lot).where(Lot.member_id == from_member_id).values(member_id=into_member_id)
                    .execution_options(synchronize_session="fetch"))
    with platform_scope(session):
        session.execute(sa.update(Hold).where(Hold.member_id == from_member_id, Hold.status == "active")
                        .values(member_id=into_member_id).execution_options(synchronize_session="fetch"))
    legs = []
    for kind in ("available", "held", "shortfall"):
        amount = source[kind].balance
        legs += [(source[kind], -amount), (target[kind], amount)]
    net = sum(source[k].balance for k in ("available", "held", "shortfall"))
    if not any(amount for _, amount in legs):
        session.flush()
        return None
    tx = _new_tx(session, alliance_id=alliance_id, tenant_id=tenant_id, member_id=into_member_id, kind="merge",
                 points=abs(net), member_delta=net, now=now, meta={"from_member_id": from_member_id})
    session.flush()
    _post(session, tx, legs)
    return tx


# --- reads -----------------------------------------------------------------------------------

def balance(session: so.Session, *, member_id: int, as_of: dt.datetime | None = None) -> Balance:
    """Return the member's balances and the points expiring by date.

    ``balance`` and ``held`` are the books as they stand. With ``as_of``, ``available`` is what a
    redemption at that business time could spend: points earned by then and not past their date
    (lots already past it that no expiry run has removed yet are ``pending_expiry``). Without
    ``as_of`` it is the available account as it stands.
    """
    _aware(as_of, "as_of")
    rows = dict(session.execute(sa.select(Account.kind, Account.balance)
                                .where(Account.owner_key == f"m:{member_id}",
                                       Account.member_id == member_id)).all())
    expiring = session.execute(
        sa.select(Lot.expires_at, sa.func.sum(Lot.remaining))
        .where(Lot.member_id == member_id, Lot.remaining > 0, Lot.expires_at.is_not(None))
        .group_by(Lot.expires_at).order_by(Lot.expires_at)).all()
    expiring = [(expires_at, int(points)) for expires_at, points in expiring]
    booked, held = rows.get("available", 0), rows.get("held", 0)
    available, pending = booked, 0
    if as_of is not None:
        pending = sum(points for expires_at, points in expiring if expires_at <= as_of)
        expiring = [(expires_at, points) for expires_at, points in expiring if expires_at > as_of]
        available = int(session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(Lot.remaining), 0))
            .join(Transaction, Transaction.id == Lot.earn_transaction_id).where(*_valid_at(member_id, as_of))
            .execution_options(**PLATFORM)).scalar_one())
    return Balance(member_id=member_id, balance=booked + held, available=available, held=held,
                   shortfall=rows.get("shortfall", 0), expiring=expiring, pending_expiry=pending)

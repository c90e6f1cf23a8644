"""The points books: accounts, transactions, entries, lots, lot consumption, holds, idempotency keys."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from tenants.db import Base, BigId, utcnow
from tenants.isolation import TenantOwned

MEMBER_KINDS = ("available", "held", "shortfall")
SYSTEM_KINDS = ("issued", "redeemed", "breakage")
TRANSACTION_KINDS = ("earn", "redeem", "hold", "capture", "void", "hold_expiry", "reversal",
                     "expiry", "adjustment", "merge")
HOLD_STATUSES = ("active", "captured", "voided", "expired")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Account(Base):
    """A member's (available, held, shortfall) or a tenant's (issued, redeemed, breakage) account."""

    __tablename__ = "ledger_accounts"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"))
    kind: so.Mapped[str] = so.mapped_column(sa.String(12))
    member_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("members.id", ondelete="RESTRICT"), index=True)
    #: The issuing/redeeming tenant of a system account; NULL for member accounts.
    tenant_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("tenants.id", ondelete="RESTRICT"), index=True)
    #: "m:<member id>" or "t:<tenant id>": a non-null owner for the unique key.
    owner_key: so.Mapped[str] = so.mapped_column(sa.String(40))
    #: Cached SUM(entries.amount) for member accounts only; system accounts stay 0 (derived by SUM).
    balance: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    version: so.Mapped[int] = so.mapped_column(sa.Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.UniqueConstraint("alliance_id", "kind", "owner_key"),
        sa.CheckConstraint(
            f"({_in('kind', MEMBER_KINDS)} AND member_id IS NOT NULL AND tenant_id IS NULL)"
            f" OR ({_in('kind', SYSTEM_KINDS)} AND tenant_id IS NOT NULL AND member_id IS NULL)",
            name="kind_owner"),
        sa.CheckConstraint("kind NOT IN ('available', 'held') OR balance >= 0", name="not_negative"),
        sa.CheckConstraint("kind IN ('available', 'held', 'shortfall') OR balance = 0",
                           name="system_balance_derived"),
    )


class Transaction(TenantOwned, Base):
    """One posting: a set of entries that sum to zero, never updated once written."""

    __tablename__ = "ledger_transactions"

    id: so.Mapped[uuid.UUID] = so.mapped_column(primary_key=True, default=uuid.uuid4)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"))
    #: The posting tenant; NULL for a platform expiry run spanning issuers or an operator's merge.
    tenant_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("tenants.id", ondelete="RESTRICT"))
    member_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("members.id", ondelete="RESTRICT"))
    kind: so.Mapped[str] = so.mapped_column(sa.String(12))
    #: The (positive) amount the operation was about, e.g. the captured or reversed points.
    points: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    #: Change of the member's net position (available + held + shortfall); shown to users as points.
    member_delta: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    reference: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    occurred_at: so.Mapped[dt.datetime] = so.mapped_column()
    posted_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    description: so.Mapped[str | None] = so.mapped_column(sa.String(500))
    meta: so.Mapped[dict[str, Any] | None] = so.mapped_column("metadata", sa.JSON)
    reverses_id: so.Mapped[uuid.UUID | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), index=True)
    hold_id: so.Mapped[uuid.UUID | None] = so.mapped_column(
        sa.ForeignKey("ledger_holds.id", ondelete="RESTRICT"), index=True)
    idempotency_key: so.Mapped[str | None] = so.mapped_column(sa.String(255))

    entries: so.Mapped[list[Entry]] = so.relationship(back_populates="transaction", lazy="selectin",
                                                        order_by="Entry.id")

    __table_args__ = (
        sa.CheckConstraint(_in("kind", TRANSACTION_KINDS), name="kind_known"),
        sa.CheckConstraint("points >= 0", name="points_nonneg"),
        sa.CheckConstraint("tenant_id IS NOT NULL OR kind IN ('expiry', 'merge')", name="tenant_required"),
        sa.CheckConstraint("(kind = 'reversal') = (reverses_id IS NOT NULL)", name="reversal_links"),
        sa.Index("ix_ledger_transactions_tenant_posted", "tenant_id", "posted_at", "id"),
        sa.Index("ix_ledger_transactions_member_posted", "member_id", "posted_at"),
    )


class Entry(Base):
    """One leg of a transaction: a signed amount on one account."""

    __tablename__ = "ledger_entries"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    transaction_id: so.Mapped[uuid.UUID] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), index=True)
    account_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("ledger_accounts.id", ondelete="RESTRICT"),
                                                  index=True)
    amount: so.Mapped[int] = so.mapped_column(sa.BigInteger)

    transaction: so.Mapped[Transaction] = so.relationship(back_populates="entries")
    account: so.Mapped[Account] = so.relationship(lazy="joined")

    __table_args__ = (sa.CheckConstraint("amount <> 0", name="amount_nonzero"),)


class Lot(Base):
    """Points from one earn, expiring together; ``remaining`` = points - consumption."""

    __tablename__ = "ledger_lots"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"))
    member_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("members.id", ondelete="RESTRICT"))
    issuer_tenant_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("tenants.id", ondelete="RESTRICT"),
                                                        index=True)
    earn_transaction_id: so.Mapped[uuid.UUID] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), index=True)
    points: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    remaining: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    #: End of the expiry day in the alliance's timezone, as UTC; NULL means never.
    expires_at: so.Mapped[dt.datetime | None] = so.mapped_column()
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint("points > 0", name="points_positive"),
        sa.CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_in_range"),
        sa.Index("ix_ledger_lots_member_expires", "member_id", "expires_at"),
        sa.Index("ix_ledger_lots_expires_open", "expires_at", postgresql_where=sa.text("remaining > 0")),
    )


class LotConsumption(Base):
    """Points taken from (positive) or given back to (negative) a lot by a transaction."""

    __tablename__ = "ledger_lot_consumptions"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    lot_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("ledger_lots.id", ondelete="RESTRICT"), index=True)
    transaction_id: so.Mapped[uuid.UUID] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), index=True)
    points: so.Mapped[int] = so.mapped_column(sa.BigInteger)

    __table_args__ = (sa.CheckConstraint("points <> 0", name="points_nonzero"),)


class Hold(TenantOwned, Base):
    """Points reserved for a tenant until captured, voided or expired (exactly one of them)."""

    __tablename__ = "ledger_holds"

    id: so.Mapped[uuid.UUID] = so.mapped_column(primary_key=True, default=uuid.uuid4)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"))
    tenant_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("tenants.id", ondelete="RESTRICT"), index=True)
    member_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("members.id", ondelete="RESTRICT"), index=True)
    points: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default="active")
    reference: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    expires_at: so.Mapped[dt.datetime] = so.mapped_column()
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    resolved_at: so.Mapped[dt.datetime | None] = so.mapped_column()
    captured_points: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    #: The `hold` transaction that reserved the points (no FK: the tables refer to each other).
    transaction_id: so.Mapped[uuid.UUID | None] = so.mapped_column()

    __table_args__ = (
        sa.CheckConstraint(_in("status", HOLD_STATUSES), name="status_known"),
        sa.CheckConstraint("points > 0", name="points_positive"),
        sa.CheckConstraint("captured_points IS NULL OR (captured_points > 0 AND captured_points <= points)",
                           name="capture_in_range"),
        sa.CheckConstraint("(status = 'active') = (resolved_at IS NULL)", name="resolved_when_done"),
        sa.Index("ix_ledger_holds_active_expires", "status", "expires_at"),
    )


class IdempotencyKey(TenantOwned, Base):
    """A tenant's Idempotency-Key, stored in the same DB transaction as the write it guards."""

    __tablename__ = "idempotency_keys"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    tenant_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("tenants.id", ondelete="RESTRICT"))
    key: so.Mapped[str] = so.mapped_column(sa.String(255))
    #: SHA-256 hex of the canonical request; a different request with the same key is refused.
    fingerprint: so.Mapped[str] = so.mapped_column(sa.String(64))
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    response_status: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    response_body: so.Mapped[Any | None] = so.mapped_column(sa.JSON)
    transaction_id: so.Mapped[uuid.UUID | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id", ondelete="RESTRICT"))
    hold_id: so.Mapped[uuid.UUID | None] = so.mapped_column(sa.ForeignKey("ledger_holds.id", ondelete="RESTRICT"))

    __table_args__ = (sa.UniqueConstraint("tenant_id", "key"),)

"""Members, their identifiers, consent events, pairwise links and merges."""
from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
import sqlalchemy.orm as so

from tenants.db import Base, BigId, utcnow
from tenants.isolation import TenantOwned

MEMBER_STATUSES = ("active", "merged")
IDENTIFIER_KINDS = ("phone", "email", "external_ref")
PURPOSES = ("loyalty", "profile", "marketing")


class Member(Base):
    """One person across the whole alliance."""

    __tablename__ = "members"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"), index=True)
    #: The customer ID on the member's card: random digits ending in a Luhn check digit.
    member_no: so.Mapped[str] = so.mapped_column(sa.String(20), unique=True)
    #: Display name, kept as given (NFC).
    name: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default="active")
    #: The surviving member once this one was merged away.
    merged_into_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("members.id", ondelete="RESTRICT"), index=True
    )
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    identifiers: so.Mapped[list[MemberIdentifier]] = so.relationship(
        back_populates="member", order_by="MemberIdentifier.id", viewonly=True
    )

    __table_args__ = (
        sa.CheckConstraint(f"status IN {MEMBER_STATUSES}", name="status_known"),
        sa.CheckConstraint(
            "(status = 'merged') = (merged_into_id IS NOT NULL)", name="merged_has_survivor"
        ),
    )


class MemberIdentifier(Base):
    """A normalised way to find a member, unique per alliance (external refs per tenant)."""

    __tablename__ = "member_identifiers"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"))
    member_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("members.id", ondelete="RESTRICT"), index=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(16))
    #: "" for phone and email; str(tenant_id) for an external ref, which is unique per tenant.
    scope: so.Mapped[str] = so.mapped_column(sa.String(20), default="")
    #: The normalised value (E.164 phone, casefolded email, NFKC+casefolded ref).
    value: so.Mapped[str] = so.mapped_column(sa.String(320))
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    member: so.Mapped[Member] = so.relationship(back_populates="identifiers")

    __table_args__ = (
        sa.UniqueConstraint("alliance_id", "kind", "scope", "value"),
        sa.CheckConstraint(f"kind IN {IDENTIFIER_KINDS}", name="kind_known"),
        sa.CheckConstraint(
            "(kind = 'external_ref') = (scope <> '')", name="scope_only_for_refs"
        ),
    )


class ConsentEvent(TenantOwned, Base):
    """One grant or withdrawal of one purpose by a member to one tenant; never updated."""

    __tablename__ = "consent_events"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"))
    member_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("members.id", ondelete="RESTRICT"))
    tenant_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("tenants.id", ondelete="RESTRICT"), index=True)
    purpose: so.Mapped[str] = so.mapped_column(sa.String(16))
    granted: so.Mapped[bool] = so.mapped_column(sa.Boolean)
    #: Where the partner captured it (pos, app, web, import...).
    channel: so.Mapped[str] = so.mapped_column(sa.String(40))
    terms_version: so.Mapped[str | None] = so.mapped_column(sa.String(40))
    #: When the member gave or withdrew it; the latest captured event is the current state.
    captured_at: so.Mapped[dt.datetime] = so.mapped_column()
    recorded_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"purpose IN {PURPOSES}", name="purpose_known"),
        sa.Index("ix_consent_events_latest", "member_id", "tenant_id", "purpose", "captured_at", "id"),
    )


class MemberLink(TenantOwned, Base):
    """The pairwise ID one tenant sees for one member: random, stable, never the internal id."""

    __tablename__ = "member_links"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"))
    #: After a merge a link may stay on the merged member; resolution follows ``merged_into_id``.
    member_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("members.id", ondelete="RESTRICT"))
    tenant_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("tenants.id", ondelete="RESTRICT"), index=True)
    pairwise_id: so.Mapped[str] = so.mapped_column(sa.String(40), unique=True)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("member_id", "tenant_id"),)


class MemberMerge(Base):
    """The record of an operator merging one member into another."""

    __tablename__ = "member_merges"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"), index=True)
    from_member_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("members.id", ondelete="RESTRICT"), unique=True)
    into_member_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("members.id", ondelete="RESTRICT"), index=True)
    #: The ledger ``merge`` transaction that moved the balances; NULL when there was nothing to move.
    ledger_transaction_id: so.Mapped[uuid.UUID | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id", ondelete="RESTRICT")
    )
    #: Who did it (staff email or "cli:<user>").
    actor: so.Mapped[str] = so.mapped_column(sa.String(254))
    merged_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    __table_args__ = (sa.CheckConstraint("from_member_id <> into_member_id", name="distinct_members"),)


class Visit(TenantOwned, Base):
    """A member's visit or purchase at a tenant (gate entry, stay, sale), with or without points."""

    __tablename__ = "visits"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"))
    tenant_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("tenants.id", ondelete="RESTRICT"), index=True)
    member_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("members.id", ondelete="RESTRICT"))
    #: The business time of the visit (may be in the past for imports and late claims).
    occurred_at: so.Mapped[dt.datetime] = so.mapped_column()
    reference: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    description: so.Mapped[str | None] = so.mapped_column(sa.String(500))
    #: What was spent, in minor units (fen) of ``currency``; NULL when the visit had no purchase.
    amount_minor: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    currency: so.Mapped[str | None] = so.mapped_column(sa.String(3))
    #: The earn transaction the visit was credited by, if it earned points.
    transaction_id: so.Mapped[uuid.UUID | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id", ondelete="RESTRICT")
    )
    recorded_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint("amount_minor IS NULL OR amount_minor >= 0", name="amount_nonneg"),
        sa.CheckConstraint("(amount_minor IS NULL) = (currency IS NULL)", name="amount_has_currency"),
        sa.Index("ix_visits_member_occurred", "member_id", "occurred_at"),
    )

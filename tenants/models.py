"""Alliances, tenants, staff users, API clients and their tokens."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
import sqlalchemy.orm as so

from tenants.db import Base, BigId, utcnow
from tenants.isolation import TenantOwned

TENANT_KINDS = ("scenic_area", "homestay", "hotel", "brand", "agency", "other")
TENANT_STATUSES = ("active", "suspended")
STAFF_ROLES = ("owner", "admin", "operator", "analyst")
ROUNDINGS = ("floor", "half_up", "ceil")


class Alliance(Base):
    __tablename__ = "alliances"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(40), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    timezone: so.Mapped[str] = so.mapped_column(sa.String(64), default="Asia/Shanghai")
    currency: so.Mapped[str] = so.mapped_column(sa.String(3), default="CNY")
    #: Value of one point in minor units (fen) when partners clear with each other.
    point_value_minor: so.Mapped[int] = so.mapped_column(sa.Integer, default=1)
    #: Months after the earn at whose day's end points expire; NULL means never.
    expiry_months: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint("point_value_minor >= 0", name="point_value_nonneg"),
        sa.CheckConstraint("expiry_months IS NULL OR expiry_months > 0", name="expiry_positive"),
    )


class Tenant(Base):
    __tablename__ = "tenants"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"), index=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(40))
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    kind: so.Mapped[str] = so.mapped_column(sa.String(20))
    status: so.Mapped[str] = so.mapped_column(sa.String(12), default="active")
    #: Earn rule: ``earn_points`` points for every ``earn_per_minor`` minor units spent.
    earn_points: so.Mapped[int] = so.mapped_column(sa.Integer, default=1)
    earn_per_minor: so.Mapped[int] = so.mapped_column(sa.Integer, default=100)
    earn_rounding: so.Mapped[str] = so.mapped_column(sa.String(10), default="floor")
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    alliance: so.Mapped[Alliance] = so.relationship(lazy="joined")

    __table_args__ = (
        sa.UniqueConstraint("alliance_id", "code"),
        sa.CheckConstraint(f"kind IN {TENANT_KINDS}", name="kind_known"),
        sa.CheckConstraint(f"status IN {TENANT_STATUSES}", name="status_known"),
        sa.CheckConstraint(f"earn_rounding IN {ROUNDINGS}", name="rounding_known"),
        sa.CheckConstraint("earn_points >= 0 AND earn_per_minor > 0", name="earn_rule_valid"),
    )


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    alliance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alliances.id", ondelete="RESTRICT"), index=True)
    #: NULL for the alliance operator's staff.
    tenant_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("tenants.id", ondelete="RESTRICT"), index=True)
    email: so.Mapped[str] = so.mapped_column(sa.String(254))
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(255))
    role: so.Mapped[str] = so.mapped_column(sa.String(12))
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    __table_args__ = (
        sa.UniqueConstraint("alliance_id", "email"),
        sa.CheckConstraint(f"role IN {STAFF_ROLES}", name="role_known"),
    )


class ApiClient(TenantOwned, Base):
    __tablename__ = "api_clients"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    tenant_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("tenants.id", ondelete="RESTRICT"), index=True)
    client_id: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    #: SHA-256 of the high-entropy secret; the secret itself is shown once.
    secret_hash: so.Mapped[str] = so.mapped_column(sa.String(64))
    scopes: so.Mapped[str] = so.mapped_column(sa.Text)
    name: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    revoked_at: so.Mapped[dt.datetime | None] = so.mapped_column()
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    tenant: so.Mapped[Tenant] = so.relationship(lazy="joined")


class AccessToken(Base):
    __tablename__ = "access_tokens"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    #: SHA-256 of the opaque bearer token.
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    client_pk: so.Mapped[int] = so.mapped_column(sa.ForeignKey("api_clients.id", ondelete="RESTRICT"), index=True)
    tenant_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("tenants.id", ondelete="RESTRICT"), index=True)
    scope: so.Mapped[str] = so.mapped_column(sa.Text)
    issued_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    expires_at: so.Mapped[dt.datetime] = so.mapped_column()
    revoked_at: so.Mapped[dt.datetime | None] = so.mapped_column()

    client: so.Mapped[ApiClient] = so.relationship(lazy="joined")

"""Keyword-only builders for test data."""
from __future__ import annotations

import itertools
import secrets

import sqlalchemy.orm as so

from tenants.models import Alliance, Tenant

_seq = itertools.count(1)


def _code(prefix: str) -> str:
    return f"{prefix}{next(_seq)}{secrets.token_hex(3)}"


def create_alliance(session: so.Session, *, code: str | None = None, name: str = "Test alliance",
                    expiry_months: int | None = 12, timezone: str = "Asia/Shanghai",
                    point_value_minor: int = 1) -> Alliance:
    alliance = Alliance(code=code or _code("al"), name=name, timezone=timezone, currency="CNY",
                        expiry_months=expiry_months, point_value_minor=point_value_minor)
    session.add(alliance)
    session.flush()
    return alliance


def create_tenant(session: so.Session, *, alliance: Alliance, code: str | None = None, kind: str = "homestay",
                  name: str = "Test tenant", earn_points: int = 1, earn_per_minor: int = 100,
                  status: str = "active") -> Tenant:
    tenant = Tenant(alliance_id=alliance.id, code=code or _code("t"), name=name, kind=kind, status=status,
                    earn_points=earn_points, earn_per_minor=earn_per_minor, earn_rounding="floor")
    session.add(tenant)
    session.flush()
    return tenant


def create_member(session: so.Session, *, alliance: Alliance, name: str = "Test member"):
    from alliance.models import Member

    member = Member(alliance_id=alliance.id, member_no=str(10**11 + secrets.randbelow(9 * 10**11)), name=name,
                    status="active")
    session.add(member)
    session.flush()
    return member

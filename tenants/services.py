"""Operator use cases: alliances, tenants and API clients."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zoneinfo
from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.orm as so
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tenants.errors import AllianceNotFound, DuplicateCode, InvalidScope, TenancyError, TenantNotFound
from tenants.isolation import platform_scope
from tenants.models import ROUNDINGS, STAFF_ROLES, TENANT_KINDS, Alliance, ApiClient, StaffUser, Tenant

#: Every scope a partner client may hold, with what it allows.
SCOPES = {
    "members:read": "read members who consented to this tenant",
    "members:write": "enrol or link members and record their consents",
    "points:read": "read balances",
    "points:earn": "credit points",
    "points:redeem": "debit points",
    "points:hold": "reserve points, capture and void holds",
    "points:reverse": "reverse (refund) this tenant's transactions",
    "transactions:read": "list and read this tenant's transactions",
    "visits:write": "record members' visits and purchases that earn no points",
}


def hash_secret(secret: str) -> str:
    """Hash a high-entropy secret or token (SHA-256 is enough for 256-bit random values)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, digest: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), digest)


def parse_scopes(raw: str) -> list[str]:
    scopes = sorted(set(raw.replace(",", " ").split()))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise InvalidScope(f"unknown scopes: {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not scopes:
        raise InvalidScope("at least one scope is required")
    return scopes


_CODE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _check_code_and_name(code: str, name: str) -> None:
    if not _CODE.match(code):
        raise TenancyError(f"code must be 1-40 letters, digits, '-' or '_', not {code!r}")
    if not name.strip() or len(name) > 200:
        raise TenancyError("name must be 1-200 characters")


def create_alliance(session: so.Session, *, code: str, name: str, timezone: str = "Asia/Shanghai",
                    currency: str = "CNY", expiry_months: int | None = None,
                    point_value_minor: int = 1) -> Alliance:
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise TenancyError(f"unknown timezone {timezone!r}") from exc
    if expiry_months is not None and not 0 < expiry_months <= 1200:
        raise TenancyError("expiry months must be between 1 and 1200")
    _check_code_and_name(code, name)
    if not _CURRENCY.match(currency.upper()):
        raise TenancyError(f"currency must be an ISO 4217 code of three letters, not {currency!r}")
    if not 0 <= point_value_minor <= 1_000_000:
        raise TenancyError("point value must be between 0 and 1000000 minor units")
    if session.scalar(sa.select(Alliance.id).where(Alliance.code == code)) is not None:
        raise DuplicateCode(f"alliance {code!r} exists")
    alliance = Alliance(code=code, name=name, timezone=timezone, currency=currency.upper(),
                        expiry_months=expiry_months, point_value_minor=point_value_minor)
    session.add(alliance)
    session.flush()
    return alliance


def get_alliance(session: so.Session, code: str) -> Alliance:
    alliance = session.scalar(sa.select(Alliance).where(Alliance.code == code))
    if alliance is None:
        raise AllianceNotFound(f"no alliance {code!r}")
    return alliance


def create_tenant(session: so.Session, *, alliance_code: str, code: str, name: str, kind: str,
                  earn_points: int = 1, earn_per_minor: int = 100, earn_rounding: str = "floor") -> Tenant:
    alliance = get_alliance(session, alliance_code)
    if kind not in TENANT_KINDS:
        raise TenancyError(f"kind must be one of {', '.join(TENANT_KINDS)}")
    _check_code_and_name(code, name)
    if not (0 <= earn_points <= 1_000_000 and 1 <= earn_per_minor <= 1_000_000_000):
        raise TenancyError("earn rule: 0..1000000 points per 1..1000000000 minor units")
    if earn_rounding not in ROUNDINGS:
        raise TenancyError(f"rounding must be one of {', '.join(ROUNDINGS)}")
    exists = session.scalar(sa.select(Tenant.id).where(Tenant.alliance_id == alliance.id, Tenant.code == code))
    if exists is not None:
        raise DuplicateCode(f"tenant {code!r} exists in {alliance_code!r}")
    tenant = Tenant(alliance_id=alliance.id, code=code, name=name, kind=kind, status="active",
                    earn_points=earn_points, earn_per_minor=earn_per_minor, earn_rounding=earn_rounding)
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: so.Session, *, alliance_code: str, code: str) -> Tenant:
    alliance = get_alliance(session, alliance_code)
    tenant = session.scalar(sa.select(Tenant).where(Tenant.alliance_id == alliance.id, Tenant.code == code))
    if tenant is None:
        raise TenantNotFound(f"no tenant {code!r} in {alliance_code!r}")
    return tenant


def set_tenant_status(session: so.Session, *, alliance_code: str, code: str, status: str) -> Tenant:
    tenant = get_tenant(session, alliance_code=alliance_code, code=code)
    if status not in ("active", "suspended"):
        raise TenancyError("status must be active or suspended")
    tenant.status = status
    session.flush()
    return tenant


@dataclass(frozen=True)
class IssuedClient:
    client: ApiClient
    secret: str


def create_client(session: so.Session, *, tenant: Tenant, scopes: str, name: str = "") -> IssuedClient:
    """Create an API client; the secret is returned here once and stored only hashed."""
    scope_list = parse_scopes(scopes)
    secret = secrets.token_urlsafe(32)
    client = ApiClient(tenant_id=tenant.id, client_id="cl_" + secrets.token_urlsafe(16), secret_hash=hash_secret(secret),
                       scopes=" ".join(scope_list), name=name)
    with platform_scope(session):
        session.add(client)
        session.flush()
    return IssuedClient(client=client, secret=secret)


#: Argon2id with the library's maintained defaults; hashes carry their parameters, so they can be raised later.
_passwords = PasswordHasher()
MIN_PASSWORD_LENGTH = 12
_STAFF_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]+$")


def hash_password(password: str) -> str:
    """Return an Argon2id hash of a staff password."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise TenancyError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    return _passwords.hash(password)


def check_password(user: StaffUser, password: str) -> bool:
    """Tell whether ``password`` is the user's; re-hash in place (flushed by the caller) when parameters rose."""
    try:
        _passwords.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _passwords.check_needs_rehash(user.password_hash):
        user.password_hash = _passwords.hash(password)
    return True


def create_staff_user(session: so.Session, *, alliance_code: str, email: str, password: str, role: str,
                      tenant_code: str | None = None) -> StaffUser:
    """Create a portal user for a tenant, or for the alliance operator when ``tenant_code`` is None."""
    alliance = get_alliance(session, alliance_code)
    if role not in STAFF_ROLES:
        raise TenancyError(f"role must be one of {', '.join(STAFF_ROLES)}")
    address = email.strip().casefold()
    if len(address) > 254 or not _STAFF_EMAIL.match(address):
        raise TenancyError(f"{email!r} is not a valid email address")
    tenant = get_tenant(session, alliance_code=alliance_code, code=tenant_code) if tenant_code else None
    exists = session.scalar(sa.select(StaffUser.id).where(StaffUser.alliance_id == alliance.id,
                                                          StaffUser.email == address))
    if exists is not None:
        raise DuplicateCode(f"staff user {address!r} exists in {alliance_code!r}")
    user = StaffUser(alliance_id=alliance.id, tenant_id=tenant.id if tenant else None, email=address,
                     password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    return user

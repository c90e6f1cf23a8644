"""Member use cases: enrol or link, consent, pairwise IDs, resolution and merge.

Every function here only flushes; the caller owns the commit (``tenants.uow.run_unit``).
Run :func:`enrol_or_link` under ``run_unit(..., retry_on_integrity=True)``: two enrolments
of one person racing each other collide on a unique key and the retry links the winner.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
import sqlalchemy.orm as so

from alliance import identity, rules
from alliance.errors import (
    ConsentRequired,
    IdentifierConflict,
    IdentifierRequired,
    MemberNotFound,
    MergeNotAllowed,
    ValidationFailed,
)
from alliance.models import PURPOSES, ConsentEvent, Member, MemberIdentifier, MemberLink, MemberMerge, Visit
from ledger import services as ledger_services
from tenants.db import utcnow
from tenants.isolation import platform_scope, tenant_scope
from tenants.models import Tenant

#: How far in the future a partner's clock may put ``captured_at``.
CLOCK_SKEW = dt.timedelta(minutes=5)
PAIRWISE_PREFIX = "mbr_"
#: The shape of every pairwise ID ever issued; anything else is unknown without asking the database.
PAIRWISE_ID = re.compile(r"^mbr_[A-Za-z0-9_-]{1,36}$")


@dataclasses.dataclass(frozen=True)
class ConsentInput:
    """The consent a partner captured along with an enrolment: grants for ``purposes``."""

    purposes: Sequence[str]
    channel: str
    terms_version: str | None = None
    captured_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class EnrolResult:
    member: Member
    link: MemberLink
    created: bool

    @property
    def pairwise_id(self) -> str:
        return self.link.pairwise_id


# ---------------------------------------------------------------- enrol or link


def enrol_or_link(
    session: so.Session,
    *,
    tenant: Tenant,
    phone: str | None = None,
    email: str | None = None,
    external_ref: str | None = None,
    name: str | None = None,
    consent: ConsentInput | None = None,
) -> EnrolResult:
    """Find the member these identifiers name (or create one), link them to ``tenant``."""
    keys = _identifier_keys(tenant, phone=phone, email=email, external_ref=external_ref)
    display = identity.display_name(name)
    captured = _consent_events_input(consent)

    found = _members_by_identifier(session, alliance_id=tenant.alliance_id, keys=keys)
    survivors = {kind: _survivor(session, member) for kind, member in found.items()}
    distinct = {m.id for m in survivors.values()}
    if len(distinct) > 1:
        groups: dict[int, list[str]] = {}
        for kind, member in survivors.items():
            groups.setdefault(member.id, []).append(kind)
        kinds = [sorted(g) for g in groups.values()]
        raise IdentifierConflict(
            "These identifiers belong to different members: "
            + " vs ".join("+".join(g) for g in kinds),
            groups=kinds,
        )

    created = not survivors
    if created:
        member = Member(alliance_id=tenant.alliance_id, member_no=_unused_member_no(session), name=display)
        session.add(member)
        session.flush()
    else:
        member = next(iter(survivors.values()))
        if member.name is None and display is not None:
            member.name = display

    for kind, (scope, value) in keys.items():
        if kind not in found:
            session.add(
                MemberIdentifier(alliance_id=tenant.alliance_id, member_id=member.id, kind=kind, scope=scope, value=value)
            )
    session.flush()

    link = _link_for(session, member=member, tenant=tenant)
    if captured is not None:
        purposes, channel, terms_version, captured_at = captured
        for purpose in purposes:
            _add_consent_event(
                session, tenant=tenant, member=member, purpose=purpose, granted=True,
                channel=channel, terms_version=terms_version, captured_at=captured_at,
            )
        session.flush()
    return EnrolResult(member=member, link=link, created=created)


def _identifier_keys(
    tenant: Tenant, *, phone: str | None, email: str | None, external_ref: str | None
) -> dict[str, tuple[str, str]]:
    given = {
        "phone": (phone, "", identity.normalize_phone),
        "email": (email, "", identity.normalize_email),
        "external_ref": (external_ref, str(tenant.id), identity.normalize_ref),
    }
    keys: dict[str, tuple[str, str]] = {}
    failures: list[ValidationFailed] = []
    for kind, (raw, scope, normalize) in given.items():
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        try:
            keys[kind] = (scope, normalize(raw))
        except ValidationFailed as exc:
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        errors = {field: msgs for exc in failures for field, msgs in exc.errors.items()}
        raise ValidationFailed("Some identifiers are invalid", errors=errors)
    if not keys:
        raise IdentifierRequired(errors={"phone": ["give a phone, an email or an external_ref"]})
    return keys


def _members_by_identifier(
    session: so.Session, *, alliance_id: int, keys: dict[str, tuple[str, str]]
) -> dict[str, Member]:
    clauses = [
        sa.and_(MemberIdentifier.kind == kind, MemberIdentifier.scope == scope, MemberIdentifier.value == value)
        for kind, (scope, value) in keys.items()
    ]
    rows = session.execute(
        sa.select(MemberIdentifier.kind, Member)
        .join(Member, Member.id == MemberIdentifier.member_id)
        .where(MemberIdentifier.alliance_id == alliance_id, sa.or_(*clauses))
    ).all()
    return {kind: member for kind, member in rows}


def _survivor(session: so.Session, member: Member) -> Member:
    """Follow ``merged_into_id`` to the member that survived any merges."""
    seen = set()
    while member.merged_into_id is not None and member.id not in seen:
        seen.add(member.id)
        member = session.get_one(Member, member.merged_into_id)
    return member


def _unused_member_no(session: so.Session) -> str:
    for _ in range(20):
        candidate = rules.new_member_no()
        if session.scalar(sa.select(Member.id).where(Member.member_no == candidate)) is None:
            return candidate
    raise RuntimeError("could not find an unused member number")


def _new_pairwise_id() -> str:
    return PAIRWISE_PREFIX + secrets.token_urlsafe(16)[:22]


def _link_for(session: so.Session, *, member: Member, tenant: Tenant) -> MemberLink:
    with tenant_scope(session, tenant.id):
        link = session.scalar(
            sa.select(MemberLink).where(MemberLink.member_id == member.id, MemberLink.tenant_id == tenant.id)
        )
    if link is None:
        link = MemberLink(
            alliance_id=tenant.alliance_id, member_id=member.id, tenant_id=tenant.id, pairwise_id=_new_pairwise_id()
        )
        session.add(link)
        session.flush()
    return link


def survivor_id(session: so.Session, member_id: int) -> int:
    """The member that ``member_id`` is now, after any merges (itself when never merged)."""
    return _survivor(session, session.get_one(Member, member_id)).id


def pairwise_id_for(session: so.Session, *, member_id: int, tenant_id: int) -> str:
    """Return the pairwise ID ``tenant_id`` sees for the member, creating it on first use."""
    member = _survivor(session, session.get_one(Member, member_id))
    tenant = session.get_one(Tenant, tenant_id)
    if tenant.alliance_id != member.alliance_id:
        raise MemberNotFound()
    return _link_for(session, member=member, tenant=tenant).pairwise_id


# ---------------------------------------------------------------- consent


def _consent_events_input(consent: ConsentInput | None):
    if consent is None:
        return None
    purposes = list(dict.fromkeys(consent.purposes))
    for purpose in purposes:
        _check_purpose(purpose)
    channel = _check_channel(consent.channel)
    captured_at = _check_captured_at(consent.captured_at)
    return purposes, channel, _check_terms_version(consent.terms_version), captured_at


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValidationFailed(
            f"Unknown consent purpose {purpose!r}", errors={"purpose": [f"one of {', '.join(PURPOSES)}"]}
        )


def _check_channel(channel: str) -> str:
    if not isinstance(channel, str) or not channel.strip() or len(channel) > 40:
        raise ValidationFailed("channel is required", errors={"channel": ["1 to 40 characters"]})
    if identity.has_control_characters(channel):
        raise ValidationFailed("channel must not contain control characters", errors={"channel": ["no control characters"]})
    return channel.strip()


def _check_terms_version(terms_version: str | None) -> str | None:
    if terms_version is None:
        return None
    if not isinstance(terms_version, str) or len(terms_version) > 40 or identity.has_control_characters(terms_version):
        raise ValidationFailed("terms_version is not valid", errors={"terms_version": ["at most 40 printable characters"]})
    return terms_version


def _check_captured_at(captured_at: dt.datetime | None) -> dt.datetime:
    now = utcnow()
    if captured_at is None:
        return now
    if captured_at.tzinfo is None:
        raise ValidationFailed("captured_at needs a UTC offset", errors={"captured_at": ["needs a UTC offset"]})
    if captured_at > now + CLOCK_SKEW:
        raise ValidationFailed("captured_at is in the future", errors={"captured_at": ["is in the future"]})
    return captured_at


def _add_consent_event(
    session: so.Session, *, tenant: Tenant, member: Member, purpose: str, granted: bool,
    channel: str, terms_version: str | None, captured_at: dt.datetime,
) -> ConsentEvent:
    event = ConsentEvent(
        alliance_id=tenant.alliance_id, member_id=member.id, tenant_id=tenant.id, purpose=purpose,
        granted=granted, channel=channel, terms_version=terms_version, captured_at=captured_at,
    )
    session.add(event)
    return event


def record_consent(
    session: so.Session,
    *,
    tenant: Tenant,
    member: Member,
    purpose: str,
    granted: bool,
    channel: str,
    terms_version: str | None = None,
    captured_at: dt.datetime | None = None,
) -> ConsentEvent:
    """Record one grant or withdrawal the tenant captured; it takes effect at once."""
    _check_purpose(purpose)
    if not isinstance(granted, bool):
        raise ValidationFailed("granted must be true or false", errors={"granted": ["must be a boolean"]})
    member = _survivor(session, member)
    if member.alliance_id != tenant.alliance_id:
        raise MemberNotFound()
    _link_for(session, member=member, tenant=tenant)
    event = _add_consent_event(
        session, tenant=tenant, member=member, purpose=purpose, granted=granted,
        channel=_check_channel(channel), terms_version=_check_terms_version(terms_version),
        captured_at=_check_captured_at(captured_at),
    )
    session.flush()
    return event


def current_consents(session: so.Session, *, member_id: int, tenant_id: int) -> dict[str, bool]:
    """Return each purpose's current state: the latest event by ``captured_at`` then id."""
    with tenant_scope(session, tenant_id):
        events = session.execute(
            sa.select(ConsentEvent.purpose, ConsentEvent.granted)
            .where(ConsentEvent.member_id == member_id, ConsentEvent.tenant_id == tenant_id)
            .order_by(ConsentEvent.captured_at, ConsentEvent.id)
        ).all()
    state = dict.fromkeys(PURPOSES, False)
    for purpose, granted in events:
        state[purpose] = granted
    return state


def has_consent(session: so.Session, *, member_id: int, tenant_id: int, purpose: str) -> bool:
    """Tell whether the member currently consents to ``tenant_id`` for ``purpose``."""
    _check_purpose(purpose)
    with tenant_scope(session, tenant_id):
        granted = session.scalar(
            sa.select(ConsentEvent.granted)
            .where(
                ConsentEvent.member_id == member_id,
                ConsentEvent.tenant_id == tenant_id,
                ConsentEvent.purpose == purpose,
            )
            .order_by(ConsentEvent.captured_at.desc(), ConsentEvent.id.desc())
            .limit(1)
        )
    return bool(granted)


# ---------------------------------------------------------------- resolution and views


def resolve_member(
    session: so.Session, *, tenant: Tenant, pairwise_id: str, purpose: str | None = "loyalty"
) -> Member:
    """Return the member behind this tenant's pairwise ID, checking consent for ``purpose``."""
    if not isinstance(pairwise_id, str) or not PAIRWISE_ID.match(pairwise_id):
        raise MemberNotFound()
    with tenant_scope(session, tenant.id):
        linked = session.scalar(
            sa.select(Member)
            .join(MemberLink, MemberLink.member_id == Member.id)
            .where(MemberLink.pairwise_id == pairwise_id, MemberLink.tenant_id == tenant.id)
        )
    if linked is None:
        raise MemberNotFound()
    member = _survivor(session, linked)
    if purpose is not None and not has_consent(session, member_id=member.id, tenant_id=tenant.id, purpose=purpose):
        raise ConsentRequired(purpose=purpose)
    return member


def member_view(session: so.Session, *, tenant: Tenant, member: Member) -> dict:
    """Return what ``tenant`` may see of the member; personal fields only with ``profile`` consent."""
    member = _survivor(session, member)
    if member.alliance_id != tenant.alliance_id:
        raise MemberNotFound()
    consents = current_consents(session, member_id=member.id, tenant_id=tenant.id)
    identifiers = session.scalars(
        sa.select(MemberIdentifier).where(MemberIdentifier.member_id == member.id).order_by(MemberIdentifier.id)
    ).all()
    view: dict = {
        "id": pairwise_id_for(session, member_id=member.id, tenant_id=tenant.id),
        "consents": consents,
        # The partner's own key for the member: theirs already, scoped to them.
        "external_refs": [i.value for i in identifiers if i.kind == "external_ref" and i.scope == str(tenant.id)],
    }
    if consents["profile"]:
        phones = [i.value for i in identifiers if i.kind == "phone"]
        emails = [i.value for i in identifiers if i.kind == "email"]
        view.update(
            member_no=member.member_no,
            name=member.name,
            phone=phones[0] if phones else None,
            email=emails[0] if emails else None,
            phones=phones,
            emails=emails,
        )
    return view


# ---------------------------------------------------------------- visits


def record_visit(
    session: so.Session,
    *,
    tenant: Tenant,
    member: Member,
    occurred_at: dt.datetime,
    reference: str | None = None,
    description: str | None = None,
    amount_minor: int | None = None,
    currency: str | None = None,
    transaction_id=None,
) -> Visit:
    """Record that the member visited or bought at ``tenant``; the earn, if any, is posted apart."""
    if occurred_at.tzinfo is None:
        raise ValidationFailed("occurred_at needs a UTC offset", errors={"occurred_at": ["needs a UTC offset"]})
    if amount_minor is not None and amount_minor < 0:
        raise ValidationFailed("amount must not be negative", errors={"amount": ["must not be negative"]})
    visit = Visit(
        alliance_id=tenant.alliance_id, tenant_id=tenant.id, member_id=member.id, occurred_at=occurred_at,
        reference=reference, description=description, amount_minor=amount_minor,
        currency=currency if amount_minor is not None else None, transaction_id=transaction_id,
    )
    session.add(visit)
    session.flush()
    return visit


# ---------------------------------------------------------------- merge


def merge_members(
    session: so.Session, *, alliance_id: int, from_member_no: str, into_member_no: str, actor: str
) -> MemberMerge:
    """Merge one member into another: identifiers, consents, links and points move; it is recorded."""
    if from_member_no == into_member_no:
        raise MergeNotAllowed("A member cannot be merged into itself")
    with platform_scope(session):
        members = session.scalars(
            sa.select(Member)
            .where(Member.alliance_id == alliance_id, Member.member_no.in_([from_member_no, into_member_no]))
            .order_by(Member.id)
            .with_for_update()
        ).all()
        by_no = {m.member_no: m for m in members}
        if from_member_no not in by_no or into_member_no not in by_no:
            raise MemberNotFound("No such member in this alliance")
        source, target = by_no[from_member_no], by_no[into_member_no]
        for m in (source, target):
            if m.status != "active":
                raise MergeNotAllowed(f"Member {m.member_no} was already merged")

        session.execute(
            sa.update(MemberIdentifier).where(MemberIdentifier.member_id == source.id).values(member_id=target.id)
        )
        session.execute(
            sa.update(ConsentEvent)
            .where(ConsentEvent.member_id == source.id)
            .values(member_id=target.id)
        )
        session.execute(sa.update(Visit).where(Visit.member_id == source.id).values(member_id=target.id))
        # Links: a tenant that knew only the merged member keeps its pairwise ID, now on the
        # survivor; where both were linked the old link stays and resolves via merged_into_id.
        target_tenants = sa.select(MemberLink.tenant_id).where(MemberLink.member_id == target.id)
        session.execute(
            sa.update(MemberLink)
            .where(MemberLink.member_id == source.id, MemberLink.tenant_id.not_in(target_tenants))
            .values(member_id=target.id)
        )
        # Members merged earlier into the source now point straight at the survivor.
        session.execute(
            sa.update(Member).where(Member.merged_into_id == source.id).values(merged_into_id=target.id)
        )
        source.status, source.merged_into_id = "merged", target.id
        session.flush()

        moved = ledger_services.merge_balances(
            session, alliance_id=alliance_id, tenant_id=None, from_member_id=source.id, into_member_id=target.id
        )
        record = MemberMerge(
            alliance_id=alliance_id, from_member_id=source.id, into_member_id=target.id, actor=actor,
            ledger_transaction_id=moved.id if moved is not None else None,
        )
        session.add(record)
        session.flush()
    return record


def member_by_no(session: so.Session, *, alliance_id: int, member_no: str) -> Member:
    """Return the member with this card number in the alliance (operators, not tenants)."""
    member = session.scalar(sa.select(Member).where(Member.alliance_id == alliance_id, Member.member_no == member_no))
    if member is None:
        raise MemberNotFound()
    return member


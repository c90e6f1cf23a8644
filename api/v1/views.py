"""The partner contract: thin views over the identity and ledger services."""
from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import sqlalchemy as sa
from babel.numbers import get_currency_precision
from flask import g

from alliance import services as members
from alliance.models import MemberLink
from alliance.services import ConsentInput
from api.errors import ApiProblem
from api.extensions import db_session
from api.v1 import schemas as s
from api.v1.support import Blueprint, decode_cursor, encode_cursor, idempotent, json_response, secured
from ledger import rules
from ledger import services as ledger
from ledger.models import Hold, Transaction
from tenants.db import utcnow

CLOCK_SKEW = dt.timedelta(minutes=5)

blp = Blueprint("v1", __name__, url_prefix="/api/v1", description="The partner contract.")

MEMBER_ERRORS = {404: "not_found: no such member for this tenant"}
POINTS_ERRORS = {**MEMBER_ERRORS, 400: "idempotency_key_required", 403: "insufficient_scope or consent_required",
                 422: "validation_error or idempotency_key_reused"}


# ---------------------------------------------------------------- helpers

def _tenant():
    return g.tenant


def _member(session, member_id: str, purpose: str | None = "loyalty"):
    return members.resolve_member(session, tenant=_tenant(), pairwise_id=member_id, purpose=purpose)


def _not_future(value: dt.datetime | None, field: str) -> None:
    if value is not None and value > utcnow() + CLOCK_SKEW:
        raise ApiProblem(422, "validation_error", "The request did not validate; see errors.",
                         errors={field: ["Must not be in the future."]})


def _parse_uuid(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise ApiProblem(404, "not_found", f"{what} not found.") from exc


def _pairwise_ids(session, member_ids: set[int]) -> dict[int, str]:
    if not member_ids:
        return {}
    rows = session.execute(sa.select(MemberLink.member_id, MemberLink.pairwise_id).where(
        MemberLink.tenant_id == _tenant().id, MemberLink.member_id.in_(member_ids))).all()
    found = {m: p for m, p in rows}
    for member_id in member_ids - set(found):
        found[member_id] = members.pairwise_id_for(session, member_id=member_id, tenant_id=_tenant().id)
    return found


def transaction_body(tx: Transaction, pairwise_id: str) -> dict:
    meta = tx.meta or {}
    return {
        "id": str(tx.id), "kind": tx.kind, "points": tx.member_delta, "member_id": pairwise_id,
        "reference": tx.reference, "occurred_at": tx.occurred_at.isoformat(), "posted_at": tx.posted_at.isoformat(),
        "description": tx.description, "metadata": meta.get("partner"),
        "reverses": str(tx.reverses_id) if tx.reverses_id else None,
        "hold_id": str(tx.hold_id) if tx.hold_id else None, "amount": meta.get("amount"),
    }


def hold_body(hold: Hold, pairwise_id: str) -> dict:
    status = hold.status
    if status == "active" and hold.expires_at <= utcnow():
        status = "expired"
    return {
        "id": str(hold.id), "status": status, "points": hold.points, "captured_points": hold.captured_points,
        "member_id": pairwise_id, "reference": hold.reference, "expires_at": hold.expires_at.isoformat(),
        "created_at": hold.created_at.isoformat(),
        "resolved_at": hold.resolved_at.isoformat() if hold.resolved_at else None,
    }


def _meta(body: dict, amount: dict | None = None) -> dict | None:
    meta = {}
    if body.get("metadata") is not None:
        meta["partner"] = body["metadata"]
    if amount is not None:
        meta["amount"] = amount
    return meta or None


def _minor_amount(amount: dict) -> dict:
    """Check the currency and precision of an amount; return it with its value in minor units."""
    tenant = _tenant()
    currency = amount["currency"].upper()
    if currency != tenant.alliance.currency:
        raise ApiProblem(422, "validation_error", "The request did not validate; see errors.",
                         errors={"amount": {"currency": [f"This alliance earns in {tenant.alliance.currency}."]}})
    digits = get_currency_precision(currency)
    minor = amount["value"].scaleb(digits)
    if minor != minor.to_integral_value():
        raise ApiProblem(422, "validation_error", "The request did not validate; see errors.",
                         errors={"amount": {"value": [f"At most {digits} decimal places for {currency}."]}})
    return {"value": str(amount["value"]), "currency": currency, "minor": int(minor)}


def _points_for(amount: dict) -> tuple[int, dict]:
    tenant = _tenant()
    info = _minor_amount(amount)
    points = rules.points_for_amount(info["minor"], tenant.earn_points, tenant.earn_per_minor, tenant.earn_rounding)
    if points < 1:
        raise ApiProblem(422, "amount_earns_no_points",
                         "This amount earns no points under the tenant's earn rule; record it as a visit.",
                         errors={"amount": ["This amount earns no points under the tenant's earn rule."]})
    if points > s.MAX_POINTS:
        raise ApiProblem(422, "validation_error", "The request did not validate; see errors.",
                         errors={"amount": [f"This amount earns more than {s.MAX_POINTS} points at once."]})
    return points, info


def visit_body(visit, pairwise_id: str) -> dict:
    amount = None
    if visit.amount_minor is not None:
        digits = get_currency_precision(visit.currency)
        value = (Decimal(visit.amount_minor).scaleb(-digits)).quantize(Decimal(1).scaleb(-digits))
        amount = {"value": str(value), "currency": visit.currency, "minor": visit.amount_minor}
    return {"id": visit.id, "member_id": pairwise_id, "occurred_at": visit.occurred_at.isoformat(),
            "reference": visit.reference, "description": visit.description, "amount": amount,
            "transaction_id": str(visit.transaction_id) if visit.transaction_id else None}


# ---------------------------------------------------------------- members

@blp.route("/members", methods=["POST"])
@secured(blp, write=True, scope="members:write", errors={409: "identifier_conflict: identifiers name two different members",
                                       400: "idempotency_key_required", 422: "validation_error, invalid_phone"})
@blp.arguments(s.EnrolIn)
@blp.response(201, s.MemberOut, description="a new member was enrolled")
@blp.alt_response(200, schema=s.MemberOut, description="an existing member was linked")
def enrol(body):
    """Enrol or link a member by phone, email or your external ref, with the consent you captured."""
    tenant = _tenant()
    _not_future((body.get("consent") or {}).get("captured_at"), "consent.captured_at")

    def work(session):
        consent = body.get("consent")
        result = members.enrol_or_link(
            session, tenant=tenant, phone=body.get("phone"), email=body.get("email"),
            external_ref=body.get("external_ref"), name=body.get("name"),
            consent=ConsentInput(**consent) if consent else None)
        view = members.member_view(session, tenant=tenant, member=result.member)
        return (201 if result.created else 200), {**view, "created": result.created}

    return idempotent(body, work)


@blp.route("/members/<string:member_id>", methods=["GET"])
@secured(blp, "members:read", errors=MEMBER_ERRORS)
@blp.response(200, s.MemberOut)
def get_member(member_id):
    """The member as this tenant may see them: personal fields only with profile consent."""
    session = db_session()
    member = _member(session, member_id, purpose=None)
    view = members.member_view(session, tenant=_tenant(), member=member)
    session.commit()
    return json_response(view)


@blp.route("/members/<string:member_id>/consents", methods=["POST"])
@secured(blp, write=True, scope="members:write", errors={**MEMBER_ERRORS, 400: "idempotency_key_required",
                                       422: "validation_error or idempotency_key_reused"})
@blp.arguments(s.ConsentIn)
@blp.response(201, s.ConsentOut)
def record_consent(body, member_id):
    """Record a consent event you captured: grant or withdraw one purpose. It takes effect at once."""
    tenant = _tenant()
    _not_future(body.get("captured_at"), "captured_at")

    def work(session):
        member = _member(session, member_id, purpose=None)
        event = members.record_consent(session, tenant=tenant, member=member, purpose=body["purpose"],
                                       granted=body["granted"], channel=body["channel"],
                                       terms_version=body.get("terms_version"), captured_at=body.get("captured_at"))
        state = members.current_consents(session, member_id=member.id, tenant_id=tenant.id)
        return 201, {"member_id": member_id, "purpose": event.purpose, "granted": event.granted,
                     "captured_at": event.captured_at.isoformat(), "consents": state}

    return idempotent(body, work)


# ---------------------------------------------------------------- points

@blp.route("/members/<string:member_id>/balance", methods=["GET"])
@secured(blp, "points:read", errors={**MEMBER_ERRORS, 422: "validation_error: as_of"})
@blp.arguments(s.BalanceArgs, location="query")
@blp.response(200, s.BalanceOut)
def get_balance(args, member_id):
    """Balance, held and available points, what is owed, and which points expire when.

    `available` is what a redemption could spend now (or at `as_of`, for a late-posted one):
    points already past their date are left out and shown as `pending_expiry` until the
    expiry run removes them.
    """
    session = db_session()
    member = _member(session, member_id)
    as_of = args.get("as_of") or utcnow()
    bal = ledger.balance(session, member_id=member.id, as_of=as_of)
    session.commit()
    return json_response({
        "member_id": member_id, "as_of": as_of.isoformat(), "balance": bal.balance, "held": bal.held,
        "available": bal.available, "pending_expiry": bal.pending_expiry, "owed": -bal.shortfall,
        "expiring": [{"points": pts, "expires_at": at.isoformat()} for at, pts in bal.expiring],
    })


@blp.route("/members/<string:member_id>/earnings", methods=["POST"])
@secured(blp, write=True, scope="points:earn", errors=POINTS_ERRORS)
@blp.arguments(s.EarnIn)
@blp.response(201, s.TransactionOut)
def earn(body, member_id):
    """Credit points: explicit `points`, or a purchase `amount` your earn rule converts."""
    tenant = _tenant()
    _not_future(body.get("occurred_at"), "occurred_at")
    if "amount" in body:
        points, amount = _points_for(body["amount"])
    else:
        points, amount = body["points"], None

    def work(session):
        member = _member(session, member_id)
        tx = ledger.earn(session, alliance_id=tenant.alliance_id, tenant_id=tenant.id, member_id=member.id,
                         points=points, expiry_months=tenant.alliance.expiry_months,
                         timezone=tenant.alliance.timezone, reference=body.get("reference"),
                         occurred_at=body.get("occurred_at"), description=body.get("description"),
                         meta=_meta(body, amount))
        if amount is not None:  # a purchase is a visit too
            members.record_visit(session, tenant=tenant, member=member, occurred_at=tx.occurred_at,
                                 reference=tx.reference, description=tx.description, amount_minor=amount["minor"],
                                 currency=amount["currency"], transaction_id=tx.id)
        return 201, transaction_body(tx, member_id)

    return idempotent(body, work)


@blp.route("/members/<string:member_id>/visits", methods=["POST"])
@secured(blp, write=True, scope="visits:write", errors=POINTS_ERRORS)
@blp.arguments(s.VisitIn)
@blp.response(201, s.VisitOut)
def record_visit(body, member_id):
    """Record a visit or purchase that earns no points (a free entry, a zero-value sale).

    Purchases posted to `earnings` with an `amount` are recorded as visits already.
    """
    tenant = _tenant()
    _not_future(body.get("occurred_at"), "occurred_at")
    amount = _minor_amount(body["amount"]) if "amount" in body else None

    def work(session):
        member = _member(session, member_id)
        visit = members.record_visit(
            session, tenant=tenant, member=member, occurred_at=body.get("occurred_at") or utcnow(),
            reference=body.get("reference"), description=body.get("description"),
            amount_minor=amount["minor"] if amount else None, currency=amount["currency"] if amount else None)
        return 201, visit_body(visit, member_id)

    return idempotent(body, work)


@blp.route("/members/<string:member_id>/redemptions", methods=["POST"])
@secured(blp, write=True, scope="points:redeem", errors={**POINTS_ERRORS, 409: "insufficient_points"})
@blp.arguments(s.RedeemIn)
@blp.response(201, s.TransactionOut)
def redeem(body, member_id):
    """Debit points at this tenant; never below the available balance."""
    tenant = _tenant()
    _not_future(body.get("occurred_at"), "occurred_at")

    def work(session):
        member = _member(session, member_id)
        tx = ledger.redeem(session, alliance_id=tenant.alliance_id, tenant_id=tenant.id, member_id=member.id,
                           points=body["points"], reference=body.get("reference"),
                           occurred_at=body.get("occurred_at"), description=body.get("description"),
                           meta=_meta(body))
        return 201, transaction_body(tx, member_id)

    return idempotent(body, work)


@blp.route("/members/<string:member_id>/holds", methods=["POST"])
@secured(blp, write=True, scope="points:hold", errors={**POINTS_ERRORS, 409: "insufficient_points"})
@blp.arguments(s.HoldIn)
@blp.response(201, s.HoldOut)
def create_hold(body, member_id):
    """Reserve points for a pending booking; capture or void it before `expires_in` seconds."""
    tenant = _tenant()

    def work(session):
        member = _member(session, member_id)
        now = utcnow()
        hold = ledger.create_hold(session, alliance_id=tenant.alliance_id, tenant_id=tenant.id,
                                  member_id=member.id, points=body["points"],
                                  expires_at=now + dt.timedelta(seconds=body["expires_in"]),
                                  reference=body.get("reference"), description=body.get("description"),
                                  meta=_meta(body), now=now)
        return 201, hold_body(hold, member_id)

    return idempotent(body, work)


def _hold_pairwise(session, hold_id: uuid.UUID) -> str:
    hold = session.get(Hold, hold_id)
    if hold is None or hold.tenant_id != _tenant().id:
        raise ApiProblem(404, "not_found", "Hold not found.")
    return _pairwise_ids(session, {hold.member_id})[hold.member_id]


@blp.route("/holds/<string:hold_id>", methods=["GET"])
@secured(blp, "points:hold", errors={404: "not_found"})
@blp.response(200, s.HoldOut)
def get_hold(hold_id):
    """One of this tenant's holds."""
    session = db_session()
    hid = _parse_uuid(hold_id, "Hold")
    pairwise = _hold_pairwise(session, hid)
    body = hold_body(session.get(Hold, hid), pairwise)
    session.commit()
    return json_response(body)


@blp.route("/holds/<string:hold_id>/capture", methods=["POST"])
@secured(blp, write=True, scope="points:hold", errors={404: "not_found", 400: "idempotency_key_required",
                                     409: "hold_already_resolved, hold_expired or capture_exceeds_hold",
                                     422: "validation_error or idempotency_key_reused"})
@blp.arguments(s.CaptureIn)
@blp.response(201, s.TransactionOut)
def capture_hold(body, hold_id):
    """Redeem a hold, whole or in part; the rest goes back to the member."""
    tenant = _tenant()
    hid = _parse_uuid(hold_id, "Hold")

    def work(session):
        pairwise = _hold_pairwise(session, hid)
        tx = ledger.capture_hold(session, tenant_id=tenant.id, hold_id=hid, points=body.get("points"),
                                 description=body.get("description"))
        return 201, transaction_body(tx, pairwise)

    return idempotent(body, work)


@blp.route("/holds/<string:hold_id>/void", methods=["POST"])
@secured(blp, write=True, scope="points:hold", errors={404: "not_found", 400: "idempotency_key_required",
                                     409: "hold_already_resolved or hold_expired",
                                     422: "validation_error or idempotency_key_reused"})
@blp.arguments(s.VoidIn)
@blp.response(201, s.TransactionOut)
def void_hold(body, hold_id):
    """Release a hold in full."""
    tenant = _tenant()
    hid = _parse_uuid(hold_id, "Hold")

    def work(session):
        pairwise = _hold_pairwise(session, hid)
        tx = ledger.void_hold(session, tenant_id=tenant.id, hold_id=hid, description=body.get("description"))
        return 201, transaction_body(tx, pairwise)

    return idempotent(body, work)


# ---------------------------------------------------------------- transactions

def _own_transaction(session, tx_id: uuid.UUID) -> Transaction:
    tx = session.get(Transaction, tx_id)
    if tx is None or tx.tenant_id != _tenant().id:
        raise ApiProblem(404, "not_found", "Transaction not found.")
    return tx


@blp.route("/transactions/<string:transaction_id>/reversals", methods=["POST"])
@secured(blp, write=True, scope="points:reverse", errors={404: "not_found", 400: "idempotency_key_required",
                                        409: "already_reversed or reversal_exceeds_original",
                                        422: "validation_error or idempotency_key_reused"})
@blp.arguments(s.ReversalIn)
@blp.response(201, s.TransactionOut)
def reverse(body, transaction_id):
    """Refund or cancel one of your transactions, whole or in part (see docs/ledger.md for spent points)."""
    tenant = _tenant()
    tid = _parse_uuid(transaction_id, "Transaction")

    def work(session):
        original = _own_transaction(session, tid)
        tx = ledger.reverse(session, tenant_id=tenant.id, transaction_id=tid, points=body.get("points"),
                            reason=body.get("reason"), member_id=members.survivor_id(session, original.member_id))
        return 201, transaction_body(tx, _pairwise_ids(session, {tx.member_id})[tx.member_id])

    return idempotent(body, work)


@blp.route("/transactions/<string:transaction_id>", methods=["GET"])
@secured(blp, "transactions:read", errors={404: "not_found"})
@blp.response(200, s.TransactionOut)
def get_transaction(transaction_id):
    """One of this tenant's transactions."""
    session = db_session()
    tx = _own_transaction(session, _parse_uuid(transaction_id, "Transaction"))
    body = transaction_body(tx, _pairwise_ids(session, {tx.member_id})[tx.member_id])
    session.commit()
    return json_response(body)


@blp.route("/transactions", methods=["GET"])
@secured(blp, "transactions:read", errors={422: "validation_error"})
@blp.arguments(s.TransactionListArgs, location="query")
@blp.response(200, s.TransactionPage)
def list_transactions(args):
    """This tenant's postings, newest first, cursor-paginated."""
    session = db_session()
    tenant = _tenant()
    stmt = sa.select(Transaction).where(Transaction.tenant_id == tenant.id)
    if args.get("member_id"):
        link = session.scalar(sa.select(MemberLink).where(MemberLink.tenant_id == tenant.id,
                                                          MemberLink.pairwise_id == args["member_id"]))
        if link is None:
            return json_response({"data": [], "next_cursor": None})
        stmt = stmt.where(Transaction.member_id == link.member_id)
    if args.get("kind"):
        stmt = stmt.where(Transaction.kind == args["kind"])
    if args.get("cursor"):
        posted_raw, id_raw = decode_cursor(args["cursor"], 2)
        try:
            posted, last_id = dt.datetime.fromisoformat(posted_raw), uuid.UUID(id_raw)
            if posted.tzinfo is None:
                raise ValueError("naive")
            posted = posted.astimezone(dt.timezone.utc)
        except (ValueError, OverflowError) as exc:
            raise ApiProblem(422, "validation_error", "The cursor is not valid.",
                             errors={"cursor": ["not a cursor returned by this API"]}) from exc
        stmt = stmt.where(sa.or_(Transaction.posted_at < posted,
                                 sa.and_(Transaction.posted_at == posted, Transaction.id < last_id)))
    rows = session.scalars(stmt.order_by(Transaction.posted_at.desc(), Transaction.id.desc())
                           .limit(args["limit"] + 1)).all()
    page, more = rows[: args["limit"]], len(rows) > args["limit"]
    ids = _pairwise_ids(session, {tx.member_id for tx in page})
    body = {"data": [transaction_body(tx, ids[tx.member_id]) for tx in page],
            "next_cursor": encode_cursor(page[-1].posted_at, page[-1].id) if more else None}
    session.commit()
    return json_response(body)

"""Visits: every purchase is recorded, also one that earns no points."""
from __future__ import annotations

import sqlalchemy as sa

from alliance.models import Visit
from ledger.models import Transaction
from tenants.isolation import platform_scope

M = "/api/v1/members"


def _visits(session, tenant_id):
    with platform_scope(session):
        return session.scalars(sa.select(Visit).where(Visit.tenant_id == tenant_id).order_by(Visit.id)).all()


def test_a_purchase_earned_by_amount_is_recorded_as_a_visit(partner, session):
    mid = partner.enrol()
    r = partner.post(f"{M}/{mid}/earnings", {"amount": {"value": "4.35", "currency": "CNY"}, "reference": "o-1",
                                             "occurred_at": "1997-01-05T12:00:00+08:00"})
    assert r.status_code == 201, r.get_json()
    (visit,) = _visits(session, partner.tenant.id)
    assert (visit.amount_minor, visit.currency, str(visit.transaction_id), visit.reference) == (
        435, "CNY", r.get_json()["id"], "o-1")
    assert visit.occurred_at.isoformat() == "1997-01-05T04:00:00+00:00"


def test_an_explicit_points_earn_is_not_a_visit(partner, session):
    mid = partner.enrol()
    assert partner.post(f"{M}/{mid}/earnings", {"points": 50}).status_code == 201
    assert _visits(session, partner.tenant.id) == []


def test_a_zero_value_purchase_is_a_visit_without_points(partner, session):
    mid = partner.enrol()
    r = partner.post(f"{M}/{mid}/visits", {"amount": {"value": "0.00", "currency": "CNY"}, "reference": "free-1",
                                           "occurred_at": "1997-02-10T12:00:00+08:00"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["amount"] == {"value": "0.00", "currency": "CNY", "minor": 0}
    assert (body["member_id"], body["transaction_id"], body["reference"]) == (mid, None, "free-1")
    assert partner.get(f"{M}/{mid}/balance").get_json()["balance"] == 0
    (visit,) = _visits(session, partner.tenant.id)
    assert (visit.amount_minor, visit.transaction_id) == (0, None)


def test_an_amount_that_earns_nothing_is_refused_and_nothing_is_posted(make_partner, session):
    brand = make_partner(code="gear", kind="brand", earn_points=1, earn_per_minor=200)
    mid = brand.enrol()
    r = brand.post(f"{M}/{mid}/earnings", {"amount": {"value": "1.99", "currency": "CNY"}})
    assert r.status_code == 422
    assert r.get_json()["code"] == "amount_earns_no_points"
    with platform_scope(session):
        assert session.scalar(sa.select(sa.func.count()).select_from(Transaction)
                              .where(Transaction.tenant_id == brand.tenant.id)) == 0
    assert _visits(session, brand.tenant.id) == []


def test_a_visit_needs_loyalty_consent(partner):
    mid = partner.enrol(purposes=("profile",))
    r = partner.post(f"{M}/{mid}/visits", {})
    assert r.status_code == 403 and r.get_json()["code"] == "consent_required"


def test_a_visit_replays_with_its_key_and_refuses_a_negative_amount(partner, session):
    mid = partner.enrol()
    first = partner.post(f"{M}/{mid}/visits", {"reference": "gate-7"}, key="visit-7")
    again = partner.post(f"{M}/{mid}/visits", {"reference": "gate-7"}, key="visit-7")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    bad = partner.post(f"{M}/{mid}/visits", {"amount": {"value": "-1", "currency": "CNY"}})
    assert bad.status_code == 422 and "amount" in bad.get_json()["errors"]
    assert len(_visits(session, partner.tenant.id)) == 1


def test_a_body_that_is_not_json_is_415_and_records_nothing(partner, session):
    mid = partner.enrol()
    r = partner.client.post(f"{M}/{mid}/visits", data='{"amount": {"value": "5", "currency": "CNY"}}',
                            headers={**partner.headers(), "Content-Type": "text/plain"})
    assert r.status_code == 415 and r.get_json()["code"] == "unsupported_media_type"
    form = partner.client.post(f"{M}/{mid}/earnings", data={"points": "5"}, headers=partner.headers())
    assert form.status_code == 415
    assert _visits(session, partner.tenant.id) == []
    assert partner.get(f"{M}/{mid}/balance").get_json()["balance"] == 0

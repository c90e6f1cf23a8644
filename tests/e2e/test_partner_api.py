"""The partner contract end to end, through the real token endpoint."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import ALL_SCOPES, take_token

M = "/api/v1/members"


def _earn(p, mid, points=100, **kw):
    r = p.post(f"{M}/{mid}/earnings", {"points": points, **kw})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


# ---------------------------------------------------------------- happy paths

def test_enrol_creates_then_links_the_same_person_in_another_format(partner):
    first = partner.post(M, {"phone": "13800138000", "name": "张三",
                             "consent": {"purposes": ["loyalty", "profile"], "channel": "pos"}})
    assert first.status_code == 201
    body = first.get_json()
    assert body["created"] is True and body["id"].startswith("mbr_")
    assert body["phone"] == "+8613800138000" and body["name"] == "张三"
    again = partner.post(M, {"phone": "+86 138 0013 8000"})
    assert again.status_code == 200
    assert again.get_json()["id"] == body["id"] and again.get_json()["created"] is False


def test_get_member_shows_personal_fields_only_with_profile_consent(partner, other):
    mid = partner.enrol(purposes=("loyalty",), email="A@Example.com ")
    body = partner.get(f"{M}/{mid}").get_json()
    assert body["id"] == mid and body["consents"] == {"loyalty": True, "profile": False, "marketing": False}
    assert "phone" not in body and "email" not in body and "member_no" not in body
    partner.post(f"{M}/{mid}/consents", {"purpose": "profile", "granted": True, "channel": "app"})
    body = partner.get(f"{M}/{mid}").get_json()
    assert body["email"] == "a@example.com" and len(body["member_no"]) >= 10


def test_earn_redeem_and_balance(partner):
    mid = partner.enrol()
    tx = _earn(partner, mid, 100, reference="order-1", description="climb")
    assert tx["kind"] == "earn" and tx["points"] == 100 and tx["member_id"] == mid and tx["reference"] == "order-1"
    r = partner.post(f"{M}/{mid}/redemptions", {"points": 80, "reference": "order-2"})
    assert r.status_code == 201 and r.get_json()["points"] == -80
    bal = partner.get(f"{M}/{mid}/balance").get_json()
    assert (bal["balance"], bal["held"], bal["available"], bal["owed"]) == (20, 0, 20, 0)
    assert [e["points"] for e in bal["expiring"]] == [20]


def test_earn_by_amount_uses_the_tenant_rule_exactly(make_partner):
    p = make_partner(code="hundred", earn_points=100, earn_per_minor=100)
    mid = p.enrol()
    r = p.post(f"{M}/{mid}/earnings", {"amount": {"value": "4.35", "currency": "CNY"}})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["points"] == 435
    assert r.get_json()["amount"] == {"value": "4.35", "currency": "CNY", "minor": 435}
    r = p.post(f"{M}/{mid}/earnings", {"amount": {"value": 4.35, "currency": "CNY"}})
    assert r.get_json()["points"] == 435


@pytest.mark.parametrize("amount,field", [
    ({"value": "4.355", "currency": "CNY"}, "value"),
    ({"value": "abc", "currency": "CNY"}, "value"),
    ({"value": "-1", "currency": "CNY"}, "value"),
    ({"value": "NaN", "currency": "CNY"}, "value"),
    ({"value": "4.35", "currency": "USD"}, "currency"),
])
def test_bad_amounts_are_422_and_post_nothing(partner, amount, field):
    mid = partner.enrol()
    r = partner.post(f"{M}/{mid}/earnings", {"amount": amount})
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "validation_error"
    assert field in str(r.get_json()["errors"])
    assert partner.get(f"{M}/{mid}/balance").get_json()["balance"] == 0


def test_hold_capture_part_releases_the_rest(partner):
    mid = partner.enrol()
    _earn(partner, mid, 100)
    hold = partner.post(f"{M}/{mid}/holds", {"points": 60, "reference": "booking-7", "expires_in": 1800})
    assert hold.status_code == 201
    h = hold.get_json()
    assert h["status"] == "active" and h["points"] == 60
    bal = partner.get(f"{M}/{mid}/balance").get_json()
    assert (bal["balance"], bal["held"], bal["available"]) == (100, 60, 40)
    r = partner.post(f"{M}/{mid}/redemptions", {"points": 50})
    assert r.status_code == 409 and r.get_json()["code"] == "insufficient_points"
    cap = partner.post(f"/api/v1/holds/{h['id']}/capture", {"points": 40})
    assert cap.status_code == 201 and cap.get_json()["points"] == -40 and cap.get_json()["hold_id"] == h["id"]
    assert partner.get(f"/api/v1/holds/{h['id']}").get_json()["status"] == "captured"
    bal = partner.get(f"{M}/{mid}/balance").get_json()
    assert (bal["balance"], bal["held"], bal["available"]) == (60, 0, 60)
    second = partner.post(f"/api/v1/holds/{h['id']}/void", {})
    assert second.status_code == 409 and second.get_json()["code"] == "hold_already_resolved"


def test_void_returns_everything_and_a_second_capture_conflicts(partner):
    mid = partner.enrol()
    _earn(partner, mid, 100)
    h = partner.post(f"{M}/{mid}/holds", {"points": 70}).get_json()
    assert partner.post(f"/api/v1/holds/{h['id']}/void", {}).status_code == 201
    r = partner.post(f"/api/v1/holds/{h['id']}/capture", {})
    assert r.status_code == 409 and r.get_json()["code"] == "hold_already_resolved"
    assert partner.get(f"{M}/{mid}/balance").get_json()["available"] == 100


def test_capture_above_the_hold_is_refused(partner):
    mid = partner.enrol()
    _earn(partner, mid, 100)
    h = partner.post(f"{M}/{mid}/holds", {"points": 30}).get_json()
    r = partner.post(f"/api/v1/holds/{h['id']}/capture", {"points": 31})
    assert r.status_code == 409 and r.get_json()["code"] == "capture_exceeds_hold"
    assert partner.get(f"/api/v1/holds/{h['id']}").get_json()["status"] == "active"


def test_reversal_of_an_earn_twice_reverses_once(partner):
    mid = partner.enrol()
    tx = _earn(partner, mid, 100)
    r = partner.post(f"/api/v1/transactions/{tx['id']}/reversals", {"points": 30, "reason": "partial refund"})
    assert r.status_code == 201 and r.get_json()["points"] == -30 and r.get_json()["reverses"] == tx["id"]
    r = partner.post(f"/api/v1/transactions/{tx['id']}/reversals", {})
    assert r.status_code == 201 and r.get_json()["points"] == -70
    r = partner.post(f"/api/v1/transactions/{tx['id']}/reversals", {})
    assert r.status_code == 409 and r.get_json()["code"] == "already_reversed"
    assert partner.get(f"{M}/{mid}/balance").get_json()["balance"] == 0


def test_transactions_list_is_paginated_and_detail_matches(partner):
    mid = partner.enrol()
    ids = [_earn(partner, mid, 10 + i)["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        q = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = partner.get(f"/api/v1/transactions{q}").get_json()
        assert len(page["data"]) <= 2
        seen += [t["id"] for t in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    detail = partner.get(f"/api/v1/transactions/{ids[0]}").get_json()
    assert detail["points"] == 10 and detail["member_id"] == mid
    assert partner.get("/api/v1/transactions?limit=0").status_code == 422
    assert partner.get("/api/v1/transactions?limit=201").status_code == 422
    bad = partner.get("/api/v1/transactions?cursor=garbage")
    assert bad.status_code == 422 and bad.get_json()["code"] == "validation_error"


# ---------------------------------------------------------------- idempotency

def test_replay_returns_the_original_and_posts_once(partner):
    mid = partner.enrol()
    first = partner.post(f"{M}/{mid}/earnings", {"points": 50}, key="same")
    again = partner.post(f"{M}/{mid}/earnings", {"points": 50}, key="same")
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert partner.get(f"{M}/{mid}/balance").get_json()["balance"] == 50
    reused = partner.post(f"{M}/{mid}/earnings", {"points": 51}, key="same")
    assert reused.status_code == 422 and reused.get_json()["code"] == "idempotency_key_reused"


def test_writes_require_an_idempotency_key(partner):
    mid = partner.enrol()
    r = partner.client.post(f"{M}/{mid}/earnings", json={"points": 5},
                            headers={"Authorization": f"Bearer {partner.token}"})
    assert r.status_code == 400 and r.get_json()["code"] == "idempotency_key_required"


def test_keys_are_scoped_to_the_tenant(partner, other):
    a = partner.enrol()
    b = other.enrol(phone="13900139000")
    assert partner.post(f"{M}/{a}/earnings", {"points": 5}, key="shared").status_code == 201
    r = other.post(f"{M}/{b}/earnings", {"points": 5}, key="shared")
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers


# ---------------------------------------------------------------- bad input

ODD_POINTS = [80.5, 80.0, "80", True, None, "NaN", "Infinity", "1e30", -5, 0, "missing", 10**30]


@pytest.mark.parametrize("value", ODD_POINTS, ids=[repr(v) for v in ODD_POINTS])
def test_odd_points_values_are_422_naming_the_field(partner, value):
    mid = partner.enrol()
    if value == "missing":
        raw = "{}"
    elif value in ("NaN", "Infinity", "1e30"):
        raw = f'{{"points": {value}}}'
    else:
        import json

        raw = json.dumps({"points": value})
    for path in (f"{M}/{mid}/earnings", f"{M}/{mid}/redemptions", f"{M}/{mid}/holds"):
        r = partner.client.post(path, data=raw, content_type="application/json", headers=partner.headers())
        assert r.status_code == 422, (path, value, r.get_json())
        body = r.get_json()
        assert body["code"] == "validation_error" and "points" in body["errors"], body
    assert partner.get(f"{M}/{mid}/balance").get_json()["balance"] == 0


def test_unknown_fields_are_rejected(partner):
    mid = partner.enrol()
    r = partner.post(f"{M}/{mid}/earnings", {"points": 5, "bonus": 1000})
    assert r.status_code == 422 and "bonus" in r.get_json()["errors"]


def test_malformed_json_is_400_problem(partner):
    mid = partner.enrol()
    r = partner.client.post(f"{M}/{mid}/earnings", data="{not json", content_type="application/json",
                            headers=partner.headers())
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == "malformed_json"


@pytest.mark.parametrize("phone", ["12345", "abc", "+86 000"])
def test_invalid_phone_is_422(partner, phone):
    r = partner.post(M, {"phone": phone})
    assert r.status_code == 422 and r.get_json()["code"] == "invalid_phone"


def test_enrol_without_identifier_is_422(partner):
    r = partner.post(M, {"name": "nobody"})
    assert r.status_code == 422 and r.get_json()["code"] == "validation_error"


def test_identifiers_of_two_members_conflict(partner):
    partner.enrol(phone="13800138000")
    partner.post(M, {"email": "b@example.com", "consent": {"purposes": ["loyalty"], "channel": "pos"}})
    r = partner.post(M, {"phone": "13800138000", "email": "b@example.com"})
    assert r.status_code == 409 and r.get_json()["code"] == "identifier_conflict"


# ---------------------------------------------------------------- consent

def test_withdrawn_loyalty_consent_blocks_the_next_call(partner):
    mid = partner.enrol()
    _earn(partner, mid, 10)
    r = partner.post(f"{M}/{mid}/consents", {"purpose": "loyalty", "granted": False, "channel": "app"})
    assert r.status_code == 201 and r.get_json()["consents"]["loyalty"] is False
    for resp in (partner.post(f"{M}/{mid}/earnings", {"points": 5}), partner.get(f"{M}/{mid}/balance")):
        assert resp.status_code == 403 and resp.get_json()["code"] == "consent_required"


def test_consent_granted_must_be_a_boolean(partner):
    mid = partner.enrol()
    r = partner.post(f"{M}/{mid}/consents", {"purpose": "loyalty", "granted": "no", "channel": "app"})
    assert r.status_code == 422 and "granted" in r.get_json()["errors"]


# ---------------------------------------------------------------- OAuth

def test_token_with_client_secret_post_and_metadata(app, client, partner):
    r = take_token(client, partner.client_id, partner.client_secret, "points:read", method="post")
    assert r.status_code == 200 and r.get_json()["scope"] == "points:read"
    meta = client.get("/.well-known/oauth-authorization-server").get_json()
    assert meta["token_endpoint"].endswith("/oauth/token") and "points:earn" in meta["scopes_supported"]


def test_asking_for_a_scope_the_client_lacks_is_invalid_scope(make_partner, client):
    p = make_partner(code="narrow", scopes="points:read")
    r = take_token(client, p.client_id, p.client_secret, "points:read points:earn")
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_scope"


def test_wrong_secret_is_invalid_client(client, partner):
    r = take_token(client, partner.client_id, "wrong")
    assert r.status_code == 401 and r.get_json()["error"] == "invalid_client"


def test_revoked_token_stops_at_once_and_others_cannot_revoke_it(client, partner, other):
    mid = partner.enrol()
    r = client.post("/oauth/revoke", data={"token": partner.token, "client_id": other.client_id,
                                           "client_secret": other.client_secret})
    assert r.status_code == 400
    assert partner.get(f"{M}/{mid}/balance").status_code == 200
    r = client.post("/oauth/revoke", data={"token": partner.token, "client_id": partner.client_id,
                                           "client_secret": partner.client_secret})
    assert r.status_code == 200
    r = partner.get(f"{M}/{mid}/balance")
    assert r.status_code == 401 and r.get_json()["code"] == "invalid_token"


def test_introspection_for_the_tenants_gateway(client, partner, other):
    r = client.post("/oauth/introspect", data={"token": partner.token, "client_id": partner.client_id,
                                               "client_secret": partner.client_secret})
    body = r.get_json()
    assert body["active"] is True and body["client_id"] == partner.client_id and "points:earn" in body["scope"]
    r = client.post("/oauth/introspect", data={"token": partner.token, "client_id": other.client_id,
                                               "client_secret": other.client_secret})
    assert r.get_json().get("active") is not True


def test_suspended_tenant_tokens_fail(partner, session):
    mid = partner.enrol()
    partner.tenant.status = "suspended"
    session.commit()
    r = partner.get(f"{M}/{mid}/balance")
    assert r.status_code == 401 and r.get_json()["code"] == "invalid_token"


def test_a_suspended_tenants_client_is_told_so_only_with_its_secret(partner, client, session):
    partner.tenant.status = "suspended"
    session.commit()
    told = take_token(client, partner.client_id, partner.client_secret)
    assert told.status_code == 401 and told.get_json()["error"] == "invalid_client"
    assert "suspended" in told.get_json()["error_description"]
    guessed = take_token(client, partner.client_id, "not-the-secret")
    assert guessed.status_code == 401 and "suspended" not in guessed.get_json().get("error_description", "")


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Basic abc"])
def test_missing_or_bad_token_is_401(client, header):
    headers = {"Authorization": header} if header else {}
    r = client.get("/api/v1/transactions", headers=headers)
    assert r.status_code == 401 and r.get_json()["code"] == "invalid_token"
    assert r.mimetype == "application/problem+json"


def test_all_scopes_are_known():
    assert "points:earn" in ALL_SCOPES.split()


def test_the_balance_is_what_can_be_spent_now_or_at_a_given_time(partner):
    mid = partner.enrol()
    partner.post(f"{M}/{mid}/earnings", {"points": 30, "occurred_at": "2020-01-10T12:00:00+08:00"})
    partner.post(f"{M}/{mid}/earnings", {"points": 5})
    now = partner.get(f"{M}/{mid}/balance").get_json()
    assert (now["available"], now["balance"], now["pending_expiry"]) == (5, 35, 30)
    assert [e["points"] for e in now["expiring"]] == [5]
    then = partner.get(f"{M}/{mid}/balance", query_string={"as_of": "2020-06-01T00:00:00+08:00"}).get_json()
    # points earned after as_of do not count: a redemption then could not have spent them
    assert (then["available"], then["pending_expiry"], then["as_of"]) == (30, 0, "2020-06-01T00:00:00+08:00")
    refused = partner.post(f"{M}/{mid}/redemptions", {"points": 6})
    assert refused.status_code == 409 and refused.get_json()["available"] == 5
    bad = partner.get(f"{M}/{mid}/balance", query_string={"as_of": "yesterday"})
    assert bad.status_code == 422 and "as_of" in bad.get_json()["errors"]


def test_an_amount_as_a_json_number_is_kept_in_plain_notation_and_a_negative_one_is_named(partner):
    mid = partner.enrol()
    r = partner.client.post(f"{M}/{mid}/earnings", data='{"amount": {"value": 1e2, "currency": "CNY"}}',
                            headers={**partner.headers(), "Content-Type": "application/json"})
    assert r.status_code == 201, r.get_json()
    assert (r.get_json()["points"], r.get_json()["amount"]["value"]) == (100, "100")
    bad = partner.post(f"{M}/{mid}/earnings", {"amount": {"value": "-4.35", "currency": "CNY"}})
    assert bad.status_code == 422
    assert bad.get_json()["errors"]["amount"]["value"] == ["Must be a positive amount."]


def test_the_spec_documents_every_error_as_problem_json(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    seen = 0
    for ops in spec["paths"].values():
        for op in (op for op in ops.values() if isinstance(op, dict)):
            for status, response in op.get("responses", {}).items():
                if status != "default" and int(status) < 400:
                    continue
                if "$ref" in response:
                    response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
                assert list(response["content"]) == ["application/problem+json"], (status, response)
                assert response["content"]["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
                seen += 1
    assert seen > 50


def test_reversing_an_earn_after_a_merge_answers_with_the_survivors_id(partner, session):
    import sqlalchemy as sa

    from alliance import services as members
    from alliance.models import Member, MemberLink
    from tenants.isolation import platform_scope

    keep = partner.enrol(phone="13800138000")
    gone = partner.enrol(phone="13900139000")
    earn = partner.post(f"{M}/{gone}/earnings", {"points": 50}).get_json()
    with platform_scope(session):
        number = {link.pairwise_id: session.get(Member, link.member_id).member_no for link in session.scalars(
            sa.select(MemberLink).where(MemberLink.tenant_id == partner.tenant.id))}
        members.merge_members(session, alliance_id=partner.tenant.alliance_id, from_member_no=number[gone],
                              into_member_no=number[keep], actor="ops")
        session.commit()
    r = partner.post(f"/api/v1/transactions/{earn['id']}/reversals", {"points": 20})
    assert r.status_code == 201, r.get_json()
    assert (r.get_json()["member_id"], r.get_json()["points"]) == (keep, -20)
    assert partner.get(f"{M}/{keep}/balance").get_json()["balance"] == 30

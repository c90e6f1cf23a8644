"""Every endpoint against a token lacking its scope, and against another tenant's token."""
from __future__ import annotations

import pytest

from tenants.services import SCOPES

M = "/api/v1/members"


@pytest.fixture
def world(partner):
    """A member of `partner` with an earn, an active hold and a redemption."""
    mid = partner.enrol()
    earn = partner.post(f"{M}/{mid}/earnings", {"points": 100}).get_json()
    hold = partner.post(f"{M}/{mid}/holds", {"points": 10}).get_json()
    return {"mid": mid, "tx": earn["id"], "hold": hold["id"]}


def endpoints(w):
    mid, tx, hold = w["mid"], w["tx"], w["hold"]
    return [
        ("POST", M, {"phone": "13700137000"}, "members:write"),
        ("GET", f"{M}/{mid}", None, "members:read"),
        ("POST", f"{M}/{mid}/consents", {"purpose": "marketing", "granted": True, "channel": "app"}, "members:write"),
        ("GET", f"{M}/{mid}/balance", None, "points:read"),
        ("POST", f"{M}/{mid}/earnings", {"points": 5}, "points:earn"),
        ("POST", f"{M}/{mid}/redemptions", {"points": 5}, "points:redeem"),
        ("POST", f"{M}/{mid}/visits", {"amount": {"value": "0.00", "currency": "CNY"}}, "visits:write"),
        ("POST", f"{M}/{mid}/holds", {"points": 5}, "points:hold"),
        ("GET", f"/api/v1/holds/{hold}", None, "points:hold"),
        ("POST", f"/api/v1/holds/{hold}/capture", {"points": 1}, "points:hold"),
        ("POST", f"/api/v1/holds/{hold}/void", {}, "points:hold"),
        ("POST", f"/api/v1/transactions/{tx}/reversals", {"points": 1}, "points:reverse"),
        ("GET", f"/api/v1/transactions/{tx}", None, "transactions:read"),
        ("GET", "/api/v1/transactions", None, "transactions:read"),
    ]


def _call(p, method, path, body):
    if method == "GET":
        return p.get(path)
    return p.post(path, body)


def test_every_endpoint_is_in_the_matrix(app, world):
    documented = {(m.upper(), path) for path, ops in app.test_client().get("/api/v1/openapi.json")
                  .get_json()["paths"].items() for m in ops if m in ("get", "post")}
    assert len(documented) == len(endpoints(world))


@pytest.mark.parametrize("index", range(14))
def test_a_token_lacking_the_scope_is_403(make_partner, world, index):
    method, path, body, scope = endpoints(world)[index]
    lacking = make_partner(code=f"lack{index}", scopes=" ".join(s for s in SCOPES if s != scope))
    r = _call(lacking, method, path, body)
    assert r.status_code == 403, (path, r.get_json())
    assert r.get_json()["code"] == "insufficient_scope"


@pytest.mark.parametrize("index", range(14))
def test_another_tenants_token_gets_404_or_only_its_own_rows(other, world, partner, index):
    method, path, body, scope = endpoints(world)[index]
    r = _call(other, method, path, body)
    if path == M:  # enrolment always acts for the caller: a new member, under the caller's own id
        assert r.status_code == 201 and r.get_json()["id"] != world["mid"]
        return
    if path == "/api/v1/transactions":
        assert r.status_code == 200 and r.get_json()["data"] == []
        return
    assert r.status_code == 404, (path, r.get_json())
    assert r.get_json()["code"] == "not_found"
    # and the resource is untouched for its owner
    bal = partner.get(f"{M}/{world['mid']}/balance").get_json()
    assert (bal["balance"], bal["held"]) == (100, 10)


def test_a_second_tenant_enrolling_the_same_person_gets_its_own_id(partner, other, world):
    r = other.post(M, {"phone": "+8613800138000", "consent": {"purposes": ["loyalty"], "channel": "app"}})
    assert r.status_code == 200 and r.get_json()["created"] is False
    other_id = r.get_json()["id"]
    assert other_id != world["mid"]
    assert other.get(f"{M}/{world['mid']}").status_code == 404
    assert partner.get(f"{M}/{other_id}").status_code == 404
    bal = other.get(f"{M}/{other_id}/balance").get_json()
    assert bal["balance"] == 100  # one member, one alliance-wide balance
    listed = other.get("/api/v1/transactions").get_json()["data"]
    assert listed == []

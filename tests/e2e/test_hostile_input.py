"""Input a hostile partner sends: each answer is a 4xx problem, nothing is posted, never a 5xx."""
from __future__ import annotations

import base64
import json

import pytest

M = "/api/v1/members"


def _raw(partner, path, raw: bytes | str):
    return partner.client.post(path, data=raw, content_type="application/json", headers=partner.headers())


def _balance(partner, mid) -> int:
    return partner.get(f"{M}/{mid}/balance").get_json()["balance"]


@pytest.mark.parametrize("field", ["reference", "description"])
def test_a_nul_character_in_a_posting_text_is_422_naming_the_field(partner, field):
    mid = partner.enrol()
    r = partner.post(f"{M}/{mid}/earnings", {"points": 5, field: "a\u0000b"})
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "validation_error" and field in r.get_json()["errors"]
    assert _balance(partner, mid) == 0


@pytest.mark.parametrize("body,field", [
    ({"email": "a\u0000@example.com"}, "email"),
    ({"external_ref": "\u0000crm"}, "external_ref"),
    ({"external_ref": "crm-1", "name": "Zhang\u0000"}, "name"),
    ({"phone": "13800138000", "consent": {"purposes": ["loyalty"], "channel": "p\u0000s"}}, "consent"),
])
def test_control_characters_in_enrolment_fields_are_422_and_enrol_nobody(partner, body, field):
    r = partner.post(M, body)
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["errors"]
    assert partner.post(M, {"phone": "13800138000"}).get_json()["created"] is True


def test_control_characters_are_refused_by_the_normalisers_themselves():
    from alliance import identity
    from alliance.errors import InvalidEmail, ValidationFailed

    with pytest.raises(InvalidEmail):
        identity.normalize_email("a\x00@example.com")
    with pytest.raises(ValidationFailed):
        identity.normalize_ref("crm\x00")
    with pytest.raises(ValidationFailed):
        identity.display_name("Zhang\x07")
    assert identity.display_name("Zhang San") == "Zhang San"


@pytest.mark.parametrize("path", ["/mbr_%00", "/mbr_" + "x" * 100, "/mbr_%E5%BC%A0"])
def test_a_member_id_that_was_never_issued_is_404_without_a_query(partner, path):
    r = partner.get(M + path)
    assert r.status_code == 404 and r.get_json()["code"] == "not_found"


def test_a_nul_member_filter_on_the_transaction_list_is_422(partner):
    r = partner.get("/api/v1/transactions?member_id=%00")
    assert r.status_code == 422 and "member_id" in r.get_json()["errors"]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59+00:00"])
def test_an_occurred_at_before_1970_or_out_of_range_is_422(partner, when):
    mid = partner.enrol()
    r = partner.post(f"{M}/{mid}/earnings", {"points": 5, "occurred_at": when})
    assert r.status_code == 422, r.get_json()
    assert "occurred_at" in r.get_json()["errors"]
    assert _balance(partner, mid) == 0


def test_a_consent_captured_in_year_one_is_422(partner):
    r = partner.post(M, {"phone": "13800138000", "consent": {"purposes": ["loyalty"], "channel": "pos",
                                                             "captured_at": "0001-01-01T00:00:00+01:00"}})
    assert r.status_code == 422 and "consent" in r.get_json()["errors"]


def _cursor(*parts) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("posted", ["2020-01-01T00:00:00", "0001-01-01T00:00:00+14:00"])
def test_a_forged_cursor_with_a_naive_or_overflowing_time_is_422(partner, posted):
    r = partner.get("/api/v1/transactions?cursor=" + _cursor(posted, "12345678-1234-5678-1234-567812345678"))
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["errors"] == {"cursor": ["not a cursor returned by this API"]}


@pytest.mark.parametrize("value", ["4_35", "４.３５", " 4.35", "1e2", "1E+8", "+4.35", "0x10"])
def test_amount_strings_other_than_plain_decimals_are_422(make_partner, value):
    p = make_partner(code="hundred", earn_points=100, earn_per_minor=100)
    mid = p.enrol()
    r = p.post(f"{M}/{mid}/earnings", {"amount": {"value": value, "currency": "CNY"}})
    assert r.status_code == 422, (value, r.get_json())
    assert "value" in str(r.get_json()["errors"])
    assert _balance(p, mid) == 0


def test_an_amount_earning_more_than_the_points_limit_is_422(make_partner):
    p = make_partner(code="hundred", earn_points=100, earn_per_minor=100)
    mid = p.enrol()
    r = p.post(f"{M}/{mid}/earnings", {"amount": {"value": "99999999.99", "currency": "CNY"}})
    assert r.status_code == 422, r.get_json()
    assert "amount" in r.get_json()["errors"]
    assert _balance(p, mid) == 0
    ok = p.post(f"{M}/{mid}/earnings", {"amount": {"value": "10000000", "currency": "CNY"}})
    assert ok.status_code == 201 and ok.get_json()["points"] == 1_000_000_000


@pytest.mark.parametrize("raw", [
    '{"points": 5, "reference": "\\ud800"}',
    '{"points": 5, "metadata": {"k": "\\udfff"}}',
])
def test_a_lone_surrogate_in_the_body_is_400_malformed_json(partner, raw):
    mid = partner.enrol()
    r = _raw(partner, f"{M}/{mid}/earnings", raw)
    assert r.status_code == 400 and r.get_json()["code"] == "malformed_json"
    assert _balance(partner, mid) == 0


@pytest.mark.parametrize("depth", [40, 5000])
def test_deeply_nested_json_is_400_malformed_json(partner, depth):
    mid = partner.enrol()
    raw = '{"points": 5, "metadata": {"a": ' + "[" * depth + "]" * depth + "}}"
    r = _raw(partner, f"{M}/{mid}/earnings", raw)
    assert r.status_code == 400 and r.get_json()["code"] == "malformed_json"
    assert _balance(partner, mid) == 0


def test_a_key_given_twice_is_400_malformed_json(partner):
    mid = partner.enrol()
    r = _raw(partner, f"{M}/{mid}/earnings", '{"points": 1, "points": 500}')
    assert r.status_code == 400 and r.get_json()["code"] == "malformed_json"
    assert "points" in r.get_json()["detail"]
    assert _balance(partner, mid) == 0


def test_metadata_nested_within_the_limit_is_kept(partner):
    mid = partner.enrol()
    r = partner.post(f"{M}/{mid}/earnings", {"points": 5, "metadata": {"a": {"b": [1, 2, None]}}})
    assert r.status_code == 201 and r.get_json()["metadata"] == {"a": {"b": [1, 2, None]}}

def test_smoke(partner):
    mid = partner.enrol()
    r = partner.post(f"/api/v1/members/{mid}/earnings", {"points": 100, "reference": "o1"})
    assert r.status_code == 201, r.get_json()
    r = partner.get(f"/api/v1/members/{mid}/balance")
    assert r.get_json()["available"] == 100, r.get_json()

"""The CDNOW scenario through the services reconciles with the independent model of the file."""
from __future__ import annotations

from alliance import cdnow, demo
from ledger.verify import verify
from tenants.isolation import platform_scope


def test_seeding_a_slice_of_the_sample_reconciles_to_the_point(session):
    purchases = cdnow.load(cdnow.SAMPLE_FILE, customers=300)
    assert len({p.customer for p in purchases}) == 300
    demo.seed(session, purchases, code="cdnow-slice")
    session.flush()
    want = cdnow.expected(purchases)
    report = demo.reconcile(want, demo.books(session, alliance_code="cdnow-slice"),
                            summary=cdnow.published_summary(), sample=cdnow.sample_ids())
    assert report.ok, report.table() + "\n" + "\n".join(report.mismatches)
    # the scenario really exercises redemption and expiry
    assert want.redemptions > 10
    assert all(t.expired > 0 for t in want.partners.values())
    assert sum(1 for row in report.rows if row[0].startswith("sample members")) == 1
    with platform_scope(session):
        assert verify(session) == []


def test_a_member_who_is_not_in_the_file_shows_as_a_mismatch_not_a_crash(session):
    from alliance import services as members
    from ledger import services as ledger

    purchases = cdnow.load(cdnow.SAMPLE_FILE, customers=5)
    alliance = demo.seed(session, purchases, code="cdnow-stray")
    _, tenants = demo.ensure_alliance(session, code="cdnow-stray")
    tenant = tenants["yunxiu-scenic"]
    stray = members.enrol_or_link(session, tenant=tenant, phone="13800138000")
    ledger.earn(session, alliance_id=alliance.id, tenant_id=tenant.id, member_id=stray.member.id, points=5,
                expiry_months=12, timezone=alliance.timezone)
    report = demo.reconcile(cdnow.expected(purchases), demo.books(session, alliance_code="cdnow-stray"))
    assert not report.ok
    row = next(r for r in report.rows if r[0].startswith("members with postings or visits who are not"))
    assert row[1:] == ("0", "1", "MISMATCH")
    assert next(r for r in report.rows if r[0] == "members")[3] == "ok"

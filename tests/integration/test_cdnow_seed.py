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

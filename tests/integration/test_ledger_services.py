"""Posting through the ledger services, with values asserted and the books verified."""
import datetime as dt
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from ledger import services
from ledger.errors import (
    AlreadyReversed,
    CaptureExceedsHold,
    HoldAlreadyResolved,
    HoldExpired,
    HoldNotFound,
    IdempotencyKeyReused,
    IdempotencyReplay,
    InsufficientPoints,
    LedgerValidationError,
    NotReversible,
    ReversalExceedsOriginal,
    TransactionNotFound,
)
from ledger.models import Account, Entry, Hold, IdempotencyKey, Lot, LotConsumption, Transaction
from ledger.verify import verify
from tenants.isolation import platform_scope, tenant_scope
from tests.builders import create_alliance, create_member, create_tenant

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, 4, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture
def w(session):
    alliance = create_alliance(session, expiry_months=12)
    return SimpleNamespace(session=session, alliance=alliance,
                           t1=create_tenant(session, alliance=alliance), t2=create_tenant(session, alliance=alliance),
                           m=create_member(session, alliance=alliance), m2=create_member(session, alliance=alliance))


def earn(w, points, *, tenant=None, member=None, at=T0, **kw):
    return services.earn(w.session, alliance_id=w.alliance.id, tenant_id=(tenant or w.t1).id,
                         member_id=(member or w.m).id, points=points, expiry_months=kw.pop("expiry_months", 12),
                         timezone="Asia/Shanghai", occurred_at=at, now=at, **kw)


def redeem(w, points, *, tenant=None, member=None, at=T0, **kw):
    return services.redeem(w.session, alliance_id=w.alliance.id, tenant_id=(tenant or w.t2).id,
                           member_id=(member or w.m).id, points=points, occurred_at=at, now=at, **kw)


def hold(w, points, *, tenant=None, member=None, at=T0, ttl=DAY, **kw):
    return services.create_hold(w.session, alliance_id=w.alliance.id, tenant_id=(tenant or w.t2).id,
                                member_id=(member or w.m).id, points=points, expires_at=at + ttl, now=at, **kw)


def bal(w, member=None):
    return services.balance(w.session, member_id=(member or w.m).id)


def system_total(w, kind, tenant):
    return w.session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(Entry.amount), 0)).join(Account)
        .where(Account.kind == kind, Account.tenant_id == tenant.id)).scalar_one()


def tx_count(w):
    with platform_scope(w.session):
        return w.session.execute(sa.select(sa.func.count()).select_from(Transaction)).scalar_one()


def assert_clean(w):
    assert verify(w.session) == []


def test_earn_credits_a_lot_that_expires_at_the_end_of_the_local_day(w):
    tx = earn(w, 100, reference="order-1", meta={"channel": "pos"})
    assert (tx.kind, tx.points, tx.member_delta, tx.reference, tx.meta) == ("earn", 100, 100, "order-1",
                                                                             {"channel": "pos"})
    assert sorted(e.amount for e in tx.entries) == [-100, 100]
    lot = w.session.execute(sa.select(Lot).where(Lot.earn_transaction_id == tx.id)).scalar_one()
    assert (lot.points, lot.remaining, lot.issuer_tenant_id) == (100, 100, w.t1.id)
    assert lot.expires_at == dt.datetime(2025, 3, 1, 15, 59, 59, 999999, tzinfo=UTC)
    b = bal(w)
    assert (b.balance, b.available, b.held, b.shortfall) == (100, 100, 0, 0)
    assert b.expiring == [(lot.expires_at, 100)]
    assert system_total(w, "issued", w.t1) == -100
    assert_clean(w)


def test_earn_without_expiry_months_never_expires(w):
    earn(w, 10, expiry_months=None)
    assert bal(w).expiring == []
    assert services.expire_due(w.session, alliance_id=w.alliance.id, as_of=T0 + 5000 * DAY)["points"] == 0
    assert bal(w).available == 10


def test_points_must_be_positive_whole_numbers(w):
    for bad in (0, -5, True, 1.5):
        with pytest.raises(LedgerValidationError) as err:
            earn(w, bad)
        assert err.value.code == "validation_error"


def test_redeem_consumes_the_soonest_expiring_lot_first(w):
    late = earn(w, 100, at=T0)
    soon = earn(w, 50, at=T0 + DAY, expiry_months=1)
    tx = redeem(w, 80, at=T0 + 2 * DAY)
    assert (tx.points, tx.member_delta) == (80, -80)
    consumed = dict(w.session.execute(sa.select(Lot.earn_transaction_id, LotConsumption.points).join(Lot)
                                      .where(LotConsumption.transaction_id == tx.id)).all())
    assert consumed == {soon.id: 50, late.id: 30}
    assert bal(w).available == 70
    assert system_total(w, "redeemed", w.t2) == 80
    assert_clean(w)


def test_redeem_more_than_available_is_refused_with_the_amounts(w):
    earn(w, 30)
    with pytest.raises(InsufficientPoints) as err:
        redeem(w, 31)
    assert (err.value.available, err.value.requested, err.value.code) == (30, 31, "insufficient_points")


def test_redeem_first_expires_lots_due_at_the_operation_time(w):
    earn(w, 100, expiry_months=1)  # expires at the end of 1 April 2024, Shanghai
    with pytest.raises(InsufficientPoints) as err:
        redeem(w, 10, at=dt.datetime(2024, 4, 1, 16, 0, tzinfo=UTC))
    assert err.value.available == 0


def test_a_hold_of_60_on_100_leaves_only_40_redeemable(w):
    earn(w, 100)
    h = hold(w, 60)
    b = bal(w)
    assert (b.balance, b.available, b.held) == (100, 40, 60)
    with pytest.raises(InsufficientPoints) as err:
        redeem(w, 50)
    assert (err.value.available, err.value.requested) == (40, 50)
    assert h.status == "active" and h.points == 60
    assert_clean(w)


def test_capture_of_part_of_a_hold_releases_the_rest(w):
    earn(w, 100)
    h = hold(w, 60)
    tx = services.capture_hold(w.session, tenant_id=w.t2.id, hold_id=h.id, points=40, now=T0 + dt.timedelta(hours=1))
    assert (tx.kind, tx.points, tx.member_delta, tx.hold_id) == ("capture", 40, -40, h.id)
    assert (h.status, h.captured_points) == ("captured", 40)
    b = bal(w)
    assert (b.balance, b.available, b.held) == (60, 60, 0)
    assert system_total(w, "redeemed", w.t2) == 40
    assert_clean(w)


def test_void_returns_the_whole_hold(w):
    earn(w, 100)
    h = hold(w, 60)
    tx = services.void_hold(w.session, tenant_id=w.t2.id, hold_id=h.id, now=T0)
    assert (tx.kind, tx.member_delta, h.status) == ("void", 0, "voided")
    assert (bal(w).available, bal(w).held) == (100, 0)
    assert_clean(w)


@pytest.mark.parametrize("second", ["capture", "void"])
@pytest.mark.parametrize("first", ["capture", "void"])
def test_a_second_resolution_of_a_hold_conflicts_and_changes_nothing(w, first, second):
    earn(w, 100)
    h = hold(w, 60)
    ops = {"capture": services.capture_hold, "void": services.void_hold}
    ops[first](w.session, tenant_id=w.t2.id, hold_id=h.id, now=T0)
    before, count = bal(w), tx_count(w)
    with pytest.raises(HoldAlreadyResolved) as err:
        ops[second](w.session, tenant_id=w.t2.id, hold_id=h.id, now=T0)
    assert err.value.code == "hold_already_resolved"
    assert err.value.status == {"capture": "captured", "void": "voided"}[first]
    assert (bal(w), tx_count(w)) == (before, count)


def test_capture_after_expiry_conflicts_and_changes_nothing(w):
    earn(w, 100)
    h = hold(w, 60, ttl=DAY)
    past = T0 + 2 * DAY
    count = tx_count(w)
    with pytest.raises(HoldExpired) as err:  # still active but past its expiry
        services.capture_hold(w.session, tenant_id=w.t2.id, hold_id=h.id, now=past)
    assert err.value.code == "hold_expired"
    assert (tx_count(w), h.status, bal(w).held) == (count, "active", 60)
    assert services.expire_due(w.session, alliance_id=w.alliance.id, as_of=past, now=past)["holds"] == 1
    assert (h.status, bal(w).available, bal(w).held) == ("expired", 100, 0)
    count = tx_count(w)
    for op in (services.capture_hold, services.void_hold):
        with pytest.raises(HoldExpired):
            op(w.session, tenant_id=w.t2.id, hold_id=h.id, now=past)
    assert (tx_count(w), bal(w).available) == (count, 100)
    assert services.expire_due(w.session, alliance_id=w.alliance.id, as_of=past, now=past) == {"members": 0, "holds": 0, "lots": 0, "points": 0}
    assert_clean(w)


def test_capture_more_than_held_is_refused(w):
    earn(w, 100)
    h = hold(w, 60)
    with pytest.raises(CaptureExceedsHold) as err:
        services.capture_hold(w.session, tenant_id=w.t2.id, hold_id=h.id, points=61, now=T0)
    assert err.value.code == "capture_exceeds_hold"


def test_another_tenant_cannot_see_or_resolve_a_hold(w):
    earn(w, 100)
    h = hold(w, 60)
    with pytest.raises(HoldNotFound) as err:
        services.void_hold(w.session, tenant_id=w.t1.id, hold_id=h.id, now=T0)
    assert err.value.code == "not_found"
    with pytest.raises(HoldNotFound):
        services.capture_hold(w.session, tenant_id=w.t2.id, hold_id=uuid.uuid4(), now=T0)


def test_services_work_inside_a_tenant_scope(w):
    with tenant_scope(w.session, w.t1.id):
        earn(w, 100)
    with tenant_scope(w.session, w.t2.id):
        h = hold(w, 30)
        services.capture_hold(w.session, tenant_id=w.t2.id, hold_id=h.id, points=10, now=T0)
        r = redeem(w, 20)
        services.reverse(w.session, tenant_id=w.t2.id, transaction_id=r.id, now=T0)
    assert bal(w).available == 90
    assert_clean(w)


def test_expiry_after_a_redemption_removes_only_the_remainder_of_the_later_lot(w):
    first = earn(w, 100, at=T0, expiry_months=1)
    second = earn(w, 100, at=T0 + 10 * DAY, expiry_months=1)
    redeem(w, 150, at=T0 + 11 * DAY)
    first_end = services.expire_due(w.session, alliance_id=w.alliance.id, as_of=dt.datetime(2024, 4, 2, tzinfo=UTC))
    assert first_end == {"members": 0, "holds": 0, "lots": 0, "points": 0}
    done = services.expire_due(w.session, alliance_id=w.alliance.id, as_of=dt.datetime(2024, 4, 12, tzinfo=UTC))
    assert (done["lots"], done["points"]) == (1, 50)
    lots = dict(w.session.execute(sa.select(Lot.earn_transaction_id, Lot.remaining).where(Lot.member_id == w.m.id)).all())
    assert (lots[first.id], lots[second.id]) == (0, 0)
    assert bal(w).available == 0
    assert system_total(w, "breakage", w.t1) == 50
    assert services.expire_due(w.session, alliance_id=w.alliance.id, as_of=dt.datetime(2024, 4, 12, tzinfo=UTC))["points"] == 0
    assert_clean(w)


def test_expiry_posts_one_transaction_per_member_with_breakage_per_issuer(w):
    earn(w, 10, tenant=w.t1, expiry_months=1)
    earn(w, 20, tenant=w.t2, expiry_months=1)
    earn(w, 5, member=w.m2, expiry_months=1)
    done = services.expire_due(w.session, as_of=T0 + 100 * DAY, alliance_id=w.alliance.id)
    assert done == {"members": 2, "holds": 0, "lots": 3, "points": 35}
    with platform_scope(w.session):
        expiries = w.session.execute(sa.select(Transaction).where(Transaction.kind == "expiry")
                                     .order_by(Transaction.points)).scalars().all()
    assert [(t.member_id, t.points, t.member_delta, t.tenant_id) for t in expiries] == [
        (w.m2.id, 5, -5, w.t1.id), (w.m.id, 30, -30, None)]
    assert (system_total(w, "breakage", w.t1), system_total(w, "breakage", w.t2)) == (15, 20)
    assert_clean(w)


def test_refunding_the_same_order_twice_reverses_once(w):
    earn(w, 100)
    order = redeem(w, 80, reference="order-9")
    refund = services.reverse(w.session, tenant_id=w.t2.id, transaction_id=order.id, reason="refund", now=T0)
    assert (refund.kind, refund.points, refund.member_delta, refund.reverses_id) == ("reversal", 80, 80, order.id)
    with pytest.raises(AlreadyReversed) as err:
        services.reverse(w.session, tenant_id=w.t2.id, transaction_id=order.id, now=T0)
    assert err.value.code == "already_reversed"
    assert bal(w).available == 100
    assert system_total(w, "redeemed", w.t2) == 0
    assert w.session.execute(sa.select(Lot.remaining).where(Lot.member_id == w.m.id)).scalar_one() == 100
    assert_clean(w)


def test_partial_reversals_never_exceed_the_original(w):
    earn(w, 100)
    order = redeem(w, 80)
    services.reverse(w.session, tenant_id=w.t2.id, transaction_id=order.id, points=30, now=T0)
    with pytest.raises(ReversalExceedsOriginal) as err:
        services.reverse(w.session, tenant_id=w.t2.id, transaction_id=order.id, points=51, now=T0)
    assert (err.value.reversible, err.value.code) == (50, "reversal_exceeds_original")
    rest = services.reverse(w.session, tenant_id=w.t2.id, transaction_id=order.id, now=T0)
    assert (rest.points, rest.member_delta) == (50, 50)
    assert type(rest.points) is int and type(rest.member_delta) is int
    with pytest.raises(AlreadyReversed):
        services.reverse(w.session, tenant_id=w.t2.id, transaction_id=order.id, points=1, now=T0)
    assert bal(w).available == 100
    assert_clean(w)


def test_partial_reversal_restores_the_last_consumed_lot_first(w):
    late = earn(w, 100, at=T0)
    soon = earn(w, 50, at=T0, expiry_months=1)
    order = redeem(w, 120)
    services.reverse(w.session, tenant_id=w.t2.id, transaction_id=order.id, points=60, now=T0)
    lots = dict(w.session.execute(sa.select(Lot.earn_transaction_id, Lot.remaining).where(Lot.member_id == w.m.id)).all())
    assert (lots[late.id], lots[soon.id]) == (90, 0)
    services.reverse(w.session, tenant_id=w.t2.id, transaction_id=order.id, points=20, now=T0)
    lots = dict(w.session.execute(sa.select(Lot.earn_transaction_id, Lot.remaining).where(Lot.member_id == w.m.id)).all())
    assert (lots[late.id], lots[soon.id]) == (100, 10)
    assert_clean(w)


def test_reversing_a_capture_returns_the_captured_points(w):
    earn(w, 100)
    h = hold(w, 60)
    cap = services.capture_hold(w.session, tenant_id=w.t2.id, hold_id=h.id, points=40, now=T0)
    services.reverse(w.session, tenant_id=w.t2.id, transaction_id=cap.id, now=T0)
    assert (bal(w).available, system_total(w, "redeemed", w.t2)) == (100, 0)
    assert_clean(w)


def test_reversing_a_spent_earn_records_a_shortfall_that_later_earns_repay(w):
    original = earn(w, 100)
    redeem(w, 70)
    rev = services.reverse(w.session, tenant_id=w.t1.id, transaction_id=original.id, now=T0)
    assert (rev.points, rev.member_delta) == (100, -100)
    b = bal(w)
    assert (b.available, b.shortfall, b.balance) == (0, -70, 0)
    assert system_total(w, "issued", w.t1) == 0
    first = earn(w, 50, tenant=w.t2)
    assert (bal(w).available, bal(w).shortfall) == (0, -20)
    assert w.session.execute(sa.select(Lot).where(Lot.earn_transaction_id == first.id)).scalar_one_or_none() is None
    earn(w, 50, tenant=w.t2)
    assert (bal(w).available, bal(w).shortfall) == (30, 0)
    with pytest.raises(InsufficientPoints):
        redeem(w, 31)
    assert_clean(w)


def test_reversing_an_earn_takes_its_own_lot_first(w):
    keep = earn(w, 100, at=T0, expiry_months=1)
    gone = earn(w, 50, at=T0)
    services.reverse(w.session, tenant_id=w.t1.id, transaction_id=gone.id, points=20, now=T0)
    lots = dict(w.session.execute(sa.select(Lot.earn_transaction_id, Lot.remaining).where(Lot.member_id == w.m.id)).all())
    assert (lots[keep.id], lots[gone.id]) == (100, 30)
    assert (bal(w).available, bal(w).shortfall) == (130, 0)
    assert_clean(w)


def test_reversals_of_holds_voids_and_reversals_are_validation_errors(w):
    earn(w, 100)
    h = hold(w, 10)
    void = services.void_hold(w.session, tenant_id=w.t2.id, hold_id=h.id, now=T0)
    order = redeem(w, 5)
    rev = services.reverse(w.session, tenant_id=w.t2.id, transaction_id=order.id, now=T0)
    for tx_id in (h.transaction_id, void.id, rev.id):
        with pytest.raises(NotReversible) as err:
            services.reverse(w.session, tenant_id=w.t2.id, transaction_id=tx_id, now=T0)
        assert err.value.code == "validation_error"


def test_a_tenant_cannot_reverse_another_tenants_transaction(w):
    tx = earn(w, 100, tenant=w.t1)
    with pytest.raises(TransactionNotFound) as err:
        services.reverse(w.session, tenant_id=w.t2.id, transaction_id=tx.id, now=T0)
    assert err.value.code == "not_found"


def test_an_idempotent_replay_returns_the_original_and_posts_nothing(w):
    first = earn(w, 100, idempotency_key="k1", fingerprint="f" * 64)
    count = tx_count(w)
    with pytest.raises(IdempotencyReplay) as err:
        earn(w, 100, idempotency_key="k1", fingerprint="f" * 64)
    assert err.value.result is first
    assert err.value.record.transaction_id == first.id
    assert (tx_count(w), bal(w).available) == (count, 100)
    with pytest.raises(IdempotencyKeyReused) as err:
        earn(w, 101, idempotency_key="k1", fingerprint="e" * 64)
    assert err.value.code == "idempotency_key_reused"
    earn(w, 100, tenant=w.t2, idempotency_key="k1", fingerprint="f" * 64)  # keys are per tenant
    assert bal(w).available == 200


def test_an_idempotent_hold_replay_returns_the_hold(w):
    earn(w, 100)
    h = hold(w, 60, idempotency_key="h1", fingerprint="a")
    with pytest.raises(IdempotencyReplay) as err:
        hold(w, 60, idempotency_key="h1", fingerprint="a")
    assert err.value.result is h
    assert bal(w).held == 60


def test_claiming_a_key_for_another_write_stores_it_once(w):
    record = services.claim_idempotency_key(w.session, tenant_id=w.t1.id, key="x", fingerprint="fp")
    record.response_status, record.response_body = 201, {"ok": True}
    w.session.flush()
    with pytest.raises(IdempotencyReplay) as err:
        services.claim_idempotency_key(w.session, tenant_id=w.t1.id, key="x", fingerprint="fp")
    assert (err.value.record.response_status, err.value.record.response_body, err.value.result) == (
        201, {"ok": True}, None)
    with platform_scope(w.session):
        assert w.session.execute(sa.select(sa.func.count()).select_from(IdempotencyKey)
                                  .where(IdempotencyKey.tenant_id == w.t1.id)).scalar_one() == 1


def test_merge_moves_balances_lots_and_active_holds_to_the_survivor(w):
    earn(w, 100, member=w.m2)
    h = hold(w, 30, member=w.m2)
    earn(w, 10, member=w.m)
    tx = services.merge_balances(w.session, alliance_id=w.alliance.id, tenant_id=w.t1.id,
                                 from_member_id=w.m2.id, into_member_id=w.m.id, now=T0)
    assert (tx.kind, tx.member_id, tx.member_delta) == ("merge", w.m.id, 100)
    b, gone = bal(w), bal(w, w.m2)
    assert (b.available, b.held, gone.available, gone.held) == (80, 30, 0, 0)
    services.capture_hold(w.session, tenant_id=w.t2.id, hold_id=h.id, points=30, now=T0)
    assert w.session.get(Hold, h.id).member_id == w.m.id
    assert (bal(w).available, bal(w).held) == (80, 0)
    assert services.merge_balances(w.session, alliance_id=w.alliance.id, tenant_id=w.t1.id,
                                   from_member_id=w.m2.id, into_member_id=w.m.id, now=T0) is None
    assert_clean(w)


def test_verify_reports_a_tampered_cached_balance_and_lot(w):
    earn(w, 100)
    assert_clean(w)
    w.session.execute(sa.update(Account).where(Account.kind == "available", Account.member_id == w.m.id)
                      .values(balance=99))
    w.session.execute(sa.update(Lot).where(Lot.member_id == w.m.id).values(remaining=90))
    faults = verify(w.session)
    assert any("cached 99 != entries 100" in f for f in faults)
    assert any("remaining 90 != 100 - consumed 0" in f for f in faults)


def test_a_late_posted_redemption_spends_what_was_valid_at_its_business_time(w):
    earn(w, 100, expiry_months=1)
    later = T0 + 60 * DAY
    services.redeem(w.session, alliance_id=w.alliance.id, tenant_id=w.t2.id, member_id=w.m.id, points=50,
                    occurred_at=T0 + DAY, now=later)
    assert bal(w).available == 50
    assert services.expire_due(w.session, alliance_id=w.alliance.id, as_of=later, now=later)["points"] == 50
    assert bal(w).available == 0
    assert verify(w.session) == []


def test_a_late_posted_redemption_cannot_spend_points_an_expiry_run_removed(w):
    earn(w, 100, expiry_months=1)
    later = T0 + 60 * DAY
    services.expire_due(w.session, alliance_id=w.alliance.id, as_of=later, now=later)
    with pytest.raises(InsufficientPoints) as refused:
        services.redeem(w.session, alliance_id=w.alliance.id, tenant_id=w.t2.id, member_id=w.m.id, points=50,
                        occurred_at=T0 + DAY, now=later)
    assert (refused.value.available, refused.value.requested) == (0, 50)
    assert verify(w.session) == []


def test_a_balance_as_of_a_time_leaves_out_points_past_their_date_until_the_expiry_run(w):
    earn(w, 100, expiry_months=1)
    earn(w, 40, at=T0 + 20 * DAY, expiry_months=1)
    first_expiry = bal(w).expiring[0][0]
    after = first_expiry + dt.timedelta(seconds=1)
    seen = services.balance(w.session, member_id=w.m.id, as_of=after)
    assert (seen.available, seen.balance, seen.pending_expiry) == (40, 140, 100)
    assert [pts for _, pts in seen.expiring] == [40]
    assert bal(w).available == 140  # the books are untouched until expiry runs
    with pytest.raises(InsufficientPoints):
        services.redeem(w.session, alliance_id=w.alliance.id, tenant_id=w.t2.id, member_id=w.m.id, points=41,
                        occurred_at=after, now=after)
    services.redeem(w.session, alliance_id=w.alliance.id, tenant_id=w.t2.id, member_id=w.m.id, points=40,
                    occurred_at=after, now=after)
    assert services.balance(w.session, member_id=w.m.id, as_of=after).pending_expiry == 0
    assert bal(w).available == 0
    assert_clean(w)


def test_a_late_posted_redemption_cannot_spend_points_earned_after_its_business_time(w):
    earn(w, 30)
    later = T0 + 10 * DAY
    earn(w, 100, at=later)
    assert services.balance(w.session, member_id=w.m.id, as_of=T0 + DAY).available == 30
    with pytest.raises(InsufficientPoints) as refused:
        services.redeem(w.session, alliance_id=w.alliance.id, tenant_id=w.t2.id, member_id=w.m.id, points=31,
                        occurred_at=T0 + DAY, now=later)
    assert (refused.value.available, refused.value.requested) == (30, 31)
    tx = services.redeem(w.session, alliance_id=w.alliance.id, tenant_id=w.t2.id, member_id=w.m.id, points=30,
                         occurred_at=T0 + DAY, now=later)
    consumed = w.session.scalars(sa.select(LotConsumption).where(LotConsumption.transaction_id == tx.id)).all()
    lots = {lot.id: lot for lot in w.session.scalars(sa.select(Lot).where(Lot.member_id == w.m.id))}
    assert [(lots[c.lot_id].points, c.points) for c in consumed] == [(30, 30)]
    assert bal(w).available == 100
    assert_clean(w)

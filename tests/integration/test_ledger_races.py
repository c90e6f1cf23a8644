"""Concurrency on PostgreSQL: separate connections, real commits, each case repeated."""
import datetime as dt
import threading
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import services
from ledger.errors import HoldAlreadyResolved, IdempotencyReplay, InsufficientPoints, LedgerError
from ledger.models import Account, Entry, Transaction
from tenants.db import utcnow
from tenants.isolation import platform_scope
from tenants.uow import run_unit
from tests.builders import create_alliance, create_member, create_tenant

ROUNDS = 20


def world(engine, *, members=1, points=100):
    """Commit an alliance, two tenants and members holding ``points`` each."""
    with so.Session(engine, expire_on_commit=False) as s:
        alliance = create_alliance(s, expiry_months=12)
        t1, t2 = create_tenant(s, alliance=alliance), create_tenant(s, alliance=alliance)
        ms = [create_member(s, alliance=alliance) for _ in range(members)]
        for m in ms:
            if points:
                services.earn(s, alliance_id=alliance.id, tenant_id=t1.id, member_id=m.id, points=points,
                              expiry_months=12, timezone="Asia/Shanghai")
        s.commit()
        return SimpleNamespace(alliance_id=alliance.id, t1=t1.id, t2=t2.id, members=[m.id for m in ms])


def race(engine, works):
    """Run each ``work(session)`` in its own unit of work at once; return results or exceptions."""
    barrier = threading.Barrier(len(works))
    results = [None] * len(works)

    def run(i, work):
        with so.Session(engine, expire_on_commit=False) as s:
            barrier.wait()
            try:
                results[i] = run_unit(s, work)
            except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
                results[i] = exc

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(works)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def balance(engine, member_id):
    with so.Session(engine) as s:
        return services.balance(s, member_id=member_id)


def redeem_work(w, member_id, points):
    return lambda s: services.redeem(s, alliance_id=w.alliance_id, tenant_id=w.t2, member_id=member_id,
                                     points=points)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_redemptions_of_80_against_100_exactly_one_wins(pg_engine, round_):
    w = world(pg_engine)
    m = w.members[0]
    results = race(pg_engine, [redeem_work(w, m, 80), redeem_work(w, m, 80)])
    wins = [r for r in results if isinstance(r, Transaction)]
    losses = [r for r in results if isinstance(r, InsufficientPoints)]
    assert (len(wins), len(losses)) == (1, 1), results
    assert (losses[0].available, losses[0].requested) == (20, 80)
    assert balance(pg_engine, m).available == 20


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_capture_void_and_expiry_of_one_hold_resolve_it_once(pg_engine, round_):
    w = world(pg_engine)
    m = w.members[0]
    start = utcnow()
    with so.Session(pg_engine, expire_on_commit=False) as s:
        hold = services.create_hold(s, alliance_id=w.alliance_id, tenant_id=w.t2, member_id=m, points=60,
                                    expires_at=start + dt.timedelta(hours=1), now=start)
        s.commit()
    during, after = start + dt.timedelta(minutes=30), start + dt.timedelta(hours=2)
    results = race(pg_engine, [
        lambda s: services.capture_hold(s, tenant_id=w.t2, hold_id=hold.id, now=during),
        lambda s: services.void_hold(s, tenant_id=w.t2, hold_id=hold.id, now=during),
        lambda s: services.expire_due(s, as_of=after, alliance_id=w.alliance_id, now=after),
    ])
    capture, void, expiry = results
    outcomes = [isinstance(capture, Transaction), isinstance(void, Transaction), expiry["holds"] == 1]
    assert sum(outcomes) == 1, results
    for r in (capture, void):
        assert isinstance(r, (Transaction, HoldAlreadyResolved)), r
    b = balance(pg_engine, m)
    assert (b.available, b.held) == ((40, 0) if outcomes[0] else (100, 0))
    with so.Session(pg_engine) as s, platform_scope(s):
        kinds = s.execute(sa.select(Transaction.kind).where(Transaction.hold_id == hold.id)).scalars().all()
    assert sorted(kinds) == sorted(["hold", ["capture", "void", "hold_expiry"][outcomes.index(True)]])


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_identical_idempotent_earns_post_once(pg_engine, round_):
    w = world(pg_engine, points=0)
    m = w.members[0]

    def work(s):
        return services.earn(s, alliance_id=w.alliance_id, tenant_id=w.t1, member_id=m, points=100,
                             expiry_months=12, timezone="Asia/Shanghai", idempotency_key="order-1",
                             fingerprint="same")

    results = race(pg_engine, [work, work])
    posted = [r for r in results if isinstance(r, Transaction)]
    replays = [r for r in results if isinstance(r, IdempotencyReplay)]
    assert (len(posted), len(replays)) == (1, 1), results
    assert replays[0].transaction_id == posted[0].id
    assert balance(pg_engine, m).available == 100


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_opposite_direction_units_do_not_surface_deadlocks(pg_engine, round_):
    w = world(pg_engine, members=2)
    a, b = w.members

    def crossing(first, second):
        def work(s):
            services.redeem(s, alliance_id=w.alliance_id, tenant_id=w.t2, member_id=first, points=10)
            services.earn(s, alliance_id=w.alliance_id, tenant_id=w.t1, member_id=second, points=5,
                          expiry_months=12, timezone="Asia/Shanghai")
            return "ok"
        return work

    results = race(pg_engine, [crossing(a, b), crossing(b, a)] * 2)
    assert results == ["ok"] * 4
    assert balance(pg_engine, a).available == balance(pg_engine, b).available == 100 - 20 + 10


def test_sixteen_concurrent_earns_at_one_tenant_all_succeed_without_a_hot_row(pg_engine):
    w = world(pg_engine, members=16)

    def earn_for(member_id):
        return lambda s: services.earn(s, alliance_id=w.alliance_id, tenant_id=w.t1, member_id=member_id,
                                       points=7, expiry_months=12, timezone="Asia/Shanghai")

    results = race(pg_engine, [earn_for(m) for m in w.members])
    assert all(isinstance(r, Transaction) for r in results), results
    assert {balance(pg_engine, m).available for m in w.members} == {107}
    with so.Session(pg_engine) as s:
        issued = s.execute(sa.select(Account).where(Account.kind == "issued", Account.tenant_id == w.t1)).scalar_one()
        total = s.execute(sa.select(sa.func.sum(Entry.amount)).where(Entry.account_id == issued.id)).scalar_one()
    assert (issued.balance, issued.version) == (0, 1)  # never updated: its total is derived
    assert total == -16 * 107


def test_ledger_errors_have_stable_codes():
    assert issubclass(InsufficientPoints, LedgerError) and InsufficientPoints.code == "insufficient_points"

"""Random sequences of ledger operations agree with a plain Python model and keep the books clean."""
import copy
import datetime as dt

import hypothesis.strategies as st
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from ledger import services
from ledger.errors import LedgerError
from ledger.models import Lot
from ledger.rules import lot_expiry
from ledger.verify import verify
from tests.builders import create_alliance, create_member, create_tenant

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 10, 2, 0, tzinfo=UTC)
TZ = "Asia/Shanghai"

ops = st.lists(st.one_of(
    st.tuples(st.just("earn"), st.integers(0, 2), st.integers(0, 1), st.integers(1, 200), st.booleans()),
    st.tuples(st.just("redeem"), st.integers(0, 2), st.integers(0, 1), st.integers(1, 150)),
    st.tuples(st.just("hold"), st.integers(0, 2), st.integers(0, 1), st.integers(1, 150), st.integers(1, 5)),
    st.tuples(st.just("capture"), st.integers(0, 50), st.one_of(st.none(), st.integers(1, 150))),
    st.tuples(st.just("void"), st.integers(0, 50)),
    st.tuples(st.just("reverse"), st.integers(0, 50)),
    st.tuples(st.just("expire"), st.integers(0, 40)),
), min_size=1, max_size=25)


class Model:
    """The ledger's rules restated naively over Python lists."""

    def __init__(self):
        self.members = [{"available": 0, "held": 0, "shortfall": 0} for _ in range(3)]
        self.lots = []  # dicts: member, remaining, exp, seq
        self.holds = []  # dicts: member, points, status, exp, cons
        self.txs = []  # dicts: kind, member, points, cons, lot, reversed

    def order(self, member):
        far = dt.datetime.max.replace(tzinfo=UTC)
        return sorted((lot for lot in self.lots if lot["member"] == member and lot["remaining"] > 0),
                      key=lambda lot: (lot["exp"] is None, lot["exp"] or far, lot["seq"]))

    def consume(self, member, points, first=None):
        cons, left = [], points
        for lot in ([first] if first is not None and first["remaining"] > 0 else []) + self.order(member):
            take = min(left, lot["remaining"])
            if take:
                lot["remaining"] -= take
                cons.append((lot, take))
                left -= take
        assert left == 0
        return cons

    @staticmethod
    def restore(cons):
        for lot, take in cons:
            lot["remaining"] += take

    def expire_member(self, m, as_of):
        acc = self.members[m]
        for h in sorted((h for h in self.holds if h["member"] == m and h["status"] == "active"
                         and h["exp"] <= as_of), key=lambda h: h["exp"]):
            self.restore(h["cons"])
            acc["held"] -= h["points"]
            acc["available"] += h["points"]
            h["status"] = "expired"
        for lot in self.lots:
            if lot["member"] == m and lot["remaining"] > 0 and lot["exp"] is not None and lot["exp"] <= as_of:
                acc["available"] -= lot["remaining"]
                lot["remaining"] = 0

    def apply(self, op, now):
        kind, acc = op[0], None
        if kind == "earn":
            _, m, _t, p, expiring = op
            acc = self.members[m]
            repay = min(p, -acc["shortfall"])
            acc["shortfall"] += repay
            lot = None
            if p - repay:
                lot = {"member": m, "remaining": p - repay, "seq": len(self.lots),
                       "exp": lot_expiry(now, 1, TZ) if expiring else None}
                self.lots.append(lot)
            acc["available"] += p - repay
            self.txs.append({"kind": "earn", "member": m, "points": p, "lot": lot, "reversed": False})
        elif kind in ("redeem", "hold"):
            m, p = op[1], op[3]
            self.expire_member(m, now)
            acc = self.members[m]
            if acc["available"] < p:
                raise LedgerError()
            cons = self.consume(m, p)
            acc["available"] -= p
            if kind == "redeem":
                self.txs.append({"kind": "redeem", "member": m, "points": p, "cons": cons, "reversed": False})
            else:
                acc["held"] += p
                self.holds.append({"member": m, "points": p, "status": "active", "cons": cons,
                                   "exp": now + dt.timedelta(days=op[4])})
        elif kind in ("capture", "void"):
            h = self.holds[op[1] % len(self.holds)]
            if h["status"] != "active" or h["exp"] <= now:
                raise LedgerError()
            points = h["points"] if kind == "void" else (op[2] or h["points"])
            if points > h["points"]:
                raise LedgerError()
            acc = self.members[h["member"]]
            self.restore(h["cons"])
            acc["held"] -= h["points"]
            acc["available"] += h["points"]
            h["status"] = "voided"
            if kind == "capture":
                cons = self.consume(h["member"], points)
                acc["available"] -= points
                h["status"] = "captured"
                self.txs.append({"kind": "capture", "member": h["member"], "points": points, "cons": cons,
                                 "reversed": False})
        elif kind == "reverse":
            tx = self.txs[op[1] % len(self.txs)]
            if tx["reversed"]:
                raise LedgerError()
            acc = self.members[tx["member"]]
            if tx["kind"] == "earn":
                covered = min(tx["points"], acc["available"])
                self.consume(tx["member"], covered, first=tx["lot"])
                acc["available"] -= covered
                acc["shortfall"] -= tx["points"] - covered
            else:
                self.restore(tx["cons"])
                acc["available"] += tx["points"]
            tx["reversed"] = True


def call(session, w, op, now):
    kind = op[0]
    if kind == "earn":
        _, m, t, p, expiring = op
        return services.earn(session, alliance_id=w["alliance"], tenant_id=w["tenants"][t], member_id=w["members"][m],
                             points=p, expiry_months=1 if expiring else None, timezone=TZ, occurred_at=now, now=now)
    if kind == "redeem":
        return services.redeem(session, alliance_id=w["alliance"], tenant_id=w["tenants"][op[2]],
                               member_id=w["members"][op[1]], points=op[3], occurred_at=now, now=now)
    if kind == "hold":
        h = services.create_hold(session, alliance_id=w["alliance"], tenant_id=w["tenants"][op[2]],
                                 member_id=w["members"][op[1]], points=op[3],
                                 expires_at=now + dt.timedelta(days=op[4]), now=now)
        w["holds"].append((h.id, h.tenant_id))
        return h
    if kind in ("capture", "void"):
        hold_id, tenant_id = w["holds"][op[1] % len(w["holds"])]
        if kind == "void":
            return services.void_hold(session, tenant_id=tenant_id, hold_id=hold_id, now=now)
        return services.capture_hold(session, tenant_id=tenant_id, hold_id=hold_id, points=op[2], now=now)
    if kind == "reverse":
        tx_id, tenant_id = w["txs"][op[1] % len(w["txs"])]
        return services.reverse(session, tenant_id=tenant_id, transaction_id=tx_id, now=now)
    raise AssertionError(kind)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=ops)
def test_random_operations_match_a_plain_model_and_keep_the_books(session, sequence):
    alliance = create_alliance(session, expiry_months=1)
    w = {"alliance": alliance.id, "tenants": [create_tenant(session, alliance=alliance).id for _ in range(2)],
         "members": [create_member(session, alliance=alliance).id for _ in range(3)], "holds": [], "txs": []}
    model, now = Model(), T0
    for op in sequence:
        now += dt.timedelta(hours=6)
        if op[0] == "expire":
            now += dt.timedelta(days=op[1])
            services.expire_due(session, as_of=now, alliance_id=alliance.id, now=now)
            for m in range(3):
                model.expire_member(m, now)
            continue
        if op[0] in ("capture", "void") and not w["holds"] or op[0] == "reverse" and not w["txs"]:
            continue
        trial = copy.deepcopy(model)
        try:
            trial.apply(op, now)
        except LedgerError:
            expected_ok = False
        else:
            expected_ok = True
        try:
            with session.begin_nested():
                result = call(session, w, op, now)
                if op[0] in ("earn", "redeem") or op[0] == "capture":
                    w["txs"].append((result.id, result.tenant_id))
        except LedgerError:
            assert not expected_ok, op
        else:
            assert expected_ok, op
            model = trial
        for i, member_id in enumerate(w["members"]):
            b = services.balance(session, member_id=member_id)
            assert (b.available, b.held, b.shortfall) == tuple(model.members[i][k] for k in
                                                               ("available", "held", "shortfall")), (op, i)
    remaining = dict(session.execute(sa.select(Lot.member_id, sa.func.sum(Lot.remaining))
                                     .where(Lot.alliance_id == alliance.id).group_by(Lot.member_id)).all())
    for i, member_id in enumerate(w["members"]):
        assert remaining.get(member_id, 0) == model.members[i]["available"]
    assert verify(session) == []

"""Prove the books: balanced transactions, cached balances, no negative members, lots match."""
from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger.models import Account, Entry, Lot, LotConsumption, Transaction
from tenants.isolation import platform_scope


def verify(session: so.Session) -> list[str]:
    """Return a list of faults in the books (empty when they hold)."""
    faults: list[str] = []
    session.flush()
    with platform_scope(session):
        per_tx = (sa.select(Transaction.id, sa.func.count(Entry.id), sa.func.coalesce(sa.func.sum(Entry.amount), 0))
                  .outerjoin(Entry, Entry.transaction_id == Transaction.id).group_by(Transaction.id)
                  .having(sa.or_(sa.func.count(Entry.id) < 2, sa.func.coalesce(sa.func.sum(Entry.amount), 0) != 0)))
        for tx_id, count, total in session.execute(per_tx):
            faults.append(f"transaction {tx_id}: {count} entries summing to {total}")

        sums = (sa.select(Entry.account_id, sa.func.sum(Entry.amount).label("total"))
                .group_by(Entry.account_id).subquery())
        rows = session.execute(
            sa.select(Account.id, Account.kind, Account.member_id, Account.balance,
                      sa.func.coalesce(sums.c.total, 0))
            .outerjoin(sums, sums.c.account_id == Account.id)).all()
        for account_id, kind, member_id, cached, total in rows:
            if member_id is not None and cached != total:
                faults.append(f"account {account_id} ({kind}, member {member_id}): cached {cached} != entries {total}")
            if member_id is None and cached != 0:
                faults.append(f"system account {account_id} ({kind}) has a cached balance {cached}")
            if kind in ("available", "held") and total < 0:
                faults.append(f"account {account_id} ({kind}, member {member_id}) is negative: {total}")

        used = (sa.select(LotConsumption.lot_id, sa.func.sum(LotConsumption.points).label("used"))
                .group_by(LotConsumption.lot_id).subquery())
        for lot_id, points, remaining, consumed in session.execute(
                sa.select(Lot.id, Lot.points, Lot.remaining, sa.func.coalesce(used.c.used, 0))
                .outerjoin(used, used.c.lot_id == Lot.id)):
            if remaining != points - consumed:
                faults.append(f"lot {lot_id}: remaining {remaining} != {points} - consumed {consumed}")

        lots = dict(session.execute(sa.select(Lot.member_id, sa.func.sum(Lot.remaining)).group_by(Lot.member_id)).all())
        available = dict(session.execute(sa.select(Account.member_id, Account.balance)
                                         .where(Account.kind == "available")).all())
        for member_id in set(lots) | set(available):
            if int(lots.get(member_id, 0)) != available.get(member_id, 0):
                faults.append(f"member {member_id}: lots remaining {lots.get(member_id, 0)} != "
                              f"available {available.get(member_id, 0)}")
    return faults

"""The demo alliance and the CDNOW scenario played through an adapter (in-process or over HTTP).

:func:`play` drives the scenario month by month; an adapter does each step: the in-process
:class:`ServiceAdapter` here (the demo seed) or the HTTP partner systems in ``api/replay.py``.
:func:`books` reads what the platform recorded, for the reconciliation against
:func:`alliance.cdnow.expected`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so

from alliance import cdnow
from alliance import services as members
from alliance.models import Member, MemberIdentifier, Visit
from alliance.services import ConsentInput
from ledger import rules
from ledger import services as ledger
from ledger.models import Account, Entry, Transaction
from tenants import services as tenancy
from tenants.isolation import platform_scope
from tenants.models import Alliance, Tenant

CONSENT = ("loyalty", "profile")
TERMS_VERSION = "1997-01"


def ensure_alliance(session: so.Session, *, code: str = cdnow.DEMO.code) -> tuple[Alliance, dict[str, Tenant]]:
    """Create the demo alliance and its three partners unless they exist; return them."""
    with platform_scope(session):
        alliance = session.scalar(sa.select(Alliance).where(Alliance.code == code))
        if alliance is None:
            alliance = tenancy.create_alliance(session, code=code, name=cdnow.DEMO.name, timezone=cdnow.TIMEZONE,
                                               currency="CNY", expiry_months=cdnow.EXPIRY_MONTHS)
        tenants = {}
        for p in cdnow.PARTNERS:
            tenant = session.scalar(sa.select(Tenant).where(Tenant.alliance_id == alliance.id, Tenant.code == p.code))
            if tenant is None:
                tenant = tenancy.create_tenant(session, alliance_code=code, code=p.code, name=p.name, kind=p.kind,
                                               earn_points=p.earn_points, earn_per_minor=p.earn_per_minor)
            tenants[p.code] = tenant
    return alliance, tenants


class Adapter(Protocol):
    """One partner system per tenant: the steps the scenario takes."""

    def enrol(self, partner: cdnow.Partner, p: cdnow.Purchase) -> str: ...
    def usable(self, partner: cdnow.Partner, member_id: str, at: dt.datetime) -> int: ...
    def redeem(self, partner: cdnow.Partner, member_id: str, p: cdnow.Purchase) -> None: ...
    def purchase(self, partner: cdnow.Partner, member_id: str, p: cdnow.Purchase) -> None: ...
    def expire(self, month_end: dt.date) -> None: ...


class Journal(Protocol):
    """Where a resumable run keeps its redemption decisions and finished months."""

    def decision(self, key: str) -> bool | None: ...
    def decide(self, key: str, redeem: bool) -> None: ...
    def month_done(self, month_end: dt.date) -> bool: ...
    def finish_month(self, month_end: dt.date) -> None: ...


class MemoryJournal:
    def __init__(self) -> None:
        self.decisions: dict[str, bool] = {}
        self.months: set[dt.date] = set()

    def decision(self, key):
        return self.decisions.get(key)

    def decide(self, key, redeem):
        self.decisions[key] = redeem

    def month_done(self, month_end):
        return month_end in self.months

    def finish_month(self, month_end):
        self.months.add(month_end)


def first_visits(purchases: Iterable[cdnow.Purchase]) -> dict[tuple[str, str], cdnow.Purchase]:
    """(customer, partner code) -> the customer's first purchase there: the enrolment or link."""
    out: dict[tuple[str, str], cdnow.Purchase] = {}
    for p in sorted(purchases, key=lambda p: (p.day, p.seq)):
        out.setdefault((p.customer, p.partner.code), p)
    return out


def play(purchases: list[cdnow.Purchase], adapter: Adapter, *, journal: Journal | None = None,
         run_members: Callable[[Callable[[list[cdnow.Purchase]], None], list[list[cdnow.Purchase]]], None]
         | None = None, on_month: Callable[[dt.date, int], None] | None = None
         ) -> dict[str, tuple[cdnow.Partner, str]]:
    """Play every purchase month by month, then sweep expiry at the month's end.

    Within a month each customer's purchases run in order; different customers may run at once
    (``run_members``). A redemption decision is written to the journal before it is acted on,
    so a resumed run takes the same decisions; every request carries an idempotency key.
    Returns customer -> (their first partner, the id that partner knows them by).
    """
    journal = journal or MemoryJournal()
    previous = cdnow.previous_partners(purchases)
    firsts = first_visits(purchases)
    grouped = cdnow.by_month(purchases)
    run_members = run_members or (lambda work, batches: [work(batch) for batch in batches])
    ids: dict[tuple[str, str], str] = {}

    def member_id(customer: str, partner: cdnow.Partner) -> str:
        key = (customer, partner.code)
        if key not in ids:
            ids[key] = adapter.enrol(partner, firsts[key])
        return ids[key]

    def one_customer(bought: list[cdnow.Purchase]) -> None:
        for p in bought:
            partner = p.partner
            mid = member_id(p.customer, partner)
            before = previous[p.key]
            if before is not None and before.code != partner.code:
                redeem = journal.decision(p.key)
                if redeem is None:
                    redeem = adapter.usable(partner, mid, p.occurred_at) >= cdnow.REDEEM_THRESHOLD
                    journal.decide(p.key, redeem)
                if redeem:
                    adapter.redeem(partner, mid, p)
            adapter.purchase(partner, mid, p)

    for end in cdnow.months(purchases):
        if journal.month_done(end):
            continue
        batches = list(grouped.get(end, {}).values())
        run_members(one_customer, batches)
        adapter.expire(end)
        journal.finish_month(end)
        if on_month is not None:
            on_month(end, sum(len(b) for b in batches))
    first_partner: dict[str, cdnow.Partner] = {}
    for (customer, _code), p in firsts.items():  # in purchase order: a customer's first comes first
        first_partner.setdefault(customer, p.partner)
    return {customer: (partner, member_id(customer, partner)) for customer, partner in first_partner.items()}


class ServiceAdapter:
    """The scenario through the services, in the caller's unit of work (the demo seed)."""

    def __init__(self, session: so.Session, alliance: Alliance, tenants: dict[str, Tenant]):
        self.session, self.alliance, self.tenants = session, alliance, tenants
        self.member_ids: dict[str, int] = {}

    def enrol(self, partner, p):
        result = members.enrol_or_link(
            self.session, tenant=self.tenants[partner.code], email=cdnow.email_for(p.customer),
            external_ref=cdnow.external_ref_for(p.customer), name=cdnow.name_for(p.customer),
            consent=ConsentInput(purposes=CONSENT, channel="pos", terms_version=TERMS_VERSION,
                                 captured_at=p.occurred_at))
        self.member_ids[result.pairwise_id] = result.member.id
        return result.pairwise_id

    def usable(self, partner, member_id, at):
        return ledger.balance(self.session, member_id=self.member_ids[member_id], as_of=at).available

    def redeem(self, partner, member_id, p):
        tenant = self.tenants[partner.code]
        ledger.redeem(self.session, alliance_id=self.alliance.id, tenant_id=tenant.id,
                      member_id=self.member_ids[member_id], points=cdnow.REDEEM_POINTS,
                      reference=f"redeem-{p.key}", occurred_at=p.occurred_at, description="points toward a purchase")

    def purchase(self, partner, member_id, p):
        tenant = self.tenants[partner.code]
        member = self.session.get_one(Member, self.member_ids[member_id])
        minor = int(p.value * 100)
        # The tenant's own earn rule, as the API applies it (the reconciliation has its own copy).
        points = rules.points_for_amount(minor, tenant.earn_points, tenant.earn_per_minor, tenant.earn_rounding)
        tx = None
        if points:
            tx = ledger.earn(self.session, alliance_id=self.alliance.id, tenant_id=tenant.id, member_id=member.id,
                             points=points, expiry_months=self.alliance.expiry_months,
                             timezone=self.alliance.timezone, reference=f"order-{p.key}",
                             occurred_at=p.occurred_at, description=f"{p.cds} item(s)",
                             meta={"amount": {"value": str(p.value), "currency": "CNY", "minor": minor}})
        members.record_visit(self.session, tenant=tenant, member=member, occurred_at=p.occurred_at,
                             reference=f"order-{p.key}", amount_minor=minor, currency="CNY",
                             transaction_id=tx.id if tx is not None else None)

    def expire(self, month_end):
        ledger.expire_due(self.session, alliance_id=self.alliance.id, as_of=cdnow.end_of_day(month_end))


def seed(session: so.Session, purchases: list[cdnow.Purchase], *, code: str = cdnow.DEMO.code) -> Alliance:
    """Create the demo alliance and play ``purchases`` into it through the services (caller commits)."""
    alliance, tenants = ensure_alliance(session, code=code)
    with platform_scope(session):
        play(purchases, ServiceAdapter(session, alliance, tenants))
    return alliance


# ---------------------------------------------------------------- what the platform recorded

@dataclasses.dataclass
class Books:
    members: dict[str, cdnow.Totals]
    balances: dict[str, int]
    partners: dict[str, cdnow.Totals]
    redemptions: int
    visits: int
    #: customer -> the local days of their visits
    visit_days: dict[str, set[dt.date]]


#: Where the books put members who are not CDNOW customers (someone enrolled by hand, say).
OTHERS = "(not in the file)"


def _customer_of_email(email: str) -> str | None:
    prefix, suffix = "cdnow-", "@members.example"
    if email.startswith(prefix) and email.endswith(suffix):
        return email[len(prefix):-len(suffix)]
    return None


def books(session: so.Session, *, alliance_code: str) -> Books:
    """Read per member and per partner what the ledger and the visit records say."""
    with platform_scope(session):
        alliance = tenancy.get_alliance(session, alliance_code)
        tenant_codes = dict(session.execute(sa.select(Tenant.id, Tenant.code)
                                            .where(Tenant.alliance_id == alliance.id)).all())
        customer_of: dict[int, str] = {}
        for member_id, value in session.execute(
                sa.select(MemberIdentifier.member_id, MemberIdentifier.value)
                .where(MemberIdentifier.alliance_id == alliance.id, MemberIdentifier.kind == "email")):
            customer = _customer_of_email(value)
            if customer is not None:
                customer_of[member_id] = customer
        per_member: dict[str, cdnow.Totals] = defaultdict(cdnow.Totals, {c: cdnow.Totals() for c in customer_of.values()})
        per_partner: dict[str, cdnow.Totals] = {code: cdnow.Totals() for code in tenant_codes.values()}
        redemptions = 0
        rows = session.execute(
            sa.select(Transaction.member_id, Transaction.tenant_id, Transaction.kind,
                      sa.func.sum(Transaction.points), sa.func.count())
            .where(Transaction.alliance_id == alliance.id, Transaction.kind.in_(("earn", "redeem", "expiry")))
            .group_by(Transaction.member_id, Transaction.tenant_id, Transaction.kind))
        for member_id, tenant_id, kind, points, count in rows:
            totals = per_member[customer_of.get(member_id, OTHERS)]
            if kind == "earn":
                totals.earned += int(points)
                per_partner[tenant_codes[tenant_id]].earned += int(points)
            elif kind == "redeem":
                totals.redeemed += int(points)
                per_partner[tenant_codes[tenant_id]].redeemed += int(points)
                redemptions += count
            else:
                totals.expired += int(points)
        # Expiry per issuer: what the breakage accounts received.
        for tenant_id, amount in session.execute(
                sa.select(Account.tenant_id, sa.func.sum(Entry.amount)).join(Entry, Entry.account_id == Account.id)
                .where(Account.alliance_id == alliance.id, Account.kind == "breakage").group_by(Account.tenant_id)):
            per_partner[tenant_codes[tenant_id]].expired += int(amount)
        balances: dict[str, int] = defaultdict(int, {c: 0 for c in customer_of.values()})
        for member_id, kind, balance in session.execute(
                sa.select(Account.member_id, Account.kind, Account.balance)
                .where(Account.alliance_id == alliance.id, Account.member_id.is_not(None))):
            if kind in ("available", "held", "shortfall"):
                balances[customer_of.get(member_id, OTHERS)] += balance
        visit_days: dict[str, set[dt.date]] = defaultdict(set)
        zone = ZoneInfo(alliance.timezone)
        visits = 0
        for member_id, occurred_at in session.execute(
                sa.select(Visit.member_id, Visit.occurred_at).where(Visit.alliance_id == alliance.id)):
            visit_days[customer_of.get(member_id, OTHERS)].add(occurred_at.astimezone(zone).date())
            visits += 1
    return Books(members=dict(per_member), balances=dict(balances), partners=per_partner, redemptions=redemptions,
                 visits=visits, visit_days=dict(visit_days))


# ---------------------------------------------------------------- the reconciliation

@dataclasses.dataclass
class Report:
    """Every comparison made, and what disagreed (empty lists when the books reconcile)."""

    rows: list[tuple[str, str, str, str]]  #: (what, expected, recorded, "ok" or "MISMATCH")
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def table(self) -> str:
        widths = [max(len(r[i]) for r in [("check", "from the file", "platform", "")] + self.rows) for i in range(4)]
        lines = []
        for row in [("check", "from the file", "platform", "")] + self.rows:
            lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                                   enumerate(zip(row, widths, strict=True))))
        return "\n".join(lines)


def reconcile(expected: cdnow.Expected, recorded: Books, *, api_balances: dict[str, int] | None = None,
              summary: dict[int, tuple] | None = None, sample: dict[str, int] | None = None) -> Report:
    """Compare the file's model with the books, the API's balances and the published summary."""
    rows: list[tuple[str, str, str, str]] = []
    mismatches: list[str] = []

    def check(what: str, want, got) -> None:
        same = want == got
        rows.append((what, str(want), str(got), "ok" if same else "MISMATCH"))
        if not same:
            mismatches.append(f"{what}: expected {want}, recorded {got}")

    for code in sorted(expected.partners):
        want, got = expected.partners[code], recorded.partners.get(code, cdnow.Totals())
        check(f"{code} earned", want.earned, got.earned)
        check(f"{code} redeemed", want.redeemed, got.redeemed)
        check(f"{code} expired", want.expired, got.expired)
    check("members", len(expected.members), len(set(recorded.members) - {OTHERS}))
    check("members with postings or visits who are not in the file", 0,
          int(OTHERS in recorded.members or OTHERS in recorded.visit_days or OTHERS in recorded.balances))
    check("visits", expected.visits, recorded.visits)
    check("redemptions", expected.redemptions, recorded.redemptions)
    member_faults = [c for c in expected.members
                     if expected.members[c].as_tuple() != recorded.members.get(c, cdnow.Totals()).as_tuple()]
    check("members whose earned/redeemed/expired differ", 0, len(member_faults))
    balance_faults = [c for c in expected.balances if expected.balances[c] != recorded.balances.get(c)]
    check("members whose book balance differs", 0, len(balance_faults))
    check("sum of balances", sum(expected.balances.values()), sum(recorded.balances.values()))
    for c in (member_faults + balance_faults)[:10]:
        mismatches.append(f"customer {c}: expected {expected.members[c]} balance {expected.balances[c]}, "
                          f"recorded {recorded.members.get(c)} balance {recorded.balances.get(c)}")
    if api_balances is not None:
        api_faults = [c for c in expected.balances if expected.balances[c] != api_balances.get(c)]
        check("members whose API balance differs", 0, len(api_faults))
    if summary is not None and sample is not None:
        compared, faults = 0, []
        for customer, sample_id in sorted(sample.items(), key=lambda kv: kv[1]):
            if customer not in expected.members:
                continue
            compared += 1
            mine = cdnow.summary_row(recorded.visit_days.get(customer, ()))
            if mine != summary[sample_id]:
                faults.append(f"sample {sample_id}: platform {mine}, published {summary[sample_id]}")
        check("sample members compared with the published summary", compared, compared - len(faults))
        mismatches.extend(faults[:10])
    return Report(rows=rows, mismatches=mismatches)

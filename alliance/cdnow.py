"""The CDNOW scenario: real purchase histories played as a three-partner alliance.

Pure Python, nothing from ``ledger/``: the data files, the demo alliance, the deterministic
mapping of customers and purchases onto partners, and an independent model of the rules that
the reconciliation compares the books against. ``docs/cdnow.md`` explains every choice.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import os
from collections import defaultdict
from collections.abc import Iterable
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "cdnow")
MASTER_FILE = os.path.join(DATA_DIR, "CDNOW_master.txt")
SAMPLE_FILE = os.path.join(DATA_DIR, "CDNOW_sample.txt")
SUMMARY_FILE = os.path.join(DATA_DIR, "cdnow_customers_summary.csv")

TIMEZONE = "Asia/Shanghai"
EXPIRY_MONTHS = 12
#: A member with at least this many usable points, buying at a partner other than the one they
#: last bought at, redeems ``REDEEM_POINTS`` there before the purchase earns.
REDEEM_THRESHOLD = 300
REDEEM_POINTS = 200
#: The calibration window of the published summary (Fader, Hardie & Lee: 39 weeks).
SUMMARY_START, SUMMARY_END = dt.date(1997, 1, 1), dt.date(1997, 9, 30)


@dataclasses.dataclass(frozen=True)
class Partner:
    code: str
    name: str
    kind: str
    #: ``earn_points`` points for every ``earn_per_minor`` fen, rounded down.
    earn_points: int
    earn_per_minor: int
    #: Share of visit days (per mille) that go to this partner.
    share: int


@dataclasses.dataclass(frozen=True)
class DemoAlliance:
    code: str
    name: str
    partners: tuple[Partner, ...]


PARTNERS = (
    Partner("yunxiu-scenic", "云岫山风景区 Yunxiu Mountain Scenic Area (5A)", "scenic_area", 1, 100, 500),
    Partner("pine-cloud-homestay", "松云民宿 Pine Cloud Homestay", "homestay", 2, 100, 300),
    Partner("feiyan-outdoor", "飞岩户外 Feiyan Outdoor Gear", "brand", 1, 200, 200),
)
DEMO = DemoAlliance("yunxiu", "云岫山旅游联盟 Yunxiu Mountain Tourism Alliance", PARTNERS)
BY_CODE = {p.code: p for p in PARTNERS}


@dataclasses.dataclass(frozen=True)
class Purchase:
    """One line of a CDNOW file."""

    #: The master file's five-digit customer id.
    customer: str
    day: dt.date
    cds: int
    #: The dollar value, taken as yuan.
    value: Decimal
    #: Position among the customer's purchases of that day (0, 1, ...), in file order.
    seq: int
    #: The sample file's id, when read from the sample file.
    sample_id: int | None = None

    @property
    def key(self) -> str:
        """A stable name for the purchase, used in references and idempotency keys."""
        return f"{self.customer}-{self.day:%Y%m%d}-{self.seq}"

    @property
    def partner(self) -> Partner:
        return partner_for(self.customer, self.day)

    @property
    def occurred_at(self) -> dt.datetime:
        """Noon of the purchase day in the alliance's timezone, a second apart within a day."""
        return dt.datetime.combine(self.day, dt.time(12, 0, self.seq % 60, 0), tzinfo=ZoneInfo(TIMEZONE))


def load(path: str = SAMPLE_FILE, *, customers: int | None = None, shift_years: int = 0) -> list[Purchase]:
    """Read a CDNOW master (4 columns) or sample (5 columns) file; ``customers`` keeps the first N.

    ``shift_years`` moves every date forward by whole years (the demo seed keeps its newest
    points alive that way); the replay and the reconciliation use the file's own dates.
    """
    out: list[Purchase] = []
    seen: list[str] = []
    per_day: dict[tuple[str, dt.date], int] = defaultdict(int)
    with open(path, encoding="ascii") as fh:
        for line in fh:
            cols = line.split()
            if not cols or not cols[0].isdigit():
                continue
            if len(cols) == 5:
                customer, sample, day, cds, value = cols
            elif len(cols) == 4:
                (customer, day, cds, value), sample = cols, None
            else:
                raise ValueError(f"unexpected line in {path}: {line!r}")
            if not seen or seen[-1] != customer:
                if customers is not None and len(seen) == customers:
                    break
                seen.append(customer)
            date = dt.date(int(day[:4]), int(day[4:6]), int(day[6:8])) + relativedelta(years=shift_years)
            seq = per_day[(customer, date)]
            per_day[(customer, date)] += 1
            out.append(Purchase(customer, date, int(cds), Decimal(value), seq,
                                int(sample) if sample is not None else None))
    return out


def demo_shift(today: dt.date, last_day: dt.date = dt.date(1998, 6, 30)) -> int:
    """Whole years that move the file's last purchase day to the latest year before ``today``."""
    years = today.year - last_day.year
    return years if last_day + relativedelta(years=years) < today else years - 1


def sample_ids(path: str = SAMPLE_FILE) -> dict[str, int]:
    """Master customer id -> sample id for the 2,357 customers of the published sample."""
    return {p.customer: p.sample_id for p in load(path)}


def published_summary(path: str = SUMMARY_FILE) -> dict[int, tuple[int, Decimal, Decimal]]:
    """Sample id -> (frequency, recency weeks, T weeks) as published."""
    with open(path, encoding="ascii") as fh:
        return {int(r["ID"]): (int(r["frequency"]), Decimal(r["recency"]), Decimal(r["T"]))
                for r in csv.DictReader(fh)}


def partner_for(customer: str, day: dt.date) -> Partner:
    """The partner a visit goes to: a stable hash of the customer and the date, by share."""
    digest = hashlib.sha256(f"{customer}:{day.isoformat()}".encode()).digest()
    slot = int.from_bytes(digest[:4], "big") % 1000
    for partner in PARTNERS:
        if slot < partner.share:
            return partner
        slot -= partner.share
    raise AssertionError("shares do not add up to 1000")


def email_for(customer: str) -> str:
    """A clearly fictional address (the .example domain is reserved, RFC 2606)."""
    return f"cdnow-{customer}@members.example"


def name_for(customer: str) -> str:
    return f"演示会员 Demo member {customer}"


def external_ref_for(customer: str) -> str:
    return f"cdnow-{customer}"


def points_for(value: Decimal, partner: Partner) -> int:
    """The partner's earn rule, written out: floor(fen x points / per)."""
    fen = (value * 100).to_integral_value()
    return int((fen * partner.earn_points / partner.earn_per_minor).to_integral_value(rounding=ROUND_FLOOR))


def expiry_day(day: dt.date) -> dt.date:
    """Points earned on ``day`` are usable through this day (12 months on, month-end clamped)."""
    return day + relativedelta(months=EXPIRY_MONTHS)


def end_of_day(day: dt.date) -> dt.datetime:
    """The last instant of ``day`` in the alliance's timezone."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=ZoneInfo(TIMEZONE)) \
        - dt.timedelta(microseconds=1)


def month_end(day: dt.date) -> dt.date:
    return day + relativedelta(day=31)


def months(purchases: Iterable[Purchase]) -> list[dt.date]:
    """The month ends from the first purchase's month through the last's."""
    days = [p.day for p in purchases]
    if not days:
        return []
    out, end = [], month_end(min(days))
    while end <= month_end(max(days)):
        out.append(end)
        end = month_end(end + dt.timedelta(days=1))
    return out


def by_month(purchases: Iterable[Purchase]) -> dict[dt.date, dict[str, list[Purchase]]]:
    """Month end -> customer -> that customer's purchases of the month, in order."""
    out: dict[dt.date, dict[str, list[Purchase]]] = defaultdict(lambda: defaultdict(list))
    for p in sorted(purchases, key=lambda p: (p.day, p.customer, p.seq)):
        out[month_end(p.day)][p.customer].append(p)
    return out


def previous_partners(purchases: Iterable[Purchase]) -> dict[str, Partner | None]:
    """Purchase key -> the partner of the customer's previous purchase (None for the first)."""
    out: dict[str, Partner | None] = {}
    last: dict[str, Partner] = {}
    for p in sorted(purchases, key=lambda p: (p.customer, p.day, p.seq)):
        out[p.key] = last.get(p.customer)
        last[p.customer] = p.partner
    return out


# ---------------------------------------------------------------- the independent model

@dataclasses.dataclass
class Totals:
    earned: int = 0
    redeemed: int = 0
    expired: int = 0

    def as_tuple(self) -> tuple[int, int, int]:
        return self.earned, self.redeemed, self.expired


@dataclasses.dataclass
class Expected:
    """What the books must say after the scenario, computed from the file alone."""

    members: dict[str, Totals]
    balances: dict[str, int]
    partners: dict[str, Totals]
    redemptions: int
    visits: int


def expected(purchases: list[Purchase]) -> Expected:
    """Play the rules on plain lists: lots by (expiry day, order), month-end sweeps, the redemption rule."""
    lots: dict[str, list[list]] = defaultdict(list)  # customer -> [expiry day, order, issuer code, remaining]
    members: dict[str, Totals] = defaultdict(Totals)
    partners: dict[str, Totals] = {p.code: Totals() for p in PARTNERS}
    previous = previous_partners(purchases)
    order = 0
    redemptions = 0

    def sweep(customer: str, through: dt.date) -> None:
        for lot in lots[customer]:
            if lot[3] and lot[0] <= through:
                members[customer].expired += lot[3]
                partners[lot[2]].expired += lot[3]
                lot[3] = 0

    grouped = by_month(purchases)
    for end in months(purchases):
        for customer, bought in grouped.get(end, {}).items():
            for p in bought:
                members[customer]  # every buyer is a member, even one who never earns
                partner = p.partner
                before = previous[p.key]
                if before is not None and before.code != partner.code:
                    sweep(customer, p.day - dt.timedelta(days=1))
                    usable = sum(lot[3] for lot in lots[customer])
                    if usable >= REDEEM_THRESHOLD:
                        left = REDEEM_POINTS
                        for lot in sorted(lots[customer], key=lambda lot: (lot[0], lot[1])):
                            take = min(left, lot[3])
                            lot[3] -= take
                            left -= take
                            if not left:
                                break
                        members[customer].redeemed += REDEEM_POINTS
                        partners[partner.code].redeemed += REDEEM_POINTS
                        redemptions += 1
                points = points_for(p.value, partner)
                if points:
                    order += 1
                    lots[customer].append([expiry_day(p.day), order, partner.code, points])
                    members[customer].earned += points
                    partners[partner.code].earned += points
        for customer in list(lots):
            sweep(customer, end)
    balances = {c: sum(lot[3] for lot in lots[c]) for c in members}
    return Expected(members=dict(members), balances=balances, partners=partners, redemptions=redemptions,
                    visits=len(purchases))


def summary_row(visit_days: Iterable[dt.date]) -> tuple[int, Decimal, Decimal]:
    """(frequency, recency, T) over the calibration window, in weeks to two places, from visit days."""
    days = sorted({d for d in visit_days if SUMMARY_START <= d <= SUMMARY_END})
    if not days:
        raise ValueError("no visit in the calibration window")
    weeks = Decimal(7)
    q = Decimal("0.01")
    return (len(days) - 1, (Decimal((days[-1] - days[0]).days) / weeks).quantize(q),
            (Decimal((SUMMARY_END - days[0]).days) / weeks).quantize(q))

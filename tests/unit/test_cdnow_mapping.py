"""The CDNOW mapping is deterministic and its rules are the documented ones."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from alliance import cdnow


def test_one_customers_purchases_of_one_day_go_to_one_partner_on_every_run():
    assert cdnow.partner_for("00002", dt.date(1997, 1, 12)) is cdnow.partner_for("00002", dt.date(1997, 1, 12))
    counts = {p.code: 0 for p in cdnow.PARTNERS}
    for n in range(1, 3001):
        counts[cdnow.partner_for(f"{n:05d}", dt.date(1997, 3, 1)).code] += 1
    assert 1350 < counts["yunxiu-scenic"] < 1650 and 750 < counts["pine-cloud-homestay"] < 1050


def test_earn_rules_round_down_per_partner():
    scenic, homestay, brand = cdnow.PARTNERS
    assert [cdnow.points_for(Decimal("11.77"), p) for p in (scenic, homestay, brand)] == [11, 23, 5]
    assert cdnow.points_for(Decimal("1.99"), brand) == 0 and cdnow.points_for(Decimal("0.00"), scenic) == 0


def test_points_are_usable_through_the_same_day_a_year_on_clamped_at_month_end():
    assert cdnow.expiry_day(dt.date(1997, 1, 31)) == dt.date(1998, 1, 31)
    assert cdnow.expiry_day(dt.date(1996, 2, 29)) == dt.date(1997, 2, 28)
    assert cdnow.end_of_day(dt.date(1998, 1, 1)).isoformat() == "1998-01-01T23:59:59.999999+08:00"


def test_the_files_load_with_the_published_counts():
    master = cdnow.load(cdnow.MASTER_FILE)
    assert (len(master), len({p.customer for p in master})) == (69659, 23570)
    sample = cdnow.load(cdnow.SAMPLE_FILE)
    assert (len(sample), len({p.customer for p in sample})) == (6919, 2357)
    assert len(cdnow.published_summary()) == 2357
    assert cdnow.months(master)[0] == dt.date(1997, 1, 31) and cdnow.months(master)[-1] == dt.date(1998, 6, 30)
    twice = [p for p in master if p.customer == "00002"]
    assert [(p.day.isoformat(), p.seq) for p in twice[:2]] == [("1997-01-12", 0), ("1997-01-12", 1)]


def test_the_demo_moves_dates_by_whole_years_to_end_before_today():
    assert cdnow.demo_shift(dt.date(2026, 12, 3)) == 28
    assert cdnow.demo_shift(dt.date(2026, 6, 30)) == 27
    shifted = cdnow.load(cdnow.SAMPLE_FILE, customers=1, shift_years=28)
    assert shifted[0].day == dt.date(2025, 1, 1)

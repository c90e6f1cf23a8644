import datetime as dt
from dataclasses import dataclass

import pytest

from ledger.rules import add_months, lot_expiry, plan_consumption, points_for_amount

UTC = dt.timezone.utc


@pytest.mark.parametrize(("day", "months", "expected"), [
    (dt.date(2024, 2, 29), 12, dt.date(2025, 2, 28)),
    (dt.date(2024, 2, 29), 48, dt.date(2028, 2, 29)),
    (dt.date(2024, 1, 31), 1, dt.date(2024, 2, 29)),
    (dt.date(2023, 1, 31), 1, dt.date(2023, 2, 28)),
    (dt.date(2024, 3, 31), 1, dt.date(2024, 4, 30)),
    (dt.date(2024, 12, 15), 1, dt.date(2025, 1, 15)),
    (dt.date(2024, 11, 30), 3, dt.date(2025, 2, 28)),
    (dt.date(2024, 5, 10), 24, dt.date(2026, 5, 10)),
])
def test_adding_months_clamps_to_the_month_end(day, months, expected):
    assert add_months(day, months) == expected


def test_a_lot_from_leap_day_expires_at_the_end_of_28_february_local():
    earned = dt.datetime(2024, 2, 29, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
    expires = lot_expiry(earned, 12, "Asia/Shanghai")
    assert expires == dt.datetime(2025, 2, 28, 15, 59, 59, 999999, tzinfo=UTC)
    assert expires.astimezone(dt.timezone(dt.timedelta(hours=8))).time() == dt.time.max


def test_expiry_uses_the_local_date_not_the_utc_date():
    earned = dt.datetime(2024, 1, 31, 17, 0, tzinfo=UTC)  # already 1 February in Shanghai
    assert lot_expiry(earned, 1, "Asia/Shanghai") == dt.datetime(2024, 3, 1, 15, 59, 59, 999999, tzinfo=UTC)
    assert lot_expiry(earned, 1, "UTC") == dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)


def test_expiry_at_end_of_day_across_a_dst_change():
    earned = dt.datetime(2024, 2, 10, 12, 0, tzinfo=UTC)
    # 10 March 2024 is the US spring-forward day; its end is 23:59:59.999999 EDT (UTC-4).
    assert lot_expiry(earned, 1, "America/New_York") == dt.datetime(2024, 3, 11, 3, 59, 59, 999999, tzinfo=UTC)


def test_no_expiry_months_means_never():
    assert lot_expiry(dt.datetime(2024, 1, 1, tzinfo=UTC), None, "Asia/Shanghai") is None


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError):
        lot_expiry(dt.datetime(2024, 1, 1), 12, "UTC")


@pytest.mark.parametrize(("amount", "points", "per", "rounding", "expected"), [
    (435, 100, 100, "floor", 435),
    (435, 1, 100, "floor", 4),
    (435, 1, 100, "ceil", 5),
    (435, 1, 100, "half_up", 4),
    (450, 1, 100, "half_up", 5),
    (449, 1, 100, "half_up", 4),
    (99, 1, 100, "floor", 0),
    (0, 1, 100, "ceil", 0),
    (1000, 3, 7, "floor", 428),
    (1000, 3, 7, "ceil", 429),
    (10**15, 1, 100, "floor", 10**13),
])
def test_points_for_amount(amount, points, per, rounding, expected):
    assert points_for_amount(amount, points, per, rounding) == expected


def test_points_for_amount_refuses_a_negative_amount_or_unknown_rounding():
    with pytest.raises(ValueError):
        points_for_amount(-1, 1, 100, "floor")
    with pytest.raises(ValueError):
        points_for_amount(100, 1, 100, "bankers")


@dataclass
class FakeLot:
    id: int
    remaining: int
    expires_at: dt.datetime | None
    created_at: dt.datetime


def test_consumption_takes_the_soonest_expiring_lot_first_and_never_expiring_last():
    t0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    never = FakeLot(1, 50, None, t0)
    late = FakeLot(2, 50, t0 + dt.timedelta(days=60), t0)
    soon = FakeLot(3, 30, t0 + dt.timedelta(days=10), t0 + dt.timedelta(days=1))
    soon_older = FakeLot(4, 5, t0 + dt.timedelta(days=10), t0)
    empty = FakeLot(5, 0, t0, t0)
    plan = plan_consumption([never, late, soon, soon_older, empty], 100)
    assert [(lot.id, take) for lot, take in plan] == [(4, 5), (3, 30), (2, 50), (1, 15)]


def test_consumption_refuses_when_lots_fall_short():
    t0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        plan_consumption([FakeLot(1, 10, None, t0)], 11)
    assert plan_consumption([FakeLot(1, 10, None, t0)], 0) == []

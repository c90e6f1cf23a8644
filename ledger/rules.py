"""Pure ledger rules: lot expiry, earn arithmetic and lot consumption order."""
from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Sequence
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

ROUNDINGS = ("floor", "half_up", "ceil")


def add_months(day: dt.date, months: int) -> dt.date:
    """Add calendar months to a date, clamping to the last day of the target month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def lot_expiry(occurred_at: dt.datetime, months: int | None, tz: str) -> dt.datetime | None:
    """Return the end (local) of the day ``months`` after the earn's local date, in UTC; None = never."""
    if months is None:
        return None
    if occurred_at.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    zone = ZoneInfo(tz)
    day = add_months(occurred_at.astimezone(zone).date(), months)
    return dt.datetime.combine(day, dt.time.max, tzinfo=zone).astimezone(dt.timezone.utc)


def points_for_amount(amount_minor: int, earn_points: int, earn_per_minor: int, rounding: str = "floor") -> int:
    """Return the points earned for ``amount_minor`` at ``earn_points`` per ``earn_per_minor``, exactly."""
    if amount_minor < 0 or earn_points < 0 or earn_per_minor <= 0:
        raise ValueError("amount and rule must be non-negative, earn_per_minor positive")
    numerator = amount_minor * earn_points
    if rounding == "floor":
        return numerator // earn_per_minor
    if rounding == "ceil":
        return -(-numerator // earn_per_minor)
    if rounding == "half_up":
        return (2 * numerator + earn_per_minor) // (2 * earn_per_minor)
    raise ValueError(f"unknown rounding {rounding!r}")


class LotLike(Protocol):
    id: int
    remaining: int
    expires_at: dt.datetime | None
    created_at: dt.datetime


L = TypeVar("L", bound=LotLike)


def consumption_order(lot: LotLike):
    """Sort key: soonest expiry first, never-expiring last, then oldest, then id."""
    never = lot.expires_at is None
    return (never, lot.expires_at if not never else dt.datetime.max.replace(tzinfo=dt.timezone.utc),
            lot.created_at, lot.id)


def plan_consumption(lots: Sequence[L], points: int) -> list[tuple[L, int]]:
    """Return (lot, points) to take, soonest-expiring first; raise ValueError if the lots fall short."""
    if points < 0:
        raise ValueError("points must be non-negative")
    plan: list[tuple[L, int]] = []
    left = points
    for lot in sorted((lot for lot in lots if lot.remaining > 0), key=consumption_order):
        if left == 0:
            break
        take = min(left, lot.remaining)
        plan.append((lot, take))
        left -= take
    if left:
        raise ValueError(f"lots are short by {left} points")
    return plan

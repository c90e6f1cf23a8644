"""Operator commands print one JSON object, refuse bad input with one, and expire by local day."""
from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import pytest
import sqlalchemy as sa

from ledger import services as ledger
from ledger.models import Lot
from tenants.isolation import platform_scope
from tests.builders import create_alliance, create_member, create_tenant


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def run(*args):
        result = runner.invoke(args=list(args))
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        assert len(lines) == 1, (args, result.output, result.exception)
        return result.exit_code, json.loads(lines[0])

    return run


def test_alliances_create_prints_the_alliance_as_one_json_object(cli):
    code, out = cli("alliances", "create", "--code", "mtn", "--name", "Mountain", "--expiry-months", "24")
    assert code == 0
    assert (out["code"], out["timezone"], out["currency"], out["expiry_months"]) == ("mtn", "Asia/Shanghai", "CNY", 24)


@pytest.mark.parametrize("args,error", [
    (["--currency", "ZZZZ"], "validation_error"),
    (["--currency", "C1Y"], "validation_error"),
    (["--timezone", "Mars/Base"], "validation_error"),
])
def test_an_alliance_with_a_bad_currency_or_timezone_is_refused_as_json(cli, args, error):
    code, out = cli("alliances", "create", "--code", "bad", "--name", "Bad", *args)
    assert code == 2 and out["error"] == error


def test_an_alliance_code_longer_than_the_column_is_refused_as_json(cli):
    code, out = cli("alliances", "create", "--code", "x" * 100, "--name", "Long")
    assert code == 2 and out["error"] == "validation_error" and "code" in out["detail"]


def test_a_tenant_earn_rule_beyond_the_columns_is_refused_by_the_service(session):
    from tenants.errors import TenancyError
    from tenants.services import create_tenant as service

    alliance = create_alliance(session)
    with pytest.raises(TenancyError, match="earn rule"):
        service(session, alliance_code=alliance.code, code="big", name="Big", kind="hotel", earn_points=10**30)
    with pytest.raises(TenancyError, match="earn rule"):
        service(session, alliance_code=alliance.code, code="big", name="Big", kind="hotel", earn_per_minor=2**40)


def _earn_expiring_end_of(session, *, timezone: str, day: dt.date) -> int:
    """Commit a member whose 10 points expire at the end of ``day`` in ``timezone``; return the member id."""
    alliance = create_alliance(session, timezone=timezone, expiry_months=1)
    tenant = create_tenant(session, alliance=alliance)
    member = create_member(session, alliance=alliance)
    local_noon = dt.datetime.combine(day.replace(month=day.month - 1), dt.time(12), tzinfo=zoneinfo.ZoneInfo(timezone))
    ledger.earn(session, alliance_id=alliance.id, tenant_id=tenant.id, member_id=member.id, points=10,
                expiry_months=1, timezone=timezone, occurred_at=local_noon, now=local_noon)
    session.commit()
    return member.id


def _remaining(session, member_id) -> int:
    with platform_scope(session):
        return session.scalar(sa.select(sa.func.sum(Lot.remaining)).where(Lot.member_id == member_id))


def test_expire_as_of_a_day_cuts_off_at_the_end_of_that_day_in_each_alliances_timezone(cli, session):
    west = _earn_expiring_end_of(session, timezone="America/Los_Angeles", day=dt.date(2026, 3, 10))
    east_next_day = _earn_expiring_end_of(session, timezone="Asia/Shanghai", day=dt.date(2026, 3, 11))
    code, out = cli("ledger", "expire", "--as-of", "2026-03-10")
    assert code == 0, out
    assert out["as_of"] == "2026-03-10" and (out["lots"], out["points"]) == (1, 10)
    assert _remaining(session, west) == 0  # due at 2026-03-11T06:59:59Z, after midnight UTC
    assert _remaining(session, east_next_day) == 10
    assert cli("ledger", "expire", "--as-of", "2026-03-10")[1]["points"] == 0  # safe to run twice


def test_a_hold_due_early_next_local_day_survives_expiry_as_of_today(cli, session):
    alliance = create_alliance(session, timezone="Asia/Shanghai", expiry_months=None)
    tenant = create_tenant(session, alliance=alliance)
    member = create_member(session, alliance=alliance)
    start = dt.datetime(2026, 3, 10, 8, tzinfo=dt.timezone.utc)
    ledger.earn(session, alliance_id=alliance.id, tenant_id=tenant.id, member_id=member.id, points=50,
                expiry_months=None, timezone="Asia/Shanghai", now=start)
    # 2026-03-11 03:00 in Shanghai is 2026-03-10 19:00 UTC: due tomorrow, local time.
    hold = ledger.create_hold(session, alliance_id=alliance.id, tenant_id=tenant.id, member_id=member.id,
                              points=20, expires_at=dt.datetime(2026, 3, 10, 19, tzinfo=dt.timezone.utc), now=start)
    session.commit()
    code, out = cli("ledger", "expire", "--as-of", "2026-03-10")
    assert code == 0 and out["holds"] == 0, out
    session.refresh(hold)
    assert hold.status == "active"
    assert cli("ledger", "expire", "--as-of", "2026-03-11")[1]["holds"] == 1


def test_expire_with_a_bad_day_prints_one_json_error(cli):
    code, out = cli("ledger", "expire", "--as-of", "2026-13-01")
    assert code == 2 and out["error"] == "validation_error"


def test_expire_works_in_batches_and_expires_every_due_member_once(cli, session, monkeypatch):
    from api import cli as cli_module
    from ledger.verify import verify

    monkeypatch.setattr(cli_module, "EXPIRY_BATCH", 2)
    members = [_earn_expiring_end_of(session, timezone="Asia/Shanghai", day=dt.date(2026, 3, 10)) for _ in range(5)]
    code, out = cli("ledger", "expire", "--as-of", "2026-03-10")
    assert code == 0, out
    assert (out["members"], out["lots"], out["points"]) == (5, 5, 50)
    assert [_remaining(session, m) for m in members] == [0] * 5
    assert cli("ledger", "expire", "--as-of", "2026-03-10")[1]["points"] == 0
    with platform_scope(session):
        assert verify(session) == []

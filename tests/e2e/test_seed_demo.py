"""`flask seed-demo` (make run): seeds an empty database once and tells how to call it."""
from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from alliance import cdnow
from api import create_app
from api.extensions import make_engine
from tests import dbsetup


@pytest.fixture
def fresh(tmp_path):
    url = f"sqlite:///{tmp_path}/seed.db"
    engine = make_engine(url)
    dbsetup.upgrade(engine)
    engine.dispose()
    app = create_app({"TESTING": True, "DATABASE_URL": url, "RATELIMIT_ENABLED": False, "SECRET_KEY": "t",
                      "INSTANCE_PATH": str(tmp_path / "instance")})
    yield app
    app.extensions["database"].dispose()


def _slice(tmp_path, customers: int) -> str:
    path = tmp_path / "slice.txt"
    seen: list[str] = []
    with open(cdnow.SAMPLE_FILE, encoding="ascii") as src, \
            open(path, "w", encoding="ascii") as out:
        for line in src:
            customer = line.split()[0]
            if customer not in seen:
                if len(seen) == customers:
                    break
                seen.append(customer)
            out.write(line)
    return str(path)


def test_seed_demo_fills_an_empty_database_once_and_prints_a_call_that_works(fresh, tmp_path):
    runner = fresh.test_cli_runner()
    first = runner.invoke(args=["seed-demo", "--file", _slice(tmp_path, 60)])
    assert first.exit_code == 0, first.output
    creds_path = tmp_path / "instance" / "demo-credentials.json"
    info = json.loads(creds_path.read_text(encoding="utf-8"))
    assert stat.S_IMODE(os.stat(creds_path).st_mode) == 0o600
    assert info["members"] == 60 and info["shift_years"] >= 28
    assert info["client_id"] in first.output and info["client_secret"] in first.output
    assert set(info["partners"]) == {"yunxiu-scenic", "pine-cloud-homestay", "feiyan-outdoor"}

    client = fresh.test_client()
    auth = base64.b64encode(f"{info['client_id']}:{info['client_secret']}".encode()).decode()
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers={"Authorization": f"Basic {auth}"}).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert info["member_id"] in first.output
    balance = client.get(f"/api/v1/members/{info['member_id']}/balance", headers=headers).get_json()
    assert balance["available"] > 0  # the showcased member has points valid today
    spend = client.post(f"/api/v1/members/{info['member_id']}/redemptions", json={"points": 1},
                        headers={**headers, "Idempotency-Key": "seed-test-1"})
    assert spend.status_code == 201, spend.get_json()
    listed = client.get("/api/v1/transactions?limit=3", headers=headers).get_json()
    assert len(listed["data"]) == 3

    again = runner.invoke(args=["seed-demo"])
    assert again.exit_code == 0 and info["client_id"] in again.output and "Seeded" not in again.output
    with fresh.app_context():
        import sqlalchemy as sa

        from alliance.models import Member
        from tenants.isolation import platform_scope

        session = fresh.extensions["database"].session
        with platform_scope(session):
            assert session.scalar(sa.select(sa.func.count()).select_from(Member)) == 60

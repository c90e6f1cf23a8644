"""The CDNOW replay end to end: a live server, partners over HTTP, a full reconciliation, resumable."""
from __future__ import annotations

import json
import os
import threading

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so
from werkzeug.serving import make_server

from alliance import cdnow
from alliance import demo as scenario
from api import create_app
from api.extensions import make_engine
from api.replay import FileJournal, HttpPartners
from ledger.models import Transaction
from ledger.verify import verify
from tenants.isolation import platform_scope
from tests import dbsetup

CUSTOMERS = 300


@pytest.fixture
def live(engine, tmp_path):
    """A server on its own, freshly migrated database, serving from a thread."""
    name = dbsetup.scratch_name(engine, "replay")
    url = dbsetup.scratch_url(engine, name, tmp_path)
    scratch = make_engine(url)
    dbsetup.upgrade(scratch)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "RATELIMIT_ENABLED": False, "SECRET_KEY": "t",
                      "SEED_DEMO": False, "INSTANCE_PATH": str(tmp_path / "instance")})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}", scratch
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        app.extensions["database"].dispose()
        scratch.dispose()
        dbsetup.drop_scratch(engine, name)


def _counts(scratch) -> tuple[int, ...]:
    with scratch.connect() as conn:
        return tuple(conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()
                     for t in ("ledger_transactions", "ledger_entries", "visits", "consent_events", "members",
                               "api_clients"))


def _replay(app, url):
    return app.test_cli_runner().invoke(args=[
        "demo", "replay-cdnow", "--url", url, "--file", "sample", "--customers", str(CUSTOMERS),
        "--concurrency", "4", "--no-progress", "--alliance", "slice"])


def test_a_replayed_slice_reconciles_to_the_point_and_a_second_run_changes_nothing(live):
    app, url, scratch = live
    first = _replay(app, url)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.output.strip().splitlines()[-1])
    assert (summary["customers"], summary["reconciled"], summary["verify_clean"]) == (CUSTOMERS, True, True)
    assert "members whose API balance differs" in first.output
    assert "MISMATCH" not in first.output

    purchases = cdnow.load(cdnow.SAMPLE_FILE, customers=CUSTOMERS)
    want = cdnow.expected(purchases)
    with so.Session(scratch) as session:
        report = scenario.reconcile(want, scenario.books(session, alliance_code="slice"),
                                    summary=cdnow.published_summary(), sample=cdnow.sample_ids())
        with platform_scope(session):
            assert verify(session) == []
    assert report.ok, report.mismatches
    assert want.redemptions > 10 and all(t.expired > 0 for t in want.partners.values())
    assert summary["purchases"] == len(purchases) == want.visits

    before = _counts(scratch)
    assert before[0] == sum(1 for p in purchases if cdnow.points_for(p.value, p.partner)) \
        + want.redemptions + _expiry_transactions(scratch)
    again = _replay(app, url)
    assert again.exit_code == 0, again.output
    assert _counts(scratch) == before  # nothing posted twice, the same API clients reused

    checked = app.test_cli_runner().invoke(args=["demo", "reconcile", "--alliance", "slice"])
    assert checked.exit_code == 0, checked.output
    assert "sample members compared with the published summary" in checked.output


def _expiry_transactions(scratch) -> int:
    with so.Session(scratch) as session, platform_scope(session):
        return session.scalar(sa.select(sa.func.count()).select_from(Transaction).where(Transaction.kind == "expiry"))


class Interrupted(Exception):
    pass


def test_a_replay_cut_off_midway_resumes_without_posting_anything_twice(live, tmp_path):
    app, url, scratch = live
    purchases = cdnow.load(cdnow.SAMPLE_FILE, customers=120)
    with app.app_context():
        session = app.extensions["database"].session
        with platform_scope(session):
            _, tenants = scenario.ensure_alliance(session, code="cut")
            from api.demo import REPLAY_SCOPES, _expire_in_db, _issue_clients

            creds = _issue_clients(session, tenants, REPLAY_SCOPES, "test")
            session.commit()
        expire = _expire_in_db("cut")
        path = str(tmp_path / "cut.jsonl")
        run = {"test": "cut"}
        done = {"n": 0}

        def cut_after_300():
            done["n"] += 1
            if done["n"] == 300:
                raise Interrupted

        partners = HttpPartners(url, creds, expire=expire, on_purchase=cut_after_300)
        with pytest.raises(Interrupted):
            scenario.play(purchases, partners, journal=FileJournal(path, run=run))
        partners.close()
        partial = _counts(scratch)
        assert 0 < partial[2] < len(purchases)

        partners = HttpPartners(url, creds, expire=expire)
        scenario.play(purchases, partners, journal=FileJournal(path, run=run))
        partners.close()
    with so.Session(scratch) as session:
        report = scenario.reconcile(cdnow.expected(purchases), scenario.books(session, alliance_code="cut"))
    assert report.ok, report.mismatches
    assert _counts(scratch)[2] == len(purchases)
    assert os.path.getsize(path) > 0


def test_a_replay_to_a_server_that_does_not_answer_stops_at_once_and_creates_nothing(app, session, tmp_path):
    from tenants.models import Alliance

    runner = app.test_cli_runner()
    dead = runner.invoke(args=["demo", "replay-cdnow", "--url", "http://127.0.0.1:9", "--file", "sample",
                               "--customers", "3", "--alliance", "nobody-home", "--no-progress"])
    assert dead.exit_code == 2 and "no server answers at http://127.0.0.1:9" in dead.output
    assert dead.exception is None or isinstance(dead.exception, SystemExit)
    with platform_scope(session):
        assert session.scalar(sa.select(Alliance).where(Alliance.code == "nobody-home")) is None
    missing = runner.invoke(args=["demo", "replay-cdnow", "--file", "/nonexistent", "--no-progress"])
    assert missing.exit_code == 2 and "no such file: /nonexistent" in missing.output
    junk = tmp_path / "junk.txt"
    junk.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="ascii")
    empty = runner.invoke(args=["demo", "replay-cdnow", "--file", str(junk), "--no-progress"])
    assert empty.exit_code == 2 and "CDNOW" in empty.output
    unknown = runner.invoke(args=["demo", "reconcile", "--alliance", "never-replayed", "--file", "sample"])
    assert unknown.exit_code == 2 and "no alliance 'never-replayed'" in unknown.output

"""The unit of work commits once, runs side effects only after a commit, and retries whole units."""
from __future__ import annotations

import pytest
import sqlalchemy.exc as sa_exc

from tenants.uow import on_commit, run_unit


class FakeSession:
    def __init__(self, commit_errors=()):
        self.info: dict = {}
        self.log: list[str] = []
        self._errors = list(commit_errors)

    def commit(self):
        if self._errors:
            self.log.append("commit failed")
            raise self._errors.pop(0)
        self.log.append("commit")

    def rollback(self):
        self.log.append("rollback")


class _Orig(Exception):
    def __init__(self, sqlstate):
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _db_error(kind, sqlstate):
    return kind("UPDATE ...", {}, _Orig(sqlstate))


def test_side_effects_run_once_right_after_the_commit(monkeypatch):
    session = FakeSession()

    def work(s):
        on_commit(s, lambda: s.log.append("send webhook"))
        s.log.append("work")
        return 42

    assert run_unit(session, work) == 42
    assert session.log == ["work", "commit", "send webhook"]


def test_a_failing_unit_rolls_back_and_never_runs_its_side_effects():
    session = FakeSession()

    def work(s):
        on_commit(s, lambda: s.log.append("send webhook"))
        raise ValueError("refused")

    with pytest.raises(ValueError):
        run_unit(session, work)
    assert session.log == ["rollback"]
    run_unit(session, lambda s: s.log.append("next unit"))
    assert "send webhook" not in session.log  # dropped, not carried into the next unit


def test_a_deadlock_reruns_the_whole_unit_and_only_the_last_attempts_side_effects_run():
    session = FakeSession(commit_errors=[_db_error(sa_exc.OperationalError, "40P01")])
    attempts = []

    def work(s):
        attempts.append(len(attempts) + 1)
        n = len(attempts)
        on_commit(s, lambda: s.log.append(f"effect of attempt {n}"))

    run_unit(session, work)
    assert attempts == [1, 2]
    assert session.log == ["commit failed", "rollback", "commit", "effect of attempt 2"]


def test_a_unique_key_race_is_rerun_only_when_the_caller_asks():
    session = FakeSession(commit_errors=[_db_error(sa_exc.IntegrityError, "23505")])
    with pytest.raises(sa_exc.IntegrityError):
        run_unit(session, lambda s: None)
    session = FakeSession(commit_errors=[_db_error(sa_exc.IntegrityError, "23505")])
    assert run_unit(session, lambda s: "linked", retry_on_integrity=True) == "linked"


def test_retries_give_up_after_the_last_attempt():
    errors = [_db_error(sa_exc.OperationalError, "40001") for _ in range(3)]
    session = FakeSession(commit_errors=errors)
    with pytest.raises(sa_exc.OperationalError):
        run_unit(session, lambda s: None, attempts=3)
    assert session.log.count("commit failed") == 3

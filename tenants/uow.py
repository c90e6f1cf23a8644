"""The unit of work: the use case commits once; side effects run only after the commit."""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy.exc as sa_exc
import sqlalchemy.orm as so

T = TypeVar("T")
log = logging.getLogger(__name__)

#: PostgreSQL SQLSTATEs that mean "run the whole unit again".
RETRYABLE_SQLSTATES = {"40001", "40P01"}
AFTER_COMMIT_KEY = "after_commit_callbacks"


def on_commit(session: so.Session, callback: Callable[[], object]) -> None:
    """Register a side effect (task, webhook) to run once the current unit commits."""
    session.info.setdefault(AFTER_COMMIT_KEY, []).append(callback)


def _drain(session: so.Session) -> list[Callable[[], object]]:
    return session.info.pop(AFTER_COMMIT_KEY, [])


def is_retryable(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in RETRYABLE_SQLSTATES


def run_unit(
    session: so.Session,
    work: Callable[[so.Session], T],
    *,
    attempts: int = 8,
    retry_on_integrity: bool = False,
) -> T:
    """Run ``work`` in one transaction, commit, then run after-commit callbacks.

    A deadlock or serialization failure rolls back and runs the whole unit again; with
    ``retry_on_integrity`` a unique-key race does too (the retry then sees the winner's row).
    """
    for attempt in range(1, attempts + 1):
        try:
            result = work(session)
            session.commit()
        except (sa_exc.OperationalError, sa_exc.IntegrityError) as exc:
            session.rollback()
            _drain(session)
            retry = is_retryable(exc) or (retry_on_integrity and isinstance(exc, sa_exc.IntegrityError))
            if not retry or attempt == attempts:
                raise
            log.info("retrying unit of work after %s (attempt %d)", type(exc.orig).__name__, attempt)
            time.sleep(random.uniform(0, 0.005 * attempt))
            continue
        except BaseException:
            session.rollback()
            _drain(session)
            raise
        for callback in _drain(session):
            callback()
        return result
    raise AssertionError("unreachable")

"""Fixtures: a migrated database per run, a rolled-back transaction per test."""
from __future__ import annotations

import os
import tempfile

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

from api.extensions import make_engine
from tests import dbsetup

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
IS_PG = TEST_DATABASE_URL.startswith("postgresql")


@pytest.fixture(scope="session")
def database_url():
    if TEST_DATABASE_URL:
        yield TEST_DATABASE_URL
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/test.db"


@pytest.fixture(scope="session")
def engine(database_url):
    eng = make_engine(database_url)
    dbsetup.reset_schema(eng)
    dbsetup.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine):
    conn = engine.connect()
    trans = conn.begin()
    yield conn
    if trans.is_active:
        trans.rollback()
    conn.close()


@pytest.fixture
def session(connection):
    """A session whose commits are savepoints inside the test's outer transaction."""
    sess = so.Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield sess
    sess.close()


@pytest.fixture
def pg_url():
    """PostgreSQL URL for tests that need real commits across connections."""
    if not IS_PG:
        pytest.skip("needs PostgreSQL (set TEST_DATABASE_URL)")
    return TEST_DATABASE_URL


@pytest.fixture
def pg_engine(pg_url, engine):
    eng = sa.create_engine(pg_url, pool_size=20, max_overflow=10)
    yield eng
    eng.dispose()


def bound_app(engine, connection, **config):
    """An app whose sessions join the test's outer transaction (its commits are savepoints)."""
    from api import create_app

    application = create_app({
        "TESTING": True,
        "DATABASE_URL": str(engine.url.render_as_string(hide_password=False)),
        "RATELIMIT_ENABLED": False,
        "SECRET_KEY": "test-secret",
        **config,
    })
    database = application.extensions["database"]
    database.dispose()
    database.engine = engine
    database.session = so.scoped_session(so.sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False))
    return application


@pytest.fixture
def app(engine, connection):
    application = bound_app(engine, connection)
    yield application
    application.extensions["database"].session.remove()


@pytest.fixture
def client(app):
    return app.test_client()

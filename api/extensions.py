"""Extensions, built unbound at import and bound to an app in create_app."""
from __future__ import annotations

import os

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Flask
from flask_limiter import Limiter
from flask_migrate import Migrate

from tenants.db import Base


class Database:
    """The engine and the request-scoped session of one app."""

    metadata = Base.metadata

    def __init__(self) -> None:
        self.engine: sa.Engine | None = None
        self.session: so.scoped_session | None = None

    def init_app(self, app: Flask) -> None:
        url = app.config["DATABASE_URL"]
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
            os.makedirs(app.instance_path, exist_ok=True)
            url = "sqlite:///" + os.path.join(app.instance_path, url[len("sqlite:///"):])
        self.engine = make_engine(url)
        self.session = so.scoped_session(so.sessionmaker(bind=self.engine, expire_on_commit=False))
        app.extensions["database"] = self

        @app.teardown_appcontext
        def _remove_session(exc):  # noqa: ARG001
            if self.session is not None:
                self.session.remove()

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def make_engine(url: str) -> sa.Engine:
    """Build an engine; SQLite gets foreign keys, WAL and a busy timeout."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, record):  # noqa: ARG001
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def db_session() -> so.Session:
    from flask import current_app

    return current_app.extensions["database"].session


def _rate_key() -> str:
    """Count a request against its OAuth2 client (from the bearer token), else its address.

    The limiter runs before the view authenticates, so the token is resolved here.
    """
    from flask import request

    from api.oauth import rate_limit_client

    client = rate_limit_client()
    return f"client:{client}" if client else f"ip:{request.remote_addr}"


migrate = Migrate()


@migrate.configure
def _alembic_url(config):
    """Hand the app's database URL to the migration environment."""
    from flask import current_app

    url = current_app.extensions["database"].engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
def make_limiter() -> Limiter:
    """A limiter for one app: Flask-Limiter keeps its defaults on the instance, so apps never share one."""
    return Limiter(key_func=_rate_key)


def app_limiter() -> Limiter:
    from flask import current_app

    return current_app.extensions["rate_limiter"]

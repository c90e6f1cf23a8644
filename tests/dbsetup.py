"""Build a test database with the migrations (never create_all)."""
from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from api import MIGRATIONS_DIR


def alembic_config(connection) -> AlembicConfig:
    cfg = AlembicConfig(os.path.join(MIGRATIONS_DIR, "alembic.ini"))
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    cfg.attributes["connection"] = connection
    return cfg


def reset_schema(engine: sa.Engine) -> None:
    """Empty the database: drop every table (PostgreSQL: the public schema)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        else:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for (name,) in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall():
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: sa.Engine, revision: str = "base") -> None:
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)


def scratch_name(engine: sa.Engine, suffix: str) -> str:
    """A database name beside the test database's, so parallel runs never collide."""
    base = os.path.basename(engine.url.database or "test").removesuffix(".db")
    return f"{base}_{suffix}"


def scratch_url(engine: sa.Engine, name: str, tmp_path) -> str:
    """Return the URL of a new, empty database beside ``engine``'s (PostgreSQL) or in ``tmp_path``."""
    if engine.dialect.name == "postgresql":
        admin = sa.create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        return engine.url.set(database=name).render_as_string(hide_password=False)
    return f"sqlite:///{tmp_path}/{name}.db"


def drop_scratch(engine: sa.Engine, name: str) -> None:
    if engine.dialect.name == "postgresql":
        admin = sa.create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

"""The migrations build the schema on both databases, go down again, and agree with the models."""
from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tenants.db import Base
from tests import dbsetup

SCRATCH = "migr_scratch"


def _scratch_engine(engine, tmp_path):
    return sa.create_engine(dbsetup.scratch_url(engine, dbsetup.scratch_name(engine, SCRATCH), tmp_path))


def _tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_from_empty_to_head_and_back_down(engine, tmp_path):
    scratch = _scratch_engine(engine, tmp_path)
    try:
        dbsetup.upgrade(scratch)
        assert _tables(scratch) == set(Base.metadata.tables)
        dbsetup.downgrade(scratch, "base")
        assert _tables(scratch) == set()
        dbsetup.upgrade(scratch)
        assert _tables(scratch) == set(Base.metadata.tables)
    finally:
        scratch.dispose()
        dbsetup.drop_scratch(engine, dbsetup.scratch_name(engine, SCRATCH))


def test_models_and_migrations_agree(connection):
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    assert compare_metadata(context, Base.metadata) == []

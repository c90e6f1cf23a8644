"""Isolation on by default: tenant-owned rows are filtered to the session's tenant.

A query touching a tenant-owned model without a tenant context raises
:class:`MissingTenantContext`; platform-wide work says so with :func:`platform_scope`.
"""
from __future__ import annotations

import contextlib

import sqlalchemy as sa
import sqlalchemy.orm as so

TENANT_KEY = "tenant_id"
PLATFORM_KEY = "platform"


class MissingTenantContext(RuntimeError):
    """A tenant-owned table was queried with no tenant context and no platform scope."""


class TenantOwned:
    """Mixin for models whose rows belong to one tenant; each model declares its own ``tenant_id``."""

    #: Stands in for the models' own column when the tenant criteria are analysed.
    tenant_id = so.mapped_column(sa.BigInteger)


@contextlib.contextmanager
def tenant_scope(session: so.Session, tenant_id: int):
    """Run queries in the session as seen by one tenant."""
    previous = session.info.get(TENANT_KEY), session.info.get(PLATFORM_KEY)
    session.info[TENANT_KEY], session.info[PLATFORM_KEY] = tenant_id, False
    try:
        yield session
    finally:
        session.info[TENANT_KEY], session.info[PLATFORM_KEY] = previous


@contextlib.contextmanager
def platform_scope(session: so.Session):
    """Run platform-wide queries (operators, verify, expiry) explicitly unfiltered."""
    previous = session.info.get(TENANT_KEY), session.info.get(PLATFORM_KEY)
    session.info[TENANT_KEY], session.info[PLATFORM_KEY] = None, True
    try:
        yield session
    finally:
        session.info[TENANT_KEY], session.info[PLATFORM_KEY] = previous


def current_tenant(session: so.Session) -> int | None:
    return session.info.get(TENANT_KEY)


@sa.event.listens_for(so.Session, "do_orm_execute")
def _apply_tenant_filter(state: so.ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return
    if state.execution_options.get(PLATFORM_KEY) or state.session.info.get(PLATFORM_KEY):
        return
    tenant_id = state.session.info.get(TENANT_KEY)
    if tenant_id is None:
        touched = _touches_owned(state)
        if touched:
            raise MissingTenantContext(f"query on {touched} without tenant context")
        return
    state.statement = state.statement.options(
        so.with_loader_criteria(
            TenantOwned,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
            track_closure_variables=True,
        )
    )


def _touches_owned(state: so.ORMExecuteState) -> str | None:
    for mapper in _mappers(state):
        if issubclass(mapper.class_, TenantOwned):
            return mapper.class_.__name__
    return None


def _mappers(state: so.ORMExecuteState):
    if state.bind_mapper is not None:
        yield state.bind_mapper
    yield from state.all_mappers

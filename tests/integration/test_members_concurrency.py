"""Two partners enrol one phone in two formats at the same moment: one member (PostgreSQL)."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

from alliance import services
from alliance.models import ConsentEvent, Member, MemberIdentifier, MemberLink
from tenants.isolation import platform_scope
from tenants.models import Alliance, Tenant
from tenants.uow import run_unit
from tests.builders import create_alliance, create_tenant

ROUNDS = 20


def enrol_in_thread(engine, tenant_id, phone, barrier, results, errors):
    try:
        with so.Session(engine, expire_on_commit=False) as session:
            tenant = session.get_one(Tenant, tenant_id)
            barrier.wait(timeout=10)
            result = run_unit(session, lambda s: services.enrol_or_link(
                s, tenant=tenant, phone=phone, consent=services.ConsentInput(["loyalty"], channel="pos")),
                retry_on_integrity=True)
            results.append((tenant_id, result.member.id, result.created, result.pairwise_id))
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        errors.append(exc)


@pytest.fixture
def committed_world(pg_engine):
    with so.Session(pg_engine, expire_on_commit=False) as session:
        alliance = create_alliance(session)
        a = create_tenant(session, alliance=alliance, kind="scenic_area")
        b = create_tenant(session, alliance=alliance, kind="homestay")
        session.commit()
    yield alliance.id, a.id, b.id
    with so.Session(pg_engine) as session, platform_scope(session):
        members = sa.select(Member.id).where(Member.alliance_id == alliance.id)
        session.execute(sa.delete(ConsentEvent).where(ConsentEvent.member_id.in_(members)))
        session.execute(sa.delete(MemberLink).where(MemberLink.member_id.in_(members)))
        session.execute(sa.delete(MemberIdentifier).where(MemberIdentifier.alliance_id == alliance.id))
        session.execute(sa.delete(Member).where(Member.alliance_id == alliance.id))
        session.execute(sa.delete(Tenant).where(Tenant.alliance_id == alliance.id))
        session.execute(sa.delete(Alliance).where(Alliance.id == alliance.id))
        session.commit()


def test_two_formats_of_one_phone_enrolled_at_once_make_one_member(pg_engine, committed_world):
    alliance_id, a_id, b_id = committed_world
    for round_no in range(ROUNDS):
        national = f"1390000{round_no:04d}"
        international = f"+86 139 0000 {round_no:04d}"
        barrier, results, errors = threading.Barrier(2), [], []
        threads = [
            threading.Thread(target=enrol_in_thread, args=(pg_engine, a_id, national, barrier, results, errors)),
            threading.Thread(target=enrol_in_thread, args=(pg_engine, b_id, international, barrier, results, errors)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == [], errors
        assert len(results) == 2
        assert len({member_id for _, member_id, _, _ in results}) == 1, results
        assert sorted(created for _, _, created, _ in results) == [False, True]
        assert len({pid for *_, pid in results}) == 2

        with so.Session(pg_engine) as session:
            owners = session.scalars(sa.select(MemberIdentifier.member_id).where(
                MemberIdentifier.alliance_id == alliance_id, MemberIdentifier.value == f"+861390000{round_no:04d}"
            )).all()
            assert len(owners) == 1
            member_id = owners[0]
            for tenant_id in (a_id, b_id):
                assert services.has_consent(session, member_id=member_id, tenant_id=tenant_id, purpose="loyalty")

    with so.Session(pg_engine) as session:
        total = session.scalar(sa.select(sa.func.count()).select_from(Member).where(Member.alliance_id == alliance_id))
    assert total == ROUNDS

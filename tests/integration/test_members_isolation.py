"""Who may see whom: pairwise IDs per tenant, consent on every read, withdrawal at once."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from alliance import services
from alliance.errors import ConsentRequired, MemberNotFound
from alliance.models import ConsentEvent, MemberLink
from tenants.isolation import MissingTenantContext, tenant_scope
from tests.builders import create_alliance, create_tenant

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
PERSONAL = {"name", "phone", "email", "phones", "emails", "member_no"}


@pytest.fixture
def world(session):
    alliance = create_alliance(session)
    a = create_tenant(session, alliance=alliance, kind="scenic_area")
    b = create_tenant(session, alliance=alliance, kind="homestay")
    enrolled = services.enrol_or_link(
        session, tenant=a, phone="13800138000", email="zhang@example.com", name="张三",
        consent=services.ConsentInput(["loyalty", "profile"], channel="pos", captured_at=T0))
    return alliance, a, b, enrolled.member, enrolled.pairwise_id


def view_for(session, tenant, pairwise_id, purpose):
    """What ``tenant`` gets for ``pairwise_id``: a view, or the error code."""
    try:
        member = services.resolve_member(session, tenant=tenant, pairwise_id=pairwise_id, purpose=purpose)
    except (MemberNotFound, ConsentRequired) as exc:
        return exc.code
    return services.member_view(session, tenant=tenant, member=member)


def test_isolation_matrix_over_consent_states(session, world):
    _, a, b, member, pid_a = world

    # Tenant A enrolled the member with loyalty + profile consent: full view.
    view_a = view_for(session, a, pid_a, "loyalty")
    assert view_a["id"] == pid_a
    assert (view_a["name"], view_a["phone"], view_a["email"]) == ("张三", "+8613800138000", "zhang@example.com")
    assert view_a["member_no"] == member.member_no

    # Tenant B has a pairwise ID (it linked the member) but no consent yet.
    pid_b = services.pairwise_id_for(session, member_id=member.id, tenant_id=b.id)
    assert view_for(session, b, pid_b, "loyalty") == "consent_required"
    assert view_for(session, b, pid_b, "profile") == "consent_required"
    assert view_for(session, b, pid_a, "loyalty") == "not_found"  # A's ID means nothing at B
    assert view_for(session, b, pid_a, None) == "not_found"
    no_consent_view = services.member_view(session, tenant=b, member=member)
    assert PERSONAL.isdisjoint(no_consent_view)
    assert no_consent_view["consents"] == {"loyalty": False, "profile": False, "marketing": False}

    # B gets loyalty only: points yes, personal fields no.
    services.record_consent(session, tenant=b, member=member, purpose="loyalty", granted=True, channel="app",
                            captured_at=T0 + dt.timedelta(hours=1))
    view_b = view_for(session, b, pid_b, "loyalty")
    assert view_b["id"] == pid_b and PERSONAL.isdisjoint(view_b)
    assert view_for(session, b, pid_b, "profile") == "consent_required"

    # B gets profile too: personal fields appear.
    services.record_consent(session, tenant=b, member=member, purpose="profile", granted=True, channel="app",
                            terms_version="2026-01", captured_at=T0 + dt.timedelta(hours=2))
    assert view_for(session, b, pid_b, "profile")["name"] == "张三"

    # B's withdrawal takes effect at once, and leaves A untouched.
    services.record_consent(session, tenant=b, member=member, purpose="profile", granted=False, channel="app",
                            captured_at=T0 + dt.timedelta(hours=3))
    services.record_consent(session, tenant=b, member=member, purpose="loyalty", granted=False, channel="app",
                            captured_at=T0 + dt.timedelta(hours=3))
    assert view_for(session, b, pid_b, "loyalty") == "consent_required"
    assert PERSONAL.isdisjoint(services.member_view(session, tenant=b, member=member))
    assert view_for(session, a, pid_a, "profile")["email"] == "zhang@example.com"
    assert services.current_consents(session, member_id=member.id, tenant_id=a.id)["loyalty"] is True


def test_pairwise_ids_differ_per_tenant_and_resolve_only_for_their_own(session, world):
    alliance, a, b, member, pid_a = world
    c = create_tenant(session, alliance=alliance, kind="brand")
    pid_b = services.pairwise_id_for(session, member_id=member.id, tenant_id=b.id)
    pid_c = services.pairwise_id_for(session, member_id=member.id, tenant_id=c.id)
    assert len({pid_a, pid_b, pid_c}) == 3
    for pid in (pid_a, pid_b, pid_c):
        assert pid.removeprefix("mbr_") not in (str(member.id), member.member_no)

    for tenant, own in ((a, pid_a), (b, pid_b), (c, pid_c)):
        assert services.resolve_member(session, tenant=tenant, pairwise_id=own, purpose=None).id == member.id
        for foreign in {pid_a, pid_b, pid_c} - {own}:
            with pytest.raises(MemberNotFound):
                services.resolve_member(session, tenant=tenant, pairwise_id=foreign, purpose=None)

    for junk in ("", str(member.id), member.member_no, "mbr_" + "A" * 22, pid_a.upper()):
        with pytest.raises(MemberNotFound):
            services.resolve_member(session, tenant=a, pairwise_id=junk, purpose=None)


def test_tenant_in_another_alliance_cannot_resolve_or_view(session, world):
    _, a, _, member, pid_a = world
    stranger = create_tenant(session, alliance=create_alliance(session))
    with pytest.raises(MemberNotFound):
        services.resolve_member(session, tenant=stranger, pairwise_id=pid_a, purpose=None)
    with pytest.raises(MemberNotFound):
        services.member_view(session, tenant=stranger, member=member)
    with pytest.raises(MemberNotFound):
        services.pairwise_id_for(session, member_id=member.id, tenant_id=stranger.id)


def test_latest_captured_event_wins_even_when_recorded_out_of_order(session, world):
    _, _, b, member, _ = world
    services.record_consent(session, tenant=b, member=member, purpose="marketing", granted=False, channel="app",
                            captured_at=T0 + dt.timedelta(hours=5))
    # A grant captured earlier but delivered later does not override the newer withdrawal.
    services.record_consent(session, tenant=b, member=member, purpose="marketing", granted=True, channel="pos",
                            captured_at=T0 + dt.timedelta(hours=4))
    assert services.has_consent(session, member_id=member.id, tenant_id=b.id, purpose="marketing") is False


def test_consent_and_link_rows_need_tenant_context(session, world):
    _, a, b, member, _ = world
    with pytest.raises(MissingTenantContext):
        session.scalars(sa.select(ConsentEvent)).all()
    with pytest.raises(MissingTenantContext):
        session.scalars(sa.select(MemberLink)).all()
    services.pairwise_id_for(session, member_id=member.id, tenant_id=b.id)
    with tenant_scope(session, b.id):
        assert session.scalars(sa.select(ConsentEvent)).all() == []
        assert [link.tenant_id for link in session.scalars(sa.select(MemberLink))] == [b.id]

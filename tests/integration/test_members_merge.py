"""An operator merges two members: identifiers, consents, links and points move; the books stay proven."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from alliance import services
from alliance.errors import MemberNotFound, MergeNotAllowed
from alliance.models import Member, MemberIdentifier, MemberMerge
from ledger import services as ledger
from ledger.models import Transaction
from ledger.verify import verify
from tenants.isolation import platform_scope
from tenants.uow import run_unit
from tests.builders import create_alliance, create_tenant

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
CONSENT = services.ConsentInput(["loyalty", "profile"], channel="pos", captured_at=T0)


@pytest.fixture
def world(session):
    alliance = create_alliance(session)
    a = create_tenant(session, alliance=alliance, kind="scenic_area")
    b = create_tenant(session, alliance=alliance, kind="homestay")
    c = create_tenant(session, alliance=alliance, kind="brand")
    # One person enrolled twice: by phone at A and B, by email at C and B.
    by_phone = services.enrol_or_link(session, tenant=a, phone="13800138000", name="张三", consent=CONSENT)
    pid_b_phone = services.enrol_or_link(session, tenant=b, phone="13800138000", consent=CONSENT).pairwise_id
    by_email = services.enrol_or_link(session, tenant=c, email="zhang@example.com", consent=CONSENT)
    pid_b_email = services.enrol_or_link(session, tenant=b, email="zhang@example.com").pairwise_id
    for tenant, member, points in ((a, by_phone.member, 100), (c, by_email.member, 40)):
        ledger.earn(session, alliance_id=alliance.id, tenant_id=tenant.id, member_id=member.id, points=points,
                    expiry_months=12, timezone=alliance.timezone, occurred_at=T0, now=T0)
    ledger.redeem(session, alliance_id=alliance.id, tenant_id=a.id, member_id=by_email.member.id, points=15,
                  occurred_at=T0, now=T0)
    session.commit()
    return dict(alliance=alliance, a=a, b=b, c=c, survivor=by_phone, merged=by_email,
                pid_b_phone=pid_b_phone, pid_b_email=pid_b_email)


def merge(session, w, **kw):
    return run_unit(session, lambda s: services.merge_members(
        s, alliance_id=w["alliance"].id, from_member_no=w["merged"].member.member_no,
        into_member_no=w["survivor"].member.member_no, actor="ops@example.com", **kw))


def test_merge_keeps_verify_clean_and_moves_everything(session, world):
    w = world
    survivor, merged = w["survivor"].member, w["merged"].member
    assert verify(session) == []

    record = merge(session, w)

    assert verify(session) == []
    assert isinstance(record, MemberMerge)
    assert (record.from_member_id, record.into_member_id, record.actor) == (merged.id, survivor.id,
                                                                         "ops@example.com")
    assert record.ledger_transaction_id is not None
    assert ledger.balance(session, member_id=survivor.id).available == 100 + 40 - 15
    assert ledger.balance(session, member_id=merged.id).available == 0
    session.refresh(merged)
    assert (merged.status, merged.merged_into_id) == ("merged", survivor.id)

    # Identifiers now find the survivor, and a new enrolment by email links it.
    owners = set(session.scalars(sa.select(MemberIdentifier.member_id).where(
        MemberIdentifier.value.in_(["+8613800138000", "zhang@example.com"]))))
    assert owners == {survivor.id}
    again = services.enrol_or_link(session, tenant=w["c"], email="ZHANG@example.com")
    assert (again.member.id, again.created) == (survivor.id, False)

    # C knew only the merged member: its pairwise ID stays and now names the survivor, with consent.
    assert again.pairwise_id == w["merged"].pairwise_id
    assert services.resolve_member(session, tenant=w["c"], pairwise_id=w["merged"].pairwise_id).id == survivor.id
    # B knew both: both of its pairwise IDs resolve to the survivor; the survivor's stays canonical.
    for pid in (w["pid_b_phone"], w["pid_b_email"]):
        assert services.resolve_member(session, tenant=w["b"], pairwise_id=pid).id == survivor.id
    assert services.member_view(session, tenant=w["b"], member=merged)["id"] == w["pid_b_phone"]
    # A's own pairwise ID never resolves at C, merge or not.
    with pytest.raises(MemberNotFound):
        services.resolve_member(session, tenant=w["c"], pairwise_id=w["survivor"].pairwise_id)
    assert services.current_consents(session, member_id=survivor.id, tenant_id=w["c"].id)["loyalty"] is True

    # Points earned later at the merged member's old pairwise ID land on the survivor.
    member = services.resolve_member(session, tenant=w["c"], pairwise_id=w["merged"].pairwise_id)
    ledger.earn(session, alliance_id=w["alliance"].id, tenant_id=w["c"].id, member_id=member.id, points=5,
                expiry_months=12, timezone="Asia/Shanghai")
    assert ledger.balance(session, member_id=survivor.id).available == 130
    assert verify(session) == []


def test_merging_twice_or_into_itself_is_refused_and_changes_nothing(session, world):
    w = world
    with pytest.raises(MergeNotAllowed):
        run_unit(session, lambda s: services.merge_members(
            s, alliance_id=w["alliance"].id, from_member_no=w["survivor"].member.member_no,
            into_member_no=w["survivor"].member.member_no, actor="ops"))
    merge(session, w)
    with pytest.raises(MergeNotAllowed) as info:
        merge(session, w)
    assert (info.value.code, info.value.status) == ("merge_not_allowed", 409)
    with platform_scope(session):
        assert session.scalar(sa.select(sa.func.count()).select_from(MemberMerge)) == 1
    assert verify(session) == []


def test_merge_needs_both_members_in_the_same_alliance(session, world):
    w = world
    elsewhere = create_tenant(session, alliance=create_alliance(session))
    stranger = services.enrol_or_link(session, tenant=elsewhere, phone="13900139000").member
    with pytest.raises(MemberNotFound):
        services.merge_members(session, alliance_id=w["alliance"].id, from_member_no=stranger.member_no,
                               into_member_no=w["survivor"].member.member_no, actor="ops")
    with pytest.raises(MemberNotFound):
        services.merge_members(session, alliance_id=w["alliance"].id, from_member_no="000000000000",
                               into_member_no=w["survivor"].member.member_no, actor="ops")
    assert session.get(Member, stranger.id).status == "active"


def test_reversing_an_earn_of_a_merged_away_member_posts_to_the_survivor(session, world):
    w = world
    survivor, merged = w["survivor"].member, w["merged"].member
    earn = session.scalar(sa.select(Transaction).where(
        Transaction.member_id == merged.id, Transaction.kind == "earn")
        .execution_options(platform=True))
    merge(session, w)
    tx = ledger.reverse(session, tenant_id=w["c"].id, transaction_id=earn.id, points=40,
                        member_id=services.survivor_id(session, merged.id))
    assert tx.member_id == survivor.id
    assert ledger.balance(session, member_id=survivor.id).available == 100 + 40 - 15 - 40
    merged_after = ledger.balance(session, member_id=merged.id)
    assert (merged_after.available, merged_after.shortfall) == (0, 0)
    assert verify(session) == []

"""Enrol or link: one member per person after normalisation, conflicts named, consent recorded."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from alliance import services
from alliance.errors import IdentifierConflict, IdentifierRequired, InvalidEmail, InvalidPhone, ValidationFailed
from alliance.models import ConsentEvent, Member, MemberIdentifier, MemberLink
from alliance.rules import is_valid_member_no
from tenants.isolation import platform_scope
from tenants.uow import run_unit
from tests.builders import create_alliance, create_tenant

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@pytest.fixture
def alliance(session):
    return create_alliance(session)


@pytest.fixture
def tenant_a(session, alliance):
    return create_tenant(session, alliance=alliance, kind="scenic_area")


@pytest.fixture
def tenant_b(session, alliance):
    return create_tenant(session, alliance=alliance, kind="homestay")


def count_members(session, alliance):
    return session.scalar(sa.select(sa.func.count()).select_from(Member).where(Member.alliance_id == alliance.id))


def test_first_enrolment_creates_a_member_with_a_valid_member_no(session, alliance, tenant_a):
    result = run_unit(session, lambda s: services.enrol_or_link(
        s, tenant=tenant_a, phone="13800138000", email=" Zhang@Example.com ", external_ref="CRM-42",
        name="张三", consent=services.ConsentInput(["loyalty", "profile"], channel="pos", terms_version="2026-01",
                                                 captured_at=T0)), retry_on_integrity=True)

    assert result.created is True
    assert is_valid_member_no(result.member.member_no)
    assert result.member.name == "张三"
    assert result.pairwise_id.startswith("mbr_") and len(result.pairwise_id) == 26
    assert result.pairwise_id.removeprefix("mbr_") not in (str(result.member.id), result.member.member_no)
    idents = session.execute(
        sa.select(MemberIdentifier.kind, MemberIdentifier.scope, MemberIdentifier.value)
        .where(MemberIdentifier.member_id == result.member.id).order_by(MemberIdentifier.kind)
    ).all()
    assert idents == [("email", "", "zhang@example.com"), ("external_ref", str(tenant_a.id), "crm-42"),
                      ("phone", "", "+8613800138000")]
    assert services.current_consents(session, member_id=result.member.id, tenant_id=tenant_a.id) == {
        "loyalty": True, "profile": True, "marketing": False}


def test_same_phone_in_another_format_links_the_existing_member(session, alliance, tenant_a, tenant_b):
    first = services.enrol_or_link(session, tenant=tenant_a, phone="13800138000")
    again = services.enrol_or_link(session, tenant=tenant_a, phone="＋８６ １３８ ００１３ ８０００")
    other = services.enrol_or_link(session, tenant=tenant_b, phone="0086-138-0013-8000", email="new@example.com")

    assert (again.created, other.created) == (False, False)
    assert again.member.id == other.member.id == first.member.id
    assert again.pairwise_id == first.pairwise_id
    assert other.pairwise_id != first.pairwise_id
    assert count_members(session, alliance) == 1
    emails = session.scalars(sa.select(MemberIdentifier.value).where(
        MemberIdentifier.member_id == first.member.id, MemberIdentifier.kind == "email")).all()
    assert emails == ["new@example.com"]


def test_email_matches_case_insensitively(session, alliance, tenant_a):
    first = services.enrol_or_link(session, tenant=tenant_a, email="Alice@Example.com")
    second = services.enrol_or_link(session, tenant=tenant_a, email="ALICE@example.COM ")
    assert second.member.id == first.member.id and second.created is False


def test_external_refs_are_unique_per_tenant_not_per_alliance(session, alliance, tenant_a, tenant_b):
    at_a = services.enrol_or_link(session, tenant=tenant_a, external_ref="crm-1")
    at_b = services.enrol_or_link(session, tenant=tenant_b, external_ref="CRM-1")
    again_at_a = services.enrol_or_link(session, tenant=tenant_a, external_ref="ＣＲＭ－１")
    assert at_a.member.id != at_b.member.id
    assert again_at_a.member.id == at_a.member.id


def test_identifiers_of_two_members_conflict_by_kind_without_merging(session, alliance, tenant_a, tenant_b):
    phone_owner = services.enrol_or_link(session, tenant=tenant_a, phone="13800138000", name="张三")
    email_owner = services.enrol_or_link(session, tenant=tenant_a, email="li@example.com", name="李四")

    with pytest.raises(IdentifierConflict) as info:
        services.enrol_or_link(session, tenant=tenant_b, phone="+8613800138000", email="LI@example.com")

    err = info.value
    assert (err.code, err.status) == ("identifier_conflict", 409)
    assert sorted(err.groups) == [["email"], ["phone"]]
    text = str(err) + repr(err.details)
    for secret in ("张三", "李四", phone_owner.member.member_no, email_owner.member.member_no, "li@example.com"):
        assert secret not in text
    assert count_members(session, alliance) == 2


def test_an_extra_phone_is_added_to_the_member_found_by_email(session, alliance, tenant_a):
    first = services.enrol_or_link(session, tenant=tenant_a, phone="13800138000", email="a@example.com")
    second = services.enrol_or_link(session, tenant=tenant_a, phone="13900139000", email="a@example.com")
    assert second.member.id == first.member.id
    phones = session.scalars(sa.select(MemberIdentifier.value).where(
        MemberIdentifier.member_id == first.member.id, MemberIdentifier.kind == "phone")
        .order_by(MemberIdentifier.id)).all()
    assert phones == ["+8613800138000", "+8613900139000"]


def test_members_of_other_alliances_are_never_matched(session, tenant_a):
    other_alliance = create_alliance(session)
    other_tenant = create_tenant(session, alliance=other_alliance)
    here = services.enrol_or_link(session, tenant=tenant_a, phone="13800138000")
    there = services.enrol_or_link(session, tenant=other_tenant, phone="13800138000")
    assert there.created is True and there.member.id != here.member.id


def test_no_identifier_is_a_validation_error(session, tenant_a):
    with pytest.raises(IdentifierRequired) as info:
        services.enrol_or_link(session, tenant=tenant_a, phone="  ", name="nobody")
    assert (info.value.code, info.value.status) == ("validation_error", 422)


def test_invalid_phone_or_email_is_rejected_before_anything_is_written(session, alliance, tenant_a):
    with pytest.raises(InvalidPhone):
        services.enrol_or_link(session, tenant=tenant_a, phone="12345", email="ok@example.com")
    with pytest.raises(InvalidEmail):
        services.enrol_or_link(session, tenant=tenant_a, email="not-an-email")
    with pytest.raises(ValidationFailed) as both:
        services.enrol_or_link(session, tenant=tenant_a, phone="12345", email="nope")
    assert set(both.value.errors) == {"phone", "email"}
    assert count_members(session, alliance) == 0


@pytest.mark.parametrize(
    ("consent", "field"),
    [
        (services.ConsentInput(["loyalty", "spam"], channel="pos"), "purpose"),
        (services.ConsentInput(["loyalty"], channel=" "), "channel"),
        (services.ConsentInput(["loyalty"], channel="pos", captured_at=dt.datetime(2026, 1, 1)), "captured_at"),
        (services.ConsentInput(["loyalty"], channel="pos",
                               captured_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)), "captured_at"),
    ],
)
def test_bad_consent_input_is_a_validation_error(session, alliance, tenant_a, consent, field):
    with pytest.raises(ValidationFailed) as info:
        services.enrol_or_link(session, tenant=tenant_a, phone="13800138000", consent=consent)
    assert field in info.value.errors
    assert count_members(session, alliance) == 0


def test_enrolment_records_one_event_per_purpose_with_channel_and_terms(session, tenant_a):
    result = services.enrol_or_link(session, tenant=tenant_a, phone="13800138000", consent=services.ConsentInput(
        ["loyalty", "marketing", "loyalty"], channel="pos", terms_version="2026-01", captured_at=T0))
    with platform_scope(session):
        events = session.execute(sa.select(
            ConsentEvent.purpose, ConsentEvent.granted, ConsentEvent.channel, ConsentEvent.terms_version,
            ConsentEvent.captured_at).where(ConsentEvent.member_id == result.member.id)
            .order_by(ConsentEvent.id)).all()
    assert events == [("loyalty", True, "pos", "2026-01", T0), ("marketing", True, "pos", "2026-01", T0)]


def test_name_is_kept_as_given_and_not_overwritten_by_a_later_partner(session, tenant_a, tenant_b):
    first = services.enrol_or_link(session, tenant=tenant_a, phone="13800138000", name="Jose\u0301")
    services.enrol_or_link(session, tenant=tenant_b, phone="13800138000", name="Someone else")
    assert first.member.name == "Jos\u00e9"


def test_pairwise_id_is_stable_and_one_link_per_member_and_tenant(session, tenant_a):
    result = services.enrol_or_link(session, tenant=tenant_a, phone="13800138000")
    assert services.pairwise_id_for(session, member_id=result.member.id, tenant_id=tenant_a.id) == result.pairwise_id
    with platform_scope(session):
        links = session.scalar(sa.select(sa.func.count()).select_from(MemberLink)
                               .where(MemberLink.member_id == result.member.id))
    assert links == 1

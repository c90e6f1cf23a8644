"""Staff users: roles, tenant or alliance operator, passwords kept only as Argon2id hashes."""
from __future__ import annotations

import json

import pytest

from tenants.errors import DuplicateCode, TenancyError
from tenants.services import check_password, create_staff_user
from tests.builders import create_alliance, create_tenant

PASSWORD = "correct horse battery"


@pytest.fixture
def world(session):
    alliance = create_alliance(session)
    return alliance, create_tenant(session, alliance=alliance)


def test_a_tenant_admin_is_stored_with_an_argon2id_hash_that_checks_only_the_right_password(session, world):
    alliance, tenant = world
    user = create_staff_user(session, alliance_code=alliance.code, tenant_code=tenant.code,
                             email="  Admin@Example.com ", password=PASSWORD, role="admin")
    assert (user.tenant_id, user.email, user.role) == (tenant.id, "admin@example.com", "admin")
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert check_password(user, PASSWORD) is True
    assert check_password(user, PASSWORD + "!") is False
    assert check_password(user, "") is False


def test_an_alliance_operator_belongs_to_no_tenant(session, world):
    alliance, _ = world
    user = create_staff_user(session, alliance_code=alliance.code, email="ops@example.com", password=PASSWORD,
                             role="owner")
    assert user.tenant_id is None and user.alliance_id == alliance.id


@pytest.mark.parametrize("kw,match", [
    ({"role": "root"}, "role"),
    ({"password": "short"}, "at least"),
    ({"email": "not-an-email"}, "email"),
    ({"email": "a\x00@example.com"}, "email"),
])
def test_bad_staff_input_is_refused(session, world, kw, match):
    alliance, tenant = world
    args = {"alliance_code": alliance.code, "tenant_code": tenant.code, "email": "a@example.com",
            "password": PASSWORD, "role": "operator", **kw}
    with pytest.raises(TenancyError, match=match):
        create_staff_user(session, **args)


def test_the_same_email_twice_in_one_alliance_is_a_duplicate_whatever_its_case(session, world):
    alliance, tenant = world
    create_staff_user(session, alliance_code=alliance.code, email="a@example.com", password=PASSWORD, role="analyst")
    with pytest.raises(DuplicateCode):
        create_staff_user(session, alliance_code=alliance.code, tenant_code=tenant.code, email="A@EXAMPLE.COM",
                          password=PASSWORD, role="analyst")


def test_a_hash_with_weaker_parameters_is_upgraded_on_the_next_good_login(session, world):
    from argon2 import PasswordHasher

    alliance, _ = world
    user = create_staff_user(session, alliance_code=alliance.code, email="old@example.com", password=PASSWORD,
                             role="operator")
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    weak = user.password_hash
    assert check_password(user, PASSWORD) is True
    assert user.password_hash != weak and check_password(user, PASSWORD) is True


def test_staff_create_prints_one_json_object_without_the_password(app, session, world):
    alliance, tenant = world
    session.commit()
    result = app.test_cli_runner().invoke(args=["staff", "create", "--alliance", alliance.code, "--tenant",
                                                tenant.code, "--email", "pos@example.com", "--role", "operator",
                                                "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip())
    assert (out["email"], out["role"], out["tenant"]) == ("pos@example.com", "operator", tenant.code)
    assert PASSWORD not in result.output and "argon2" not in result.output

"""Rate limits count per OAuth2 client, answer 429 problem+json with Retry-After."""
from __future__ import annotations

import pytest

from tenants.services import create_client
from tests.builders import create_alliance, create_tenant
from tests.conftest import bound_app
from tests.e2e.conftest import take_token

LIMITED = {"RATELIMIT_ENABLED": True, "RATELIMIT_DEFAULT": "3 per minute"}


@pytest.fixture
def limited_client(engine, connection):
    app = bound_app(engine, connection, **LIMITED, RATELIMIT_STORAGE_URI="memory://")
    yield app.test_client()
    app.extensions["database"].session.remove()


def _token(client, session, tenant) -> str:
    issued = create_client(session, tenant=tenant, scopes="transactions:read")
    session.commit()
    resp = take_token(client, issued.client.client_id, issued.secret)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["access_token"]


def test_one_client_over_its_limit_gets_429_while_another_client_on_the_same_address_goes_on(
        limited_client, session):
    tenant = create_tenant(session, alliance=create_alliance(session))
    first, second = _token(limited_client, session, tenant), _token(limited_client, session, tenant)

    def call(token):
        return limited_client.get("/api/v1/transactions", headers={"Authorization": f"Bearer {token}"})

    assert [call(first).status_code for _ in range(3)] == [200, 200, 200]
    over = call(first)
    assert over.status_code == 429
    assert over.mimetype == "application/problem+json" and over.get_json()["code"] == "rate_limited"
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert call(second).status_code == 200



def test_with_redis_two_web_processes_share_one_clients_limit(engine, connection, session):
    import os
    import uuid

    from api.config import from_environment

    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("needs Redis (set TEST_REDIS_URL, as .ci/run does)")
    storage = from_environment({"REDIS_URL": redis_url})
    assert storage["RATELIMIT_STORAGE_URI"] == redis_url
    storage["RATELIMIT_KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    first, second = bound_app(engine, connection, **LIMITED, **storage), bound_app(engine, connection, **LIMITED, **storage)
    try:
        a, b = first.test_client(), second.test_client()
        tenant = create_tenant(session, alliance=create_alliance(session))
        token = _token(a, session, tenant)

        def call(client):
            return client.get("/api/v1/transactions", headers={"Authorization": f"Bearer {token}"}).status_code

        assert [call(a), call(b), call(a)] == [200, 200, 200]
        assert (call(b), call(a)) == (429, 429)
    finally:
        for app in (first, second):
            app.extensions["database"].session.remove()


def test_retry_after_comes_only_with_a_refusal(limited_client, session):
    tenant = create_tenant(session, alliance=create_alliance(session))
    token = _token(limited_client, session, tenant)
    ok = limited_client.get("/api/v1/transactions", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and "Retry-After" not in ok.headers
    assert ok.headers["X-RateLimit-Limit"] == "3"

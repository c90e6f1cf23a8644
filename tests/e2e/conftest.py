"""Partners with real OAuth2 clients, tokens taken through the token endpoint."""
from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass

import pytest

from tenants.services import SCOPES, create_client
from tests.builders import create_alliance, create_tenant

ALL_SCOPES = " ".join(SCOPES)
_keys = itertools.count(1)


@dataclass
class Partner:
    client: object
    tenant: object
    client_id: str
    client_secret: str
    token: str

    def headers(self, key: str | None = None, token: str | None = None) -> dict:
        h = {"Authorization": f"Bearer {token or self.token}"}
        h["Idempotency-Key"] = key or f"k-{next(_keys)}"
        return h

    def post(self, path, json=None, key=None, **kw):
        return self.client.post(path, json=json if json is not None else {}, headers=self.headers(key), **kw)

    def get(self, path, **kw):
        return self.client.get(path, headers={"Authorization": f"Bearer {self.token}"}, **kw)

    def enrol(self, phone="13800138000", purposes=("loyalty", "profile"), **extra) -> str:
        body = {"phone": phone, **extra}
        if purposes:
            body["consent"] = {"purposes": list(purposes), "channel": "pos", "terms_version": "2026-01"}
        resp = self.post("/api/v1/members", body)
        assert resp.status_code in (200, 201), resp.get_json()
        return resp.get_json()["id"]


def take_token(client, client_id, secret, scope=None, method="basic"):
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    if method == "basic":
        auth = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        return client.post("/oauth/token", data=data, headers={"Authorization": f"Basic {auth}"})
    return client.post("/oauth/token", data={**data, "client_id": client_id, "client_secret": secret})


@pytest.fixture
def alliance(session):
    return create_alliance(session, code="demo", expiry_months=12)


@pytest.fixture
def make_partner(app, client, session, alliance):
    def make(code=None, scopes=ALL_SCOPES, token_scope=None, kind="homestay", **tenant_kw) -> Partner:
        tenant = create_tenant(session, alliance=alliance, code=code, kind=kind, **tenant_kw)
        issued = create_client(session, tenant=tenant, scopes=scopes)
        session.commit()
        resp = take_token(client, issued.client.client_id, issued.secret, token_scope)
        assert resp.status_code == 200, resp.get_json()
        return Partner(client, tenant, issued.client.client_id, issued.secret, resp.get_json()["access_token"])

    return make


@pytest.fixture
def partner(make_partner):
    return make_partner(code="scenic", kind="scenic_area")


@pytest.fixture
def other(make_partner):
    return make_partner(code="tea", kind="brand")

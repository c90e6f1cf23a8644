"""The OAuth2 authorization server (client credentials), revocation, introspection, metadata.

Tokens are opaque and stored only as SHA-256 hashes, so revocation takes effect at once.
"""
from __future__ import annotations

import datetime as dt
import functools

import sqlalchemy as sa
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidScopeError, OAuth2Error
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, Flask, current_app, g, jsonify, request

from api.errors import ApiProblem
from api.extensions import db_session
from tenants.db import utcnow
from tenants.isolation import TENANT_KEY
from tenants.models import AccessToken, ApiClient
from tenants.services import SCOPES, hash_secret, secret_matches

bp = Blueprint("oauth", __name__)
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class Client(ClientMixin):
    """Authlib's view of an ApiClient row."""

    def __init__(self, row: ApiClient):
        self.row = row
        self.allowed = set(row.scopes.split())

    def get_client_id(self):
        return self.row.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        if not scope:
            return " ".join(sorted(self.allowed))
        asked = set(scope.split())
        if not asked <= self.allowed:
            missing = ", ".join(sorted(asked - self.allowed))
            raise InvalidScopeError(description=f"this client may not ask for: {missing}")
        return " ".join(sorted(asked))

    def check_redirect_uri(self, redirect_uri):
        return False

    def check_client_secret(self, client_secret):
        if not secret_matches(client_secret, self.row.secret_hash):
            return False
        if self.row.tenant.status != "active":  # said only to whoever holds the secret
            raise InvalidClientError(description=f"This client's tenant is {self.row.tenant.status}.", status_code=401)
        return True

    def check_endpoint_auth_method(self, method, endpoint):
        return method in AUTH_METHODS

    def check_response_type(self, response_type):
        return False

    def check_grant_type(self, grant_type):
        return grant_type == "client_credentials"


class Token(TokenMixin):
    """Authlib's view of an AccessToken row."""

    def __init__(self, row: AccessToken):
        self.row = row

    def check_client(self, client):
        return self.row.client_pk == client.row.id

    def get_scope(self):
        return self.row.scope

    def get_expires_in(self):
        return int((self.row.expires_at - self.row.issued_at).total_seconds())

    def is_expired(self):
        return self.row.expires_at <= utcnow()

    def is_revoked(self):
        return self.row.revoked_at is not None

    def is_usable(self) -> bool:
        row = self.row
        return (not self.is_expired() and not self.is_revoked() and row.client.revoked_at is None
                and row.client.tenant.status == "active")


def _query_client(client_id: str):
    row = db_session().scalar(
        sa.select(ApiClient).where(ApiClient.client_id == client_id).execution_options(platform=True))
    if row is None or row.revoked_at is not None:
        return None
    return Client(row)


def _find_token(token_string: str) -> Token | None:
    if not token_string or len(token_string) > 512:
        return None
    row = db_session().scalar(
        sa.select(AccessToken).where(AccessToken.token_hash == hash_secret(token_string))
        .execution_options(platform=True))
    return Token(row) if row is not None else None


def _save_token(token: dict, req) -> None:
    client: Client = req.client
    now = utcnow()
    session = db_session()
    session.add(AccessToken(
        token_hash=hash_secret(token["access_token"]), client_pk=client.row.id, tenant_id=client.row.tenant_id,
        scope=token.get("scope", ""), issued_at=now, expires_at=now + dt.timedelta(seconds=token["expires_in"])))
    session.commit()


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return _find_token(token_string)

    def revoke_token(self, token, request):
        token.row.revoked_at = utcnow()
        db_session().commit()


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return _find_token(token_string)

    def check_permission(self, token, client, request):
        return token.row.tenant_id == client.row.tenant_id

    def introspect_token(self, token):
        row = token.row
        if not token.is_usable():
            return {"active": False}
        return {"active": True, "client_id": row.client.client_id, "scope": row.scope, "token_type": "Bearer",
                "exp": int(row.expires_at.timestamp()), "iat": int(row.issued_at.timestamp()),
                "sub": row.client.client_id, "tenant": row.client.tenant.code}


class _Validator(BearerTokenValidator):
    def authenticate_token(self, token_string):
        return _find_token(token_string)


def init_app(app: Flask) -> None:
    server = AuthorizationServer()
    app.config.setdefault("OAUTH2_TOKEN_EXPIRES_IN", {"client_credentials": app.config["ACCESS_TOKEN_TTL"]})
    server.init_app(app, query_client=_query_client, save_token=_save_token)
    server.scopes_supported = list(SCOPES)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    app.extensions["oauth_server"] = server
    app.register_blueprint(bp)
    app.extensions["rate_limiter"].limit("120 per minute")(bp)


def _server() -> AuthorizationServer:
    return current_app.extensions["oauth_server"]


@bp.post("/oauth/token")
def issue_token():
    return _server().create_token_response()


@bp.post("/oauth/revoke")
def revoke_token():
    return _server().create_endpoint_response(Revocation.ENDPOINT_NAME)


@bp.post("/oauth/introspect")
def introspect_token():
    return _server().create_endpoint_response(Introspection.ENDPOINT_NAME)


@bp.get("/.well-known/oauth-authorization-server")
def metadata():
    base = request.host_url.rstrip("/")
    return jsonify({
        "issuer": base,
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": list(SCOPES),
        "response_types_supported": [],
        "service_documentation": f"{base}/api/docs",
    })


_validator = _Validator()


def _bearer_string() -> str | None:
    kind, _, token_string = request.headers.get("Authorization", "").partition(" ")
    return token_string.strip() if kind.lower() == "bearer" and token_string.strip() else None


def bearer_token() -> Token | None:
    """Return the request's bearer token, looked up once (the rate limiter and the view both ask)."""
    if "bearer_token" not in g:
        token_string = _bearer_string()
        g.bearer_token = _find_token(token_string) if token_string else None
    return g.bearer_token


def rate_limit_client() -> str | None:
    """Return the client_id whose limit this request counts against, or None for anonymous calls."""
    token = bearer_token()
    if token is None or not token.is_usable():
        return None
    return token.row.client.client_id


def authenticate(scope: str) -> AccessToken:
    """Check the bearer token and its scope; bind the request's session to the token's tenant."""
    if _bearer_string() is None:
        raise ApiProblem(401, "invalid_token", "A bearer token is required.",
                         headers={"WWW-Authenticate": 'Bearer realm="alliance"'})
    token = bearer_token()
    if token is None or not token.is_usable():
        raise ApiProblem(401, "invalid_token", "The access token is invalid, expired or revoked.",
                         headers={"WWW-Authenticate": 'Bearer realm="alliance", error="invalid_token"'})
    if scope not in token.row.scope.split():
        raise ApiProblem(403, "insufficient_scope", f"This call needs the scope {scope!r}.",
                         headers={"WWW-Authenticate": f'Bearer realm="alliance", error="insufficient_scope", '
                                                      f'scope="{scope}"'})
    g.client_id = token.row.client.client_id
    g.tenant = token.row.client.tenant
    db_session().info[TENANT_KEY] = token.row.tenant_id
    return token.row


def requires(scope: str):
    """Decorate a view: a valid token with ``scope`` is required."""

    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            authenticate(scope)
            return view(*args, **kwargs)

        inner._scope = scope
        return inner

    return wrap


__all__ = ["requires", "authenticate", "OAuth2Error"]

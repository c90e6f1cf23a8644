"""REST v1: the partner contract."""
from __future__ import annotations

from tenants.services import SCOPES


def register(api) -> None:
    from api.v1 import views

    api.spec.components.security_scheme("oauth2", {
        "type": "oauth2",
        "description": "Client credentials issued to your tenant (`flask clients create`).",
        "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": dict(SCOPES)}},
    })
    api.register_blueprint(views.blp)

"""REST v1: the partner contract."""
from __future__ import annotations

from tenants.services import SCOPES


def register(api) -> None:
    from api.v1 import views
    from api.v1.support import ProblemSchema

    api.spec.components.security_scheme("oauth2", {
        "type": "oauth2",
        "description": "Client credentials issued to your tenant (`flask clients create`).",
        "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": dict(SCOPES)}},
    })
    api.spec.components.schema("Problem", schema=ProblemSchema)
    api.register_blueprint(views.blp)

"""Every entry point: the app factory, REST v1, OAuth2, CLI and tasks."""
from __future__ import annotations

import os

from flask import Flask

from api.config import Config, from_environment

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")


def create_app(config: dict | None = None) -> Flask:
    """Build the app: the Config class, then the environment, then ``config``."""
    app = Flask(__name__, instance_relative_config=True,
                instance_path=(config or {}).get("INSTANCE_PATH") or os.environ.get("INSTANCE_PATH")
                or os.path.join(os.getcwd(), "instance"))
    app.config.from_object(Config)
    app.config.update(from_environment())
    app.config.update(config or {})
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    from api.extensions import Database, make_limiter, migrate
    from api.logging import configure_logging

    configure_logging(app)
    database = Database()
    database.init_app(app)
    migrate.init_app(app, database, directory=MIGRATIONS_DIR, render_as_batch=True, compare_type=True)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)

    @app.after_request  # registered first, so it runs after the limiter has added its headers
    def _retry_after_only_when_refused(response):
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        return response

    limiter = make_limiter()
    limiter.init_app(app)
    app.extensions["rate_limiter"] = limiter
    from api.v1.support import ProblemApi

    app.extensions["smorest_api"] = ProblemApi(app, spec_kwargs={"info": {"description": _API_DESCRIPTION}})


def register_blueprints(app: Flask) -> None:
    from api import health, oauth, v1

    app.register_blueprint(health.bp)
    oauth.init_app(app)
    v1.register(app.extensions["smorest_api"])


def register_errorhandlers(app: Flask) -> None:
    from api.errors import register_errorhandlers as register
    from api.v1.support import register_domain_errors

    register(app)
    register_domain_errors(app)


def register_commands(app: Flask) -> None:
    from api import cli

    cli.register(app)


_API_DESCRIPTION = """
The partner contract of the alliance loyalty platform.

**Authentication.** Take a token with the OAuth2 client-credentials grant at `POST /oauth/token`
(`client_secret_basic` or `client_secret_post`), asking for the scopes you need, and send it as
`Authorization: Bearer <token>`. Asking for a scope your client does not have is `invalid_scope`.

**Idempotency.** Every POST that changes members or points requires an `Idempotency-Key` header
(1-255 printable characters, unique per tenant). A replay with the same body returns the original
status and body; the same key with a different body is `422 idempotency_key_reused`.

**Errors** are `application/problem+json` with a stable `code`; validation errors list each
field under `errors`. **Lists** are cursor-paginated: pass `cursor` from `next_cursor`.

**Members** are addressed by this tenant's pairwise id (the `id` returned by enrolment): it differs
from what other partners see for the same person. Points calls need the member's `loyalty` consent
to this tenant; personal fields need `profile` consent.
"""

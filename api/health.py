"""Liveness and readiness."""
from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify

from api.extensions import db_session

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    from api.errors import problem_response

    session = db_session()
    try:
        current = set(MigrationContext.configure(session.connection()).get_current_heads())
    except Exception as exc:  # the database is down: report, do not crash
        session.rollback()
        return problem_response(503, "database_unavailable", f"Database unreachable: {type(exc).__name__}")
    session.rollback()
    head = set(ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config()).get_heads())
    if current != head:
        return problem_response(503, "schema_not_at_head",
                                f"Schema at {sorted(current)}, code expects {sorted(head)}.")
    return jsonify(status="ready", schema=sorted(head))


@bp.get("/api/docs/assets/<path:filename>")
def docs_asset(filename: str):
    """Serve the bundled Swagger UI (no CDN: the docs work offline)."""
    import swagger_ui_bundle
    from flask import send_from_directory

    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)

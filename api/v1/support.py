"""What every v1 view shares: the parser, scopes in the spec, idempotency, domain errors, cursors."""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal

import flask_smorest
from flask import Response, g, request
from marshmallow import Schema, fields
from webargs.flaskparser import FlaskParser

from alliance.errors import AllianceError
from api.errors import PROBLEM, ApiProblem
from api.extensions import db_session
from api.oauth import requires
from ledger.errors import IdempotencyKeyReused, IdempotencyReplay, LedgerError
from ledger.services import claim_idempotency_key
from tenants.errors import TenancyError
from tenants.uow import run_unit

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

#: HTTP status of each domain error code.
STATUS = {
    "insufficient_points": 409, "hold_already_resolved": 409, "hold_expired": 409, "already_reversed": 409,
    "capture_exceeds_hold": 409, "reversal_exceeds_original": 409, "identifier_conflict": 409,
    "not_found": 404, "consent_required": 403, "validation_error": 422, "invalid_phone": 422,
    "invalid_email": 422, "idempotency_key_reused": 422, "merge_not_allowed": 409, "duplicate_code": 409,
    "invalid_scope": 400,
}


class DecimalJSONParser(FlaskParser):
    """Parse JSON bodies with decimals as Decimal, never float."""

    def _raw_load_json(self, req):
        if not (req.mimetype == "application/json" or (req.mimetype or "").endswith("+json")):
            from webargs import core

            if req.get_data(cache=True):  # a body we would otherwise ignore and act as if empty
                raise ApiProblem(415, "unsupported_media_type", "Send the body as application/json.")
            return core.missing
        data = req.get_data(cache=True)
        if not data:
            from webargs import core

            return core.missing
        try:
            body = json.loads(data, parse_float=Decimal, object_pairs_hook=_unique_keys)
        except RecursionError as exc:
            raise ApiProblem(400, "malformed_json", "The body is not valid JSON: nested too deeply.") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiProblem(400, "malformed_json", f"The body is not valid JSON: {exc}") from exc
        _check_plain(body)
        return body


#: Deeper JSON than this is refused before any schema or hashing walks it.
MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """Build a JSON object, refusing a key given twice (which copy would count is ambiguous)."""
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _check_plain(body: object) -> None:
    """Refuse bodies nested deeper than MAX_JSON_DEPTH or holding lone surrogates (not Unicode text)."""
    stack = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ApiProblem(400, "malformed_json", f"The body is nested deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(value, dict):
            stack.extend((k, depth) for k in value)
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str) and _SURROGATE.search(value):
            raise ApiProblem(400, "malformed_json", "The body is not valid JSON: it holds a lone surrogate.")


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = DecimalJSONParser()


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String(metadata={"description": "stable machine-readable error code"})
    errors = fields.Dict(metadata={"description": "per-field messages (validation_error)"})


class ProblemApi(flask_smorest.Api):
    """flask-smorest's Api, documenting every error as the problem+json the API really answers."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self):
        self.DEFAULT_RESPONSE_CONTENT_TYPE = PROBLEM
        try:
            super()._register_responses()
        finally:
            del self.DEFAULT_RESPONSE_CONTENT_TYPE


IDEMPOTENCY_HEADER = {
    "in": "header", "name": "Idempotency-Key", "required": True,
    "description": "unique per tenant and request; a replay returns the original response",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}


def secured(blp: Blueprint, scope: str, *, errors: dict[int, str] | None = None, write: bool = False):
    """Require ``scope`` and document it, with the errors the call may answer."""

    def wrap(view):
        view = requires(scope)(view)
        doc = {"security": [{"oauth2": [scope]}]}
        if write:
            doc["parameters"] = [IDEMPOTENCY_HEADER]
        view = blp.doc(**doc)(view)
        documented = {401: "invalid_token: missing, invalid, expired or revoked token",
                      403: "insufficient_scope (or consent_required)", 429: "rate_limited"}
        documented.update(errors or {})
        for status, text in sorted(documented.items()):
            view = blp.alt_response(status, schema=ProblemSchema, description=text,
                                    content_type=PROBLEM)(view)
        return view

    return wrap


def json_response(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    resp = Response(json.dumps(body, ensure_ascii=False, default=_json_default), status=status,
                    mimetype="application/json")
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _json_default(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    raise TypeError(type(value).__name__)


def jsonable(body: dict) -> dict:
    """Return the body as plain JSON types, as it will be stored for replays."""
    return json.loads(json.dumps(body, default=_json_default))


def domain_problem(exc: Exception) -> ApiProblem:
    code = getattr(exc, "code", "validation_error")
    status = STATUS.get(code, getattr(exc, "status", 422))
    message = getattr(exc, "message", None) or str(exc)
    extra = {}
    for attr in ("available", "requested", "status_of_hold", "purpose"):
        if hasattr(exc, attr) and isinstance(getattr(exc, attr), (int, str)):
            extra[attr] = getattr(exc, attr)
    errors = getattr(exc, "errors", None)
    return ApiProblem(status, code, message, errors=errors if isinstance(errors, dict) else None, extra=extra)


def register_domain_errors(app) -> None:
    for error in (LedgerError, AllianceError, TenancyError):
        app.register_error_handler(error, lambda exc: _render(domain_problem(exc)))


def _render(problem: ApiProblem):
    from api.errors import problem_response

    return problem_response(problem.status, problem.code, problem.detail, title=problem.title,
                            errors=problem.errors, headers=problem.headers, extra=problem.extra)


def idempotent(payload: dict, work: Callable[[object], tuple[int, dict]]) -> Response:
    """Run a write once per Idempotency-Key: store the response with the posting, replay it after."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise ApiProblem(400, "idempotency_key_required", "This call requires an Idempotency-Key header.")
    if not _KEY.match(key):
        raise ApiProblem(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters.")
    fingerprint = hashlib.sha256(json.dumps(
        {"method": request.method, "path": request.path, "body": payload},
        sort_keys=True, default=_json_default).encode()).hexdigest()
    tenant_id = g.tenant.id

    def unit(session):
        record = claim_idempotency_key(session, tenant_id=tenant_id, key=key, fingerprint=fingerprint)
        status, body = work(session)
        body = jsonable(body)
        record.response_status, record.response_body = status, body
        session.flush()
        return status, body

    session = db_session()
    try:
        status, body = run_unit(session, unit, retry_on_integrity=True)
    except IdempotencyReplay as replay:
        session.rollback()
        if replay.response_status is None:
            raise ApiProblem(409, "idempotency_key_in_progress",
                             "A request with this key is still being processed.") from replay
        return json_response(replay.response_body, replay.response_status, {"Idempotent-Replayed": "true"})
    except IdempotencyKeyReused as exc:
        raise ApiProblem(422, "idempotency_key_reused",
                         "This Idempotency-Key was used with a different request.") from exc
    return json_response(body, status)


def encode_cursor(*parts) -> str:
    raw = json.dumps([p.isoformat() if isinstance(p, dt.datetime) else str(p) for p in parts])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if not isinstance(parts, list) or len(parts) != arity or not all(isinstance(p, str) for p in parts):
            raise ValueError
        return parts
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiProblem(422, "validation_error", "The cursor is not valid.",
                         errors={"cursor": ["not a cursor returned by this API"]}) from exc

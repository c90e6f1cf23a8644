"""Every API error as application/problem+json (RFC 9457) with a stable ``code``."""
from __future__ import annotations

import logging

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"

HTTP_CODES = {
    400: "bad_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class ApiProblem(Exception):
    """An error the API answers with as problem+json."""

    def __init__(self, status: int, code: str, detail: str, *, title: str | None = None,
                 errors: dict | None = None, headers: dict | None = None, extra: dict | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.title = title or code.replace("_", " ").capitalize()
        self.errors, self.headers, self.extra = errors, headers or {}, extra or {}


def problem_response(status: int, code: str, detail: str, *, title: str | None = None,
                     errors: dict | None = None, headers: dict | None = None,
                     extra: dict | None = None) -> Response:
    body = {
        "type": f"https://docs.alliance.example/problems/{code}",
        "title": title or code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    resp = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def register_errorhandlers(app: Flask) -> None:
    @app.before_request
    def _refuse_oversized_streams():
        """A chunked body has no Content-Length; Werkzeug then cuts it at MAX_CONTENT_LENGTH silently: refuse it."""
        limit = app.config.get("MAX_CONTENT_LENGTH")
        if limit and request.content_length is None and request.environ.get("wsgi.input_terminated"):
            if len(request.get_data(cache=True)) >= limit:
                raise RequestEntityTooLarge()

    @app.errorhandler(ApiProblem)
    def _api_problem(exc: ApiProblem):
        return problem_response(exc.status, exc.code, exc.detail, title=exc.title,
                                errors=exc.errors, headers=exc.headers, extra=exc.extra)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        code = HTTP_CODES.get(status, "http_error")
        headers = {}
        if status == 405:
            allowed = getattr(exc, "valid_methods", None)
            if not allowed:
                adapter = app.url_map.bind_to_environ(request.environ)
                allowed = adapter.allowed_methods()
            headers["Allow"] = ", ".join(sorted(allowed))
        if status == 429:
            headers["Retry-After"] = str(_retry_after())
        errors = None
        data = getattr(exc, "data", None)
        if status == 422 and isinstance(data, dict) and "messages" in data:
            errors = _flatten_messages(data["messages"])
        detail = exc.description or exc.name
        if status == 422:
            detail = "The request did not validate; see errors."
        if status == 400 and "JSON" in (detail or ""):
            code = "malformed_json"
        return problem_response(status, code, detail, title=exc.name, errors=errors, headers=headers)

    @app.errorhandler(Exception)
    def _unhandled(exc: Exception):
        log.exception("unhandled error")
        return problem_response(500, "internal_error", "An unexpected error occurred.")


def _retry_after() -> int:
    """Seconds until the exceeded limit resets (Flask-Limiter keeps the later of this and its own)."""
    import time

    from api.extensions import app_limiter

    current = app_limiter().current_limit
    if current is None:
        return 60
    return max(1, int(current.reset_at - time.time()))


def _flatten_messages(messages: dict) -> dict:
    """webargs nests messages under the location ("json", "query"): drop that level."""
    out: dict = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out[location] = fields
    return out

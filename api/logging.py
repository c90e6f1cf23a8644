"""Structured logs: one JSON line per request, with the request id."""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from flask import Flask, g, request

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("alliance.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
                   "msg": record.getMessage()}
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def _not_a_request_line(record: logging.LogRecord) -> bool:
    """The development server's own access lines: the JSON line of each request replaces them."""
    return not (isinstance(record.msg, str) and record.msg.rstrip().endswith('] "%s" %s %s'))


def configure_logging(app: Flask) -> None:
    root = logging.getLogger("alliance")
    if not any(getattr(h, "_alliance", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._alliance = True
        root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])
    root.propagate = False
    werkzeug = logging.getLogger("werkzeug")
    if _not_a_request_line not in werkzeug.filters:
        werkzeug.addFilter(_not_a_request_line)

    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        rid = getattr(g, "request_id", None) or uuid.uuid4().hex
        response.headers["X-Request-Id"] = rid
        elapsed = time.perf_counter() - getattr(g, "started", time.perf_counter())
        access_log.info("request", extra={"fields": {
            "request_id": rid, "method": request.method, "path": request.path,
            "status": response.status_code, "ms": round(elapsed * 1000, 2),
            "client_id": getattr(g, "client_id", None)}})
        return response

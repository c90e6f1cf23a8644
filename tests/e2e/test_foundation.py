"""The skeleton: health, errors as problem+json, request ids, docs."""
from __future__ import annotations

import json


def test_healthz_says_ok(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_readyz_reports_schema_at_head(client):
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["status"] == "ready"
    assert body["schema"] == ["0002"]


def test_unknown_route_is_problem_json_404(client):
    resp = client.get("/api/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["code"] == "not_found" and body["status"] == 404


def test_wrong_method_is_405_with_allow(client):
    resp = client.delete("/healthz")
    assert resp.status_code == 405
    assert resp.mimetype == "application/problem+json"
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD"}
    assert resp.get_json()["code"] == "method_not_allowed"


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    made = client.get("/healthz").headers["X-Request-Id"]
    assert len(made) == 32
    assert client.get("/healthz", headers={"X-Request-Id": "bad id;drop"}).headers["X-Request-Id"] != "bad id;drop"


def test_oversized_body_is_413_problem(client):
    resp = client.post("/oauth/token", data="x" * (70 * 1024), content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 413
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["code"] == "payload_too_large"


def test_openapi_and_docs_are_served(client):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    assert spec.get_json()["openapi"].startswith("3.")
    page = client.get("/api/docs")
    assert page.status_code == 200 and b"swagger-ui" in page.data
    asset = client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.data) > 100_000
    asset.close()


def test_request_log_is_one_json_line(client, caplog):
    import logging

    logger = logging.getLogger("alliance.access")
    logger.propagate = True
    try:
        with caplog.at_level(logging.INFO, logger="alliance.access"):
            client.get("/healthz", headers={"X-Request-Id": "log-1"})
    finally:
        logger.propagate = False
    records = [r for r in caplog.records if r.name == "alliance.access"]
    assert records and records[-1].fields["request_id"] == "log-1"
    from api.logging import JsonFormatter

    line = JsonFormatter().format(records[-1])
    assert json.loads(line)["status"] == 200


def _chunked(client, path, body: bytes, **headers):
    import io

    return client.post(path, input_stream=io.BytesIO(body), content_type="application/json", headers=headers,
                       environ_overrides={"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"})


def test_an_oversized_chunked_body_is_413_not_silently_cut(client):
    resp = _chunked(client, "/api/v1/members", b'{"phone": "13800138000"' + b" " * (70 * 1024) + b"}")
    assert resp.status_code == 413
    assert resp.mimetype == "application/problem+json" and resp.get_json()["code"] == "payload_too_large"


def test_a_small_chunked_body_is_read_whole(partner):
    resp = _chunked(partner.client, "/api/v1/members", b'{"phone": "13800138000"}', **partner.headers())
    assert resp.status_code == 201, resp.get_json()

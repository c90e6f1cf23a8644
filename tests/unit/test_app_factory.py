"""create_app reads the Config class, then the environment, then the override; import builds nothing."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_settings_come_from_the_class_then_the_environment_then_the_override(monkeypatch, tmp_path):
    from api import create_app

    monkeypatch.setenv("ACCESS_TOKEN_TTL", "99")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    app = create_app({"LOG_LEVEL": "ERROR", "DATABASE_URL": "sqlite:///relative.db"})
    try:
        assert app.config["PAGE_SIZE_MAX"] == 200  # the class
        assert app.config["ACCESS_TOKEN_TTL"] == 99  # the environment
        assert app.config["LOG_LEVEL"] == "ERROR"  # the override beats the environment
        engine = app.extensions["database"].engine
        assert engine.url.database == str(tmp_path / "relative.db")  # a relative SQLite file lands in instance/
    finally:
        app.extensions["database"].dispose()


def _python(code: str, **env) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_importing_every_package_builds_no_app_and_no_engine():
    code = """
import json, flask, sqlalchemy as sa
made = {"engines": 0, "apps": 0}
real_engine, real_init = sa.create_engine, flask.Flask.__init__
sa.create_engine = lambda *a, **k: made.__setitem__("engines", made["engines"] + 1) or real_engine(*a, **k)
def counting_init(self, *a, **k):
    made["apps"] += 1
    real_init(self, *a, **k)
flask.Flask.__init__ = counting_init
import api, api.cli, api.oauth, api.health, api.v1.views, api.extensions
import alliance.services, ledger.services, tenants.services
print(json.dumps(made))
"""
    assert json.loads(_python(code)) == {"engines": 0, "apps": 0}


def test_wsgi_exposes_a_ready_app(tmp_path):
    code = "import wsgi; print(type(wsgi.app).__name__, sorted(r.rule for r in wsgi.app.url_map.iter_rules())[:1])"
    out = _python(code, DATABASE_URL=f"sqlite:///{tmp_path}/w.db", INSTANCE_PATH=str(tmp_path))
    assert out.startswith("Flask ")


def test_the_development_servers_access_lines_give_way_to_the_json_request_log():
    import logging

    from api.logging import _not_a_request_line

    def record(msg, *args):
        return logging.LogRecord("werkzeug", logging.INFO, __file__, 1, msg, args, None)

    assert not _not_a_request_line(record('127.0.0.1 - - [04/Dec/2026 01:39:13] "%s" %s %s', "GET / HTTP/1.1", "200", "-"))
    assert _not_a_request_line(record(" * Running on %s", "http://127.0.0.1:5000"))

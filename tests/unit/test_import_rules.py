"""The packages import one way: api -> alliance -> ledger; only api touches the web stack."""
from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
WEB = {"flask", "flask_smorest", "authlib", "celery", "flask_sqlalchemy", "flask_migrate", "flask_limiter"}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _files(package: str):
    return sorted((ROOT / package).rglob("*.py"))


def test_ledger_imports_neither_alliance_nor_api():
    offenders = {str(p.relative_to(ROOT)): _imports(p) & {"alliance", "api"} for p in _files("ledger")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_outside_api_imports_the_web_stack():
    offenders = {}
    for package in ("ledger", "tenants", "alliance", "migrations"):
        for path in _files(package):
            bad = _imports(path) & WEB
            if bad:
                offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_the_rule_itself_catches_an_offender(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import flask\nfrom authlib.oauth2 import x\nfrom . import y\n")
    assert _imports(sample) == {"flask", "authlib"}


def test_packages_exist():
    for package in ("ledger", "tenants", "alliance", "api"):
        assert _files(package), package

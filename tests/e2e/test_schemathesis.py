"""Schemathesis over the whole served spec, in-process: no 5xx, no response that breaks the spec."""
from __future__ import annotations

import uuid

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_operation_honours_the_spec(app, partner):
    partner.enrol()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 14

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            headers = {"Authorization": f"Bearer {partner.token}"}
            if case.method.upper() == "POST":
                headers["Idempotency-Key"] = uuid.uuid4().hex
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()

"""Errors of the tenancy kernel, named after the business fact."""
from __future__ import annotations


class TenancyError(Exception):
    code = "validation_error"
    status = 422

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class AllianceNotFound(TenancyError):
    code, status = "not_found", 404


class TenantNotFound(TenancyError):
    code, status = "not_found", 404


class DuplicateCode(TenancyError):
    code, status = "duplicate_code", 409


class InvalidScope(TenancyError):
    code, status = "invalid_scope", 400

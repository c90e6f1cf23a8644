"""Domain errors of the alliance package, each with a stable code and an HTTP-ish status."""
from __future__ import annotations


class AllianceError(Exception):
    """A domain error the API turns into problem+json."""

    code = "alliance_error"
    status = 400
    title = "Request could not be processed"

    def __init__(self, message: str | None = None, **details: object) -> None:
        self.message = message or self.title
        self.details = details
        super().__init__(self.message)


class ValidationFailed(AllianceError):
    code = "validation_error"
    status = 422
    title = "Invalid input"

    def __init__(self, message: str | None = None, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message, errors=errors or {})
        self.errors = errors or {}


class InvalidPhone(ValidationFailed):
    code = "invalid_phone"
    title = "Invalid phone number"


class InvalidEmail(ValidationFailed):
    code = "invalid_email"
    title = "Invalid email address"


class IdentifierRequired(ValidationFailed):
    title = "Give a phone, an email or an external ref"


class IdentifierConflict(AllianceError):
    """The identifiers given belong to different members; nothing is merged silently."""

    code = "identifier_conflict"
    status = 409
    title = "Identifiers belong to different members"

    def __init__(self, message: str | None = None, *, groups: list[list[str]]) -> None:
        #: Identifier kinds grouped by the member they point at, e.g. [["phone"], ["email"]].
        self.groups = groups
        super().__init__(message, groups=groups)


class MemberNotFound(AllianceError):
    code = "not_found"
    status = 404
    title = "Member not found"


class ConsentRequired(AllianceError):
    code = "consent_required"
    status = 403
    title = "The member has not given this consent"

    def __init__(self, message: str | None = None, *, purpose: str) -> None:
        self.purpose = purpose
        super().__init__(message or f"The member has not given {purpose!r} consent to this tenant", purpose=purpose)


class MergeNotAllowed(AllianceError):
    code = "merge_not_allowed"
    status = 409
    title = "These members cannot be merged"

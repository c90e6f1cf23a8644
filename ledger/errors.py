"""Ledger errors: each names a business fact and carries a stable snake_case ``code``."""
from __future__ import annotations


class LedgerError(Exception):
    """Base of every ledger error."""

    code = "ledger_error"
    default_message = "The ledger refused the operation."

    def __init__(self, message: str | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)


class LedgerValidationError(LedgerError):
    code = "validation_error"
    default_message = "The request is not valid for the ledger."


class NotReversible(LedgerValidationError):
    default_message = "This kind of transaction cannot be reversed."


class NotFound(LedgerError):
    code = "not_found"
    default_message = "Not found."


class TransactionNotFound(NotFound):
    default_message = "Transaction not found."


class HoldNotFound(NotFound):
    default_message = "Hold not found."


class InsufficientPoints(LedgerError):
    code = "insufficient_points"

    def __init__(self, available: int, requested: int):
        self.available, self.requested = available, requested
        super().__init__(f"Only {available} points are available; {requested} were requested.")


class HoldAlreadyResolved(LedgerError):
    code = "hold_already_resolved"

    def __init__(self, status: str, message: str | None = None):
        self.status = status
        super().__init__(message or f"The hold is already {status}.")


class HoldExpired(HoldAlreadyResolved):
    code = "hold_expired"

    def __init__(self, status: str = "expired"):
        super().__init__(status, "The hold has expired.")


class CaptureExceedsHold(LedgerError):
    code = "capture_exceeds_hold"

    def __init__(self, held: int, requested: int):
        self.held, self.requested = held, requested
        super().__init__(f"Cannot capture {requested} points from a hold of {held}.")


class AlreadyReversed(LedgerError):
    code = "already_reversed"
    default_message = "The transaction is already fully reversed."


class ReversalExceedsOriginal(LedgerError):
    code = "reversal_exceeds_original"

    def __init__(self, reversible: int, requested: int):
        self.reversible, self.requested = reversible, requested
        super().__init__(f"Only {reversible} points remain reversible; {requested} were requested.")


class IdempotencyKeyReused(LedgerError):
    code = "idempotency_key_reused"
    default_message = "The idempotency key was already used with a different request."


class IdempotencyReplay(LedgerError):
    """The same key and request were seen before: carry the stored record (and result)."""

    code = "idempotency_replay"

    def __init__(self, record, result=None):
        self.record, self.result = record, result
        #: Snapshots, still readable after the caller rolled its unit back.
        self.key, self.transaction_id, self.hold_id = record.key, record.transaction_id, record.hold_id
        self.response_status, self.response_body = record.response_status, record.response_body
        super().__init__("This request was already processed.")

"""Request and response schemas of v1: strict, unknown fields rejected."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

MAX_POINTS = 1_000_000_000
#: The earliest time a partner may say something happened (a typo guard, and far from datetime's limits).
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)  # historic imports (CDNOW: 1997) are fine
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DECIMAL = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,12})?$")
PURPOSES = ("loyalty", "profile", "marketing")


class Points(fields.Integer):
    """A JSON integer in 1..MAX_POINTS: no floats (80.0), strings, booleans, NaN or exponents."""

    def __init__(self, **kwargs):
        kwargs.setdefault("validate", validate.Range(min=1, max=MAX_POINTS))
        kwargs.setdefault("metadata", {"description": f"whole points, 1..{MAX_POINTS}", "example": 100})
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Must be a whole number of points (a JSON integer, no decimals or quotes).")
        if not 1 <= value <= MAX_POINTS:
            raise ValidationError(f"Must be between 1 and {MAX_POINTS}.")
        return value


class StrictBool(fields.Boolean):
    """Only JSON true or false."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        return value


class Money(fields.Field):
    """A decimal amount as a string ("4.35": ASCII digits and one point) or a JSON number, parsed as Decimal."""

    def __init__(self, *, allow_zero: bool = False, **kwargs):
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise ValidationError('Must be a decimal string such as "4.35".')
        if isinstance(value, str) and value.startswith("-") and _DECIMAL.match(value[1:]):
            raise ValidationError("Must not be negative." if self.allow_zero else "Must be a positive amount.")
        if isinstance(value, str) and not _DECIMAL.match(value):
            # Decimal() alone would take "4_35" (435), full-width digits, spaces and exponents.
            raise ValidationError('Must be a decimal string such as "4.35".')
        try:
            amount = Decimal(value)
        except InvalidOperation as exc:
            raise ValidationError('Must be a decimal string such as "4.35".') from exc
        if not amount.is_finite() or amount < 0 or (amount == 0 and not self.allow_zero):
            raise ValidationError("Must be a positive, finite amount." if not self.allow_zero
                                  else "Must be a finite amount, zero or more.")
        if amount.as_tuple().exponent < -2:
            raise ValidationError("At most two decimal places.")
        if amount > Decimal("100000000"):
            raise ValidationError("Too large.")
        # A JSON number such as 1e2 arrives as Decimal("1E+2"): keep it in plain notation.
        return Decimal(format(amount, "f"))

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)


class Text(fields.String):
    """A string without NUL or other control characters (PostgreSQL text cannot hold NUL)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if _CONTROL.search(text):
            raise ValidationError("Must not contain control characters.")
        return text


class Instant(fields.AwareDateTime):
    """An RFC 3339 time with offset, from 1970 on, that converts to UTC."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            utc = moment.astimezone(dt.timezone.utc)
        except OverflowError as exc:
            raise ValidationError("Out of range.") from exc
        if utc < EARLIEST:
            raise ValidationError(f"Must not be before {EARLIEST.date().isoformat()}.")
        return moment


def _aware():
    return Instant(format="iso", metadata={"description": "RFC 3339 with offset",
                                           "example": "2026-05-01T09:30:00+08:00"})


class ConsentCaptured(Schema):
    purposes = fields.List(fields.String(validate=validate.OneOf(PURPOSES)), required=True,
                           validate=validate.Length(min=1, max=3))
    channel = Text(required=True, validate=validate.Length(min=1, max=40), metadata={"example": "pos"})
    terms_version = Text(validate=validate.Length(max=40), metadata={"example": "2026-01"})
    captured_at = _aware()


class EnrolIn(Schema):
    phone = Text(validate=validate.Length(min=1, max=40), metadata={"example": "13800138000"})
    email = Text(validate=validate.Length(min=3, max=254), metadata={"example": "a@example.com"})
    external_ref = Text(validate=validate.Length(min=1, max=200), metadata={"example": "crm-42"})
    name = Text(validate=validate.Length(min=1, max=200), metadata={"example": "张三"})
    consent = fields.Nested(ConsentCaptured)

    @validates_schema
    def _one_identifier(self, data, **kwargs):
        if not any(data.get(k) for k in ("phone", "email", "external_ref")):
            raise ValidationError("Give at least one of phone, email or external_ref.", "_schema")


class ConsentIn(Schema):
    purpose = Text(required=True, validate=validate.OneOf(PURPOSES))
    granted = StrictBool(required=True)
    channel = Text(required=True, validate=validate.Length(min=1, max=40))
    terms_version = Text(validate=validate.Length(max=40))
    captured_at = _aware()


class AmountIn(Schema):
    value = Money(required=True, metadata={"type": "string", "example": "4.35"})
    currency = Text(required=True, validate=validate.Length(equal=3), metadata={"example": "CNY"})


class VisitAmountIn(AmountIn):
    value = Money(required=True, allow_zero=True, metadata={"type": "string", "example": "0.00"})


class _Posting(Schema):
    reference = Text(validate=validate.Length(min=1, max=200), metadata={"example": "order-1"})
    description = Text(validate=validate.Length(max=500))
    metadata = fields.Dict(keys=fields.String(validate=validate.Length(max=64)))

    @validates_schema
    def _small_metadata(self, data, **kwargs):
        import json

        if "metadata" in data and len(json.dumps(data["metadata"], default=str)) > 4000:
            raise ValidationError("At most 4000 characters of metadata.", "metadata")


class EarnIn(_Posting):
    points = Points()
    amount = fields.Nested(AmountIn, metadata={"description": "a purchase the tenant's earn rule converts"})
    occurred_at = _aware()

    @validates_schema
    def _points_or_amount(self, data, **kwargs):
        if ("points" in data) == ("amount" in data):
            raise ValidationError("Give exactly one of points or amount.", "points")


class VisitIn(Schema):
    occurred_at = _aware()
    reference = Text(validate=validate.Length(min=1, max=200), metadata={"example": "gate-2026-05-01-0001"})
    description = Text(validate=validate.Length(max=500))
    amount = fields.Nested(VisitAmountIn, metadata={"description": "what was spent, if anything (may be 0)"})


class RedeemIn(_Posting):
    points = Points(required=True)
    occurred_at = _aware()


class HoldIn(_Posting):
    points = Points(required=True)
    expires_in = fields.Integer(strict=True, load_default=1800, validate=validate.Range(min=60, max=30 * 86400),
                                metadata={"description": "seconds until the hold expires", "example": 1800})


class CaptureIn(Schema):
    points = Points(metadata={"description": "points to capture; the whole hold when absent"})
    description = Text(validate=validate.Length(max=500))


class VoidIn(Schema):
    description = Text(validate=validate.Length(max=500))


class ReversalIn(Schema):
    points = Points(metadata={"description": "points to reverse; everything still reversible when absent"})
    reason = Text(validate=validate.Length(max=500), metadata={"example": "partial refund"})


class ListArgs(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = Text(validate=validate.Length(max=500))


class TransactionListArgs(ListArgs):
    member_id = Text(validate=validate.Length(max=64))
    kind = Text(validate=validate.OneOf(
        ("earn", "redeem", "hold", "capture", "void", "hold_expiry", "reversal", "expiry", "adjustment", "merge")))


# ---- responses (documentation; bodies are built by the views)

class ConsentsOut(Schema):
    loyalty = fields.Boolean()
    profile = fields.Boolean()
    marketing = fields.Boolean()


class MemberOut(Schema):
    id = Text(metadata={"description": "this tenant's pairwise id for the member"})
    created = fields.Boolean()
    consents = fields.Nested(ConsentsOut)
    external_refs = fields.List(Text())
    member_no = Text(metadata={"description": "only with profile consent"})
    name = Text(allow_none=True)
    phone = Text(allow_none=True)
    email = Text(allow_none=True)
    phones = fields.List(Text(), metadata={"description": "every phone on file (profile consent)"})
    emails = fields.List(Text(), metadata={"description": "every email on file (profile consent)"})


class ConsentOut(Schema):
    member_id = Text()
    purpose = Text()
    granted = fields.Boolean()
    captured_at = fields.DateTime()
    consents = fields.Nested(ConsentsOut)


class ExpiringOut(Schema):
    points = fields.Integer()
    expires_at = fields.DateTime()


class BalanceArgs(Schema):
    as_of = _aware()


class BalanceOut(Schema):
    member_id = Text()
    as_of = fields.DateTime(metadata={"description": "the time the balance is for (now unless asked)"})
    balance = fields.Integer(metadata={"description": "points on the books (held included, pending expiry too)"})
    held = fields.Integer(metadata={"description": "reserved by active holds"})
    available = fields.Integer(metadata={"description": "what a redemption at as_of could spend: earned by then "
                                                        "and not past its date"})
    pending_expiry = fields.Integer(metadata={"description": "points past their date at as_of, "
                                                             "removed by the next expiry run"})
    owed = fields.Integer(metadata={"description": "shortfall from refunded earns, repaid by later earns"})
    expiring = fields.List(fields.Nested(ExpiringOut), metadata={"description": "after as_of, soonest first"})


class TransactionOut(Schema):
    id = Text()
    kind = Text()
    points = fields.Integer(metadata={"description": "signed change of the member's points"})
    member_id = Text()
    reference = Text(allow_none=True)
    occurred_at = fields.DateTime()
    posted_at = fields.DateTime()
    description = Text(allow_none=True)
    metadata = fields.Dict(allow_none=True)
    reverses = Text(allow_none=True)
    hold_id = Text(allow_none=True)
    amount = fields.Dict(allow_none=True)


class TransactionPage(Schema):
    data = fields.List(fields.Nested(TransactionOut))
    next_cursor = Text(allow_none=True)


class VisitOut(Schema):
    id = fields.Integer()
    member_id = Text()
    occurred_at = fields.DateTime()
    reference = Text(allow_none=True)
    description = Text(allow_none=True)
    amount = fields.Dict(allow_none=True)
    transaction_id = Text(allow_none=True, metadata={"description": "the earn that credited this visit, if any"})


class HoldOut(Schema):
    id = Text()
    status = Text(metadata={"description": "active, captured, voided or expired"})
    points = fields.Integer()
    captured_points = fields.Integer(allow_none=True)
    member_id = Text()
    reference = Text(allow_none=True)
    expires_at = fields.DateTime()
    created_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)

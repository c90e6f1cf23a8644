"""Normalise identifiers into matching keys and names into display form (pure)."""
from __future__ import annotations

import re
import unicodedata

import phonenumbers

from alliance.errors import InvalidEmail, InvalidPhone, ValidationFailed

DEFAULT_REGION = "CN"
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]+$")
#: NUL and other C0 controls (tab, newline and carriage return aside) and DEL: never part of a name or key.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PHONE_JUNK = re.compile(r"[\s\-().]")
_PHONE_CHARS = re.compile(r"^\+?[0-9]{3,20}$")


def _fold(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).strip()


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """Return the phone number as E.164, reading national numbers in ``region``."""
    if not isinstance(raw, str):
        raise InvalidPhone("Phone number must be a string", errors={"phone": ["must be a string"]})
    text = _PHONE_JUNK.sub("", _fold(raw))
    if not _PHONE_CHARS.match(text):
        raise InvalidPhone(f"{raw!r} is not a valid phone number", errors={"phone": ["not a valid phone number"]})
    if text.startswith("00"):
        text = "+" + text[2:]
    candidates = [text]
    if not text.startswith("+"):
        # "8613800138000": a country code written without "+" or "00".
        candidates.append("+" + text)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidPhone(f"{raw!r} is not a valid phone number", errors={"phone": ["not a valid phone number"]})


def normalize_email(raw: str) -> str:
    """Return the email trimmed, NFKC-normalised and case-folded."""
    if not isinstance(raw, str):
        raise InvalidEmail("Email must be a string", errors={"email": ["must be a string"]})
    text = _fold(raw).casefold()
    if len(text) > 254 or not _EMAIL.match(text):
        raise InvalidEmail(f"{raw!r} is not a valid email address", errors={"email": ["not a valid email address"]})
    return text


def normalize_ref(raw: str) -> str:
    """Return a partner's external ref as a matching key (NFKC, case-folded, trimmed)."""
    if not isinstance(raw, str):
        raise ValidationFailed("external_ref must be a string", errors={"external_ref": ["must be a string"]})
    text = _fold(raw).casefold().strip()
    if _CONTROL.search(text):
        raise ValidationFailed(
            "external_ref must not contain control characters", errors={"external_ref": ["no control characters"]}
        )
    if not text or len(text) > 200:
        raise ValidationFailed(
            "external_ref must be 1 to 200 characters", errors={"external_ref": ["must be 1 to 200 characters"]}
        )
    return text


def display_name(raw: str | None) -> str | None:
    """Return the name as given, in NFC, trimmed; empty means none."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValidationFailed("name must be a string", errors={"name": ["must be a string"]})
    text = unicodedata.normalize("NFC", raw).strip()
    if _CONTROL.search(text):
        raise ValidationFailed("name must not contain control characters", errors={"name": ["no control characters"]})
    if len(text) > 200:
        raise ValidationFailed("name is too long", errors={"name": ["at most 200 characters"]})
    return text or None


def has_control_characters(text: str) -> bool:
    """Tell whether ``text`` holds NUL or another control character that no key or label may carry."""
    return bool(_CONTROL.search(text))

"""Pure rules: member numbers with a Luhn check digit."""
from __future__ import annotations

import secrets

MEMBER_NO_LENGTH = 12


def luhn_check_digit(payload: str) -> str:
    """Return the Luhn check digit for a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def is_valid_member_no(value: str) -> bool:
    """Tell whether ``value`` is a well-formed member number (length, digits, check digit)."""
    if not isinstance(value, str) or len(value) != MEMBER_NO_LENGTH or not value.isascii() or not value.isdigit():
        return False
    return luhn_check_digit(value[:-1]) == value[-1]


def new_member_no() -> str:
    """Return a random member number: 11 digits (no leading zero) and a Luhn check digit."""
    payload = str(secrets.randbelow(9 * 10 ** (MEMBER_NO_LENGTH - 2)) + 10 ** (MEMBER_NO_LENGTH - 2))
    return payload + luhn_check_digit(payload)

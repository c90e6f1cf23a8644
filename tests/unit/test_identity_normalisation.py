"""Normalisation of identifiers and names, and member numbers (no database)."""
from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alliance.errors import InvalidEmail, InvalidPhone, ValidationFailed
from alliance.identity import display_name, normalize_email, normalize_phone, normalize_ref
from alliance.rules import is_valid_member_no, luhn_check_digit, new_member_no


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("0086-138-0013-8000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("+8613800138000", "+8613800138000"),
        ("１３８００１３８０００", "+8613800138000"),  # full-width digits
        ("＋８６ １３８ ００１３ ８０００", "+8613800138000"),  # full-width plus and ideographic spaces
        ("  138 0013 8000\t", "+8613800138000"),  # stray spaces
        ("138-0013-8000", "+8613800138000"),
        ("(010) 6552 9988", "+861065529988"),  # Beijing landline, national format
        ("+14155550123", "+14155550123"),  # a US number stays American
        ("+1 (415) 555-0123", "+14155550123"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_forms_normalise_to_one_e164_number(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "12345", "abc", "1380013800", "+86 138 0013 800", "+1 555 0000", "861380013800", "138001380001234",
     "phone: 13800138000x"],
)
def test_invalid_phone_numbers_are_rejected_with_invalid_phone(raw):
    with pytest.raises(InvalidPhone) as info:
        normalize_phone(raw)
    assert info.value.code == "invalid_phone"
    assert info.value.status == 422
    assert "phone" in info.value.errors


def test_phone_that_is_not_a_string_is_invalid():
    with pytest.raises(InvalidPhone):
        normalize_phone(13800138000)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a@example.com", "a@example.com"),
        ("  Alice.Smith@Example.COM ", "alice.smith@example.com"),
        ("ＡＬＩＣＥ＠ｅｘａｍｐｌｅ．ｃｏｍ", "alice@example.com"),  # full-width forms (NFKC)
        ("STRASSE@Example.de", "strasse@example.de"),
        ("Straße@example.de", "strasse@example.de"),  # casefold, not lower
        ("张三@例子.中国", "张三@例子.中国"),
    ],
)
def test_email_is_trimmed_nfkc_normalised_and_casefolded(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "alice", "alice@", "@example.com", "a@b", "a b@example.com",
                                 "a@@example.com", "a@example.com.", "x" * 250 + "@example.com"])
def test_invalid_emails_are_rejected_with_invalid_email(raw):
    with pytest.raises(InvalidEmail) as info:
        normalize_email(raw)
    assert info.value.code == "invalid_email"
    assert info.value.status == 422


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("CRM-42", "crm-42"), (" crm-42 ", "crm-42"), ("ＣＲＭ－４２", "crm-42"), ("Maße-1", "masse-1")],
)
def test_external_refs_match_after_nfkc_and_casefold(raw, expected):
    assert normalize_ref(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "x" * 201])
def test_empty_or_huge_external_ref_is_a_validation_error(raw):
    with pytest.raises(ValidationFailed) as info:
        normalize_ref(raw)
    assert info.value.code == "validation_error"


def test_display_name_is_kept_as_given_in_nfc():
    decomposed = "Jose\u0301 张三"
    assert display_name(decomposed) == "Jos\u00e9 张三"
    assert unicodedata.is_normalized("NFC", display_name(decomposed))
    # NFC keeps compatibility forms: full-width letters in a name stay as the member wrote them.
    assert display_name("ＡＢＣ") == "ＡＢＣ"
    assert display_name("  ") is None
    assert display_name(None) is None


def test_luhn_check_digit_matches_the_textbook_example():
    assert luhn_check_digit("7992739871") == "3"


def test_new_member_numbers_have_twelve_digits_and_a_valid_check_digit():
    numbers = {new_member_no() for _ in range(200)}
    assert len(numbers) == 200
    for number in numbers:
        assert len(number) == 12 and number.isdigit() and number[0] != "0"
        assert is_valid_member_no(number)


@given(st.text(alphabet="0123456789", min_size=11, max_size=11), st.integers(min_value=0, max_value=10))
def test_any_single_digit_typo_breaks_the_check_digit(payload, position):
    number = payload + luhn_check_digit(payload)
    typo_at = position % 12
    wrong = str((int(number[typo_at]) + 1) % 10)
    assert not is_valid_member_no(number[:typo_at] + wrong + number[typo_at + 1:])


@pytest.mark.parametrize("raw", ["", "12345678901", "1234567890123", "１２３４５６７８９０１２", "abcdefghijkl"])
def test_malformed_member_numbers_are_rejected(raw):
    assert not is_valid_member_no(raw)

"""Luhn and IBAN mod-97 checks: published test numbers pass, one changed digit fails."""

import pytest

from lepton_components.privacy.checksums import IBAN_LENGTHS, iban_valid, luhn_valid

VALID_CARDS = ["4111111111111111", "5555555555554444", "378282246310005", "4242424242424242", "6011111111111117"]
VALID_IBANS = [
    "GB82WEST12345698765432",
    "DE89370400440532013000",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "BE68539007547034",
    "NO9386011117947",
]


@pytest.mark.parametrize("number", VALID_CARDS)
def test_published_test_card_numbers_pass_luhn(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", VALID_CARDS)
def test_one_changed_digit_fails_luhn(number: str) -> None:
    changed = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert not luhn_valid(changed)


@pytest.mark.parametrize("number", ["482913", "4111 1111 1111 1111", "0" * 12, "1" * 20, "", "41111111111111x1"])
def test_luhn_needs_13_to_19_digits_only(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize("iban", VALID_IBANS)
def test_published_example_ibans_pass(iban: str) -> None:
    assert iban_valid(iban)


@pytest.mark.parametrize("iban", VALID_IBANS)
def test_a_changed_check_digit_or_length_fails(iban: str) -> None:
    changed = iban[:2] + f"{(int(iban[2:4]) + 1) % 100:02d}" + iban[4:]
    assert not iban_valid(changed)
    assert not iban_valid(iban + "0")
    assert not iban_valid(iban[:-1])


def test_unknown_countries_and_lower_case_are_refused() -> None:
    assert "ZZ" not in IBAN_LENGTHS
    assert not iban_valid("ZZ82WEST12345698765432")
    assert not iban_valid("gb82west12345698765432")

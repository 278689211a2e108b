"""Detectors find emails, phones, cards and IBANs as customers type them, and leave the
demo's order numbers, dates, times, prices and masking tokens alone."""

from typing import List, Tuple

import pytest

from lepton_components.privacy.pii_detectors import CARD, EMAIL, IBAN, PHONE, PiiDetector, find_phones

DETECTOR = PiiDetector(phone_regions=("US", "GB"))


def found(text: str) -> List[Tuple[str, str, str]]:
    return [(m.kind, text[m.start : m.end], m.normalized) for m in DETECTOR.find(text)]


@pytest.mark.parametrize(
    "text, raw, normalized",
    [
        ("my email is Ada.Lovelace@Example.com.", "Ada.Lovelace@Example.com", "ada.lovelace@example.com"),
        ("mail ada+orders@mail.example.co.uk please", "ada+orders@mail.example.co.uk", "ada+orders@mail.example.co.uk"),
        ("(ada_l@example.org)", "ada_l@example.org", "ada_l@example.org"),
    ],
)
def test_emails(text: str, raw: str, normalized: str) -> None:
    assert found(text) == [(EMAIL, raw, normalized)]


@pytest.mark.parametrize(
    "text, raw, normalized",
    [
        ("call me on +44 20 7946 0958 please", "+44 20 7946 0958", "+442079460958"),
        ("my number is (415) 555-2671", "(415) 555-2671", "+14155552671"),
        ("+1 415-555-2671", "+1 415-555-2671", "+14155552671"),
        ("mobile 07911 123456", "07911 123456", "+447911123456"),
        ("Paris: +33 1 42 68 53 00", "+33 1 42 68 53 00", "+33142685300"),
        ("+4930901820", "+4930901820", "+4930901820"),
    ],
)
def test_phone_numbers_in_international_and_regional_formats(text: str, raw: str, normalized: str) -> None:
    assert found(text) == [(PHONE, raw, normalized)]


def test_national_numbers_need_their_region() -> None:
    assert list(find_phones("07911 123456", ("US",))) == []
    assert [m.normalized for m in find_phones("07911 123456", ("GB",))] == ["+447911123456"]


@pytest.mark.parametrize(
    "text, raw",
    [
        ("card 4111 1111 1111 1111 was declined", "4111 1111 1111 1111"),
        ("4242-4242-4242-4242", "4242-4242-4242-4242"),
        ("amex 378282246310005.", "378282246310005"),
    ],
)
def test_card_numbers_with_a_valid_luhn_digit(text: str, raw: str) -> None:
    assert found(text) == [(CARD, raw, raw.replace(" ", "").replace("-", ""))]


@pytest.mark.parametrize(
    "text, raw, normalized",
    [
        ("refund to GB82 WEST 1234 5698 7654 32 thanks", "GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432"),
        ("iban: de89370400440532013000", "de89370400440532013000", "DE89370400440532013000"),
        ("FR14 2004 1010 0505 0001 3M02 606", "FR14 2004 1010 0505 0001 3M02 606", "FR1420041010050500013M02606"),
    ],
)
def test_ibans_with_valid_check_digits(text: str, raw: str, normalized: str) -> None:
    assert found(text) == [(IBAN, raw, normalized)]


@pytest.mark.parametrize(
    "text",
    [
        "where is my order LP-482913?",
        "orders LP-100245, LP-260934 and LP-4829137765",
        "it arrived on 2024-03-15 at 14:30, not 15/03/2024",
        "order placed March 3rd 2024, total $1,249.99",
        "card 4111 1111 1111 1112 (wrong last digit)",
        "IBAN GB82 WEST 1234 5698 7654 33 (wrong check digits)",
        "tracking 1Z999AA10123456784 and call 555-0100",
        "stored as [EMAIL:0123456789abcdef] and [PHONE]",
        "ada at example dot com",
    ],
)
def test_no_false_positives_on_order_numbers_dates_and_other_numbers(text: str) -> None:
    assert found(text) == []


def test_overlaps_go_to_the_earlier_kind() -> None:
    # The digits inside the email are not also a phone number.
    assert [kind for kind, _, _ in found("write to +14155552671@sms.example.com")] == [EMAIL]


def test_several_kinds_in_one_text_come_in_text_order() -> None:
    text = "ada@example.com / +44 20 7946 0958 / 4111111111111111 / GB82WEST12345698765432"
    assert [kind for kind, _, _ in found(text)] == [EMAIL, PHONE, CARD, IBAN]


def test_disabled_kinds_are_not_detected() -> None:
    assert PiiDetector(kinds=[EMAIL]).find("4111111111111111 ada@example.com")[0].kind == EMAIL
    assert len(PiiDetector(kinds=[EMAIL]).find("4111111111111111 ada@example.com")) == 1


def test_normalize_uses_the_kind_only_for_a_whole_match() -> None:
    assert DETECTOR.normalize(" Ada@Example.com ") == "ada@example.com"
    assert DETECTOR.normalize("(415) 555-2671") == "+14155552671"
    assert DETECTOR.normalize("Ada Lovelace") == "Ada Lovelace"
    assert DETECTOR.normalize("mail Ada@Example.com") == "mail Ada@Example.com"


def test_a_phone_number_after_a_long_run_of_number_like_noise_is_still_found() -> None:
    """libphonenumber gives up after 65,535 failed candidates by default; 130,000 characters
    of "1 " used them up, and the phone number after them was stored raw."""
    text = "1 " * 65_000 + "call me on +44 20 7946 0958"
    matches = PiiDetector(kinds=[PHONE], phone_regions=("US",)).find(text)
    assert [(m.kind, text[m.start : m.end]) for m in matches] == [(PHONE, "+44 20 7946 0958")]

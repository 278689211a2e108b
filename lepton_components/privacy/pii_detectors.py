"""Finds personal data in free text: emails, phone numbers, payment cards, IBANs.

Each finder returns `PiiMatch`es with the span in the text and a normalised value
(lower-case email, E.164 phone, card digits, IBAN without spaces), so that `hash`
gives the same token however the customer typed it.

Why these tools:
* emails: a regular expression; deliverability does not matter here, shape does;
* phone numbers: Google's libphonenumber (`phonenumbers`), whose matcher knows every
  country's numbering plan, accepts the usual separators and skips dates and times.
  Leniency `VALID` keeps only numbers in assigned ranges, so order numbers, prices and
  dates are left alone; numbers without a `+country` prefix are read as numbers of
  `phone_regions`;
* cards and IBANs: a permissive pattern, then the check digits (`checksums`).

Where matches overlap, the earlier kind in `KINDS` wins (an email's digits are not a
phone number; an IBAN's digits are not a card). Every scan is linear in the text
(`tests/privacy/test_linear_time.py`): the card and IBAN patterns repeat a bounded number
of times, the email pattern repeats only within a domain label, which a dot ends, and can
start only where a run of address characters starts; overlaps are resolved by `SpanClaims`.
Pure code, no Rasa.
"""

import re
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Sequence, Text

import phonenumbers

from lepton_components.privacy.checksums import CARD_MAX_DIGITS, CARD_MIN_DIGITS, IBAN_LENGTHS, iban_valid, luhn_valid
from lepton_components.privacy.span_claims import SpanClaims

EMAIL = "email"
PHONE = "phone"
CARD = "card"
IBAN = "iban"
# Priority order for overlapping matches.
KINDS = (EMAIL, IBAN, CARD, PHONE)

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![\w-])"
)
# Digits with single spaces or dashes between them, as cards are printed or typed.
_CARD = re.compile(rf"(?<![\d-])\d(?:[ -]?\d){{{CARD_MIN_DIGITS - 2},{CARD_MAX_DIGITS - 2}}}\d(?![\d-])")
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})")
_IBAN_SEPARATORS = " -"


@dataclass(frozen=True)
class PiiMatch:
    """One piece of personal data found in a text: `text[start:end]`."""

    kind: Text
    start: int
    end: int
    normalized: Text


def find_emails(text: Text) -> Iterator[PiiMatch]:
    for match in _EMAIL.finditer(text):
        yield PiiMatch(EMAIL, match.start(), match.end(), match.group().lower())


def find_cards(text: Text) -> Iterator[PiiMatch]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if luhn_valid(digits):
            yield PiiMatch(CARD, match.start(), match.end(), digits)


def _iban_end(text: Text, start: int, length: int) -> int:
    """End of the `length` alphanumerics from `start`, single separators allowed; -1 if none."""
    count, position = 0, start
    while position < len(text) and count < length:
        character = text[position]
        if character.isascii() and character.isalnum():
            count += 1
        elif not (
            character in _IBAN_SEPARATORS and count > 0 and position + 1 < len(text) and text[position + 1].isalnum()
        ):
            return -1
        position += 1
    if count < length or (position < len(text) and text[position].isalnum()):
        return -1
    return position


def find_ibans(text: Text) -> Iterator[PiiMatch]:
    for match in _IBAN_START.finditer(text):
        country = match.group(1).upper()
        length = IBAN_LENGTHS.get(country)
        if length is None:
            continue
        end = _iban_end(text, match.start(), length)
        if end < 0:
            continue
        iban = re.sub(r"[ -]", "", text[match.start() : end]).upper()
        if iban_valid(iban):
            yield PiiMatch(IBAN, match.start(), end, iban)


# libphonenumber stops looking after `max_tries` candidates that are not valid numbers
# (65,535 by default): 130,000 characters of "1 " before a phone number hid it. Digit
# runs cost it at most about one try per character, so allow more than that.
_PHONE_TRIES_PER_CHARACTER = 2
_PHONE_MIN_TRIES = 65535


def find_phones(text: Text, regions: Sequence[Text]) -> Iterator[PiiMatch]:
    """Numbers libphonenumber deems valid, read as international or as numbers of `regions`."""
    seen = set()
    max_tries = max(_PHONE_MIN_TRIES, _PHONE_TRIES_PER_CHARACTER * len(text))
    for region in regions or (None,):
        matcher = phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID, max_tries=max_tries
        )
        for match in matcher:
            if (match.start, match.end) in seen:
                continue
            seen.add((match.start, match.end))
            normalized = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            yield PiiMatch(PHONE, match.start, match.end, normalized)


class PiiDetector:
    """Finds the enabled `kinds` of personal data in a text, without overlaps."""

    def __init__(self, kinds: Iterable[Text] = KINDS, phone_regions: Sequence[Text] = ("US",)) -> None:
        self.kinds = tuple(kind for kind in KINDS if kind in set(kinds))
        self.phone_regions = tuple(phone_regions)

    def _candidates(self, kind: Text, text: Text) -> Iterator[PiiMatch]:
        if kind == EMAIL and "@" in text:
            yield from find_emails(text)
        elif kind == IBAN:
            yield from find_ibans(text)
        elif kind == CARD:
            yield from find_cards(text)
        elif kind == PHONE and sum(character.isdigit() for character in text) >= 5:
            yield from find_phones(text, self.phone_regions)

    def find(self, text: Text) -> List[PiiMatch]:
        """All matches in text order; a match overlapping one of an earlier kind is dropped."""
        accepted: List[PiiMatch] = []
        claims = SpanClaims(len(text))
        for kind in self.kinds:
            for match in self._candidates(kind, text):
                if claims.claim_if_free(match.start, match.end):
                    accepted.append(match)
        return sorted(accepted, key=lambda match: match.start)

    def normalize(self, value: Text) -> Text:
        """The value as its kind normalises it, if it is exactly one match; else stripped."""
        stripped = value.strip()
        matches = self.find(stripped)
        if len(matches) == 1 and matches[0].start == 0 and matches[0].end == len(stripped):
            return matches[0].normalized
        return stripped

"""Check digits that tell a payment card or an IBAN from any other run of characters.

A customer-service chat is full of digit runs that are not personal data (order numbers
such as LP-482913, dates, amounts, tracking codes). Masking every long number would make
the stored conversation useless and would hide the order number the bot needs, so a
number is only treated as a card or an IBAN when its check digits say it is one:

* payment cards carry a Luhn check digit (ISO/IEC 7812): a random digit run passes one
  time in ten, and only runs of 13-19 digits are considered;
* IBANs carry two check digits over the whole account number (ISO 13616, mod 97): a
  random string passes about one time in a hundred, and it must also have its
  country's exact length.

Pure functions over strings, no Rasa: they are small enough to own rather than add a
dependency for.
"""

from typing import Dict, Text

CARD_MIN_DIGITS = 13
CARD_MAX_DIGITS = 19

# Total IBAN length per country (SWIFT IBAN registry). A country missing here is
# not detected: better a missed foreign IBAN than masking a product code.
# fmt: off
IBAN_LENGTHS: Dict[Text, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27,
    "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
# fmt: on


def luhn_valid(digits: Text) -> bool:
    """True if `digits` (digits only) is 13-19 long and its last digit is its Luhn check."""
    if not digits.isdigit() or not CARD_MIN_DIGITS <= len(digits) <= CARD_MAX_DIGITS:
        return False
    total = 0
    for position, character in enumerate(reversed(digits)):
        digit = int(character)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def iban_valid(iban: Text) -> bool:
    """True if `iban` (upper case, no separators) has its country's length and mod 97 == 1."""
    if len(iban) < 5 or not iban.isalnum() or not iban.isascii():
        return False
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    # Letters count as 10..35 (A=10), so the whole account is one big decimal number.
    number = "".join(str(int(character, 36)) for character in rearranged)
    return int(number) % 97 == 1

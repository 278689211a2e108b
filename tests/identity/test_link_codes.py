"""Link codes: random, in the documented alphabet, forgiving to type, stored only as a digest."""

import hashlib
import math

import pytest

from lepton_components.identity.link_codes import (
    ALPHABET,
    CODE_LENGTH,
    code_digest,
    display_code,
    new_code,
    normalise_code,
)


def test_codes_carry_forty_bits_and_do_not_repeat() -> None:
    assert len(set(ALPHABET)) == 32 and CODE_LENGTH * math.log2(len(ALPHABET)) >= 40
    codes = [new_code() for _ in range(2000)]
    assert all(len(code) == CODE_LENGTH and set(code) <= set(ALPHABET) for code in codes)
    assert len(set(codes)) == len(codes)
    # Every symbol shows up: the generator uses the whole alphabet, not a subset of it.
    assert set("".join(codes)) == set(ALPHABET)


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("K7QM-2XPA-9ZT3", "K7QM2XPA9ZT3"),
        ("k7qm 2xpa 9zt3", "K7QM2XPA9ZT3"),
        (" k7qm2xpa9zt3 ", "K7QM2XPA9ZT3"),
        ("1O2I-3L45-6789", "102131456789"),  # O, I, L read as 0, 1, 1
        ("K7QM-2XPA-9ZT", None),
        ("K7QM-2XPA-9ZT3B", None),
        ("K7QM-2XPA-9ZTU", None),  # U is not in the alphabet
        ("K7QM-2XPA-9ZT!", None),
        ("K7QM-2XPA", None),  # the 8-character codes of earlier versions
        ("-" * 100_000 + "K7QM2XPA9ZT3", None),
        ("", None),
    ],
)
def test_typed_codes_are_normalised_or_refused(typed: str, expected: str) -> None:
    assert normalise_code(typed) == expected


def test_the_displayed_code_reads_back_as_itself() -> None:
    code = new_code()
    assert normalise_code(display_code(code)) == code
    assert display_code("K7QM2XPA9ZT3") == "K7QM-2XPA-9ZT3"


def test_only_a_sha256_digest_is_kept() -> None:
    assert code_digest("K7QM2XPA") == hashlib.sha256(b"K7QM2XPA").hexdigest()
    assert "K7QM2XPA" not in code_digest("K7QM2XPA").upper()

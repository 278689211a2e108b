"""One-time link codes: generation, normalisation and the hash that is stored instead.

A code is 8 characters of Crockford's base32 alphabet (40 bits, about 1.1e12 values),
shown as `K7QM-2XPA`. Short enough to type on a phone, and, together with the registry's
limits (a few minutes of life, one use, a cap on wrong guesses per conversation and in
total), far out of reach of guessing: with 1,000 live codes and 100 wrong guesses allowed
per window, one window succeeds with probability about 1e-7.

Crockford's alphabet has no I, L, O or U, and reading treats O as 0 and I/L as 1, so the
letters people confuse are accepted. Only a SHA-256 digest of the normalised code is ever
stored or compared, so a database dump or a log line shows no usable code.
"""

import hashlib
import secrets
from typing import Optional, Text

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8
# Characters people type for another one of the alphabet.
_LOOK_ALIKES = {"O": "0", "I": "1", "L": "1"}
_SEPARATORS = " -_."


def new_code() -> Text:
    """A fresh random code from the operating system's CSPRNG, without separators."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def display_code(code: Text) -> Text:
    """`K7QM2XPA` -> `K7QM-2XPA`, the form shown to the customer."""
    half = CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def normalise_code(typed: Text) -> Optional[Text]:
    """The canonical code for what a customer typed, or None if it cannot be one.

    Case, separators and look-alike letters are forgiven; anything else makes it invalid.
    """
    characters = [_LOOK_ALIKES.get(c, c) for c in typed.upper() if c not in _SEPARATORS]
    code = "".join(characters)
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def code_digest(code: Text) -> Text:
    """What the registry stores and looks up: hex SHA-256 of the canonical code."""
    return hashlib.sha256(code.encode("ascii")).hexdigest()

"""One-time link codes: generation, normalisation and the hash that is stored instead.

A code is 12 characters of Crockford's base32 alphabet (60 bits, about 1.2e18 values),
shown as `K7QM-2XPA-9ZT3`. Still short enough to type on a phone, and out of reach of
guessing without any global cap (which would let a guesser lock everybody out): a code
lives a few minutes and works once, and each conversation may send only a few wrong codes
per window. A guesser who opens new conversations as fast as the server answers, say
1,000 codes a second for the whole 5 minutes a code lives, against 10,000 live codes,
succeeds with probability 3e5 * 1e4 / 1.2e18, about 3e-9.

Crockford's alphabet has no I, L, O or U, and reading treats O as 0 and I/L as 1, so the
letters people confuse are accepted. Only a SHA-256 digest of the normalised code is ever
stored or compared, so a database dump or a log line shows no usable code.
"""

import hashlib
import secrets
from typing import Optional, Text

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
GROUP_LENGTH = 4
# Characters people type for another one of the alphabet.
_LOOK_ALIKES = {"O": "0", "I": "1", "L": "1"}
_SEPARATORS = " -_."


def new_code() -> Text:
    """A fresh random code from the operating system's CSPRNG, without separators."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def display_code(code: Text) -> Text:
    """`K7QM2XPA9ZT3` -> `K7QM-2XPA-9ZT3`, the form shown to the customer."""
    return "-".join(code[start:start + GROUP_LENGTH] for start in range(0, len(code), GROUP_LENGTH))


def normalise_code(typed: Text) -> Optional[Text]:
    """The canonical code for what a customer typed, or None if it cannot be one.

    Case, separators and look-alike letters are forgiven; anything else makes it invalid.
    """
    if len(typed) > 4 * CODE_LENGTH:  # no more than separators between the characters
        return None
    characters = [_LOOK_ALIKES.get(c, c) for c in typed.upper() if c not in _SEPARATORS]
    code = "".join(characters)
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def code_digest(code: Text) -> Text:
    """What the registry stores and looks up: hex SHA-256 of the canonical code."""
    return hashlib.sha256(code.encode("ascii")).hexdigest()

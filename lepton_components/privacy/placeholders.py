"""The tokens that replace personal data: `[EMAIL]` for `mask`, `[EMAIL:3f1c...]` for `hash`.

`hash` is HMAC-SHA256 keyed with a secret from the environment, truncated to 16 hex
characters (64 bits): the same value always gives the same token, so analytics can
count returning customers or join a slot with the text it came from, while nobody
without the key can test guesses (a plain SHA-256 of a phone number is reversed by
hashing all numbers of the plan). The token names what was there, so a stored
conversation still reads naturally.

Tokens are recognised again (`is_placeholder`, `PLACEHOLDER`): masking runs on every
save over events that may have been masked before, and must leave its own output
alone (hashing a token would give a new token for the same value).
"""

import hashlib
import hmac
import re
from typing import Optional, Text

from lepton_components.privacy.privacy_policy import HASH, MASK

HASH_HEX_CHARS = 16
PLACEHOLDER = re.compile(rf"\[[A-Z0-9_]+(?::[0-9a-f]{{{HASH_HEX_CHARS}}})?\]")


def label_of(name: Text) -> Text:
    """A slot, entity or kind name as a placeholder label: `order-number` -> `ORDER_NUMBER`."""
    return re.sub(r"[^A-Z0-9_]", "_", name.upper()) or "PII"


def is_placeholder(value: Text) -> bool:
    return PLACEHOLDER.fullmatch(value) is not None


class Placeholders:
    """Makes the token for a value; holds the HMAC key when `hash` is configured."""

    def __init__(self, hash_secret: Optional[bytes] = None) -> None:
        self._secret = hash_secret

    def token(self, action: Text, label: Text, normalized: Text) -> Text:
        if action == MASK:
            return f"[{label}]"
        if action == HASH:
            if self._secret is None:
                # PrivacyPolicy refuses `hash` without a secret; reaching here is a bug.
                raise RuntimeError("`hash` placeholders need a secret (PrivacyPolicy.hash_secret).")
            digest = hmac.new(self._secret, normalized.encode("utf-8"), hashlib.sha256).hexdigest()
            return f"[{label}:{digest[:HASH_HEX_CHARS]}]"
        raise ValueError(f"No placeholder for action {action!r}: only `mask` and `hash` replace values.")

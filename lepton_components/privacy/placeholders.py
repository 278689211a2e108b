"""The tokens that replace personal data: `[EMAIL]` for `mask`, `[EMAIL:3f1c...]` for `hash`.

`hash` is HMAC-SHA256 keyed with a secret from the environment, truncated to 16 hex
characters (64 bits): the same value always gives the same token, so analytics can
count returning customers or join a slot with the text it came from, while nobody
without the key can test guesses (a plain SHA-256 of a phone number is reversed by
hashing all numbers of the plan). The token names what was there, so a stored
conversation still reads naturally.

Tokens are recognised again (`Placeholders.is_own`): masking must leave its own output
alone (hashing a token would give a new token for the same value). Only the exact tokens
this policy produces count, a label it uses in the form its action writes, and only if
the detectors find nothing in them: a customer can type anything in brackets, and
`[4111111111111111]`, `[NOTE:...]` or `[EMAIL:378282246310005a]` (an Amex number and a
hex letter) taken for a token would be stored raw. So that the masker's own tokens always
pass, a digest whose first 16 hex characters hold something a detector finds (about one
in 2,500 has a Luhn-valid run of 13+ digits) uses the next 16: still one token per value.
"""

import hashlib
import hmac
import re
from typing import Callable, Dict, FrozenSet, Iterable, Optional, Set, Text, Tuple

from lepton_components.privacy.pii_detectors import KINDS
from lepton_components.privacy.privacy_policy import HASH, MASK, PrivacyPolicy

HASH_HEX_CHARS = 16
# The form of every token: a label, then for `hash` exactly the digest's hex characters.
# Linear to scan: a label cannot contain the bracket that starts the next candidate.
TOKEN_SHAPE = re.compile(rf"\[([A-Z0-9_]+)(?::([0-9a-f]{{{HASH_HEX_CHARS}}}))?\]")


def label_of(name: Text) -> Text:
    """A slot, entity or kind name as a placeholder label: `order-number` -> `ORDER_NUMBER`."""
    return re.sub(r"[^A-Z0-9_]", "_", name.upper()) or "PII"


def token_forms(policy: PrivacyPolicy) -> Dict[Text, FrozenSet[Text]]:
    """label -> the actions (`mask`, `hash`) whose tokens `policy` writes with that label."""
    forms: Dict[Text, Set[Text]] = {}
    for settings in (policy.kinds, policy.slots, policy.entities):
        for name, action in settings.items():
            if action in (MASK, HASH):
                forms.setdefault(label_of(name), set()).add(action)
    return {label: frozenset(actions) for label, actions in forms.items()}


class Placeholders:
    """Makes the token for a value and recognises its own; holds the HMAC key for `hash`."""

    def __init__(
        self,
        hash_secret: Optional[bytes] = None,
        forms: Optional[Dict[Text, FrozenSet[Text]]] = None,
        finds_personal_data: Optional[Callable[[Text], bool]] = None,
    ) -> None:
        """`forms` as from `token_forms` (default: `mask` tokens of every detected kind);
        `finds_personal_data` tells whether the detectors find anything in a text."""
        self._secret = hash_secret
        self._forms = dict(forms) if forms is not None else {label_of(kind): frozenset({MASK}) for kind in KINDS}
        self._finds_personal_data = finds_personal_data or (lambda text: False)

    def is_own(self, text: Text) -> bool:
        """Whether `text` is exactly a token this policy writes, with nothing detectable in it."""
        match = TOKEN_SHAPE.fullmatch(text)
        return match is not None and self._is_own_form(match) and not self._finds_personal_data(text)

    def own_tokens(self, text: Text) -> Iterable[Tuple[int, int]]:
        """`(start, end)` of each text in token form of this policy; the caller checks what is inside."""
        return ((match.start(), match.end()) for match in TOKEN_SHAPE.finditer(text) if self._is_own_form(match))

    def _is_own_form(self, match: "re.Match[Text]") -> bool:
        action = HASH if match.group(2) else MASK
        return action in self._forms.get(match.group(1), ())

    def token(self, action: Text, label: Text, normalized: Text) -> Text:
        if action == MASK:
            return f"[{label}]"
        if action == HASH:
            if self._secret is None:
                # PrivacyPolicy refuses `hash` without a secret; reaching here is a bug.
                raise RuntimeError("`hash` placeholders need a secret (PrivacyPolicy.hash_secret).")
            digest = hmac.new(self._secret, normalized.encode("utf-8"), hashlib.sha256).hexdigest()
            for start in range(0, len(digest) - HASH_HEX_CHARS + 1, HASH_HEX_CHARS):
                token = f"[{label}:{digest[start:start + HASH_HEX_CHARS]}]"
                if not self._finds_personal_data(token):
                    return token
            # All four windows look like personal data (odds about 1e-14): say less, not more.
            return f"[{label}]"
        raise ValueError(f"No placeholder for action {action!r}: only `mask` and `hash` replace values.")

"""Who may post to the REST channel: the website's own backend, proven on every request.

Stock Rasa's REST channel takes any request, and conversations are keyed by the
`sender` the caller names, so anyone who can reach the port can write into any
customer's conversation and read the replies (which quote order numbers). The REST
channel is meant for a server that relays its customers' messages, so every request
must carry one of:

* `Authorization: Bearer <token>`, the channel's `token`; or
* an HMAC signature, for backends that should not send a secret at all:
  `X-Lepton-Timestamp: <unix seconds>` and
  `X-Lepton-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body, keyed with signing_secret>`.
  Requests older or newer than `MAX_CLOCK_SKEW_S` are refused, so a captured request
  cannot be replayed later.

Both are compared in constant time. Browsers never talk to this channel; they use the
web chat, whose sessions the server issues.
"""

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Callable, Optional, Text

from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.server.bearer import (
    MalformedAuthorization,
    header_bytes,
    malformed_authorization_response,
    presented_bearer,
    tokens_match,
    unauthorized_response,
)

MIN_SECRET_LENGTH = 32
MAX_CLOCK_SKEW_S = 300
TIMESTAMP_HEADER = "X-Lepton-Timestamp"
SIGNATURE_HEADER = "X-Lepton-Signature"
SIGNATURE_PREFIX = "sha256="


def signature(secret: Text, timestamp: Text, body: bytes) -> Text:
    """`X-Lepton-Signature` for a request, as a client computes it."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


@dataclass(frozen=True)
class RestCredential:
    """The channel's secret: a bearer `token` or an HMAC `signing_secret` (exactly one)."""

    token: Optional[Text] = None
    signing_secret: Optional[Text] = None
    clock: Callable[[], float] = time.time

    def refusal(self, request: Request) -> Optional[HTTPResponse]:
        """The 401 (400 for a header that is not text) when `request` is not from the backend."""
        try:
            problem = self._bearer_problem(request) if self.token is not None else self._signature_problem(request)
        except MalformedAuthorization as malformed:
            return malformed_authorization_response(malformed)
        return None if problem is None else unauthorized_response(problem)

    def _bearer_problem(self, request: Request) -> Optional[Text]:
        presented = presented_bearer(request.headers.get("Authorization"))
        if presented is None:
            return "Send the REST channel's token as `Authorization: Bearer <token>`."
        if not tokens_match(presented, self.token.encode("utf-8")):  # type: ignore[union-attr]
            return "The bearer token is not the REST channel's token."
        return None

    def _signature_problem(self, request: Request) -> Optional[Text]:
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        presented = request.headers.get(SIGNATURE_HEADER, "")
        if not timestamp or not presented:
            return f"Sign the request: send `{TIMESTAMP_HEADER}` and `{SIGNATURE_HEADER}` (docs/hardening.md)."
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
            return f"`{TIMESTAMP_HEADER}` must be the current Unix time in whole seconds."
        if abs(self.clock() - int(timestamp)) > MAX_CLOCK_SKEW_S:
            return f"`{TIMESTAMP_HEADER}` is more than {MAX_CLOCK_SKEW_S} s away from the server's clock."
        expected = signature(self.signing_secret or "", timestamp, request.body or b"")
        if not tokens_match(header_bytes(presented.strip(), SIGNATURE_HEADER), expected.encode("ascii")):
            return "The request signature does not match its body and timestamp."
        return None

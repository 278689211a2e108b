"""Read `Authorization: Bearer <token>` from a hostile client, and compare tokens in constant time.

Sanic 21.12 decodes header bytes as UTF-8 with `surrogateescape`, so a header holding
invalid UTF-8 arrives as a `str` that raises `UnicodeEncodeError` the moment anyone
encodes it: unchecked, a stray `\\xff` in a header turns into HTTP 500. Here such a header
is a `MalformedAuthorization` (answer 400); any other scheme, or `Bearer` with nothing
after it, presents no token (answer 401).
"""

import hmac
from typing import Optional, Text

from sanic.response import HTTPResponse

from lepton_components.server.failures import error_response

BEARER = "bearer"


class MalformedAuthorization(ValueError):
    """The `Authorization` header is not text: answer 400, never try it as a token."""


def header_bytes(value: Text, name: Text) -> bytes:
    """`value` as UTF-8 bytes; `MalformedAuthorization` naming the header when it is not UTF-8."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedAuthorization(f"The {name} header is not valid UTF-8; send the token as plain text.") from None


def presented_bearer(authorization: Optional[Text]) -> Optional[bytes]:
    """The token of an `Authorization: Bearer <token>` header, or None when it presents none."""
    if authorization is None:
        return None
    scheme, _, token = header_bytes(authorization, "Authorization").decode("utf-8").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != BEARER or not token:
        return None
    return token.encode("utf-8")


def tokens_match(presented: Optional[bytes], expected: bytes) -> bool:
    """Constant-time comparison; no token never matches."""
    return presented is not None and hmac.compare_digest(presented, expected)


def malformed_authorization_response(problem: MalformedAuthorization) -> HTTPResponse:
    return error_response(400, "bad_request", str(problem))


def unauthorized_response(message: Text) -> HTTPResponse:
    """401 in the JSON error shape, telling the client which scheme to use."""
    reply = error_response(401, "unauthorized", message)
    reply.headers["WWW-Authenticate"] = "Bearer"
    return reply

"""Web chat sessions: tokens the server signs, with a lifetime, that the widget renews.

Rasa's socket.io channel lets the browser choose its `session_id` and uses it as the
sender id, and the first version of this channel accepted any well-formed token a
client made up. Here only the server makes sessions: `POST /sessions` draws a random
conversation id (`web-` + 160 random bits) and hands the browser a token that names it,
signed with HMAC-SHA256 under the server's `session_secret` (a JWT, made and checked
with PyJWT, which Rasa already depends on). A token the server did not sign, or one
changed by a single character, is refused; nobody can pick the conversation a token
opens. Every replica with the same secret accepts every token, so any replica serves
any session and restarts keep conversations.

Lifetime, both configurable:

* idle: a token is valid for `idle_timeout_s` after it was issued. The widget renews
  it (`POST /sessions/refresh`) while its page is open, so a session ends that long
  after the customer's last page closed;
* absolute: no token of a session is valid beyond `max_lifetime_s` after the session
  started, however often it was renewed.

A renewed token names the same conversation; the old one stays valid until its own
expiry (nothing is stored per token). To end a session at once, it is revoked
(`revocation.py`).
"""

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Text

import jwt
from sanic.request import Request

SENDER_PREFIX = "web-"
# 160 random bits, hex: the same shape as the sender ids of earlier versions.
SENDER_ID_PATTERN = re.compile(r"web-[0-9a-f]{40}")
AUDIENCE = "lepton:web_chat"
ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32
# Three base64url parts. The whole header is capped before any parsing, so a hostile
# `Authorization` header costs one bounded regex match.
MAX_TOKEN_LENGTH = 1024
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Claim holding the session's start (seconds since the epoch), for the absolute lifetime.
STARTED_CLAIM = "sst"
REQUIRED_CLAIMS = ("sub", "iat", "exp", STARTED_CLAIM)

INVALID, EXPIRED = "invalid_session", "session_expired"


@dataclass(frozen=True)
class Session:
    """A verified token: whose conversation, when the session began, when the token ends."""

    sender_id: Text
    started_at: int
    issued_at: int
    expires_at: int


@dataclass(frozen=True)
class IssuedToken:
    """A token for the browser and when it should ask for the next one."""

    token: Text
    session: Session
    # Seconds until the widget should renew, or None when renewing would not extend
    # the session (its absolute lifetime is what ends it).
    refresh_in: Optional[int]
    expires_in: int

    def as_json(self) -> Dict[Text, Any]:
        return {"session": self.token, "expires_in": self.expires_in, "refresh_in": self.refresh_in}


class SessionRefused(Exception):
    """The request's token does not open a conversation; `code` and `message` say why."""

    def __init__(self, code: Text, message: Text) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SessionIssuer:
    """Makes and checks session tokens with one secret and one pair of lifetimes."""

    def __init__(
        self,
        secret: Text,
        idle_timeout_s: float,
        max_lifetime_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the session secret must have at least {MIN_SECRET_LENGTH} characters")
        self._key = secret.encode("utf-8")
        self.idle_timeout_s = idle_timeout_s
        self.max_lifetime_s = max_lifetime_s
        self.clock = clock

    def new_session(self) -> IssuedToken:
        """A token for a new conversation, with an id nobody chose."""
        now = int(self.clock())
        return self._issue(SENDER_PREFIX + secrets.token_hex(20), started_at=now, now=now)

    def renew(self, session: Session) -> IssuedToken:
        """A fresh token for the same conversation and session start."""
        return self._issue(session.sender_id, started_at=session.started_at, now=int(self.clock()))

    def _issue(self, sender_id: Text, started_at: int, now: int) -> IssuedToken:
        absolute_end = started_at + int(self.max_lifetime_s)
        expires_at = min(now + max(1, int(self.idle_timeout_s)), absolute_end)
        claims = {"sub": sender_id, "iat": now, "exp": expires_at, STARTED_CLAIM: started_at, "aud": AUDIENCE}
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        expires_in = max(0, expires_at - now)
        # Renewing halfway leaves the other half for a late or throttled timer.
        refresh_in = None if expires_at >= absolute_end else max(1, expires_in // 2)
        return IssuedToken(token, Session(sender_id, started_at, now, expires_at), refresh_in, expires_in)

    def verify(self, token: Text) -> Session:
        """The session of a token this server signed and that has not expired."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                # Times are checked below against `self.clock`, so tests can move it.
                options={"verify_exp": False, "verify_iat": False, "require": list(REQUIRED_CLAIMS)},
            )
        except jwt.InvalidTokenError:
            raise SessionRefused(
                INVALID,
                "The session token was not issued by this server (or was altered): POST /sessions for a new "
                "one, then send it as `Authorization: Bearer <token>`.",
            ) from None
        session = _session_from(claims)
        if session is None:
            raise SessionRefused(INVALID, "The session token is malformed: POST /sessions for a new one.")
        if self.clock() >= session.expires_at:
            raise SessionRefused(
                EXPIRED,
                "The session has expired: POST /sessions for a new one (the widget renews its token with "
                "POST /sessions/refresh while it is open).",
            )
        return session


def _session_from(claims: Dict[Text, Any]) -> Optional[Session]:
    sender_id = claims.get("sub")
    times = [claims.get(name) for name in ("iat", "exp", STARTED_CLAIM)]
    if not isinstance(sender_id, str) or not SENDER_ID_PATTERN.fullmatch(sender_id):
        return None
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in times):
        return None
    issued_at, expires_at, started_at = times
    return Session(sender_id, started_at, issued_at, expires_at)


def bearer_token(request: Request) -> Optional[Text]:
    """The token from `Authorization: Bearer ...`, or None if absent or not token-shaped.

    A header rather than the URL, so access logs and browser history never hold it.
    Sanic decodes header bytes that are not UTF-8 with `surrogateescape`; such a
    header fails the ASCII pattern and is refused like any other malformed one.
    """
    header = request.headers.get("Authorization", "")
    if len(header) > MAX_TOKEN_LENGTH + len("Bearer "):
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not TOKEN_PATTERN.fullmatch(token):
        return None
    return token

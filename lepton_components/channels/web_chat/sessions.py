"""Web chat sessions: a secret bearer token in the browser, a derived sender id on the server.

Rasa's socket.io channel lets the browser choose its `session_id` and uses it as the
sender id, so anyone who learns (or guesses) a sender id, from a log line, the tracker
store or an analytics export, can join that conversation. Here the browser holds a
256-bit random token and the conversation is keyed by a one-way hash of it: the sender
id that shows up everywhere else cannot be turned back into a token, and a token cannot
be guessed. Nothing needs to be stored per session, so every replica accepts every
token, and restarts keep conversations.
"""

import hashlib
import re
import secrets
from typing import Optional, Text

from sanic.request import Request

TOKEN_BYTES = 32
# secrets.token_urlsafe(32): 43 characters of base64url without padding.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
SENDER_PREFIX = "web-"


def new_session_token() -> Text:
    """A fresh unguessable session token for a browser."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def sender_id_for(token: Text) -> Text:
    """The conversation id for a token; one-way, so it cannot be used as a token."""
    return SENDER_PREFIX + hashlib.sha256(token.encode("ascii")).hexdigest()[:40]


def bearer_token(request: Request) -> Optional[Text]:
    """The session token from `Authorization: Bearer ...`, or None if absent or malformed.

    A header rather than the URL, so access logs and browser history never hold it.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not TOKEN_PATTERN.fullmatch(token):
        return None
    return token

"""Login sessions: the random token in an operator's cookie, and what it stands for.

The browser holds a random token (`secrets.token_urlsafe(32)`); the database holds only
its SHA-256 (`lepton_operator_sessions`), so a copy of the database opens no session.
Each login makes a new token (a token planted before login is never promoted), and a
session ends at the first of: logout, `session_hours` after login, an hour without a
request, a new password or the account being disabled. The account row is read with
every session, so a changed role or queue list counts from the next request on.

Each session's CSRF token is an HMAC of its token: different per session, never stored,
and not computable from the database.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Callable, Optional, Text

import sqlalchemy as sa

from lepton_components.operators.access.accounts import Operator
from lepton_components.operators.access.tables import accounts, sessions

IDLE_TIMEOUT_S = 3600.0
# `last_seen_at` is written at most this often: not one UPDATE per page view.
TOUCH_INTERVAL_S = 60.0
# token_urlsafe(32) is 43 characters; anything much longer is not one of ours.
MAX_TOKEN_LENGTH = 128


def token_hash(token: Text) -> Text:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token_of(token: Text) -> Text:
    return hmac.new(token.encode("utf-8"), b"lepton-operator-csrf", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class LoginSession:
    """A valid session: who it belongs to and the CSRF token its forms must send."""

    operator: Operator
    csrf_token: Text


class SessionStore:
    """Sessions in one database. Every method blocks (SQL): call it through `asyncio.to_thread`."""

    def __init__(
        self,
        engine: sa.engine.Engine,
        session_hours: float,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.lifetime_s = session_hours * 3600.0
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock

    def start(self, username: Text) -> Text:
        """A new session for `username`; returns the token for the cookie."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self.engine.begin() as connection:
            # Ended sessions are forgotten here, so the table holds only live ones and recent leftovers.
            connection.execute(
                sessions.delete().where(
                    sa.or_(sessions.c.expires_at <= now, sessions.c.last_seen_at <= now - self.idle_timeout_s)
                )
            )
            connection.execute(
                sessions.insert().values(
                    token_hash=token_hash(token),
                    username=username,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self.lifetime_s,
                )
            )
        return token

    def find(self, token: Optional[Text]) -> Optional[LoginSession]:
        """The session of a cookie's token, if it is still valid (and its use noted)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        key = token_hash(token)
        query = (
            sa.select(sessions.c.last_seen_at, sessions.c.expires_at, accounts.c.username, accounts.c.role,
                      accounts.c.queues, accounts.c.disabled)
            .select_from(sessions.join(accounts, sessions.c.username == accounts.c.username))
            .where(sessions.c.token_hash == key)
        )
        now = self._clock()
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        if row.disabled or row.expires_at <= now or row.last_seen_at <= now - self.idle_timeout_s:
            self._delete(key)
            return None
        if now - row.last_seen_at >= TOUCH_INTERVAL_S:
            with self.engine.begin() as connection:
                connection.execute(sessions.update().where(sessions.c.token_hash == key).values(last_seen_at=now))
        operator = Operator(row.username, row.role, tuple(row.queues or ()))
        return LoginSession(operator, csrf_token_of(token))

    def end(self, token: Text) -> None:
        """Logout: the token opens nothing from now on."""
        self._delete(token_hash(token))

    def _delete(self, key: Text) -> None:
        with self.engine.begin() as connection:
            connection.execute(sessions.delete().where(sessions.c.token_hash == key))

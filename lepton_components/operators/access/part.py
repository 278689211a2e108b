"""The access part: accounts, login sessions, the login and users pages, the first admin."""

import asyncio
import logging
from typing import Any, Callable, Optional, Text, TypeVar

import sqlalchemy as sa
from sanic import Blueprint
from sanic.request import Request

from lepton_components.operators.access.accounts import AccountProblem, AccountStore
from lepton_components.operators.access.cookies import SESSION_COOKIE
from lepton_components.operators.access.login_sessions import LoginSession, SessionStore
from lepton_components.operators.access.passwords import Passwords
from lepton_components.operators.access.routes import register_access_routes
from lepton_components.operators.part import ConsolePart, OperatorState
from lepton_components.operators.settings import OperatorSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
FIRST_ADMIN = "admin"
CLI = "python -m lepton_components.operators.access.accounts"
# Each argon2 hash takes 64 MiB and most of a core for 0.2 s: a flood of logins from many
# addresses waits its turn instead of filling the thread pool the console's SQL needs.
MAX_CONCURRENT_HASHES = 2


class AccessPart(ConsolePart):
    """Who may use the console; `guard.operator_required` is its door for every other part."""

    def __init__(self, console: Any) -> None:
        super().__init__(console)
        self._hashing = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
        self.passwords = Passwords()

    @property
    def settings(self) -> OperatorSettings:
        return self.console.settings

    def accounts(self, engine: sa.engine.Engine) -> AccountStore:
        return AccountStore(engine, self.passwords)

    def sessions(self, engine: sa.engine.Engine) -> SessionStore:
        return SessionStore(engine, self.settings.session_hours)

    def register_routes(self, blueprint: Blueprint) -> None:
        register_access_routes(blueprint, self)

    @staticmethod
    def session_token(request: Request) -> Optional[Text]:
        return request.cookies.get(SESSION_COOKIE) or None

    async def session_of(self, request: Request, state: OperatorState) -> Optional[LoginSession]:
        """The request's valid login session, if it has one."""
        token = self.session_token(request)
        if token is None:
            return None
        return await asyncio.to_thread(self.sessions(state.engine).find, token)

    async def hashing(self, function: Callable[..., T], *args: Any) -> T:
        """Runs password work (argon2) in a thread, a few at a time."""
        async with self._hashing:
            return await asyncio.to_thread(function, *args)

    async def on_ready(self, state: OperatorState) -> None:
        await self.hashing(self._ensure_first_admin, self.accounts(state.engine))

    def _ensure_first_admin(self, store: AccountStore) -> None:
        """Creates `admin` from `admin_password` if there is no admin; never changes an account."""
        if store.has_enabled_admin():
            return
        password = self.settings.admin_password
        if password is not None and store.get(FIRST_ADMIN) is None:
            try:
                store.create(FIRST_ADMIN, password, role="admin")
            except AccountProblem:
                # Another replica made it first.
                if store.has_enabled_admin():
                    return
                raise
            logger.info(f"Created the operator console's `{FIRST_ADMIN}` account from `admin_password`.")
            return
        if password is None:
            how = (
                "set `admin_password: ${LEPTON_OPERATOR_PASSWORD}` in the console's credentials.yml entry (the "
                "Makefile generates one into .lepton-operator-password) and restart"
            )
        else:
            how = (
                f"`admin_password` was not used because an account named `{FIRST_ADMIN}` exists and is not an "
                f"enabled admin; run `{CLI} enable {FIRST_ADMIN}` if it is the disabled admin"
            )
        logger.warning(
            f"The operator console has no enabled admin account, so nobody can manage accounts: {how}, or run "
            f"`{CLI} add <username> --role admin`."
        )

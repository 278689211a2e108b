"""The access part's pages: login, logout and account management (admins).

Logging in is the one console action open to anyone, so it is guarded before any work:
the body is capped, the form must carry the login CSRF token of its own cookie (another
site cannot log a browser in to an account of its choosing), attempts are rate limited
per address and per username, and the password is checked by argon2 in a thread. The
reply is the same for an unknown username, a wrong password and a disabled account.
"""

import asyncio
import datetime
import hmac
import logging
import secrets
from typing import TYPE_CHECKING, Dict, Optional, Text
from urllib.parse import quote, unquote, urlsplit

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.channels.rate_limits import Limited, RateLimit, RateLimiter
from lepton_components.operators.access.accounts import DEFAULT_QUEUES, USERNAME_PATTERN, AccountProblem, Operator
from lepton_components.operators.access.cookies import (
    LOGIN_CSRF_COOKIE,
    LOGIN_PATH,
    clear_login_csrf_cookie,
    clear_session_cookie,
    set_login_csrf_cookie,
    set_session_cookie,
)
from lepton_components.operators.access.forms import BadForm, form_fields
from lepton_components.operators.access.guard import (
    CSRF_FIELD,
    console_state,
    csrf_matches,
    json_error,
    operator_required,
    presented_csrf_token,
)
from lepton_components.operators.access.passwords import PasswordRejected
from lepton_components.operators.pages import URL_PREFIX, render, secure_headers

if TYPE_CHECKING:
    from lepton_components.operators.access.part import AccessPart

logger = logging.getLogger(__name__)

INBOX_PATH = f"{URL_PREFIX}/inbox"
USERS_PATH = f"{URL_PREFIX}/users"
MAX_LOGIN_BODY_BYTES = 4096
MAX_USERS_BODY_BYTES = 16 * 1024
MAX_NEXT_LENGTH = 2000
FAILED_LOGIN = "Wrong username or password."
DONE = ("created", "disabled", "enabled")
LOGIN_PER_ADDRESS = "login_per_address"
LOGIN_PER_USERNAME = "login_per_username"
# A person mistyping gets several tries, a guesser a handful a minute per address and per account.
LOGIN_LIMITS = {
    LOGIN_PER_ADDRESS: RateLimit(per_minute=5, burst=10),
    LOGIN_PER_USERNAME: RateLimit(per_minute=5, burst=10),
}


def safe_next(value: Optional[Text]) -> Optional[Text]:
    """`value` if it is a console page of this site to return to after login, else None.

    Only a path under /webhooks/operators/ passes: no scheme or host (`https://evil`,
    `//evil`), no backslashes or control characters browsers read as slashes, and no
    dot segments (plain or percent-encoded) that would climb out of the console.
    """
    if not value or len(value) > MAX_NEXT_LENGTH or not all(0x21 <= ord(char) < 0x7F for char in value):
        return None
    if "\\" in value or "//" in value:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith(f"{URL_PREFIX}/"):
        return None
    if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
        return None
    if parts.path.rstrip("/") == LOGIN_PATH:
        return None
    return value


def _redirect(location: Text) -> HTTPResponse:
    return secure_headers(response.redirect(location, status=303))


def _when(timestamp: Optional[float]) -> Text:
    if timestamp is None:
        return "never"
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def register_access_routes(blueprint: Blueprint, access: "AccessPart") -> None:
    settings = access.settings
    # Per console: counted before any password is checked.
    login_limits = RateLimiter(LOGIN_LIMITS)

    def login_page(
        request: Request, status: int = 200, error: Optional[Text] = None, username: Text = "",
        next_path: Optional[Text] = None, headers: Optional[Dict[Text, Text]] = None,
    ) -> HTTPResponse:
        """The login form with a fresh login CSRF token, in its cookie and in the form."""
        token = secrets.token_urlsafe(32)
        reply = render(
            request, "login.html", status=status, active="login", error=error, username=username,
            login_csrf=token, next_path=next_path or "",
        )
        reply.headers.update(headers or {})
        set_login_csrf_cookie(reply, token, settings)
        return reply

    def limited_login(request: Request, username: Text) -> Optional[Limited]:
        limited = login_limits.check(LOGIN_PER_ADDRESS, request.ip or "unknown")
        if limited is None and USERNAME_PATTERN.fullmatch(username):
            limited = login_limits.check(LOGIN_PER_USERNAME, username)
        return limited

    @blueprint.route("/", methods=["GET"], name="operators_home")
    async def home(request: Request) -> HTTPResponse:
        return _redirect(INBOX_PATH)

    @blueprint.route("/login", methods=["GET"], name="operators_login_form")
    async def login_form(request: Request) -> HTTPResponse:
        next_path = safe_next(request.args.get("next"))
        state = await console_state(request)
        if isinstance(state, HTTPResponse):
            return state
        if await access.session_of(request, state) is not None:
            return _redirect(next_path or INBOX_PATH)
        return login_page(request, next_path=next_path)

    @blueprint.route("/login", methods=["POST"], name="operators_login")
    async def login(request: Request) -> HTTPResponse:
        if len(request.body) > MAX_LOGIN_BODY_BYTES:
            return login_page(request, 413, f"The login form may be at most {MAX_LOGIN_BODY_BYTES} bytes.")
        try:
            form = form_fields(request, max_fields=10)
        except BadForm as problem:
            return login_page(request, 400, str(problem))
        username, password = form.get("username", "").strip().lower(), form.get("password", "")
        next_path = safe_next(form.get("next"))
        expected, presented = request.cookies.get(LOGIN_CSRF_COOKIE) or "", form.get(CSRF_FIELD) or ""
        if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
            return login_page(
                request, 403, "This login form expired or was not sent from this page; log in again here.",
                username, next_path,
            )
        if not username or not password:
            return login_page(request, 400, "Enter your username and password.", username, next_path)
        limited = limited_login(request, username)
        if limited is not None:
            logger.warning(f"Operator login refused ({limited.name}) from {request.ip} for {username!r}.")
            wait = str(limited.retry_after_s)
            return login_page(
                request, 429, f"Too many login attempts; wait {wait} seconds and try again.", username, next_path,
                headers={"Retry-After": wait},
            )
        state = await console_state(request)
        if isinstance(state, HTTPResponse):
            return state
        operator = await access.hashing(access.accounts(state.engine).authenticate, username, password)
        if operator is None:
            logger.info(f"Operator login failed for {username!r} from {request.ip}.")
            return login_page(request, 401, FAILED_LOGIN, username, next_path)
        sessions = access.sessions(state.engine)
        old_token = access.session_token(request)
        if old_token is not None:
            await asyncio.to_thread(sessions.end, old_token)
        token = await asyncio.to_thread(sessions.start, operator.username)
        logger.info(f"Operator {operator.username} ({operator.role}) logged in from {request.ip}.")
        reply = _redirect(next_path or INBOX_PATH)
        set_session_cookie(reply, token, settings)
        clear_login_csrf_cookie(reply, settings)
        return reply

    @blueprint.route("/logout", methods=["POST"], name="operators_logout")
    async def logout(request: Request) -> HTTPResponse:
        state = await console_state(request)
        if isinstance(state, HTTPResponse):
            return state
        found = await access.session_of(request, state)
        if found is not None:
            if not csrf_matches(presented_csrf_token(request), found.csrf_token):
                return json_error(
                    403, "csrf_token_invalid", "Log out with the page's button (this request did not carry its "
                    "CSRF token); reload the page if it is old.",
                )
            await asyncio.to_thread(access.sessions(state.engine).end, access.session_token(request))
            logger.info(f"Operator {found.operator.username} logged out.")
        reply = _redirect(LOGIN_PATH)
        clear_session_cookie(reply, settings)
        return reply

    async def users_page(
        request: Request, status: int = 200, notice: Optional[Text] = None, error: Optional[Text] = None,
        form: Optional[Dict[Text, Text]] = None,
    ) -> HTTPResponse:
        accounts = await asyncio.to_thread(access.accounts(request.ctx.operator_state.engine).list)
        rows = [
            {"account": account, "created": _when(account.created_at), "last_login": _when(account.last_login_at)}
            for account in accounts
        ]
        return render(
            request, "users.html", status=status, active="users", rows=rows, notice=notice, error=error,
            form=form or {"username": "", "role": "agent", "queues": ", ".join(DEFAULT_QUEUES)},
        )

    @blueprint.route("/users", methods=["GET"], name="operators_users")
    @operator_required(role="admin")
    async def users(request: Request, operator: Operator) -> HTTPResponse:
        notice = None
        for done in DONE:
            name = request.args.get(done)
            if name and USERNAME_PATTERN.fullmatch(name):
                notice = f"Account {name} {done}."
        return await users_page(request, notice=notice)

    @blueprint.route("/users", methods=["POST"], name="operators_users_change")
    @operator_required(role="admin")
    async def change_users(request: Request, operator: Operator) -> HTTPResponse:
        if len(request.body) > MAX_USERS_BODY_BYTES:
            return await users_page(request, 413, error=f"The form may be at most {MAX_USERS_BODY_BYTES} bytes.")
        try:
            form = form_fields(request, max_fields=20)
        except BadForm as problem:
            return await users_page(request, 400, error=str(problem))
        action, username = form.get("action", ""), form.get("username", "").strip()
        try:
            done = await change_account(request, operator, action, username, form)
        except (AccountProblem, PasswordRejected) as problem:
            kept = {"username": username, "role": form.get("role", "agent"), "queues": form.get("queues", "")}
            return await users_page(request, 400, error=str(problem), form=kept)
        logger.info(f"Operator {operator.username} {done} the operator account {username!r}.")
        return _redirect(f"{USERS_PATH}?{done}={quote(username)}")

    async def change_account(
        request: Request, operator: Operator, action: Text, username: Text, form: Dict[Text, Text]
    ) -> Text:
        """Does what the users page asked; returns what was done, for the notice."""
        store = access.accounts(request.ctx.operator_state.engine)
        if action == "create":
            queues = form.get("queues", "").split(",")
            await access.hashing(store.create, username, form.get("password", ""), form.get("role", ""), queues)
            return "created"
        if action in ("disable", "enable"):
            if username == operator.username:
                raise AccountProblem("You cannot disable or enable your own account; ask another admin.")
            await asyncio.to_thread(store.set_disabled, username, action == "disable")
            return f"{action}d"
        raise AccountProblem(f"Unknown action {action!r}: use the page's buttons (create, disable, enable).")

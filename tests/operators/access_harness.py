"""The operator console served for tests, and a browser-like client that logs in to it.

`serve_console(tmp_path)` serves `OperatorConsoleInput` where `rasa run` mounts it, on a
stand-in agent whose tracker store is a real `SQLTrackerStore` in a SQLite file (the
console keeps its tables there). `ConsoleBrowser` keeps cookies as a browser does
(it also sends Secure cookies over http, so the flag can be on in tests) and follows no
redirects, so tests see every 303.
"""

import re
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Mapping, Optional, Text

import aiohttp
import sqlalchemy as sa
from argon2 import PasswordHasher
from multidict import CIMultiDictProxy
from rasa.core.tracker_store import SQLTrackerStore
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.operators.access.accounts import AccountStore, Operator
from lepton_components.operators.access.guard import operator_required
from lepton_components.operators.access.passwords import Passwords
from lepton_components.operators.console import OperatorConsoleInput
from lepton_components.operators.database import create_tables
from lepton_components.operators.settings import OperatorSettings
from tests.channels.web_chat_bot import ScriptedAgent
from tests.channels.webhook_harness import serve_channel

ADMIN_PASSWORD = "admin-password-0123456789"
AGENT_PASSWORD = "agent-password-0123456789"
PREFIX = "/webhooks/operators"
# For tests that are not about hashing: argon2id at a millisecond instead of 0.2 s of CPU.
FAST_PASSWORDS = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
TIMEOUT_S = 10.0


def database_file(tmp_path: Path) -> Path:
    return tmp_path / "trackers.db"


def console_agent(tmp_path: Path) -> ScriptedAgent:
    """What the console uses of Rasa's Agent, with its conversations in `tmp_path`."""
    return ScriptedAgent(tracker_store=SQLTrackerStore(dialect="sqlite", db=str(database_file(tmp_path))))


def engine_of(tmp_path: Path) -> sa.engine.Engine:
    """A second connection to the console's database, with its tables made."""
    engine = sa.create_engine(f"sqlite:///{database_file(tmp_path)}")
    create_tables(engine)
    return engine


def account_store(tmp_path: Path, passwords: Passwords = FAST_PASSWORDS) -> AccountStore:
    return AccountStore(engine_of(tmp_path), passwords)


def settings(**values: Any) -> OperatorSettings:
    """The console's settings for http://127.0.0.1: no Secure cookies unless asked."""
    return OperatorSettings(**{"admin_password": ADMIN_PASSWORD, "secure_cookies": False, **values})


async def ignore(message: Any) -> None:
    return None


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy
    text: Text
    cookies: SimpleCookie

    def cookie(self, name: Text) -> Morsel:
        return self.cookies[name]

    def json(self) -> Any:
        import json

        return json.loads(self.text)


def csrf_token_in(page: Text) -> Text:
    """The CSRF token a console page carries (the meta tag base.html writes)."""
    match = re.search(r'<meta name="csrf-token" content="([^"]*)">', page)
    assert match, "the page has no csrf-token meta tag"
    return match.group(1)


class ConsoleBrowser:
    """One browser: its cookies, sent with every request to the console."""

    def __init__(self, server: Text) -> None:
        self.server = server
        self.cookies: Dict[Text, Text] = {}

    async def request(
        self, method: Text, path: Text, form: Optional[Mapping[Text, Text]] = None,
        headers: Optional[Mapping[Text, Text]] = None, body: Optional[bytes] = None, html: bool = True,
    ) -> Reply:
        sent = {"Accept": "text/html" if html else "application/json", **dict(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as session:
            data: Any = body if body is not None else (dict(form) if form is not None else None)
            async with session.request(
                method, self.server + path, data=data, headers=sent, allow_redirects=False
            ) as response:
                reply = Reply(response.status, response.headers, await response.text(), response.cookies)
        for name, morsel in reply.cookies.items():
            if morsel.value == "" or morsel["max-age"] == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value
        return reply

    async def get(self, path: Text, html: bool = True) -> Reply:
        return await self.request("GET", PREFIX + path, html=html)

    async def post(self, path: Text, form: Mapping[Text, Text], **options: Any) -> Reply:
        return await self.request("POST", PREFIX + path, form=form, **options)

    async def login(self, username: Text, password: Text, next_path: Optional[Text] = None) -> Reply:
        """What a person does: open the login page, fill in the form, send it."""
        page = await self.get("/login" + (f"?next={next_path}" if next_path else ""))
        assert page.status == 200, page.text
        form = {"username": username, "password": password, "csrf_token": self.cookies["lepton_login_csrf"]}
        hidden_next = re.search(r'name="next" value="([^"]*)"', page.text)
        if hidden_next:
            form["next"] = hidden_next.group(1)
        return await self.post("/login", form)

    async def csrf_token(self) -> Text:
        """The session's CSRF token, read from a page as the console's scripts read it."""
        page = await self.get("/probe", html=False)
        assert page.status == 200, page.text
        return page.json()["csrf_token"]


class ProbedConsoleInput(OperatorConsoleInput):
    """The console plus `/probe` (any operator) and `/probe/admin`, guarded as other parts' routes are."""

    def blueprint(self, on_new_message: Any) -> Blueprint:
        blueprint = super().blueprint(on_new_message)

        def probe(operator: Operator, request: Request) -> HTTPResponse:
            return response.json({
                "username": operator.username, "role": operator.role, "queues": list(operator.queues),
                "csrf_token": request.ctx.csrf_token, "method": request.method,
            })

        @blueprint.route("/probe", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], name="access_test_probe")
        @operator_required()
        async def any_operator(request: Request, operator: Operator) -> HTTPResponse:
            return probe(operator, request)

        @blueprint.route("/probe/admin", methods=["GET", "POST"], name="access_test_probe_admin")
        @operator_required(role="admin")
        async def admins_only(request: Request, operator: Operator) -> HTTPResponse:
            return probe(operator, request)

        return blueprint


@dataclass
class ServedConsole:
    server: Text
    agent: ScriptedAgent
    channel: OperatorConsoleInput

    def browser(self) -> ConsoleBrowser:
        return ConsoleBrowser(self.server)


@asynccontextmanager
async def serve_console(
    tmp_path: Path, console_settings: Optional[OperatorSettings] = None, channel: Optional[OperatorConsoleInput] = None,
    passwords: Passwords = FAST_PASSWORDS,
) -> AsyncIterator[ServedConsole]:
    """The console on 127.0.0.1 with the bot's database in `tmp_path`."""
    channel = channel or ProbedConsoleInput(console_settings or settings())
    channel.console.access.passwords = passwords
    agent = console_agent(tmp_path)
    async with serve_channel(channel, ignore, agent=agent) as url:
        yield ServedConsole(url.split(PREFIX)[0], agent, channel)

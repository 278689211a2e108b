"""The inbox served for tests: the operator console with the handoff on a test bot, the web
chat and a recording channel next to it, and operators' browsers calling its JSON API.

Accounts get cheap argon2 hashes and sessions are started as the login form starts them,
so these tests spend their time on the inbox, not on password hashing.
"""

import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Optional
from urllib.parse import quote

from argon2 import PasswordHasher

from lepton_components.operators.access.accounts import AccountStore
from lepton_components.operators.access.cookies import SESSION_COOKIE
from lepton_components.operators.access.login_sessions import SessionStore
from lepton_components.operators.access.passwords import Passwords
from lepton_components.operators.console import OperatorConsoleInput
from tests.channels.web_chat_bot import web_chat_channel
from tests.channels.webhook_harness import serve_channels
from tests.operators.access_harness import (
    ADMIN_PASSWORD,
    AGENT_PASSWORD,
    PREFIX,
    ConsoleBrowser,
    Reply,
    csrf_token_in,
    engine_of,
    settings,
)
from tests.operators.handoff_bot import ALWAYS_OPEN, HandoffAgent, RecordingInput, RecordingOutput

WEB = "web-" + "5" * 40


class OperatorClient:
    """A logged-in browser with the page's CSRF token, calling the inbox's JSON API."""

    def __init__(self, browser: ConsoleBrowser, csrf_token: str) -> None:
        self.browser = browser
        self.csrf_token = csrf_token

    async def get(self, path: str) -> Reply:
        return await self.browser.request("GET", f"{PREFIX}{path}", html=False)

    async def post(self, path: str, body: Any = None, raw: Optional[bytes] = None, csrf: Optional[str] = None) -> Reply:
        headers = {"Content-Type": "application/json", "X-CSRF-Token": self.csrf_token if csrf is None else csrf}
        data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        return await self.browser.request("POST", f"{PREFIX}{path}", headers=headers, body=data, html=False)


@dataclass
class Served:
    tmp_path: Path
    server: str
    agent: HandoffAgent
    web_chat: Any
    output: RecordingOutput

    async def login(self, username: str) -> OperatorClient:
        """A browser with a login session for `username`, as the login form makes it."""
        browser = ConsoleBrowser(self.server)
        browser.cookies[SESSION_COOKIE] = self.session_token(username)
        return await self.open_inbox(browser)

    def session_token(self, username: str) -> str:
        """The cookie value of a new login session for `username`."""
        return SessionStore(engine_of(self.tmp_path), 12.0).start(username)

    async def open_inbox(self, browser: ConsoleBrowser) -> OperatorClient:
        page = await browser.get("/inbox")
        assert page.status == 200, page.text
        return OperatorClient(browser, csrf_token_in(page.text))


@asynccontextmanager
async def serve_inbox(tmp_path: Path, **handoff: Any) -> AsyncIterator[Served]:
    """The console with the handoff on a test bot, the web chat and a recording channel served too."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    # Cheap hashes: these tests are about the inbox, not about argon2's cost.
    store = AccountStore(engine_of(tmp_path), Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)))
    store.create("admin", ADMIN_PASSWORD, "admin")
    store.create("dana", AGENT_PASSWORD, "agent", ["support"])
    store.create("eve", AGENT_PASSWORD, "agent", ["support"])
    store.create("bill", AGENT_PASSWORD, "agent", ["billing"])
    agent = HandoffAgent(tmp_path / "trackers.db")
    console = OperatorConsoleInput(settings(handoff={"opening_hours": ALWAYS_OPEN, **handoff}))
    web_chat, output = web_chat_channel(), RecordingOutput()
    async with serve_channels([console, web_chat, RecordingInput("recording", output)], agent.handle_message,
                              agent=agent) as url:
        served = Served(tmp_path, url, agent, web_chat, output)
        await console.console.state()  # what the first request does: tables and turn hooks
        yield served


def api(conversation_id: str, action: str = "") -> str:
    return f"/api/handoffs/{quote(conversation_id, safe='')}{action}"

"""`operator_required`: what every console route answers to visitors, forged requests and agents."""

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lepton_components.operators.access.tables import sessions
from tests.operators.access_harness import (
    ADMIN_PASSWORD,
    AGENT_PASSWORD,
    PREFIX,
    ConsoleBrowser,
    account_store,
    engine_of,
    serve_console,
)

pytestmark = pytest.mark.asyncio


def move_session(tmp_path: Path, **columns: float) -> None:
    """Sets the stored sessions' times, as if they had been made or used long ago."""
    with engine_of(tmp_path).begin() as connection:
        connection.execute(sessions.update().values(**columns))


def last_seen(tmp_path: Path) -> float:
    with engine_of(tmp_path).connect() as connection:
        return connection.execute(sa.select(sessions.c.last_seen_at)).scalar_one()


async def logged_in(console, username: str = "admin", password: str = ADMIN_PASSWORD) -> ConsoleBrowser:
    browser = console.browser()
    assert (await browser.login(username, password)).status == 303
    return browser


async def test_a_visitor_asking_for_a_page_is_sent_to_the_login_page(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        reply = await console.browser().get("/probe?view=all")
        assert reply.status == 303
        assert reply.headers["Location"] == f"{PREFIX}/login?next=/webhooks/operators/probe%3Fview%3Dall"


async def test_a_visitor_calling_the_api_gets_401_json(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = console.browser()
        reply = await browser.get("/probe", html=False)
        assert reply.status == 401
        assert reply.json()["error"] == "unauthorized" and "/login" in reply.json()["message"]
        # A form post is no page view, even from a browser.
        reply = await browser.post("/probe", {"csrf_token": "x"})
        assert reply.status == 401 and reply.json()["error"] == "unauthorized"
        browser.cookies["lepton_operator"] = "made-up-token"
        assert (await browser.get("/probe", html=False)).status == 401


async def test_changes_need_the_sessions_csrf_token(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = await logged_in(console)
        token = await browser.csrf_token()
        for sent in ({}, {"csrf_token": ""}, {"csrf_token": "wrong"}, {"csrf_token": token[:-1]}):
            reply = await browser.post("/probe", sent, html=False)
            assert reply.status == 403 and reply.json()["error"] == "csrf_token_invalid", sent
        reply = await browser.request("DELETE", f"{PREFIX}/probe", headers={"X-CSRF-Token": "wrong"}, html=False)
        assert reply.status == 403
        assert (await browser.post("/probe", {"csrf_token": token}, html=False)).json()["method"] == "POST"
        for method in ("PUT", "PATCH", "DELETE"):
            reply = await browser.request(method, f"{PREFIX}/probe", headers={"X-CSRF-Token": token}, html=False)
            assert reply.status == 200 and reply.json()["method"] == method
        # Another session's token does not do.
        other = await logged_in(console)
        assert (await other.post("/probe", {"csrf_token": token}, html=False)).status == 403


async def test_agents_get_403_on_admin_routes(tmp_path: Path) -> None:
    account_store(tmp_path).create("alice", AGENT_PASSWORD, "agent", ["billing"])
    async with serve_console(tmp_path) as console:
        agent = await logged_in(console, "alice", AGENT_PASSWORD)
        me = (await agent.get("/probe", html=False)).json()
        assert (me["role"], me["queues"]) == ("agent", ["billing"])
        for path in ("/probe/admin", "/users"):
            reply = await agent.get(path)
            assert reply.status == 403 and reply.json()["error"] == "forbidden", path
        token = await agent.csrf_token()
        reply = await agent.post("/users", {"csrf_token": token, "action": "create", "username": "mallory",
                                            "password": AGENT_PASSWORD, "role": "admin", "queues": "support"})
        assert reply.status == 403
        assert account_store(tmp_path).get("mallory") is None
        admin = await logged_in(console)
        assert (await admin.get("/probe/admin", html=False)).status == 200


async def test_a_session_ends_after_session_hours(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = await logged_in(console)
        move_session(tmp_path, expires_at=time.time() - 1)
        reply = await browser.get("/probe")
        assert reply.status == 303 and reply.headers["Location"].startswith(f"{PREFIX}/login")
        assert "lepton_operator" not in browser.cookies  # the stale cookie is cleared


async def test_a_session_ends_after_an_idle_hour(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = await logged_in(console)
        move_session(tmp_path, last_seen_at=time.time() - 3500)
        assert (await browser.get("/probe", html=False)).status == 200  # used within the hour: kept
        move_session(tmp_path, last_seen_at=time.time() - 3601)
        assert (await browser.get("/probe")).status == 303


async def test_use_keeps_a_session_alive_with_at_most_one_write_a_minute(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = await logged_in(console)
        seen = last_seen(tmp_path)
        await browser.get("/probe", html=False)
        assert last_seen(tmp_path) == seen
        move_session(tmp_path, last_seen_at=time.time() - 120)
        await browser.get("/probe", html=False)
        assert last_seen(tmp_path) == pytest.approx(time.time(), abs=5)


async def test_logout_ends_the_session(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = await logged_in(console)
        token = await browser.csrf_token()
        cookie = browser.cookies["lepton_operator"]
        # Another site's form cannot log the operator out.
        forged = await browser.post("/logout", {"csrf_token": "forged"})
        assert forged.status == 403 and (await browser.get("/probe", html=False)).status == 200
        reply = await browser.post("/logout", {"csrf_token": token})
        assert reply.status == 303 and reply.headers["Location"] == f"{PREFIX}/login"
        assert reply.cookie("lepton_operator")["max-age"] == "0" and "lepton_operator" not in browser.cookies
        replayed = console.browser()
        replayed.cookies["lepton_operator"] = cookie
        assert (await replayed.get("/probe", html=False)).status == 401
        # Logging out again (an old tab) just shows the login page.
        assert (await replayed.post("/logout", {})).status == 303


async def test_disabling_an_account_or_changing_its_password_ends_its_sessions(tmp_path: Path) -> None:
    store = account_store(tmp_path)
    store.create("alice", AGENT_PASSWORD)
    async with serve_console(tmp_path) as console:
        alice = await logged_in(console, "alice", AGENT_PASSWORD)
        store.set_disabled("alice", True)
        assert (await alice.get("/probe", html=False)).status == 401
        store.set_disabled("alice", False)
        alice = await logged_in(console, "alice", AGENT_PASSWORD)
        store.set_password("alice", "a brand new password")
        assert (await alice.get("/probe", html=False)).status == 401
        assert (await console.browser().login("alice", "a brand new password")).status == 303


async def test_without_a_loaded_bot_the_console_answers_503(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        console.agent.ready = False
        reply = await console.browser().get("/probe")
        assert reply.status == 503 and reply.json()["error"] == "no_model_loaded"

"""The users page: admins create and disable accounts in the browser."""

from pathlib import Path

import pytest

from tests.operators.access_harness import (
    ADMIN_PASSWORD,
    AGENT_PASSWORD,
    PREFIX,
    ConsoleBrowser,
    account_store,
    csrf_token_in,
    serve_console,
)

pytestmark = pytest.mark.asyncio


async def users_page(admin: ConsoleBrowser) -> str:
    page = await admin.get("/users")
    assert page.status == 200, page.text
    return page.text


async def test_an_admin_creates_an_agent_who_then_logs_in(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        admin = console.browser()
        await admin.login("admin", ADMIN_PASSWORD)
        page = await users_page(admin)
        assert "admin" in page and "Create account" in page
        form = {"csrf_token": csrf_token_in(page), "action": "create", "username": "alice",
                "password": AGENT_PASSWORD, "role": "agent", "queues": "billing, returns"}
        reply = await admin.post("/users", form)
        assert reply.status == 303 and reply.headers["Location"] == f"{PREFIX}/users?created=alice"
        shown = (await admin.request("GET", reply.headers["Location"])).text
        assert "Account alice created." in shown and "billing" in shown and "returns" in shown
        assert AGENT_PASSWORD not in shown
        alice = console.browser()
        assert (await alice.login("alice", AGENT_PASSWORD)).status == 303
        assert (await alice.get("/probe", html=False)).json()["queues"] == ["billing", "returns"]


async def test_a_bad_new_account_is_refused_on_the_page(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        admin = console.browser()
        await admin.login("admin", ADMIN_PASSWORD)
        token = csrf_token_in(await users_page(admin))
        form = {"csrf_token": token, "action": "create", "username": "alice", "password": "short",
                "role": "agent", "queues": "support"}
        reply = await admin.post("/users", form)
        assert reply.status == 400 and "at least 12 characters" in reply.text
        assert 'value="alice"' in reply.text  # what was typed is kept, the password is not
        taken = dict(form, username="admin", password=AGENT_PASSWORD)
        assert "already is an account named" in (await admin.post("/users", taken)).text
        assert [account.username for account in account_store(tmp_path).list()] == ["admin"]


async def test_an_admin_disables_an_agent_whose_session_then_ends(tmp_path: Path) -> None:
    account_store(tmp_path).create("alice", AGENT_PASSWORD)
    async with serve_console(tmp_path) as console:
        alice = console.browser()
        await alice.login("alice", AGENT_PASSWORD)
        admin = console.browser()
        await admin.login("admin", ADMIN_PASSWORD)
        token = csrf_token_in(await users_page(admin))
        reply = await admin.post("/users", {"csrf_token": token, "action": "disable", "username": "alice"})
        assert reply.status == 303 and reply.headers["Location"] == f"{PREFIX}/users?disabled=alice"
        assert (await alice.get("/probe", html=False)).status == 401
        assert (await console.browser().login("alice", AGENT_PASSWORD)).status == 401
        assert "Enable" in await users_page(admin)
        await admin.post("/users", {"csrf_token": token, "action": "enable", "username": "alice"})
        assert (await console.browser().login("alice", AGENT_PASSWORD)).status == 303


async def test_an_admin_cannot_lock_themselves_out(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        admin = console.browser()
        await admin.login("admin", ADMIN_PASSWORD)
        token = csrf_token_in(await users_page(admin))
        reply = await admin.post("/users", {"csrf_token": token, "action": "disable", "username": "admin"})
        assert reply.status == 400 and "your own account" in reply.text
        assert not account_store(tmp_path).get("admin").disabled


async def test_account_changes_without_the_csrf_token_are_refused(tmp_path: Path) -> None:
    account_store(tmp_path).create("alice", AGENT_PASSWORD)
    async with serve_console(tmp_path) as console:
        admin = console.browser()
        await admin.login("admin", ADMIN_PASSWORD)
        reply = await admin.post("/users", {"action": "disable", "username": "alice"})
        assert reply.status == 403
        assert not account_store(tmp_path).get("alice").disabled

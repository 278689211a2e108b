"""Logging in to the operator console: what a person at the login page and an attacker see."""

import hashlib
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from lepton_components.operators.access.tables import sessions
from tests.operators.access_harness import (
    ADMIN_PASSWORD,
    AGENT_PASSWORD,
    PREFIX,
    account_store,
    engine_of,
    serve_console,
    settings,
)

pytestmark = pytest.mark.asyncio


def error_shown(page: str) -> str:
    match = re.search(r'<p class="error" role="alert">([^<]*)</p>', page)
    assert match, "the page shows no error"
    return match.group(1)


async def test_the_first_admin_logs_in_and_lands_in_the_inbox(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = console.browser()
        reply = await browser.login("admin", ADMIN_PASSWORD)
        assert reply.status == 303
        assert reply.headers["Location"] == f"{PREFIX}/inbox"
        me = (await browser.get("/probe", html=False)).json()
        assert (me["username"], me["role"]) == ("admin", "admin")


async def test_the_session_cookie_is_http_only_strict_and_limited_to_the_console(tmp_path: Path) -> None:
    async with serve_console(tmp_path, settings(secure_cookies=True, session_hours=2)) as console:
        browser = console.browser()
        login_page = await browser.get("/login")
        login_cookie = login_page.cookie("lepton_login_csrf")
        assert login_cookie["httponly"] and login_cookie["secure"] and login_cookie["samesite"] == "Strict"
        reply = await browser.login("admin", ADMIN_PASSWORD)
        cookie = reply.cookie("lepton_operator")
        assert cookie["httponly"] is True
        assert cookie["secure"] is True
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == PREFIX
        assert cookie["max-age"] == str(2 * 3600)
        # Only the token's SHA-256 is stored.
        with engine_of(tmp_path).connect() as connection:
            stored = [row.token_hash for row in connection.execute(sa.select(sessions.c.token_hash))]
        assert stored == [hashlib.sha256(cookie.value.encode()).hexdigest()]


async def test_without_secure_cookies_the_flag_is_off_for_http_localhost(tmp_path: Path) -> None:
    async with serve_console(tmp_path, settings(secure_cookies=False)) as console:
        reply = await console.browser().login("admin", ADMIN_PASSWORD)
        assert reply.status == 303 and not reply.cookie("lepton_operator")["secure"]


async def test_unknown_user_and_wrong_password_get_the_same_answer(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        wrong_password = await console.browser().login("admin", "not the admin password")
        unknown_user = await console.browser().login("nobody", "not the admin password")
        for reply in (wrong_password, unknown_user):
            assert reply.status == 401
            assert "Wrong username or password." in reply.text
            assert "lepton_operator" not in reply.cookies
        assert error_shown(wrong_password.text) == error_shown(unknown_user.text) == "Wrong username or password."


async def test_a_disabled_account_cannot_log_in(tmp_path: Path) -> None:
    store = account_store(tmp_path)
    store.create("alice", AGENT_PASSWORD)
    store.set_disabled("alice", True)
    async with serve_console(tmp_path) as console:
        reply = await console.browser().login("alice", AGENT_PASSWORD)
        assert reply.status == 401 and "Wrong username or password." in reply.text


async def test_a_login_form_without_its_csrf_cookie_is_refused(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = console.browser()
        await browser.get("/login")
        form = {"username": "admin", "password": ADMIN_PASSWORD}
        # Another site's page can post the form, but cannot read or set the cookie.
        for token in (None, "guessed-token", browser.cookies["lepton_login_csrf"] + "x"):
            sent = dict(form, csrf_token=token) if token else form
            reply = await browser.post("/login", sent)
            assert reply.status == 403 and "log in again" in reply.text
        attacker = console.browser()
        reply = await attacker.post("/login", dict(form, csrf_token="forged"))
        assert reply.status == 403 and "lepton_operator" not in reply.cookies


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example/phish",
        "//evil.example/phish",
        "/\\evil.example",
        "/webhooks/operators/../../evil",
        "/webhooks/operators/%2e%2e/%2E%2E/evil",
        "/webhooks/operators/x\t/y",
        "/elsewhere/page",
        "/webhooks/operatorsX/",
        "javascript:alert(1)",
    ],
)
async def test_login_never_redirects_out_of_the_console(tmp_path: Path, next_path: str) -> None:
    from urllib.parse import quote

    async with serve_console(tmp_path) as console:
        browser = console.browser()
        await browser.get("/login")
        form = {
            "username": "admin", "password": ADMIN_PASSWORD, "csrf_token": browser.cookies["lepton_login_csrf"],
            "next": next_path,
        }
        reply = await browser.post("/login", form)
        assert reply.status == 303 and reply.headers["Location"] == f"{PREFIX}/inbox"
        # Nor does the login page put it into its form.
        page = await console.browser().get(f"/login?next={quote(next_path, safe='')}")
        assert 'name="next"' not in page.text


async def test_login_returns_to_the_console_page_asked_for(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = console.browser()
        bounced = await browser.get("/users?created=bob")
        assert bounced.status == 303
        assert bounced.headers["Location"] == f"{PREFIX}/login?next=/webhooks/operators/users%3Fcreated%3Dbob"
        reply = await browser.login("admin", ADMIN_PASSWORD, next_path="/webhooks/operators/users%3Fcreated%3Dbob")
        assert reply.status == 303 and reply.headers["Location"] == f"{PREFIX}/users?created=bob"


async def test_a_large_login_body_is_refused_before_any_work(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = console.browser()
        await browser.get("/login")
        form = {"username": "admin", "password": "x" * 5000, "csrf_token": browser.cookies["lepton_login_csrf"]}
        reply = await browser.post("/login", form)
        assert reply.status == 413 and "4096 bytes" in reply.text


async def test_a_login_body_that_is_not_a_form_gets_400(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = console.browser()
        reply = await browser.request(
            "POST", f"{PREFIX}/login", body=b'{"username": "admin"}', headers={"Content-Type": "application/json"}
        )
        assert reply.status == 400 and "x-www-form-urlencoded" in reply.text
        reply = await browser.request(
            "POST", f"{PREFIX}/login", body=b"username=%ff%fe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert reply.status == 400 and "UTF-8" in reply.text


async def test_repeated_login_attempts_are_rate_limited(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = console.browser()
        statuses = [(await browser.login("admin", f"wrong password {n}")).status for n in range(10)]
        assert statuses == [401] * 10
        reply = await browser.login("admin", ADMIN_PASSWORD)
        assert reply.status == 429
        assert int(reply.headers["Retry-After"]) >= 1
        assert "Too many login attempts" in reply.text and "lepton_operator" not in reply.cookies


async def test_each_login_starts_a_new_session_and_ends_the_one_the_browser_had(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = console.browser()
        await browser.get("/login")
        form = {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": browser.cookies["lepton_login_csrf"]}
        # A token planted in the browser before login is never adopted (no session fixation).
        browser.cookies["lepton_operator"] = "attacker-chosen-token"
        first = (await browser.post("/login", form)).cookie("lepton_operator").value
        assert first != "attacker-chosen-token"
        # Logging in again (a login form opened before) replaces the session.
        browser.cookies["lepton_login_csrf"] = form["csrf_token"]
        second = (await browser.post("/login", form)).cookie("lepton_operator").value
        assert second != first
        stale = console.browser()
        stale.cookies["lepton_operator"] = first
        assert (await stale.get("/probe", html=False)).status == 401
        assert (await browser.get("/probe", html=False)).status == 200


async def test_a_logged_in_operator_opening_the_login_page_goes_to_the_inbox(tmp_path: Path) -> None:
    async with serve_console(tmp_path) as console:
        browser = console.browser()
        await browser.login("admin", ADMIN_PASSWORD)
        reply = await browser.get("/login")
        assert reply.status == 303 and reply.headers["Location"] == f"{PREFIX}/inbox"
        home = await browser.get("/")
        assert home.status == 303 and home.headers["Location"] == f"{PREFIX}/inbox"

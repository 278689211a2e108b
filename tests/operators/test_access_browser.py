"""Logging in and out in headless Chromium: the pages work under the console's strict CSP."""

from pathlib import Path

import pytest

from tests.browser import launch_chromium
from tests.operators.access_harness import ADMIN_PASSWORD, PREFIX, serve_console

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]
TIMEOUT_MS = 10_000


async def test_an_admin_logs_in_reaches_the_page_asked_for_and_logs_out(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    async with serve_console(tmp_path) as console, async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            page = await browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            refused, missing = [], []
            page.on("console", lambda message: refused.append(message.text) if "Refused" in message.text else None)
            page.on("response", lambda reply: missing.append(reply.url) if reply.status == 404 else None)
            await page.goto(f"{console.server}{PREFIX}/users")
            assert page.url.startswith(f"{console.server}{PREFIX}/login?next=")
            await page.fill("#username", "admin")
            await page.fill("#password", "wrong password!")
            await page.click("button[type=submit]")
            await expect(page.locator(".error")).to_have_text("Wrong username or password.")
            await page.fill("#password", ADMIN_PASSWORD)
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Users")
            assert page.url == f"{console.server}{PREFIX}/users"
            cookies = {cookie["name"]: cookie for cookie in await page.context.cookies()}
            assert cookies["lepton_operator"]["httpOnly"] and cookies["lepton_operator"]["sameSite"] == "Strict"
            assert await page.evaluate("document.cookie") == ""  # no script can read the session
            await page.click("form.logout button")
            await expect(page.locator("h1")).to_have_text("Log in")
            await page.goto(f"{console.server}{PREFIX}/users")
            await expect(page.locator("h1")).to_have_text("Log in")
            # The stylesheet loads and nothing breaks the CSP (no inline script or style).
            assert refused == [] and [url for url in missing if not url.endswith("/favicon.ico")] == []
        finally:
            await browser.close()

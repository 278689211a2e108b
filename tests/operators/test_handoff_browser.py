"""The inbox in headless Chromium: an agent sees a new conversation and the customer's messages
within two seconds, takes it, answers (the web chat widget gets it live) and hands it back,
all under the console's strict CSP, with the customer's text shown as text."""

import time
from pathlib import Path
from typing import List

import pytest

from lepton_components.operators.access.cookies import SESSION_COOKIE
from tests.browser import launch_chromium
from tests.operators.access_harness import PREFIX
from tests.operators.handoff_bot import demo_domain, say
from tests.operators.handoff_server import WEB, serve_inbox

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]
TIMEOUT_MS = 10_000
# The inbox polls every second: anything new shows within two.
SHOWS_WITHIN_MS = 2_000
JOINED = demo_domain().responses["utter_agent_joined"][0]["text"].format(agent="dana")
HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'


async def test_an_agent_works_a_conversation_in_the_inbox(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    async with serve_inbox(tmp_path) as served, async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            context = await browser.new_context()
            await context.add_cookies(
                [{"name": SESSION_COOKIE, "value": served.session_token("dana"), "url": served.server}]
            )
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            problems: List[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            # Failed loads are checked by URL below (the browser also asks for a favicon there is none of).
            page.on("console", lambda message: problems.append(message.text)
                    if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
            missing: List[str] = []
            page.on("response", lambda reply: missing.append(reply.url)
                    if reply.status >= 400 and not reply.url.endswith("/favicon.ico") else None)
            await page.goto(f"{served.server}{PREFIX}/inbox")
            await expect(page.get_by_test_id("waiting-count")).to_have_text("0")

            await say(served.agent, WEB, "I want a human", channel="web_chat")
            started = time.monotonic()
            item = page.get_by_test_id("waiting-list").get_by_test_id("queue-item")
            await expect(item).to_have_attribute("data-conversation-id", WEB, timeout=SHOWS_WITHIN_MS)
            assert time.monotonic() - started < SHOWS_WITHIN_MS / 1000 + 0.5

            await item.click()
            transcript = page.get_by_test_id("transcript")
            await expect(transcript).to_contain_text("I want a human")
            await expect(page.get_by_test_id("reply-text")).to_be_hidden()  # not taken yet

            stream = served.web_chat._push.open(WEB)
            await page.get_by_test_id("claim-button").click()
            await expect(page.get_by_test_id("conversation-status")).to_have_text("held by dana")
            await expect(page.get_by_test_id("mine-list").get_by_test_id("queue-item")).to_have_count(1)
            assert (await stream.next(timeout=5))["text"] == JOINED

            await say(served.agent, WEB, HOSTILE, channel="web_chat")
            messages = transcript.locator('[data-testid="message"][data-sender="customer"]')
            await expect(messages.last).to_contain_text(HOSTILE, timeout=SHOWS_WITHIN_MS)
            assert await page.locator("#transcript img").count() == 0  # text, never markup

            await page.get_by_test_id("reply-text").fill("Hi, I'm Dana. What can I do for you?")
            await page.get_by_test_id("reply-text").press("Enter")
            assert (await stream.next(timeout=5))["text"] == "Hi, I'm Dana. What can I do for you?"
            agent_messages = transcript.locator('[data-testid="message"][data-sender="agent"]')
            await expect(agent_messages.last.locator(".text")).to_have_text("Hi, I'm Dana. What can I do for you?")
            await expect(agent_messages.last.locator(".meta")).to_contain_text("dana")
            await expect(page.get_by_test_id("reply-text")).to_have_value("")

            await page.get_by_test_id("release-button").click()
            await expect(page.get_by_test_id("no-conversation")).to_contain_text("handed the conversation back")
            await expect(page.get_by_test_id("mine-count")).to_have_text("0")
            assert (await stream.next(timeout=5))["text"].startswith("dana has left the chat")
            assert (await say(served.agent, WEB, "hello", channel="web_chat"))[0]["text"].startswith("Hi, I'm")
            assert await page.title() != "pwned"
            assert missing == [], missing
            assert problems == []
        finally:
            await browser.close()


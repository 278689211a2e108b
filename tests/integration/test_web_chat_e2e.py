"""The demo bot's web chat in headless Chromium, served by `rasa run` with the trained model.

Open the demo page, greet the bot, click a quick reply, give an order number, ask a
question no intent covers, reload and find the whole conversation again. The screenshot
in README.md is taken here: `make screenshot` writes it to docs/web_chat.png.
`rasa run` reads the session secret from LEPTON_WEB_CHAT_SECRET (bot/credentials.yml).
"""

import os
import uuid
from pathlib import Path
from typing import Text

import pytest
import requests

from tests.browser import launch_chromium
from tests.integration.conftest import approved_answer
from tests.integration.test_http_server import server_dir, server_url  # noqa: F401 (fixtures)
from tests.rest_client import REST_AUTH

pytestmark = pytest.mark.slow

WIDGET = "#lepton-web-chat"
BOT = f"{WIDGET} .message.bot"
USER = f"{WIDGET} .message.user"
QUICK_REPLY = f"{WIDGET} .quick-reply"
# Replies come from the real model on 2 CPU cores.
TIMEOUT_MS = 30_000


async def _say(page, text: Text) -> None:
    await page.fill(f"{WIDGET} .input", text)
    await page.press(f"{WIDGET} .input", "Enter")


@pytest.mark.asyncio
async def test_customer_chats_in_the_browser_and_finds_the_history_after_reload(
    server_url: Text, tmp_path: Path  # noqa: F811
) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 760})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            await page.goto(f"{server_url}/webhooks/web_chat/demo")
            await expect(page.locator(f"{WIDGET} .status")).to_have_text("Online")

            await _say(page, "hi")
            # The domain's `channel: web_chat` variant of the greeting.
            await expect(page.locator(BOT).first).to_contain_text("Pick a topic below")
            await expect(page.locator(QUICK_REPLY, has_text="Where is my order?")).to_be_visible()

            await page.locator(QUICK_REPLY, has_text="Where is my order?").click()
            await expect(page.locator(BOT).last).to_contain_text("order number")
            await expect(page.locator(USER).last).to_have_text("Where is my order?")
            await _say(page, "LP-482913")
            await expect(page.locator(BOT, has_text="LP-482913").first).to_be_visible()

            await _say(page, "are there vacancies at your company?")
            careers = approved_answer("careers")
            await expect(page.locator(BOT).last).to_have_text(careers)
            shown = await page.locator(f"{WIDGET} .message").count()

            await page.reload()
            await expect(page.locator(f"{WIDGET} .message")).to_have_count(shown)
            users = [t.strip() for t in await page.locator(USER).all_inner_texts()]
            assert users == ["hi", "Where is my order?", "LP-482913", "are there vacancies at your company?"]
            await expect(page.locator(BOT).last).to_have_text(careers)
            await expect(page.locator(f"{BOT} a", has_text="https://lepton.example/careers")).to_be_visible()

            # Back to the start for the screenshot: the web greeting with its quick replies.
            await _say(page, "hello")
            await expect(page.locator(QUICK_REPLY, has_text="Shipping options")).to_be_visible()
            screenshot = Path(os.environ.get("LEPTON_SCREENSHOT_DIR") or tmp_path) / "web_chat.png"
            await page.screenshot(path=str(screenshot))
            assert screenshot.stat().st_size > 10_000
        finally:
            await browser.close()


def test_the_real_server_refuses_made_up_sessions_and_answers_a_retry_once(server_url: Text) -> None:  # noqa: F811
    import secrets

    chat = f"{server_url}/webhooks/web_chat"
    made_up = {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}
    refused = requests.post(f"{chat}/messages", json={"text": "hi"}, headers=made_up, timeout=60)
    assert refused.status_code == 401 and "POST /sessions" in refused.json()["message"]

    issued = requests.post(f"{chat}/sessions", timeout=60).json()
    assert issued["expires_in"] > 0 and issued["refresh_in"] > 0
    auth = {"Authorization": f"Bearer {issued['session']}"}
    message = {"text": "are there vacancies at your company?", "id": uuid.uuid4().hex}
    first = requests.post(f"{chat}/messages", json=message, headers=auth, timeout=60)
    retry = requests.post(f"{chat}/messages", json=message, headers=auth, timeout=60)
    assert first.status_code == retry.status_code == 200 and first.json() == retry.json()
    history = requests.get(f"{chat}/history", headers=auth, timeout=60).json()["messages"]
    assert [m["text"] for m in history if m["sender"] == "user"] == [message["text"]]
    renewed = requests.post(f"{chat}/sessions/refresh", headers=auth, timeout=60)
    assert renewed.status_code == 200
    again = requests.get(f"{chat}/history", headers={"Authorization": f"Bearer {renewed.json()['session']}"},
                         timeout=60)
    assert again.json()["messages"] == history


def test_other_channels_get_the_default_greeting(server_url: Text) -> None:  # noqa: F811
    reply = requests.post(f"{server_url}/webhooks/rest/webhook", json={"sender": uuid.uuid4().hex, "message": "hi"},
                          headers=REST_AUTH, timeout=60)
    assert reply.status_code == 200, reply.text
    texts = [message.get("text", "") for message in reply.json()]
    assert any("What can I do for you?" in text for text in texts)
    assert not any("Pick a topic below" in text for text in texts)

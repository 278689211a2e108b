"""The web chat widget in headless Chromium against the channel (a scripted bot, no model).

What a customer does and sees: open the page, type, read the reply, click a quick reply,
reload and find the conversation; markup in anyone's text stays text; a dropped
connection or a rate limit delays a message but never loses or duplicates it; the
session token is renewed while the page is open, and a session the server ended is
replaced by a new conversation that says so.
"""

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Text, Tuple

import aiohttp
import pytest
import pytest_asyncio

from tests.browser import launch_chromium
from tests.channels.web_chat_bot import ORDER_REPLY, ScriptedAgent, web_chat_channel
from tests.channels.webhook_harness import serve_channel

pytestmark = pytest.mark.timeout(60)

WIDGET = "#lepton-web-chat"
BOT = f"{WIDGET} .message.bot"
USER = f"{WIDGET} .message.user"
QUICK_REPLY = f"{WIDGET} .quick-reply"
TIMEOUT_MS = 10_000


@asynccontextmanager
async def open_chat(**settings: Any) -> AsyncIterator[Tuple[Any, ScriptedAgent]]:
    """A browser page showing the demo page of a served channel, and the bot behind it."""
    from playwright.async_api import async_playwright

    agent = ScriptedAgent()
    channel = web_chat_channel(title="Lepton Store", **settings)
    async with serve_channel(channel, agent.handle_message, agent=agent) as base:
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            # One context: the pages of one browser profile, sharing localStorage.
            context = await browser.new_context()
            context.set_default_timeout(TIMEOUT_MS)
            page = await context.new_page()
            await page.goto(base + "/demo")
            page.channel = channel
            page.base = base
            try:
                yield page, agent
            finally:
                await browser.close()


@pytest_asyncio.fixture
async def chat() -> AsyncIterator[Tuple[Any, ScriptedAgent]]:
    async with open_chat() as opened:
        yield opened


async def saved_session(page: Any) -> Any:
    """What the widget keeps in localStorage: its token and when to renew it."""
    return await page.evaluate(
        "() => JSON.parse(Object.entries(localStorage).find(([k]) => k.startsWith('lepton-web-chat-session:'))[1])"
    )


async def say(page: Any, text: Text) -> None:
    await page.fill(f"{WIDGET} .input", text)
    await page.press(f"{WIDGET} .input", "Enter")


async def texts(page: Any, selector: Text) -> list:
    return [text.strip() for text in await page.locator(selector).all_inner_texts()]


@pytest.mark.asyncio
async def test_chat_quick_reply_and_history_after_reload(chat) -> None:
    from playwright.async_api import expect

    page, agent = chat
    await expect(page.locator(f"{WIDGET} .status")).to_have_text("Online")
    await say(page, "hi")
    await expect(page.locator(BOT)).to_have_count(1)
    # Markdown from the bot is rendered: **test** is bold.
    await expect(page.locator(f"{BOT} strong")).to_have_text("test")
    await expect(page.locator(QUICK_REPLY)).to_have_text(["Where is my order?", "Return an item"])

    await page.locator(QUICK_REPLY, has_text="Where is my order?").click()
    await expect(page.locator(BOT).last).to_have_text(ORDER_REPLY)
    await expect(page.locator(QUICK_REPLY)).to_have_count(0)
    assert await texts(page, USER) == ["hi", "Where is my order?"]
    assert [m.text for m in agent.received] == ["hi", "/order_status"]

    await page.reload()
    await expect(page.locator(f"{WIDGET} .message")).to_have_count(4)
    assert await texts(page, USER) == ["hi", "Where is my order?"]
    await expect(page.locator(BOT).last).to_have_text(ORDER_REPLY)
    # Same conversation after the reload, not a new one.
    await say(page, "thanks")
    await expect(page.locator(BOT).last).to_have_text("You said: thanks")
    assert len({m.sender_id for m in agent.received}) == 1


@pytest.mark.asyncio
async def test_markup_in_messages_is_shown_as_text_never_run(chat) -> None:
    from playwright.async_api import expect

    page, agent = chat
    agent.scripted["show me"] = {
        "text": 'Look: <img src=x onerror="window.pwned=1"> and [a link](javascript:window.pwned=2) '
                "and [our site](https://shop.example.com/help), or see https://shop.example.com/faq.",
        "image": "javascript:window.pwned=3",
    }
    await say(page, "show me")
    bot = page.locator(BOT).last
    await expect(bot).to_contain_text('<img src=x onerror="window.pwned=1">')
    # The javascript: link is plain text, the https links safe links; no image element.
    await expect(bot.locator("a")).to_have_count(2)
    assert await bot.locator("a").first.get_attribute("href") == "https://shop.example.com/help"
    assert "noopener" in await bot.locator("a").first.get_attribute("rel")
    # A bare address becomes a link too, without the sentence's full stop.
    await expect(bot.locator("a").last).to_have_text("https://shop.example.com/faq")
    await expect(bot.locator("img")).to_have_count(0)

    await say(page, "<b>hi</b><script>window.pwned=4</script><img src=x onerror='window.pwned=5'>")
    await expect(page.locator(USER).last).to_have_text("<b>hi</b><script>window.pwned=4</script><img src=x onerror='window.pwned=5'>")
    await expect(page.locator(BOT)).to_have_count(2)
    assert await page.evaluate("window.pwned") is None


@pytest.mark.asyncio
async def test_typing_indicator_while_the_bot_thinks(chat) -> None:
    from playwright.async_api import expect

    page, agent = chat
    agent.scripted["slow question"] = {"text": "A considered answer.", "delay": 1.5}
    await say(page, "slow question")
    await expect(page.locator(f"{WIDGET} .typing")).to_be_visible()
    await expect(page.locator(BOT).last).to_have_text("A considered answer.")
    await expect(page.locator(f"{WIDGET} .typing")).to_be_hidden()


@pytest.mark.asyncio
async def test_a_dropped_connection_delays_the_message_but_loses_and_repeats_nothing(chat) -> None:
    from playwright.async_api import expect

    page, agent = chat
    attempts = []

    async def drop_twice(route: Any) -> None:
        attempts.append(route.request.post_data_json)
        if len(attempts) == 1:
            await route.abort("connectionreset")  # never reached the server
        elif len(attempts) == 2:
            await route.fetch()  # reached the server, the answer got lost
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route("**/messages", drop_twice)
    await say(page, "is my parcel lost?")
    await expect(page.locator(f"{WIDGET} .status")).to_have_text("Reconnecting…")
    await expect(page.locator(BOT).last).to_have_text("You said: is my parcel lost?")
    await expect(page.locator(f"{WIDGET} .status")).to_have_text("Online")
    assert len(attempts) == 3 and len({a["id"] for a in attempts}) == 1
    assert [m.text for m in agent.received] == ["is my parcel lost?"]
    await expect(page.locator(BOT)).to_have_count(1)


@pytest.mark.asyncio
async def test_a_message_pushed_by_the_server_appears_without_asking(chat) -> None:
    from playwright.async_api import expect

    page, agent = chat
    # The event stream drops once; the widget reconnects on its own.
    stream_attempts = []

    async def drop_first_stream(route: Any) -> None:
        stream_attempts.append(route.request.url)
        if len(stream_attempts) == 1:
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route("**/events", drop_first_stream)
    await page.reload()
    for _ in range(200):
        if len(stream_attempts) >= 2:
            break
        await asyncio.sleep(0.05)
    assert len(stream_attempts) >= 2, "the widget did not reconnect its event stream"
    await expect(page.locator(f"{WIDGET} .status")).to_have_text("Online")
    await say(page, "hello")
    await expect(page.locator(BOT)).to_have_count(1)
    # The channel's push output, as Rasa's HTTP API uses it for `?output_channel=web_chat`.
    output = page.channel.get_output_channel()
    await output.send_text_message(agent.received[0].sender_id, "Your parcel has shipped.")
    await expect(page.locator(BOT).last).to_have_text("Your parcel has shipped.")


@pytest.mark.asyncio
async def test_the_token_is_renewed_while_the_page_is_open_and_the_conversation_stays() -> None:
    from playwright.async_api import expect

    # Tokens live 6 s; the widget renews them after 3 s.
    async with open_chat(session_idle_timeout_minutes=0.1) as (page, agent):
        renewals = []
        page.on("request", lambda request: renewals.append(request.url) if request.url.endswith("/refresh") else None)
        await say(page, "hi")
        await expect(page.locator(BOT)).to_have_count(1)
        first_token = (await saved_session(page))["token"]
        await asyncio.sleep(8)  # past the first token's expiry
        assert len(renewals) >= 2
        await say(page, "still here")
        await expect(page.locator(BOT).last).to_have_text("You said: still here")
        assert (await saved_session(page))["token"] != first_token
        assert len({m.sender_id for m in agent.received}) == 1
        async with aiohttp.ClientSession() as http:
            async with http.get(page.base + "/history", headers={"Authorization": f"Bearer {first_token}"}) as old:
                assert old.status == 401
        await expect(page.locator(f"{WIDGET} .notice")).to_have_count(0)


@pytest.mark.asyncio
async def test_a_token_the_server_refuses_starts_a_new_conversation_that_says_so(chat) -> None:
    from playwright.async_api import expect

    page, agent = chat
    await say(page, "hello")
    await expect(page.locator(BOT)).to_have_count(1)
    # Someone planted a made-up token (or the session ended while the page was closed).
    await page.evaluate(
        "() => { for (const k of Object.keys(localStorage)) localStorage.setItem(k, JSON.stringify("
        "{token: 'a.b.c', expiresAt: Date.now() + 3600000, refreshAt: null})); }"
    )
    await page.reload()
    await expect(page.locator(f"{WIDGET} .notice")).to_contain_text("new conversation")
    await expect(page.locator(f"{WIDGET} .message")).to_have_count(0)
    await say(page, "hello again")
    await expect(page.locator(BOT).last).to_have_text("You said: hello again")
    assert len({m.sender_id for m in agent.received}) == 2


@pytest.mark.asyncio
async def test_a_session_ended_elsewhere_closes_the_stream_and_the_widget_starts_over(chat) -> None:
    from playwright.async_api import expect

    page, agent = chat
    await expect(page.locator(f"{WIDGET} .status")).to_have_text("Online")
    await say(page, "hello")
    await expect(page.locator(BOT)).to_have_count(1)
    token = (await saved_session(page))["token"]
    async with aiohttp.ClientSession() as http:
        async with http.delete(page.base + "/sessions", headers={"Authorization": f"Bearer {token}"}) as ended:
            assert ended.status == 204
    await expect(page.locator(f"{WIDGET} .notice")).to_contain_text("new conversation")
    await expect(page.locator(BOT)).to_have_count(0)
    assert (await saved_session(page))["token"] != token
    await say(page, "who am I?")
    await expect(page.locator(BOT).last).to_have_text("You said: who am I?")
    assert len({m.sender_id for m in agent.received}) == 2


@pytest.mark.asyncio
async def test_a_rate_limited_message_waits_and_is_sent_once() -> None:
    from playwright.async_api import expect

    async with open_chat(rate_limits={"messages_per_session": {"per_minute": 60, "burst": 1}}) as (page, agent):
        statuses = []
        page.on("response", lambda reply: statuses.append(reply.status) if reply.url.endswith("/messages") else None)
        await say(page, "one")
        await say(page, "two")
        await expect(page.locator(BOT)).to_have_text(["You said: one", "You said: two"])
        assert 429 in statuses
        assert [m.text for m in agent.received] == ["one", "two"]


@pytest.mark.asyncio
async def test_the_newest_of_many_tabs_gets_pushed_messages() -> None:
    from playwright.async_api import expect

    async with open_chat() as (page, agent):
        await say(page, "hello")
        await expect(page.locator(BOT)).to_have_count(1)
        first_page_streams = []
        page.on("request", lambda request: first_page_streams.append(1) if request.url.endswith("/events") else None)
        tabs = [await page.context.new_page() for _ in range(3)]
        for tab in tabs:
            await tab.goto(page.base + "/demo")
            await expect(tab.locator(f"{WIDGET} .status")).to_have_text("Online")
        # Four pages, three streams: the first page's stream was handed to the newest.
        sender = agent.received[0].sender_id
        for _ in range(100):
            if page.channel._push.open_streams(sender) == 3:
                break
            await asyncio.sleep(0.05)
        assert page.channel._push.open_streams(sender) == 3
        # The replaced page waits to be looked at again instead of taking a stream back.
        await asyncio.sleep(3)
        assert first_page_streams == [] and page.channel._push.open_streams(sender) == 3
        await page.channel.get_output_channel().send_text_message(sender, "Your parcel has shipped.")
        await expect(tabs[-1].locator(BOT).last).to_have_text("Your parcel has shipped.")
        await expect(page.locator(f"{WIDGET} .status")).to_have_text("Online")

"""Link commands: parsed before the bot, answered in plain words, the code kept out of logs,
and wired into the verified Telegram, Messenger and Slack webhooks."""

import json
import logging
from typing import List, Optional, Text

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet

from lepton_components.identity.link_commands import (
    UNAVAILABLE,
    LinkCommand,
    handle_link_command,
    intercept_link_commands,
    parse_link_command,
)
from lepton_components.identity.link_registry import LinkRegistry
from lepton_components.identity.linked_tracker_store import LinkedTrackerStore
from tests.channels import test_verified_facebook as facebook
from tests.channels import test_verified_slack as slack
from tests.channels import test_verified_telegram as telegram
from tests.channels.webhook_harness import PlatformStandIn, RecordingAgent, post, serve_channel, wait_until
from tests.identity.conftest import code_from, turn

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    "text, command",
    [
        ("/link", LinkCommand(False, None)),
        ("  /LINK  ", LinkCommand(False, None)),
        ("/link K7QM-2XPA", LinkCommand(False, "K7QM-2XPA")),
        ("/link k7qm 2xpa", LinkCommand(False, "k7qm 2xpa")),
        ("/link@lepton_support_bot K7QM-2XPA", LinkCommand(False, "K7QM-2XPA")),
        ("!link K7QM-2XPA", LinkCommand(False, "K7QM-2XPA")),
        ("/unlink", LinkCommand(True, None)),
        ("!unlink", LinkCommand(True, None)),
        ("/linkage", None),
        ("/link_account", None),
        ("link K7QM-2XPA", None),
        ("please /link", None),
        ('/inform{"order_number": "LP-123456"}', None),
        ("", None),
        (None, None),
    ],
)
def test_commands_are_told_from_ordinary_messages(text: Optional[Text], command: Optional[LinkCommand]) -> None:
    assert parse_link_command(text) == command


@pytest.fixture
def active_store(domain: Domain, registry: LinkRegistry) -> LinkedTrackerStore:
    """A store created the way `rasa run` creates it, which makes it the process's store."""
    return LinkedTrackerStore(domain, inner=InMemoryTrackerStore(domain), registry=registry)


@pytest.mark.asyncio
async def test_without_a_linked_store_commands_go_to_the_bot_unchanged() -> None:
    assert await handle_link_command("/link", "tg-ada", "verified_telegram") is None
    forwarded: List[UserMessage] = []

    async def bot(message: UserMessage) -> None:
        forwarded.append(message)

    await intercept_link_commands(bot)(UserMessage("/link", CollectingOutputChannel(), "tg-ada"))
    assert [m.text for m in forwarded] == ["/link"]


@pytest.mark.asyncio
async def test_the_whole_exchange_keeps_the_code_out_of_every_log(
    active_store: LinkedTrackerStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await turn(active_store, "tg-ada", "verified_telegram", "LP-123456", [SlotSet("order_number", "LP-123456")])
    reply = await handle_link_command("/link", "tg-ada", "verified_telegram")
    code = code_from(reply)
    assert "5 minutes" in reply and "works once" in reply
    assert (await handle_link_command("/link 0000-0000", "fb-ada", "verified_facebook")).startswith(
        "That code doesn't work"
    )
    done = await handle_link_command(f"/link {code.lower()}", "fb-ada", "verified_facebook")
    assert done.startswith("Done: this chat is now linked with your conversation on Telegram")
    assert (await active_store.get_or_create_tracker("fb-ada")).get_slot("order_number") == "LP-123456"
    assert await handle_link_command("/unlink", "fb-ada", "verified_facebook") == (
        "This chat is no longer linked: nothing you say here is shared with your other conversations now."
    )
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Linked a conversation on 'verified_facebook'" in logged  # the records were captured
    assert code not in logged and code.replace("-", "") not in logged and code.lower() not in logged


@pytest.mark.asyncio
async def test_a_registry_failure_is_answered_and_the_command_still_kept_from_the_bot(
    active_store: LinkedTrackerStore,
) -> None:
    active_store.registry.engine.dispose()
    active_store.registry.engine = active_store.registry.engine.execution_options(
        schema_translate_map={None: "missing_schema"}
    )
    forwarded: List[UserMessage] = []

    async def bot(message: UserMessage) -> None:
        forwarded.append(message)

    output = CollectingOutputChannel()
    await intercept_link_commands(bot)(UserMessage("/link K7QM-2XPA", output, "fb-ada", input_channel="rest"))
    assert [m["text"] for m in output.messages] == [UNAVAILABLE]
    assert forwarded == []


@pytest.mark.asyncio
async def test_the_wrapper_answers_on_the_messages_own_channel_and_passes_the_rest_on(
    active_store: LinkedTrackerStore,
) -> None:
    forwarded: List[Text] = []

    async def bot(message: UserMessage) -> None:
        forwarded.append(message.text)

    handle = intercept_link_commands(bot)
    output = CollectingOutputChannel()
    await handle(UserMessage("/link", output, "web-ada", input_channel="rest"))
    await handle(UserMessage("where is my order?", output, "web-ada", input_channel="rest"))
    await handle(UserMessage("/order_status", output, "web-ada", input_channel="rest"))
    assert forwarded == ["where is my order?", "/order_status"]
    (reply,) = output.messages
    assert reply["recipient_id"] == "web-ada" and code_from(reply["text"])
    assert active_store.registry.claim_code(code_from(reply["text"]), "tg-ada").issuer_channel == "rest"


def telegram_update(text: Text) -> dict:
    update = json.loads(json.dumps(telegram.TEXT_UPDATE))
    update["message"]["text"] = text
    return update


def slack_event(text: Text) -> bytes:
    event = json.loads(slack.MESSAGE_EVENT)
    event["event"]["text"] = text
    return json.dumps(event).encode("utf-8")


@pytest.mark.asyncio
async def test_verified_webhooks_link_telegram_messenger_and_slack_without_the_bot_seeing_it(
    active_store: LinkedTrackerStore,
) -> None:
    bot = RecordingAgent()
    tg_id, fb_id, slack_id = "verified_telegram:704412338", f"verified_facebook:{facebook.PSID}", f"verified_slack:{slack.USER_ID}"
    with PlatformStandIn(telegram.telegram_answer) as tg_api, PlatformStandIn(
        facebook.graph_answer
    ) as graph, PlatformStandIn(slack.slack_answer) as slack_api:
        tg_channel = telegram.VerifiedTelegramInput.from_credentials(telegram.credentials(tg_api.url))
        async with serve_channel(tg_channel, bot, agent=bot) as tg_url, serve_channel(
            facebook.channel_for(graph.url), bot, agent=bot
        ) as fb_url, serve_channel(slack.channel_for(f"{slack_api.url}/api/"), bot, agent=bot) as slack_url:
            assert await telegram.deliver(tg_url, telegram_update("/link"), telegram.SECRET) == 200
            (code_reply,) = tg_api.calls_to("/sendMessage")
            code = code_from(code_reply.form()["text"])
            # Conversations are namespaced; the platform still gets its own chat id.
            assert code_reply.form()["chat_id"] == "704412338"

            body = facebook.messenger_event({"message": {"mid": "m_l1nk", "text": f"/link {code}"}})
            assert await facebook.deliver(fb_url, body, {"X-Hub-Signature-256": facebook.sign(body)}) == 200
            (linked_reply,) = facebook.sent_messages(graph)
            assert linked_reply.json()["message"]["text"].startswith("Done: this chat is now linked")

            # Slack's client keeps "/" for its own commands, hence "!".
            code = code_from((await second_code_on_telegram(tg_url, tg_api)))
            body = slack_event(f"!link {code}")
            status, _ = await post(f"{slack_url}/webhook", body, {"Content-Type": "application/json",
                                                                    **slack.signed(body)})
            assert status == 200
            await wait_until(lambda: len(slack_api.calls_to("/chat.postMessage")) == 1)
            assert json.loads(slack_api.calls_to("/chat.postMessage")[0].body)["text"].startswith("Done")

            assert await telegram.deliver(tg_url, telegram_update("where is my parcel?"), telegram.SECRET) == 200
    assert [m.text for m in bot.messages] == ["where is my parcel?"]
    assert {m.sender_id for m in active_store.registry.members(tg_id)} == {fb_id, slack_id}


async def second_code_on_telegram(tg_url: Text, tg_api: PlatformStandIn) -> Text:
    """Asks for a second code on Telegram and returns the reply text."""
    assert await telegram.deliver(tg_url, telegram_update("/link"), telegram.SECRET) == 200
    return tg_api.calls_to("/sendMessage")[-1].form()["text"]


@pytest.mark.asyncio
async def test_web_chat_gives_a_code_that_links_telegram_without_the_bot_seeing_it(
    active_store: LinkedTrackerStore,
) -> None:
    import aiohttp

    from tests.channels.web_chat_bot import ScriptedAgent, web_chat_channel

    agent = ScriptedAgent(active_store)
    with PlatformStandIn(telegram.telegram_answer) as tg_api:
        tg_channel = telegram.VerifiedTelegramInput.from_credentials(telegram.credentials(tg_api.url))
        async with serve_channel(web_chat_channel(), agent.handle_message, agent=agent) as web_url, serve_channel(
            tg_channel, agent.handle_message, agent=agent
        ) as tg_url, aiohttp.ClientSession() as http:
            async with http.post(f"{web_url}/sessions") as reply:
                token = (await reply.json())["session"]
            async with http.post(f"{web_url}/messages", json={"text": "/link"},
                                 headers={"Authorization": f"Bearer {token}"}) as reply:
                (code_reply,) = (await reply.json())["messages"]
            code = code_from(code_reply["text"])
            assert await telegram.deliver(tg_url, telegram_update(f"/link {code}"), telegram.SECRET) == 200
            assert tg_api.calls_to("/sendMessage")[-1].form()["text"].startswith("Done")
    assert agent.received == []
    web_sender = next(iter({m.sender_id for m in active_store.registry.members("verified_telegram:704412338")}))
    assert web_sender.startswith("web-")

"""Customers cannot force intents or entities with `/intent{...}` on the REST channel."""

import json
from typing import Any, Text

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasa.core.channels.channel import UserMessage
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.channels.intent_commands import is_intent_command, permitted_text
from lepton_components.channels.rest import LeptonRestInput
from tests.channels.web_chat_bot import GREETING_BUTTONS, ORDER_REPLY, ScriptedAgent
from tests.rest_client import REST_JSON, rest_channel, rest_credentials
from tests.channels.webhook_harness import post, serve_channel

FORCED = '/order_status{"order_number": "LP-000001"}'
JSON = REST_JSON


def body(text: Text, sender: Text = "customer-1") -> bytes:
    return json.dumps({"sender": sender, "message": text}).encode("utf-8")


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(alphabet=st.sampled_from(["/", " ", "\t", "\n", "\u3000", "a", "{", "}", '"']) | st.characters()))
def test_text_that_was_not_offered_never_reaches_rasa_as_a_command(text: Text) -> None:
    # UserMessage strips the text as Rasa does before RegexMessageHandler reads it.
    assert not is_intent_command(UserMessage(permitted_text(text, [])).text)


@pytest.mark.parametrize(
    "text, expected",
    [
        (FORCED, 'order_status{"order_number": "LP-000001"}'),
        ("  / /greet", "greet"),
        ("/", ""),
        ("where is my order?", "where is my order?"),
        ("/order_status", "/order_status"),  # offered below
    ],
)
def test_only_offered_payloads_keep_their_slash(text: Text, expected: Text) -> None:
    assert permitted_text(text, GREETING_BUTTONS) == expected


async def conversation(channel: LeptonRestInput, *texts: Text) -> Any:
    agent = ScriptedAgent()
    async with serve_channel(channel, agent.handle_message, agent=agent) as url:
        for text in texts:
            status, _ = await post(f"{url}/webhook", body(text), JSON)
            assert status == 200
    return [message.text for message in agent.received]


@pytest.mark.asyncio
async def test_greeting_buttons_still_work() -> None:
    agent = ScriptedAgent()
    async with serve_channel(rest_channel(), agent.handle_message, agent=agent) as url:
        await post(f"{url}/webhook", body("hi"), JSON)
        status, reply = await post(f"{url}/webhook", body("/order_status"), JSON)
    assert status == 200 and json.loads(reply)[0]["text"] == ORDER_REPLY
    assert [m.text for m in agent.received] == ["hi", "/order_status"]


@pytest.mark.asyncio
async def test_forced_intent_with_entities_reaches_the_bot_as_plain_text() -> None:
    received = await conversation(rest_channel(), "hi", FORCED, "/order_status")
    # The payload was offered, but not with entities; once the customer wrote, the
    # buttons are no longer awaiting a reply either.
    assert received == ["hi", 'order_status{"order_number": "LP-000001"}', "order_status"]


@pytest.mark.asyncio
async def test_allow_intent_commands_passes_everything_unchanged() -> None:
    channel = LeptonRestInput.from_credentials(rest_credentials(allow_intent_commands=True))
    assert await conversation(channel, FORCED) == [FORCED]


def test_allow_intent_commands_must_be_a_boolean() -> None:
    with pytest.raises(InvalidConfigException, match="allow_intent_commands"):
        LeptonRestInput.from_credentials(rest_credentials(allow_intent_commands="yes"))
    assert LeptonRestInput.from_credentials(rest_credentials()).allow_intent_commands is False

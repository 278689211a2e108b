"""An agent's messages reach the customer on their own channel: the open web chat widget,
Telegram's and Slack's APIs; REST cannot be pushed to, and a failed send is reported while
the message stays in the conversation."""

from pathlib import Path
from typing import Any, List

import pytest
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.shared.core.events import BotUttered

from lepton_components.channels.verified_slack import VerifiedSlackInput
from lepton_components.channels.verified_telegram import VerifiedTelegramInput
from lepton_components.operators.handoff.delivery import channel_of
from tests.channels.web_chat_bot import web_chat_channel
from tests.channels.webhook_harness import PlatformStandIn
from tests.operators.handoff_bot import (
    RecordingInput,
    RecordingOutput,
    demo_domain,
    handoff_part,
    operator,
    say,
    stored,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]
JOINED = demo_domain().responses["utter_agent_joined"][0]["text"].format(agent="dana")
DANA = operator("dana")
TELEGRAM_TOKEN = "7012345678:AAHk3q-Test_Token_For_Lepton_0123456"
TELEGRAM_CHAT = 704412338


def telegram_answer(path: str) -> Any:
    if path.endswith("/sendMessage"):
        return {"ok": True, "result": {"message_id": 419, "chat": {"id": TELEGRAM_CHAT, "type": "private"},
                                       "date": 1718031560, "text": "ok"}}
    return {"ok": False, "error_code": 404, "description": "Not Found"}


def slack_answer(path: str) -> Any:
    return {"ok": True, "channel": "C0SUPPORT", "ts": "1718031561.000400", "message": {"text": "ok"}}


async def test_a_web_chat_customer_sees_the_agent_live_in_the_open_widget(tmp_path: Path) -> None:
    web_chat = web_chat_channel()
    part, agent = handoff_part(tmp_path, channels=[web_chat])
    customer = "web-" + "0123456789abcdef" * 2 + "01234567"
    await say(agent, customer, "a human please", channel="web_chat")
    stream = web_chat._push.open(customer)  # the widget's open event stream
    service = await part.service()
    claimed = await service.claim(DANA, customer)
    assert claimed.delivery.channel == "web_chat" and claimed.delivery.pushed
    await service.reply(DANA, customer, "Hi, I'm Dana. How can I help?")
    pushed = [await stream.next(timeout=2), await stream.next(timeout=2)]
    assert pushed == [{"sender": "bot", "text": JOINED}, {"sender": "bot", "text": "Hi, I'm Dana. How can I help?"}]
    # A widget opened later shows them from the history, as bot messages.
    texts = [event.text for event in (await stored(agent, customer)).events if isinstance(event, BotUttered)]
    assert texts[-2:] == [JOINED, "Hi, I'm Dana. How can I help?"]


async def test_a_telegram_customer_gets_the_agent_through_the_bot_api(tmp_path: Path) -> None:
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput(
            TELEGRAM_TOKEN, "lepton_support_bot", "https://bot.example.com/webhooks/verified_telegram/webhook",
            "s3cr3t-Token_for_the_webhook_2024", api_url=telegram.url,
        )
        part, agent = handoff_part(tmp_path, channels=[channel])
        customer = f"verified_telegram:{TELEGRAM_CHAT}"
        await say(agent, customer, "human please", channel="verified_telegram")
        service = await part.service()
        await service.claim(DANA, customer)
        outcome = await service.reply(DANA, customer, "Hello from Dana")
        assert outcome.failure is None and outcome.delivery.pushed
        calls = telegram.calls_to("/sendMessage")
    assert [call.path for call in calls] == [f"/bot{TELEGRAM_TOKEN}/sendMessage"] * 2
    assert [(call.form()["chat_id"], call.form()["text"]) for call in calls] == [
        (str(TELEGRAM_CHAT), JOINED), (str(TELEGRAM_CHAT), "Hello from Dana"),
    ]


async def test_a_slack_customer_gets_the_agent_in_the_channel_they_wrote_in(tmp_path: Path) -> None:
    with PlatformStandIn(slack_answer) as slack:
        channel = VerifiedSlackInput.from_credentials({
            "slack_token": "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
            "slack_signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
            "api_url": f"{slack.url}/api/",
        })
        part, agent = handoff_part(tmp_path, channels=[channel])
        customer = "verified_slack:U0ADA"
        metadata = {"out_channel": "C0SUPPORT", "thread_id": "1718031552.000200", "users": ["U0BOTUSER"]}
        await say(agent, customer, "human please", channel="verified_slack", metadata=metadata)
        service = await part.service()
        await service.claim(DANA, customer)
        await service.reply(DANA, customer, "Hello from Dana")
        calls = slack.calls_to("/chat.postMessage")
    # The Slack channel of the customer's message, not the user id the conversation is named by;
    # no thread, as the channel does not use threads.
    assert [(call.json()["channel"], call.json()["text"], call.json().get("thread_ts")) for call in calls] == [
        ("C0SUPPORT", JOINED, None), ("C0SUPPORT", "Hello from Dana", None),
    ]


async def test_rest_cannot_be_pushed_to_so_the_agent_is_told_where_the_message_is(tmp_path: Path) -> None:
    part, agent = handoff_part(tmp_path, channels=[RecordingInput("rest", None)])
    await say(agent, "rest:42", "human please")
    service = await part.service()
    outcome = await service.claim(DANA, "rest:42")
    assert outcome.failure is None and outcome.delivery.pushed is False
    assert "tracker" in outcome.delivery.note and "webhook" in outcome.delivery.note
    # A channel whose output only collects replies for an HTTP response cannot push either.
    part, agent = handoff_part(tmp_path / "b", channels=[RecordingInput("collect", CollectingOutputChannel())])
    await say(agent, "collect:1", "human please", channel="collect")
    outcome = await (await part.service()).claim(DANA, "collect:1")
    assert outcome.delivery.pushed is False


async def test_a_failed_send_is_reported_and_the_message_stays_in_the_conversation(tmp_path: Path) -> None:
    output = RecordingOutput(fail=True)
    part, agent = handoff_part(tmp_path, channels=[RecordingInput("recording", output)])
    await say(agent, "recording:ada", "human please", channel="recording")
    service = await part.service()
    claimed = await service.claim(DANA, "recording:ada")
    assert claimed.handoff.agent == "dana"  # taken, though the customer was not told
    assert "did not take the message" in claimed.failure and "ConnectionError" in claimed.failure
    outcome = await service.reply(DANA, "recording:ada", "Are you still there?")
    assert outcome.failure is not None and "saved in the conversation" in outcome.failure
    texts: List[str] = [e.text for e in (await stored(agent, "recording:ada")).events if isinstance(e, BotUttered)]
    assert texts[-1] == "Are you still there?"


async def test_a_channel_the_server_no_longer_serves_is_named(tmp_path: Path) -> None:
    part, agent = handoff_part(tmp_path, channels=[RecordingInput("rest", None)])
    await say(agent, "verified_facebook:123", "human please", channel="verified_facebook")
    outcome = await (await part.service()).claim(DANA, "verified_facebook:123")
    assert "`verified_facebook`" in outcome.failure and "credentials.yml" in outcome.failure


def test_the_conversation_id_names_the_channel() -> None:
    served = ["web_chat", "verified_telegram", "rest"]
    assert channel_of("web-" + "a" * 40, served) == "web_chat"
    assert channel_of("verified_telegram:42", served) == "verified_telegram"
    assert channel_of("rest:a:b", served) == "rest"
    # Stock channels do not namespace their ids: the message names the channel.
    assert channel_of("U0ADA_C0SUPPORT", served, "slack") == "slack"
    assert channel_of("mystery:1", served, "socketio") == "socketio"

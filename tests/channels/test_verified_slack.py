"""VerifiedSlackInput: signed, fresh Slack requests reach the bot and replies reach the
configured Slack API host; unsigned, forged and replayed ones get a 401."""

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Text
from urllib.parse import urlencode

import pytest
import rasa.shared.utils.common
import rasa.shared.utils.io
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.channels.verified_slack import CREDENTIALS_EXAMPLE, VerifiedSlackInput
from tests.channels.webhook_harness import (
    FORCED_INTENT,
    PlatformStandIn,
    RecordingBot,
    get,
    post,
    serve_channel,
    wait_until,
)

pytestmark = pytest.mark.timeout(20)

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
USER_ID = "U061F7AUR"
DM_CHANNEL = "D0LEPTON3"

# An Events API `message.im` callback, as Slack posts it.
MESSAGE_EVENT = json.dumps({
    "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
    "team_id": "T0LEPTON1",
    "api_app_id": "A0LEPTON2",
    "event": {
        "client_msg_id": "5b2c3f4e-1d2a-4b7c-9e8f-0a1b2c3d4e5f",
        "type": "message",
        "text": "where is my parcel?",
        "user": USER_ID,
        "ts": "1718031552.000200",
        "team": "T0LEPTON1",
        "channel": DM_CHANNEL,
        "event_ts": "1718031552.000200",
        "channel_type": "im",
    },
    "type": "event_callback",
    "event_id": "Ev0LEPTON4",
    "event_time": 1718031552,
    "authorizations": [{"enterprise_id": None, "team_id": "T0LEPTON1", "user_id": "U0BOTUSER", "is_bot": True,
                        "is_enterprise_install": False}],
    "is_ext_shared_channel": False,
}).encode("utf-8")

# A click on a button the bot sent: Slack posts it form-encoded as `payload=<json>`.
BUTTON_CLICK = urlencode({"payload": json.dumps({
    "type": "block_actions",
    "user": {"id": USER_ID, "username": "ada", "team_id": "T0LEPTON1"},
    "api_app_id": "A0LEPTON2",
    "container": {"type": "message", "message_ts": "1718031553.000300", "channel_id": DM_CHANNEL},
    "trigger_id": "1718031560.17653672481.0b8a6f",
    "team": {"id": "T0LEPTON1", "domain": "lepton"},
    "channel": {"id": DM_CHANNEL, "name": "directmessage"},
    "message": {"type": "message", "ts": "1718031553.000300", "text": "Did that help?"},
    "actions": [{"action_id": "yes", "block_id": "b1", "text": {"type": "plain_text", "text": "Yes"},
                 "value": "/affirm", "type": "button", "action_ts": "1718031560.123456"}],
})}).encode("utf-8")


def signed(body: bytes, timestamp: Optional[int] = None, secret: Text = SIGNING_SECRET) -> Dict[Text, Text]:
    """Slack's v0 signature headers for `body` sent at `timestamp` (now by default)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode("utf-8"), f"v0:{timestamp}:".encode("utf-8") + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


def slack_answer(path: Text) -> Dict[Text, Any]:
    return {"ok": True, "channel": DM_CHANNEL, "ts": "1718031561.000400", "message": {"text": "ok"}}


def channel_for(api_url: Text) -> VerifiedSlackInput:
    return VerifiedSlackInput.from_credentials(
        {"slack_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET, "api_url": api_url}
    )


@pytest.mark.asyncio
async def test_signed_message_reaches_the_bot_and_the_reply_reaches_the_channel() -> None:
    bot = RecordingBot()
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), bot) as url:
            headers = {"Content-Type": "application/json", **signed(MESSAGE_EVENT)}
            assert (await post(f"{url}/webhook", MESSAGE_EVENT, headers))[0] == 200
            # Stock hands the message to a background task and answers at once.
            await wait_until(lambda: len(slack.calls_to("/chat.postMessage")) == 2)

    (message,) = bot.messages
    assert (message.sender_id, message.text) == (USER_ID, "where is my parcel?")
    assert message.input_channel == "verified_slack"
    text_reply, button_reply = slack.calls_to("/chat.postMessage")
    assert text_reply.path == "/api/chat.postMessage"
    assert text_reply.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    assert text_reply.json() == {"channel": DM_CHANNEL, "as_user": True, "text": "You said: where is my parcel?",
                                 "type": "mrkdwn"}
    assert button_reply.json()["channel"] == DM_CHANNEL
    assert button_reply.json()["blocks"][1] == {"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Yes"}, "value": "/affirm"},
        {"type": "button", "text": {"type": "plain_text", "text": "No"}, "value": "/deny"},
    ]}


def typed(text: Text) -> bytes:
    """MESSAGE_EVENT with `text`, as the customer typed it."""
    event = json.loads(MESSAGE_EVENT)
    event["event"]["text"] = text
    return json.dumps(event).encode("utf-8")


async def texts_received(*bodies: bytes, **overrides: Any) -> List[Text]:
    """What the bot received for the events (JSON) and clicks (form) delivered in order."""
    bot = RecordingBot()
    with PlatformStandIn(slack_answer) as slack:
        channel = VerifiedSlackInput.from_credentials(
            {"slack_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET, "api_url": f"{slack.url}/api/",
             **overrides}
        )
        async with serve_channel(channel, bot, agent=bot) as url:
            for count, body in enumerate(bodies, start=1):
                kind = "application/x-www-form-urlencoded" if body.startswith(b"payload=") else "application/json"
                assert (await post(f"{url}/webhook", body, {"Content-Type": kind, **signed(body)}))[0] == 200
                # Stock hands each message to a background task and answers at once.
                await wait_until(lambda: bot.handled == count)
    return [message.text for message in bot.messages]


@pytest.mark.asyncio
async def test_signed_button_click_arrives_as_its_value() -> None:
    # The bot answers the first message with Yes/No buttons; the click sends "/affirm".
    assert await texts_received(MESSAGE_EVENT, BUTTON_CLICK) == ["where is my parcel?", "/affirm"]


@pytest.mark.asyncio
async def test_typed_intent_command_reaches_the_bot_as_text() -> None:
    assert await texts_received(MESSAGE_EVENT, typed(FORCED_INTENT)) == [
        "where is my parcel?", 'order_status{"order_number": "LP-000001"}'
    ]


@pytest.mark.asyncio
async def test_allow_intent_commands_passes_typed_commands_unchanged() -> None:
    assert await texts_received(typed(FORCED_INTENT), allow_intent_commands=True) == [FORCED_INTENT]


@pytest.mark.asyncio
async def test_signed_url_verification_is_answered() -> None:
    token = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    challenge = json.dumps({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": token, "type": "url_verification"})
    body = challenge.encode("utf-8")
    json_type = {"Content-Type": "application/json"}
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), RecordingBot()) as url:
            status, answer = await post(f"{url}/webhook", body, {**json_type, **signed(body)})
            unsigned_status, _ = await post(f"{url}/webhook", body, json_type)
    assert status == 200 and token in answer
    assert unsigned_status == 401


def _tampered_timestamp() -> Dict[Text, Text]:
    headers = signed(MESSAGE_EVENT, int(time.time()) - 400)
    headers["X-Slack-Request-Timestamp"] = str(int(time.time()))
    return headers


REFUSED: Dict[Text, Callable[[], Dict[Text, Text]]] = {
    "unsigned": lambda: {},
    "signature-only": lambda: {"X-Slack-Signature": signed(MESSAGE_EVENT)["X-Slack-Signature"]},
    "timestamp-only": lambda: {"X-Slack-Request-Timestamp": str(int(time.time()))},
    "wrong-secret": lambda: signed(MESSAGE_EVENT, secret="not-the-signing-secret"),
    "other-body": lambda: signed(BUTTON_CLICK),
    "replayed-after-5-min": lambda: signed(MESSAGE_EVENT, int(time.time()) - 301),
    "replayed-after-1-hour": lambda: signed(MESSAGE_EVENT, int(time.time()) - 3600),
    "stale-signature-fresh-timestamp": _tampered_timestamp,
    "from-the-future": lambda: signed(MESSAGE_EVENT, int(time.time()) + 301),
    "non-ascii-signature": lambda: {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=é"},
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(REFUSED))
async def test_unsigned_forged_or_replayed_request_gets_401_and_never_reaches_the_bot(case: Text) -> None:
    bot = RecordingBot()
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), bot) as url:
            headers = {"Content-Type": "application/json", **REFUSED[case]()}
            assert (await post(f"{url}/webhook", MESSAGE_EVENT, headers))[0] == 401
            # An accepted message would start its background task within a loop turn or two.
            await asyncio.sleep(0.1)
    assert bot.messages == []
    assert slack.calls == []


@pytest.mark.asyncio
async def test_health_route_needs_no_signature() -> None:
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), RecordingBot()) as url:
            assert await get(f"{url}/") == (200, '{"status":"ok"}')


@pytest.mark.parametrize("missing", ["slack_token", "slack_signing_secret"])
def test_missing_credential_is_named_with_the_yaml_to_write(missing: Text) -> None:
    credentials = {"slack_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET}
    del credentials[missing]
    with pytest.raises(InvalidConfigException, match=f"needs `{missing}`(.|\n)*VerifiedSlackInput:\n  slack_token"):
        VerifiedSlackInput.from_credentials(credentials)


def test_stock_options_still_apply() -> None:
    channel = VerifiedSlackInput.from_credentials(
        {"slack_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET, "use_threads": True,
         "conversation_granularity": "channel"}
    )
    assert (channel.use_threads, channel.conversation_granularity, channel.api_url) == (
        True, "channel", "https://slack.com/api/"
    )
    assert channel.get_output_channel(DM_CHANNEL).client.base_url == "https://slack.com/api/"


def test_documented_credentials_entry_loads_the_way_rasa_run_loads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}.items():
        monkeypatch.setenv(variable, value)
    credentials_file = tmp_path / "credentials.yml"
    credentials_file.write_text(CREDENTIALS_EXAMPLE)
    # The two steps of rasa.core.run._create_single_channel for a channel given by module path.
    ((module_path, credentials),) = rasa.shared.utils.io.read_config_file(str(credentials_file)).items()
    channel = rasa.shared.utils.common.class_from_module_path(module_path).from_credentials(credentials)
    assert isinstance(channel, VerifiedSlackInput)
    assert channel.url_prefix() == "verified_slack"

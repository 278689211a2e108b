"""VerifiedFacebookInput: only events with a valid X-Hub-Signature-256 reach the bot, forged
ones get a 403, and replies go to the configured Graph API host."""

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Text

import pytest
import rasa.shared.utils.common
import rasa.shared.utils.io
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.channels.verified_facebook import CREDENTIALS_EXAMPLE, VerifiedFacebookInput, signature_is_valid
from tests.channels.webhook_harness import FORCED_INTENT, PlatformStandIn, RecordingBot, get, post, serve_channel

pytestmark = pytest.mark.timeout(20)

APP_SECRET = "6f1d0c5e9a7b4c2d8e3f1a0b9c8d7e6f"
PAGE_TOKEN = "EAAGm0PX4ZCpsBAKZCtestpagetoken"
VERIFY_TOKEN = "lepton-verify-7Qm2"
PAGE_ID = "104873162345678"
PSID = "6953072384729104"


def messenger_event(messaging: Dict[Text, Any]) -> bytes:
    """The envelope Meta posts for a Page subscription, serialised once: the signature covers these bytes."""
    event = {
        "object": "page",
        "entry": [{"id": PAGE_ID, "time": 1718031552123, "messaging": [
            {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1718031551876, **messaging}
        ]}],
    }
    return json.dumps(event).encode("utf-8")


TEXT_EVENT = messenger_event({"message": {"mid": "m_Zq8vXk2LrA1yW0b", "text": "where is my parcel?"}})
POSTBACK_EVENT = messenger_event({"postback": {"title": "Yes", "payload": "/affirm", "mid": "m_P0stB4ck"}})


def sign(body: bytes, secret: Text = APP_SECRET, algorithm: Text = "sha256") -> Text:
    return f"{algorithm}=" + hmac.new(secret.encode("utf-8"), body, getattr(hashlib, algorithm)).hexdigest()


def graph_answer(path: Text) -> Dict[Text, Any]:
    return {"recipient_id": PSID, "message_id": "m_reply"}


def channel_for(api_url: Text) -> VerifiedFacebookInput:
    return VerifiedFacebookInput.from_credentials(
        {"verify": VERIFY_TOKEN, "secret": APP_SECRET, "page-access-token": PAGE_TOKEN, "api_url": api_url}
    )


def sent_messages(graph: PlatformStandIn) -> list:
    """Send API calls carrying a message (typing indicators and mark_seen left out)."""
    return [call for call in graph.calls_to("/me/messages") if "message" in call.json()]


async def deliver(url: Text, body: bytes, headers: Mapping[Text, Text]) -> int:
    status, _ = await post(f"{url}/webhook", body, {"Content-Type": "application/json", **headers})
    return status


@pytest.mark.asyncio
async def test_signed_message_reaches_the_bot_and_the_reply_reaches_the_sender() -> None:
    bot = RecordingBot()
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot) as url:
            assert await deliver(url, TEXT_EVENT, {"X-Hub-Signature-256": sign(TEXT_EVENT)}) == 200

    (message,) = bot.messages
    assert (message.sender_id, message.text) == (PSID, "where is my parcel?")
    assert message.input_channel == "verified_facebook"
    text_reply, button_reply = sent_messages(graph)
    assert text_reply.path == "/v2.12/me/messages"
    assert text_reply.query["access_token"] == [PAGE_TOKEN]
    assert text_reply.json()["recipient"] == {"id": PSID}
    assert text_reply.json()["message"] == {"text": "You said: where is my parcel?"}
    assert button_reply.json()["recipient"] == {"id": PSID}
    assert button_reply.json()["message"]["attachment"]["payload"] == {
        "template_type": "button",
        "text": "Did that help?",
        "buttons": [
            {"title": "Yes", "payload": "/affirm", "type": "postback"},
            {"title": "No", "payload": "/deny", "type": "postback"},
        ],
    }


async def texts_received(*events: bytes, **overrides: Any) -> List[Text]:
    """What the bot received for `events` delivered in order from one customer."""
    bot = RecordingBot()
    with PlatformStandIn(graph_answer) as graph:
        channel = VerifiedFacebookInput.from_credentials(
            {"verify": VERIFY_TOKEN, "secret": APP_SECRET, "page-access-token": PAGE_TOKEN, "api_url": graph.url,
             **overrides}
        )
        async with serve_channel(channel, bot, agent=bot) as url:
            for event in events:
                assert await deliver(url, event, {"X-Hub-Signature-256": sign(event)}) == 200
    return [message.text for message in bot.messages]


def typed(text: Text) -> bytes:
    return messenger_event({"message": {"mid": "m_typed", "text": text}})


@pytest.mark.asyncio
async def test_signed_postback_arrives_as_its_payload() -> None:
    # The bot answers the first message with Yes/No buttons; the tap posts back "/affirm".
    assert await texts_received(TEXT_EVENT, POSTBACK_EVENT) == ["where is my parcel?", "/affirm"]


@pytest.mark.asyncio
async def test_typed_intent_command_reaches_the_bot_as_text() -> None:
    assert await texts_received(TEXT_EVENT, typed(FORCED_INTENT)) == [
        "where is my parcel?", 'order_status{"order_number": "LP-000001"}'
    ]


@pytest.mark.asyncio
async def test_allow_intent_commands_passes_typed_commands_unchanged() -> None:
    assert await texts_received(typed(FORCED_INTENT), allow_intent_commands=True) == [FORCED_INTENT]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": ""},
        {"X-Hub-Signature-256": sign(TEXT_EVENT, secret="not-the-app-secret")},
        {"X-Hub-Signature-256": sign(POSTBACK_EVENT)},
        {"X-Hub-Signature-256": sign(TEXT_EVENT)[len("sha256="):]},
        {"X-Hub-Signature-256": sign(TEXT_EVENT).upper()},
        {"X-Hub-Signature-256": sign(TEXT_EVENT, algorithm="sha1")},
        {"X-Hub-Signature-256": sign(TEXT_EVENT, algorithm="md5")},
        # Stock FacebookInput accepts these two: the legacy SHA-1 header, algorithm chosen by the sender.
        {"X-Hub-Signature": sign(TEXT_EVENT, algorithm="sha1")},
        {"X-Hub-Signature": sign(TEXT_EVENT, algorithm="md5")},
    ],
    ids=["unsigned", "empty", "wrong-secret", "other-body", "no-prefix", "upper-case", "sha1-in-256-header",
         "md5-in-256-header", "legacy-sha1-header", "legacy-md5-header"],
)
async def test_unsigned_or_forged_event_gets_403_and_never_reaches_the_bot(headers: Dict[Text, Text]) -> None:
    bot = RecordingBot()
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot) as url:
            assert await deliver(url, TEXT_EVENT, headers) == 403
    assert bot.messages == []
    assert graph.calls == []


@pytest.mark.asyncio
async def test_handshake_echoes_the_challenge_only_for_the_verify_token() -> None:
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), RecordingBot()) as url:
            handshake = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
            assert await get(f"{url}/webhook", {**handshake, "hub.verify_token": VERIFY_TOKEN}) == (200, "1158201444")
            status, body = await get(f"{url}/webhook", {**handshake, "hub.verify_token": "guess"})
            assert status == 403 and "1158201444" not in body
            assert (await get(f"{url}/webhook", handshake))[0] == 403
            assert await get(f"{url}/") == (200, '{"status":"ok"}')


@pytest.mark.asyncio
async def test_signed_event_the_parser_does_not_handle_is_acknowledged() -> None:
    bot = RecordingBot()
    standby = json.dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "standby": []}]}).encode("utf-8")
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot) as url:
            assert await deliver(url, standby, {"X-Hub-Signature-256": sign(standby)}) == 200
    assert bot.messages == []


def test_signature_check_is_bound_to_secret_body_and_algorithm() -> None:
    assert signature_is_valid(APP_SECRET, TEXT_EVENT, sign(TEXT_EVENT))
    assert not signature_is_valid(APP_SECRET, TEXT_EVENT + b" ", sign(TEXT_EVENT))
    assert not signature_is_valid(APP_SECRET + "x", TEXT_EVENT, sign(TEXT_EVENT))
    assert not signature_is_valid(APP_SECRET, TEXT_EVENT, None)
    assert not signature_is_valid(APP_SECRET, TEXT_EVENT, "sha256=\udcff" + "0" * 63)


@pytest.mark.parametrize("missing", ["verify", "secret", "page-access-token"])
def test_missing_credential_is_named_with_the_yaml_to_write(missing: Text) -> None:
    credentials = {"verify": VERIFY_TOKEN, "secret": APP_SECRET, "page-access-token": PAGE_TOKEN}
    del credentials[missing]
    with pytest.raises(InvalidConfigException, match=f"needs `{missing}`(.|\n)*VerifiedFacebookInput:\n  verify"):
        VerifiedFacebookInput.from_credentials(credentials)


def test_documented_credentials_entry_loads_the_way_rasa_run_loads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in {"FACEBOOK_VERIFY_TOKEN": VERIFY_TOKEN, "FACEBOOK_APP_SECRET": APP_SECRET, "FACEBOOK_PAGE_ACCESS_TOKEN": PAGE_TOKEN}.items():
        monkeypatch.setenv(variable, value)
    credentials_file = tmp_path / "credentials.yml"
    credentials_file.write_text(CREDENTIALS_EXAMPLE)
    # The two steps of rasa.core.run._create_single_channel for a channel given by module path.
    ((module_path, credentials),) = rasa.shared.utils.io.read_config_file(str(credentials_file)).items()
    channel = rasa.shared.utils.common.class_from_module_path(module_path).from_credentials(credentials)
    assert isinstance(channel, VerifiedFacebookInput)
    assert channel.url_prefix() == "verified_facebook"


GREETING_BUTTONS = [
    {"title": "Where is my order?", "payload": "/order_status"},
    {"title": "Return an item", "payload": "/return_item"},
    {"title": "Shipping options", "payload": "/shipping_info"},
    {"title": "Talk to a person", "payload": "/human_handoff"},
]


class GreetingBot:
    """Answers the first message with four buttons (one more than Messenger shows) and
    records its replies in a real tracker store, as Rasa's processor does."""

    def __init__(self) -> None:
        from rasa.core.tracker_store import InMemoryTrackerStore
        from rasa.shared.core.domain import Domain

        self.tracker_store = InMemoryTrackerStore(Domain.empty())
        self.messages: list = []

    def is_ready(self) -> bool:
        return True

    async def __call__(self, message: Any) -> None:
        from rasa.shared.core.events import BotUttered, UserUttered

        self.messages.append(message)
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(UserUttered(message.text, metadata=message.metadata))
        if len(self.messages) == 1:
            await message.output_channel.send_text_with_buttons(message.sender_id, "How can I help?", GREETING_BUTTONS)
            tracker.update(BotUttered("How can I help?", data={"buttons": GREETING_BUTTONS}))
        await self.tracker_store.save(tracker)


@pytest.mark.asyncio
async def test_too_many_buttons_become_a_numbered_list_and_a_number_picks_one() -> None:
    bot = GreetingBot()
    reply_two = messenger_event({"message": {"mid": "m_n2", "text": "2"}})
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot, agent=bot) as url:
            assert await deliver(url, TEXT_EVENT, {"X-Hub-Signature-256": sign(TEXT_EVENT)}) == 200
            assert await deliver(url, reply_two, {"X-Hub-Signature-256": sign(reply_two)}) == 200

    (numbered,) = sent_messages(graph)
    assert numbered.json()["message"] == {
        "text": "How can I help?\n1. Where is my order?\n2. Return an item\n3. Shipping options\n"
                "4. Talk to a person\nReply with a number."
    }
    assert [m.text for m in bot.messages] == ["where is my parcel?", "/return_item"]
    assert bot.messages[1].metadata["display_text"] == "2"

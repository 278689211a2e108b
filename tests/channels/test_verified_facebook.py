"""VerifiedFacebookInput: only events with a valid X-Hub-Signature-256 reach the bot, forged
ones get a 403, every event of a batch is handled, conversations are
`verified_facebook:<PSID>`, replies go to the configured Graph API host with the PSID, and
a batch that could not be processed is answered so that Meta delivers it again."""

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Text

import pytest
import rasa.shared.utils.common
import rasa.shared.utils.io
from rasa.core.channels.channel import UserMessage
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.channels.verified_facebook import CREDENTIALS_EXAMPLE, VerifiedFacebookInput, signature_is_valid
from lepton_components.channels.webhook_turns import too_long_reply
from lepton_components.server.request_limits import MAX_REQUEST_BYTES_ENV
from tests.channels.webhook_harness import (
    FORCED_INTENT,
    TURN_FAILURES,
    BrokenStoreAgent,
    FailingBot,
    PlatformStandIn,
    RecordingAgent,
    get,
    post,
    serve_channel,
    serve_channels,
)

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
    bot = RecordingAgent()
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot, agent=bot) as url:
            assert await deliver(url, TEXT_EVENT, {"X-Hub-Signature-256": sign(TEXT_EVENT)}) == 200

    (message,) = bot.messages
    # The conversation names its channel; replies still go to the PSID.
    assert (message.sender_id, message.text) == (f"verified_facebook:{PSID}", "where is my parcel?")
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
    bot = RecordingAgent()
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
    bot = RecordingAgent()
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot, agent=bot) as url:
            assert await deliver(url, TEXT_EVENT, headers) == 403
    assert bot.messages == []
    assert graph.calls == []


@pytest.mark.asyncio
async def test_handshake_echoes_the_challenge_only_for_the_verify_token() -> None:
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), RecordingAgent()) as url:
            handshake = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
            assert await get(f"{url}/webhook", {**handshake, "hub.verify_token": VERIFY_TOKEN}) == (200, "1158201444")
            status, body = await get(f"{url}/webhook", {**handshake, "hub.verify_token": "guess"})
            assert status == 403 and "1158201444" not in body
            assert (await get(f"{url}/webhook", handshake))[0] == 403
            assert await get(f"{url}/") == (200, '{"status":"ok"}')


@pytest.mark.asyncio
async def test_signed_event_the_parser_does_not_handle_is_acknowledged() -> None:
    bot = RecordingAgent()
    standby = json.dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "standby": []}]}).encode("utf-8")
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot, agent=bot) as url:
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
        # What Rasa's Agent has; strict mode rewraps its tracker store.
        self.processor = None

    def is_ready(self) -> bool:
        return True

    async def __call__(self, message: Any) -> None:
        from rasa.shared.core.events import BotUttered, UserUttered

        self.messages.append(message)
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(UserUttered(message.text, metadata=message.metadata, message_id=message.message_id))
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


def event(psid: Text, mid: Text, text: Text) -> Dict[Text, Any]:
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": 1718031551876,
            "message": {"mid": mid, "text": text}}


def batch(*entries: List[Dict[Text, Any]]) -> bytes:
    """A webhook body whose entries hold these messaging events, as Meta batches them."""
    return json.dumps({"object": "page", "entry": [
        {"id": PAGE_ID, "time": 1718031552123 + number, "messaging": events} for number, events in enumerate(entries)
    ]}).encode("utf-8")


def signed(body: bytes) -> Dict[Text, Text]:
    return {"X-Hub-Signature-256": sign(body)}


def recipients_and_texts(graph: PlatformStandIn) -> List[Any]:
    return [(call.json()["recipient"]["id"], call.json()["message"].get("text")) for call in sent_messages(graph)]


class ProcessorLikeBot(FailingBot):
    """A FailingBot that logs each message with its message id and replies once, as
    Rasa's processor logs `UserUttered(..., message_id=message.message_id)`."""

    async def __call__(self, message: UserMessage) -> None:
        from rasa.shared.core.events import UserUttered

        self.attempts.append(message)
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        await message.output_channel.send_text_message(message.sender_id, f"You said: {message.text}")
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(UserUttered(message.text, message_id=message.message_id))
        await self.tracker_store.save(tracker)
        self.messages.append(message)


@pytest.mark.asyncio
async def test_every_event_of_every_entry_of_a_batch_reaches_the_bot_in_order() -> None:
    other = "7120931847562013"
    body = batch([event(PSID, "m_1", "hello"), event(other, "m_2", "hi there")], [event(PSID, "m_3", "where is it?")])
    bot = ProcessorLikeBot()
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot, agent=bot) as url:
            assert await deliver(url, body, signed(body)) == 200
    # Stock handles the first event only; the other two customers heard nothing.
    assert [(m.sender_id, m.text) for m in bot.messages] == [
        (f"verified_facebook:{PSID}", "hello"), (f"verified_facebook:{other}", "hi there"),
        (f"verified_facebook:{PSID}", "where is it?"),
    ]
    assert recipients_and_texts(graph) == [
        (PSID, "You said: hello"), (other, "You said: hi there"), (PSID, "You said: where is it?")
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", list(TURN_FAILURES))
async def test_a_failed_event_fails_the_batch_and_its_redelivery_handles_each_message_once(failure: Text) -> None:
    error, status = TURN_FAILURES[failure]
    body = batch([event(PSID, "m_1", "one"), event(PSID, "m_2", "two")], [event(PSID, "m_3", "three")])
    bot = ProcessorLikeBot(None, error)
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot, agent=bot) as url:
            first = await deliver(url, body, signed(body))
            # Meta delivers the whole batch again after a non-200 answer.
            again = await deliver(url, body, signed(body))
    # Stock answered 200 and lost "two" and "three".
    assert (first, again) == (status, 200)
    assert [m.text for m in bot.attempts] == ["one", "two", "two", "three"]
    # "one" was handled by the first delivery and skipped by the second: one answer each.
    assert recipients_and_texts(graph) == [
        (PSID, "You said: one"), (PSID, "You said: two"), (PSID, "You said: three")
    ]


@pytest.mark.asyncio
async def test_an_outage_answers_503_with_retry_after() -> None:
    import aiohttp

    bot = ProcessorLikeBot(TURN_FAILURES["lock-store-down"][0])
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot, agent=bot) as url:
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{url}/webhook", data=TEXT_EVENT, headers=signed(TEXT_EVENT)) as reply:
                    assert reply.status == 503 and reply.headers["Retry-After"] == "5"
                    assert (await reply.json())["service"] == "lock_store"


@pytest.mark.asyncio
async def test_without_a_loaded_model_the_batch_is_refused_with_503() -> None:
    bot = RecordingAgent()
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot, agent=None) as url:
            assert await deliver(url, TEXT_EVENT, signed(TEXT_EVENT)) == 503
    assert bot.messages == [] and sent_messages(graph) == []


ODD_BODIES = {
    "not-json": b"{not json",
    "invalid-utf-8": b'{"object": "page", "entry": [], "x": "\xc3\x28"}',
    "json-list": b"[]",
    "lone-surrogate": batch([event(PSID, "m_s", "\ud83d")]),
    "entry-is-an-object": json.dumps({"object": "page", "entry": {"messaging": []}}).encode("utf-8"),
    "entry-of-strings": json.dumps({"object": "page", "entry": ["x"]}).encode("utf-8"),
    "no-entry": json.dumps({"object": "page"}).encode("utf-8"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(ODD_BODIES))
async def test_a_signed_body_that_is_not_a_messenger_event_gets_400(case: Text) -> None:
    bot = RecordingAgent()
    body = ODD_BODIES[case]
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot, agent=bot) as url:
            status, answer = await post(f"{url}/webhook", body, {"Content-Type": "application/json", **signed(body)})
            assert await deliver(url, TEXT_EVENT, signed(TEXT_EVENT)) == 200
    assert status == 400 and json.loads(answer)["error"] == "bad_request"
    assert [m.text for m in bot.messages] == ["where is my parcel?"]


ODD_EVENTS = {
    "no-sender": {"recipient": {"id": PAGE_ID}, "message": {"mid": "m_x", "text": "hi"}},
    "numeric-sender": {"sender": {"id": 6953072384729104}, "message": {"mid": "m_x", "text": "hi"}},
    "text-is-a-number": {"sender": {"id": PSID}, "message": {"mid": "m_x", "text": 42}},
    "empty-attachments": {"sender": {"id": PSID}, "message": {"mid": "m_x", "attachments": []}},
    "message-is-a-string": {"sender": {"id": PSID}, "message": "hi"},
    "echo-of-the-pages-image": {"sender": {"id": PAGE_ID}, "recipient": {"id": PSID}, "message": {
        "mid": "m_echo", "is_echo": True,
        "attachments": [{"type": "image", "payload": {"url": "https://example.com/a.png"}}]}},
    "delivery-receipt": {"sender": {"id": PSID}, "delivery": {"mids": ["m_1"], "watermark": 1}},
    "event-is-a-string": "hello",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(ODD_EVENTS))
async def test_an_event_the_bot_cannot_answer_is_skipped_and_the_rest_of_the_batch_handled(case: Text) -> None:
    body = batch([ODD_EVENTS[case], event(PSID, "m_ok", "where is my parcel?")])
    bot = RecordingAgent()
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), bot, agent=bot) as url:
            # 200: Meta would otherwise redeliver this batch again and again.
            assert await deliver(url, body, signed(body)) == 200
    assert [(m.sender_id, m.text) for m in bot.messages] == [(f"verified_facebook:{PSID}", "where is my parcel?")]


@pytest.mark.asyncio
async def test_a_message_over_max_message_length_gets_a_polite_reply_instead_of_the_bot() -> None:
    long_event = messenger_event({"message": {"mid": "m_long", "text": "a" * 41}})
    bot = RecordingAgent()
    with PlatformStandIn(graph_answer) as graph:
        channel = VerifiedFacebookInput.from_credentials(
            {"verify": VERIFY_TOKEN, "secret": APP_SECRET, "page-access-token": PAGE_TOKEN, "api_url": graph.url,
             "max_message_length": 40}
        )
        async with serve_channel(channel, bot, agent=bot) as url:
            assert await deliver(url, long_event, signed(long_event)) == 200
    assert bot.messages == []
    assert recipients_and_texts(graph) == [(PSID, too_long_reply(40))]


def test_max_message_length_is_checked() -> None:
    with pytest.raises(InvalidConfigException, match="`max_message_length` must be a whole number.*got 'long'"):
        VerifiedFacebookInput.from_credentials(
            {"verify": VERIFY_TOKEN, "secret": APP_SECRET, "page-access-token": PAGE_TOKEN, "max_message_length": "long"}
        )


@pytest.mark.asyncio
async def test_listing_only_this_channel_installs_the_body_limit_and_strict_stores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MAX_REQUEST_BYTES_ENV, "2000")
    large = messenger_event({"message": {"mid": "m_big", "text": "a" * 1990}})
    agent = BrokenStoreAgent()
    with PlatformStandIn(graph_answer) as graph:
        async with serve_channel(channel_for(graph.url), agent, agent=agent) as url:
            status, answer = await post(f"{url}/webhook", large, {"Content-Type": "application/json", **signed(large)})
            assert status == 413 and json.loads(answer)["error"] == "payload_too_large"
            # Without strict mode the bot would have got a new, empty conversation and 200.
            status, answer = await post(f"{url}/webhook", TEXT_EVENT,
                                        {"Content-Type": "application/json", **signed(TEXT_EVENT)})
            assert status == 503 and json.loads(answer)["service"] == "tracker_store"
    assert agent.handled == []


@pytest.mark.asyncio
async def test_a_telegram_chat_and_a_messenger_psid_with_the_same_number_are_two_conversations() -> None:
    from tests.channels import test_verified_telegram as telegram

    same = "1234567"
    tg_update = {**telegram.TEXT_UPDATE, "message": {**telegram.TEXT_UPDATE["message"], "text": "hi from Telegram",
                                                     "chat": {**telegram.CHAT, "id": int(same)}}}
    fb_body = batch([event(same, "m_same", "hi from Messenger")])
    bot = RecordingAgent()
    with PlatformStandIn(telegram.telegram_answer) as tg_api, PlatformStandIn(graph_answer) as graph:
        channels = [telegram.VerifiedTelegramInput.from_credentials(telegram.credentials(tg_api.url)),
                    channel_for(graph.url)]
        async with serve_channels(channels, bot, agent=bot) as url:
            assert await telegram.deliver(f"{url}/webhooks/verified_telegram", tg_update, telegram.SECRET) == 200
            assert await deliver(f"{url}/webhooks/verified_facebook", fb_body, signed(fb_body)) == 200

    assert sorted(await bot.tracker_store.keys()) == [f"verified_facebook:{same}", f"verified_telegram:{same}"]
    tg_tracker = await bot.tracker_store.retrieve(f"verified_telegram:{same}")
    fb_tracker = await bot.tracker_store.retrieve(f"verified_facebook:{same}")
    # Stock Rasa files both under "1234567": one conversation, each customer reading the other's.
    assert [e.text for e in tg_tracker.events if e.type_name == "user"] == ["hi from Telegram"]
    assert [e.text for e in fb_tracker.events if e.type_name == "user"] == ["hi from Messenger"]
    # Each platform got its replies addressed with its own id.
    assert {call.form()["chat_id"] for call in tg_api.calls_to("/sendMessage")} == {same}
    assert {call.json()["recipient"]["id"] for call in sent_messages(graph)} == {same}
    assert recipients_and_texts(graph)[0] == (same, "You said: hi from Messenger")


@pytest.mark.asyncio
async def test_rasas_api_reaches_the_psid_through_the_conversation_id() -> None:
    """What `POST /conversations/<id>/trigger_intent?output_channel=latest` does with the id."""
    with PlatformStandIn(graph_answer) as graph:
        output = channel_for(graph.url).get_output_channel()
        await output.send_text_message(f"verified_facebook:{PSID}", "Your parcel is on its way.")
    assert recipients_and_texts(graph) == [(PSID, "Your parcel is on its way.")]


def test_rasas_processor_stores_the_message_id_the_redelivery_check_reads() -> None:
    """Canary: the de-duplication of redelivered batches relies on this line of Rasa 3.6."""
    import inspect

    from rasa.core.processor import MessageProcessor

    assert "message_id=message.message_id" in inspect.getsource(MessageProcessor._handle_message_with_tracker)


@pytest.mark.asyncio
async def test_sending_buttons_leaves_the_responses_own_buttons_unchanged() -> None:
    """Stock writes `type: postback` into the dicts it sends; the web chat would then show them changed."""
    from lepton_components.channels.verified_facebook import VerifiedMessengerBot, graph_client

    buttons = [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]
    with PlatformStandIn(graph_answer) as graph:
        await VerifiedMessengerBot(graph_client(PAGE_TOKEN, graph.url)).send_text_with_buttons(PSID, "Ok?", buttons)
        (sent,) = sent_messages(graph)
    assert buttons == [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]
    assert [b["type"] for b in sent.json()["message"]["attachment"]["payload"]["buttons"]] == ["postback", "postback"]

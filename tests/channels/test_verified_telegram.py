"""VerifiedTelegramInput: only updates carrying the registered secret token reach the bot,
conversations are `verified_telegram:<chat id>`, replies go to the configured Bot API server
with the chat id, and an update that could not be processed is answered so that Telegram
delivers it again."""

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

import pytest
import rasa.shared.utils.common
import rasa.shared.utils.io
from rasa.shared.exceptions import InvalidConfigException, RasaException

from lepton_components.channels.verified_telegram import CREDENTIALS_EXAMPLE, SECRET_HEADER, VerifiedTelegramInput
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
    serve_app,
    serve_channel,
)

pytestmark = pytest.mark.timeout(20)

TOKEN = "7012345678:AAHk3q-Test_Token_For_Lepton_0123456"
SECRET = "s3cr3t-Token_for_the_webhook_2024"
BOT_USER = {"id": 7012345678, "is_bot": True, "first_name": "Lepton", "username": "lepton_support_bot"}
CHAT = {"id": 704412338, "first_name": "Ada", "last_name": "Lovelace", "username": "ada_l", "type": "private"}
USER = {"id": 704412338, "is_bot": False, "first_name": "Ada", "last_name": "Lovelace", "username": "ada_l",
        "language_code": "en"}

# The shape Telegram posts for a private text message.
TEXT_UPDATE = {
    "update_id": 821473006,
    "message": {"message_id": 417, "from": USER, "chat": CHAT, "date": 1718031552, "text": "where is my parcel?"},
}
# A tap on an inline keyboard button the bot sent earlier.
BUTTON_UPDATE = {
    "update_id": 821473007,
    "callback_query": {
        "id": "3025030311853468219",
        "from": USER,
        "message": {"message_id": 418, "from": BOT_USER, "chat": CHAT, "date": 1718031553, "text": "Did that help?"},
        "chat_instance": "-1385512478652946130",
        "data": "/affirm",
    },
}
# Sent when the user blocks the bot: no message at all.
MEMBER_UPDATE = {
    "update_id": 821473008,
    "my_chat_member": {
        "chat": CHAT, "from": USER, "date": 1718031600,
        "old_chat_member": {"user": BOT_USER, "status": "member"},
        "new_chat_member": {"user": BOT_USER, "status": "kicked", "until_date": 0},
    },
}


def telegram_answer(path: Text) -> Dict[Text, Any]:
    """Bot API replies, shaped as api.telegram.org sends them."""
    method = path.rsplit("/", 1)[-1]
    if method == "getMe":
        return {"ok": True, "result": BOT_USER}
    if method == "setWebhook":
        return {"ok": True, "result": True, "description": "Webhook was set"}
    if method == "sendMessage":
        return {"ok": True, "result": {"message_id": 419, "from": BOT_USER, "chat": CHAT, "date": 1718031560,
                                       "text": "ok"}}
    return {"ok": False, "error_code": 404, "description": "Not Found"}


def credentials(api_url: Text, **overrides: Any) -> Dict[Text, Any]:
    values = {
        "access_token": TOKEN,
        "verify": BOT_USER["username"],
        "webhook_url": "https://bot.example.com/webhooks/verified_telegram/webhook",
        "secret_token": SECRET,
        "api_url": api_url,
    }
    values.update(overrides)
    return values


async def deliver(base_url: Text, update: Dict[Text, Any], secret: Optional[Text]) -> int:
    status, _ = await deliver_raw(base_url, json.dumps(update).encode("utf-8"), secret)
    return status


async def deliver_raw(base_url: Text, body: bytes, secret: Optional[Text] = SECRET) -> Any:
    """(status, text) for a raw body posted as Telegram would."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    return await post(f"{base_url}/webhook", body, headers)


@pytest.mark.asyncio
async def test_start_up_registers_the_webhook_with_the_secret_token() -> None:
    with PlatformStandIn(telegram_answer) as telegram:
        async with serve_channel(VerifiedTelegramInput.from_credentials(credentials(telegram.url)), RecordingAgent()):
            (call,) = telegram.calls_to("/setWebhook")
    assert call.path == f"/bot{TOKEN}/setWebhook"
    assert call.form() == {"url": "https://bot.example.com/webhooks/verified_telegram/webhook", "secret_token": SECRET}


@pytest.mark.asyncio
async def test_signed_update_reaches_the_bot_and_the_reply_reaches_the_chat() -> None:
    bot = RecordingAgent()
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url))
        async with serve_channel(channel, bot, agent=bot) as url:
            assert await deliver(url, TEXT_UPDATE, SECRET) == 200

    (message,) = bot.messages
    # The conversation names its channel; the reply still goes to the chat id.
    assert (message.sender_id, message.text, message.input_channel) == (
        "verified_telegram:704412338", "where is my parcel?", "verified_telegram"
    )
    assert list(await bot.tracker_store.keys()) == ["verified_telegram:704412338"]
    text_reply, button_reply = telegram.calls_to("/sendMessage")
    assert text_reply.path == f"/bot{TOKEN}/sendMessage"
    assert text_reply.form() == {"chat_id": "704412338", "text": "You said: where is my parcel?"}
    assert button_reply.form()["chat_id"] == "704412338"
    assert json.loads(button_reply.form()["reply_markup"]) == {
        "inline_keyboard": [[{"text": "Yes", "callback_data": "/affirm"}, {"text": "No", "callback_data": "/deny"}]]
    }


def typed(text: Text) -> Dict[Text, Any]:
    """A private text message with `text`, as the customer typed it."""
    return {**TEXT_UPDATE, "message": {**TEXT_UPDATE["message"], "text": text}}


async def texts_received(*updates: Dict[Text, Any], **overrides: Any) -> List[Text]:
    """What the bot received for `updates` delivered in order to one chat."""
    bot = RecordingAgent()
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url, **overrides))
        async with serve_channel(channel, bot, agent=bot) as url:
            for update in updates:
                assert await deliver(url, update, SECRET) == 200
    return [message.text for message in bot.messages]


@pytest.mark.asyncio
async def test_button_tap_arrives_as_its_payload_from_the_chat() -> None:
    # The bot answers the first message with Yes/No buttons; the tap sends "/affirm".
    assert await texts_received(TEXT_UPDATE, BUTTON_UPDATE) == ["where is my parcel?", "/affirm"]


@pytest.mark.asyncio
async def test_typed_intent_command_reaches_the_bot_as_text() -> None:
    received = await texts_received(TEXT_UPDATE, typed(FORCED_INTENT), typed("/affirm"))
    # Not a button of the bot's: forced intents and entities are read as text. "/affirm"
    # typed after the bot's own buttons is their payload, so it still passes.
    assert received == ["where is my parcel?", 'order_status{"order_number": "LP-000001"}', "/affirm"]


@pytest.mark.asyncio
async def test_forged_button_tap_for_a_button_never_offered_reaches_the_bot_as_text() -> None:
    forged = {**BUTTON_UPDATE, "callback_query": {**BUTTON_UPDATE["callback_query"], "data": FORCED_INTENT}}
    assert await texts_received(TEXT_UPDATE, forged) == [
        "where is my parcel?", 'order_status{"order_number": "LP-000001"}'
    ]


@pytest.mark.asyncio
async def test_restart_still_starts_the_conversation_over() -> None:
    # Stock sends `/restart` then `/start`; only `/restart` is a command customers may send.
    assert await texts_received(typed("/restart")) == ["/restart", "start"]


@pytest.mark.asyncio
async def test_allow_intent_commands_passes_typed_commands_unchanged() -> None:
    assert await texts_received(typed(FORCED_INTENT), allow_intent_commands=True) == [FORCED_INTENT]


def test_allow_intent_commands_must_be_a_boolean() -> None:
    with pytest.raises(InvalidConfigException, match="`allow_intent_commands` must be true or false, got 'yes'"):
        VerifiedTelegramInput.from_credentials(credentials("http://127.0.0.1:9", allow_intent_commands="yes"))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "secret, status",
    [(None, 401), ("", 403), ("wrong-secret-of-the-same-shape-2024", 403), (SECRET[:-1], 403), (SECRET + "x", 403),
     (SECRET.upper(), 403)],
    ids=["missing", "empty", "wrong", "truncated", "extended", "case-changed"],
)
async def test_update_without_the_right_secret_is_refused_before_the_bot(secret: Optional[Text], status: int) -> None:
    bot = RecordingAgent()
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url))
        async with serve_channel(channel, bot, agent=bot) as url:
            assert await deliver(url, TEXT_UPDATE, secret) == status
    assert bot.messages == []
    assert telegram.calls_to("/sendMessage") == []


@pytest.mark.asyncio
async def test_update_without_a_message_is_acknowledged_and_ignored() -> None:
    bot = RecordingAgent()
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url))
        async with serve_channel(channel, bot, agent=bot) as url:
            # Stock TelegramInput fails with a 500 here, and Telegram keeps redelivering.
            assert await deliver(url, MEMBER_UPDATE, SECRET) == 200
            assert await get(f"{url}/") == (200, '{"status":"ok"}')
    assert bot.messages == []


@pytest.mark.asyncio
async def test_start_up_fails_when_the_token_is_another_bots() -> None:
    channel = VerifiedTelegramInput.from_credentials(credentials("", verify="someone_elses_bot"))
    with PlatformStandIn(telegram_answer) as telegram:
        channel.api_url = telegram.url
        with pytest.raises(RasaException, match="belongs to bot 'lepton_support_bot'.*someone_elses_bot"):
            async with serve_channel(channel, RecordingAgent()):
                pass
        assert telegram.calls_to("/setWebhook") == []


@pytest.mark.parametrize("missing", ["access_token", "verify", "webhook_url", "secret_token"])
def test_missing_credential_is_named_with_the_yaml_to_write(missing: Text) -> None:
    values = credentials("http://127.0.0.1:9")
    del values[missing]
    with pytest.raises(InvalidConfigException, match=f"needs `{missing}`(.|\n)*VerifiedTelegramInput:\n  access_token"):
        VerifiedTelegramInput.from_credentials(values)


@pytest.mark.parametrize("secret", ["short", "has spaces in it, 1234567890", "x" * 257, "${TELEGRAM_SECRET_TOKEN}"])
def test_secret_token_telegram_would_refuse_or_too_weak_is_rejected(secret: Text) -> None:
    with pytest.raises(InvalidConfigException, match="secret_token` must be 16 to 256 characters"):
        VerifiedTelegramInput.from_credentials(credentials("http://127.0.0.1:9", secret_token=secret))


def test_malformed_bot_token_is_rejected_before_start_up() -> None:
    with pytest.raises(InvalidConfigException, match="access_token` is not a bot token"):
        VerifiedTelegramInput.from_credentials(credentials("http://127.0.0.1:9", access_token="not a token"))


def test_documented_credentials_entry_loads_the_way_rasa_run_loads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in {"TELEGRAM_ACCESS_TOKEN": TOKEN, "TELEGRAM_SECRET_TOKEN": SECRET}.items():
        monkeypatch.setenv(variable, value)
    credentials_file = tmp_path / "credentials.yml"
    credentials_file.write_text(CREDENTIALS_EXAMPLE)
    # The two steps of rasa.core.run._create_single_channel for a channel given by module path.
    ((module_path, credentials),) = rasa.shared.utils.io.read_config_file(str(credentials_file)).items()
    channel = rasa.shared.utils.common.class_from_module_path(module_path).from_credentials(credentials)
    assert isinstance(channel, VerifiedTelegramInput)
    assert channel.url_prefix() == "verified_telegram"


def chat_message(text: Any = "where is my parcel?", **message_fields: Any) -> Dict[Text, Any]:
    """TEXT_UPDATE with its message's `text` and other fields replaced."""
    return {**TEXT_UPDATE, "message": {**TEXT_UPDATE["message"], "text": text, **message_fields}}


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", list(TURN_FAILURES))
async def test_an_update_that_could_not_be_processed_is_refused_so_telegram_delivers_it_again(failure: Text) -> None:
    error, status = TURN_FAILURES[failure]
    bot = FailingBot(error)
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url))
        async with serve_channel(channel, bot, agent=bot) as url:
            first_status, answer = await deliver_raw(url, json.dumps(TEXT_UPDATE).encode("utf-8"))
            # Telegram's redelivery of the same update, once the outage is over.
            assert await deliver(url, TEXT_UPDATE, SECRET) == 200

    # Stock (and this channel before) answered 200 "success": Telegram never resent it.
    assert first_status == status
    if status == 503:
        assert json.loads(answer)["error"] == "service_unavailable"
    assert [m.text for m in bot.attempts] == ["where is my parcel?"] * 2
    assert [m.text for m in bot.messages] == ["where is my parcel?"]
    # The customer got the answer once, from the redelivery.
    assert [c.form()["text"] for c in telegram.calls_to("/sendMessage")][0] == "You said: where is my parcel?"
    assert len(telegram.calls_to("/sendMessage")) == 2


@pytest.mark.asyncio
async def test_an_outage_answers_503_with_retry_after() -> None:
    import aiohttp

    error, _ = TURN_FAILURES["tracker-store-down"]
    bot = FailingBot(error)
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url))
        async with serve_channel(channel, bot, agent=bot) as url:
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    f"{url}/webhook", data=json.dumps(TEXT_UPDATE), headers={SECRET_HEADER: SECRET}
                ) as reply:
                    assert reply.status == 503 and reply.headers["Retry-After"] == "5"
                    assert (await reply.json())["service"] == "tracker_store"


@pytest.mark.asyncio
@pytest.mark.parametrize("loaded", [False, True], ids=["no-agent", "agent-without-model"])
async def test_without_a_loaded_model_the_update_is_refused_with_503(loaded: bool) -> None:
    from rasa.core.agent import Agent

    bot = RecordingAgent()
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url))
        # Rasa's Agent.handle_message drops a message silently while no model is loaded.
        async with serve_channel(channel, bot, agent=Agent() if loaded else None) as url:
            status, answer = await deliver_raw(url, json.dumps(TEXT_UPDATE).encode("utf-8"))
    assert status == 503 and json.loads(answer)["error"] == "no_model_loaded"
    assert bot.messages == [] and telegram.calls_to("/sendMessage") == []


ODD_BODIES = {
    "not-json": b"{not json",
    "invalid-utf-8": b'{"update_id": 1, "message": {"text": "\xff\xfe"}}',
    "json-list": b"[]",
    "json-string": b'"update"',
    "lone-surrogate-in-text": json.dumps(chat_message("\ud83d")).encode("utf-8"),
    "lone-surrogate-in-a-name": json.dumps(
        {**TEXT_UPDATE, "message": {**TEXT_UPDATE["message"], "from": {**USER, "first_name": "Ada\udc00"}}}
    ).encode("utf-8"),
    "text-is-a-number": json.dumps(chat_message(42)).encode("utf-8"),
    "message-is-a-string": json.dumps({"update_id": 1, "message": "hi"}).encode("utf-8"),
    "chat-is-a-list": json.dumps(chat_message(chat=[])).encode("utf-8"),
    "chat-id-is-a-string": json.dumps(chat_message(chat={**CHAT, "id": "704412338"})).encode("utf-8"),
    "chat-id-is-a-boolean": json.dumps(chat_message(chat={**CHAT, "id": True})).encode("utf-8"),
    "chat-without-id": json.dumps(chat_message(chat={"type": "private"})).encode("utf-8"),
    "location-of-strings": json.dumps(
        {**TEXT_UPDATE, "message": {**TEXT_UPDATE["message"], "text": None,
                                    "location": {"longitude": '1, "lat": 2} {"x', "latitude": "2"}}}
    ).encode("utf-8"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(ODD_BODIES))
async def test_a_signed_body_that_is_not_a_telegram_update_gets_400_and_never_reaches_the_bot(case: Text) -> None:
    bot = RecordingAgent()
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url))
        async with serve_channel(channel, bot, agent=bot) as url:
            status, answer = await deliver_raw(url, ODD_BODIES[case])
            # The server is fine afterwards.
            assert await deliver(url, TEXT_UPDATE, SECRET) == 200
    assert status == 400 and json.loads(answer)["error"] == "bad_request"
    assert [m.text for m in bot.messages] == ["where is my parcel?"]


@pytest.mark.asyncio
async def test_a_location_still_reaches_the_bot() -> None:
    located = {**TEXT_UPDATE, "message": {**{k: v for k, v in TEXT_UPDATE["message"].items() if k != "text"},
                                           "location": {"longitude": 13.4, "latitude": 52.5}}}
    assert await texts_received(located) == ['{"lng":13.4, "lat":52.5}']


@pytest.mark.asyncio
@pytest.mark.parametrize("limit, length, reaches_bot", [(2000, 2000, True), (2000, 2001, False), (10, 11, False)])
async def test_a_message_over_max_message_length_gets_a_polite_reply_instead_of_the_bot(
    limit: int, length: int, reaches_bot: bool
) -> None:
    bot = RecordingAgent()
    overrides = {} if limit == 2000 else {"max_message_length": limit}
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url, **overrides))
        async with serve_channel(channel, bot, agent=bot) as url:
            assert await deliver(url, chat_message("a" * length), SECRET) == 200
    assert (len(bot.messages) == 1) is reaches_bot
    if not reaches_bot:
        (reply,) = telegram.calls_to("/sendMessage")
        assert reply.form() == {"chat_id": "704412338", "text": too_long_reply(limit)}
        assert f"at most {limit} characters" in reply.form()["text"]
        assert list(await bot.tracker_store.keys()) == []


@pytest.mark.parametrize("value", [0, -1, "2000", 1.5, True, None])
def test_max_message_length_must_be_a_positive_whole_number(value: Any) -> None:
    if value is None:
        # Absent (or null in YAML): the default.
        assert VerifiedTelegramInput.from_credentials(credentials("http://127.0.0.1:9")).max_message_length == 2000
        return
    with pytest.raises(InvalidConfigException, match=f"`max_message_length` must be a whole number.*got {value!r}"):
        VerifiedTelegramInput.from_credentials(credentials("http://127.0.0.1:9", max_message_length=value))


@pytest.mark.asyncio
async def test_listing_only_this_channel_installs_the_body_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_REQUEST_BYTES_ENV, "2000")
    bot = RecordingAgent()
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url))
        async with serve_channel(channel, bot, agent=bot) as url:
            status, answer = await deliver_raw(url, json.dumps(chat_message("a" * 3000)).encode("utf-8"))
            metrics_status, metrics = await get(url.replace("/webhooks/verified_telegram", "/metrics"))
    assert status == 413 and json.loads(answer)["error"] == "payload_too_large"
    assert metrics_status == 200 and "lepton_http_request_duration_seconds" in metrics
    assert bot.messages == []


@pytest.mark.asyncio
async def test_listing_only_this_channel_makes_tracker_store_errors_reach_telegram() -> None:
    """Without strict mode Rasa's FailSafeTrackerStore would hand the bot a new, empty conversation."""
    agent = BrokenStoreAgent()
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url))
        async with serve_channel(channel, agent, agent=agent) as url:
            status, answer = await deliver_raw(url, json.dumps(TEXT_UPDATE).encode("utf-8"))
    assert status == 503 and json.loads(answer)["service"] == "tracker_store"
    assert agent.handled == []


@pytest.mark.asyncio
async def test_rasas_api_reaches_the_chat_through_the_conversation_id() -> None:
    """What `POST /conversations/<id>/trigger_intent?output_channel=latest` does with the id."""
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url))
        output = channel.get_output_channel()
        await output.send_text_message("verified_telegram:704412338", "Your parcel is on its way.")
        await output.session.close()
    (call,) = telegram.calls_to("/sendMessage")
    assert call.form() == {"chat_id": "704412338", "text": "Your parcel is on its way."}


@pytest.mark.asyncio
async def test_log_lines_about_a_failed_update_do_not_name_the_chat(caplog: pytest.LogCaptureFixture) -> None:
    bot = FailingBot(TURN_FAILURES["tracker-store-down"][0], TURN_FAILURES["bug"][0])
    with PlatformStandIn(telegram_answer) as telegram:
        channel = VerifiedTelegramInput.from_credentials(credentials(telegram.url))
        async with serve_channel(channel, bot, agent=bot) as url:
            with caplog.at_level(logging.INFO):
                assert await deliver(url, TEXT_UPDATE, SECRET) == 503
                assert await deliver(url, TEXT_UPDATE, SECRET) == 500
                assert await deliver(url, chat_message("a" * 2001), SECRET) == 200
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("lepton_components")]
    assert any("verified_telegram sender #" in line for line in lines), lines
    assert not any("704412338" in line for line in lines), lines


@pytest.mark.asyncio
async def test_listing_only_this_channel_refuses_to_serve_rasas_api_without_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`rasa run --enable-api` without `--auth-token`: stock starts and serves `PUT /model` to anyone."""
    from rasa.core.channels.channel import register
    from rasa.server import create_app
    from sanic import Sanic

    from lepton_components.server.api_auth import ALLOW_OPEN_API_ENV, API_TOKEN_ENV

    for name in (API_TOKEN_ENV, ALLOW_OPEN_API_ENV):
        monkeypatch.delenv(name, raising=False)
    # Rasa names every app "rasa_server"; Sanic refuses a second one outside test mode.
    monkeypatch.setattr(Sanic, "test_mode", True)
    app = create_app(agent=None, auth_token=None)
    with PlatformStandIn(telegram_answer) as telegram:
        register([VerifiedTelegramInput.from_credentials(credentials(telegram.url))], app, route="/webhooks/")
        with pytest.raises(InvalidConfigException, match="--auth-token"):
            async with serve_app(app):
                pass

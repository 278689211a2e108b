"""VerifiedTelegramInput: only updates carrying the registered secret token reach the bot,
and replies go to the configured Bot API server with the right chat id."""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

import pytest
import rasa.shared.utils.common
import rasa.shared.utils.io
from rasa.shared.exceptions import InvalidConfigException, RasaException

from lepton_components.channels.verified_telegram import CREDENTIALS_EXAMPLE, SECRET_HEADER, VerifiedTelegramInput
from tests.channels.webhook_harness import FORCED_INTENT, PlatformStandIn, RecordingBot, get, post, serve_channel

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
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    status, _ = await post(f"{base_url}/webhook", json.dumps(update).encode("utf-8"), headers)
    return status


@pytest.mark.asyncio
async def test_start_up_registers_the_webhook_with_the_secret_token() -> None:
    with PlatformStandIn(telegram_answer) as telegram:
        async with serve_channel(VerifiedTelegramInput.from_credentials(credentials(telegram.url)), RecordingBot()):
            (call,) = telegram.calls_to("/setWebhook")
    assert call.path == f"/bot{TOKEN}/setWebhook"
    assert call.form() == {"url": "https://bot.example.com/webhooks/verified_telegram/webhook", "secret_token": SECRET}


@pytest.mark.asyncio
async def test_signed_update_reaches_the_bot_and_the_reply_reaches_the_chat() -> None:
    bot = RecordingBot()
    with PlatformStandIn(telegram_answer) as telegram:
        async with serve_channel(VerifiedTelegramInput.from_credentials(credentials(telegram.url)), bot) as url:
            assert await deliver(url, TEXT_UPDATE, SECRET) == 200

    (message,) = bot.messages
    assert (message.sender_id, message.text, message.input_channel) == (
        "704412338", "where is my parcel?", "verified_telegram"
    )
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
    bot = RecordingBot()
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
    bot = RecordingBot()
    with PlatformStandIn(telegram_answer) as telegram:
        async with serve_channel(VerifiedTelegramInput.from_credentials(credentials(telegram.url)), bot) as url:
            assert await deliver(url, TEXT_UPDATE, secret) == status
    assert bot.messages == []
    assert telegram.calls_to("/sendMessage") == []


@pytest.mark.asyncio
async def test_update_without_a_message_is_acknowledged_and_ignored() -> None:
    bot = RecordingBot()
    with PlatformStandIn(telegram_answer) as telegram:
        async with serve_channel(VerifiedTelegramInput.from_credentials(credentials(telegram.url)), bot) as url:
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
            async with serve_channel(channel, RecordingBot()):
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

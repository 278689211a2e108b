"""VerifiedSlackInput: signed, fresh Slack requests reach the bot and replies reach the
configured Slack API host; unsigned, forged and replayed ones get a 401; conversations are
`verified_slack:<user>`; a message that could not be processed is answered so that Slack
retries it."""

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Text
from urllib.parse import parse_qs, urlencode

import pytest
import rasa.shared.utils.common
import rasa.shared.utils.io
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.channels.verified_slack import CREDENTIALS_EXAMPLE, VerifiedSlackInput
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
    bot = RecordingAgent()
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), bot, agent=bot) as url:
            headers = {"Content-Type": "application/json", **signed(MESSAGE_EVENT)}
            assert (await post(f"{url}/webhook", MESSAGE_EVENT, headers))[0] == 200
            # The answer waits for the turn (up to ACK_DEADLINE_S): the replies are out.
            assert len(slack.calls_to("/chat.postMessage")) == 2

    (message,) = bot.messages
    # The conversation names its channel; replies go to the DM channel as before.
    assert (message.sender_id, message.text) == (f"verified_slack:{USER_ID}", "where is my parcel?")
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
    bot = RecordingAgent()
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
        async with serve_channel(channel_for(f"{slack.url}/api/"), RecordingAgent()) as url:
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
    bot = RecordingAgent()
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), bot, agent=bot) as url:
            headers = {"Content-Type": "application/json", **REFUSED[case]()}
            assert (await post(f"{url}/webhook", MESSAGE_EVENT, headers))[0] == 401
            # An accepted message would start its background task within a loop turn or two.
            await asyncio.sleep(0.1)
    assert bot.messages == []
    assert slack.calls == []


@pytest.mark.asyncio
async def test_health_route_needs_no_signature() -> None:
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), RecordingAgent()) as url:
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


JSON_TYPE = {"Content-Type": "application/json"}
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}


def posted_texts(slack: PlatformStandIn) -> List[Any]:
    return [(call.json()["channel"], call.json().get("text")) for call in slack.calls_to("/chat.postMessage")]


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", list(TURN_FAILURES))
async def test_a_message_that_could_not_be_processed_is_refused_so_slack_retries_it(failure: Text) -> None:
    error, status = TURN_FAILURES[failure]
    bot = FailingBot(error)
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), bot, agent=bot) as url:
            first = (await post(f"{url}/webhook", MESSAGE_EVENT, {**JSON_TYPE, **signed(MESSAGE_EVENT)}))[0]
            # Slack's retry after an error answer: the same event, with the retry headers.
            retry = {**JSON_TYPE, **signed(MESSAGE_EVENT), "X-Slack-Retry-Num": "1",
                     "X-Slack-Retry-Reason": "http_error"}
            again = (await post(f"{url}/webhook", MESSAGE_EVENT, retry))[0]
    # Stock answered 200 at once and lost the message when the turn failed.
    assert (first, again) == (status, 200)
    assert [m.text for m in bot.attempts] == ["where is my parcel?"] * 2
    assert posted_texts(slack)[0] == (DM_CHANNEL, "You said: where is my parcel?")
    assert len(posted_texts(slack)) == 2


@pytest.mark.asyncio
async def test_an_outage_answers_503_with_retry_after() -> None:
    import aiohttp

    bot = FailingBot(TURN_FAILURES["tracker-store-down"][0])
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), bot, agent=bot) as url:
            async with aiohttp.ClientSession() as session:
                headers = {**JSON_TYPE, **signed(MESSAGE_EVENT)}
                async with session.post(f"{url}/webhook", data=MESSAGE_EVENT, headers=headers) as reply:
                    assert reply.status == 503 and reply.headers["Retry-After"] == "5"
                    assert (await reply.json())["service"] == "tracker_store"


@pytest.mark.asyncio
async def test_a_retry_for_a_late_answer_is_dropped_as_stock_does() -> None:
    bot = RecordingAgent()
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), bot, agent=bot) as url:
            retry = {**JSON_TYPE, **signed(MESSAGE_EVENT), "X-Slack-Retry-Num": "1",
                     "X-Slack-Retry-Reason": "http_timeout"}
            status, _ = await post(f"{url}/webhook", MESSAGE_EVENT, retry)
    assert status == 201 and bot.messages == []


@pytest.mark.asyncio
async def test_a_turn_still_running_at_the_deadline_is_acknowledged_and_finishes() -> None:
    release = asyncio.Event()
    bot = RecordingAgent()

    async def slow_bot(message: Any) -> None:
        await release.wait()
        await bot(message)

    channel = channel_for("")
    with PlatformStandIn(slack_answer) as slack:
        channel.api_url = f"{slack.url}/api/"
        channel.ack_deadline_s = 0.2
        async with serve_channel(channel, slow_bot, agent=bot) as url:
            loop = asyncio.get_running_loop()
            started = loop.time()
            status, _ = await post(f"{url}/webhook", MESSAGE_EVENT, {**JSON_TYPE, **signed(MESSAGE_EVENT)})
            # Within Slack's 3 s, before the turn is done, so that Slack does not resend it.
            assert status == 200 and loop.time() - started < 2 and bot.messages == []
            release.set()
            await wait_until(lambda: bot.handled == 1)
    assert posted_texts(slack)[0] == (DM_CHANNEL, "You said: where is my parcel?")


@pytest.mark.asyncio
async def test_without_a_loaded_model_the_message_is_refused_with_503() -> None:
    bot = RecordingAgent()
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), bot, agent=None) as url:
            status, answer = await post(f"{url}/webhook", MESSAGE_EVENT, {**JSON_TYPE, **signed(MESSAGE_EVENT)})
    assert status == 503 and json.loads(answer)["error"] == "no_model_loaded"
    assert bot.messages == []


def with_event(**fields: Any) -> bytes:
    callback = json.loads(MESSAGE_EVENT)
    callback["event"].update(fields)
    return json.dumps(callback).encode("utf-8")


def click(**fields: Any) -> bytes:
    payload = json.loads(parse_qs(BUTTON_CLICK.decode("utf-8"))["payload"][0])
    payload.update(fields)
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8")


ODD_REQUESTS = {
    "not-json": (b"{not json", JSON_TYPE),
    "invalid-utf-8": (b'{"event": {"text": "\xff"}}', JSON_TYPE),
    "json-list": (b"[]", JSON_TYPE),
    "lone-surrogate": (with_event(text="\udc00 hi"), JSON_TYPE),
    "event-is-a-string": (json.dumps({"type": "event_callback", "event": "message"}).encode("utf-8"), JSON_TYPE),
    "text-is-a-list": (with_event(text=["hi"]), JSON_TYPE),
    "user-is-a-number": (with_event(user=7), JSON_TYPE),
    "channel-is-an-object": (with_event(channel={"id": DM_CHANNEL}), JSON_TYPE),
    "authorizations-of-strings": (
        json.dumps({**json.loads(MESSAGE_EVENT), "authorizations": ["U0BOTUSER"]}).encode("utf-8"), JSON_TYPE
    ),
    "form-without-payload": (b"command=%2Fhelp&text=hi", FORM_TYPE),
    "payload-not-json": (b"payload=%7Bnot", FORM_TYPE),
    "payload-invalid-utf-8": (b"payload=%FF%FE", FORM_TYPE),
    "actions-is-an-object": (click(actions={"type": "button"}), FORM_TYPE),
    "user-missing-from-click": (click(user=None), FORM_TYPE),
    "static-select-without-option": (click(actions=[{"type": "static_select", "selected_option": "x"}]), FORM_TYPE),
    "value-is-a-number": (click(actions=[{"type": "button", "value": 3}]), FORM_TYPE),
    "other-content-type": (MESSAGE_EVENT, {"Content-Type": "text/plain"}),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(ODD_REQUESTS))
async def test_a_signed_request_of_another_shape_gets_400_and_never_reaches_the_bot(case: Text) -> None:
    body, content_type = ODD_REQUESTS[case]
    bot = RecordingAgent()
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), bot, agent=bot) as url:
            status, answer = await post(f"{url}/webhook", body, {**content_type, **signed(body)})
            assert (await post(f"{url}/webhook", MESSAGE_EVENT, {**JSON_TYPE, **signed(MESSAGE_EVENT)}))[0] == 200
    assert status == 400 and json.loads(answer)["error"] == "bad_request"
    assert [m.text for m in bot.messages] == ["where is my parcel?"]


IGNORED = {
    "bot-message": (with_event(bot_id="B0LEPTON"), JSON_TYPE),
    "message-without-user": (with_event(user=None), JSON_TYPE),
    "channel-the-bot-does-not-serve": (with_event(channel_type="channel", channel="C0PUBLIC"), JSON_TYPE),
    # Stock answers 500 to these two, and Slack shows the user an error.
    "unsupported-interaction": (click(actions=[{"type": "radio_buttons", "selected_option": {"value": "/x"}}]),
                                FORM_TYPE),
    "view-submission": (urlencode({"payload": json.dumps({"type": "view_submission"})}).encode("utf-8"), FORM_TYPE),
    "link-button": (click(actions=[{"type": "button", "url": "https://example.com"}]), FORM_TYPE),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(IGNORED))
async def test_a_request_the_bot_ignores_on_purpose_gets_200(case: Text) -> None:
    body, content_type = IGNORED[case]
    bot = RecordingAgent()
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), bot, agent=bot) as url:
            status, _ = await post(f"{url}/webhook", body, {**content_type, **signed(body)})
            # Stock would have started a background turn: give it a loop turn or two.
            await asyncio.sleep(0.1)
    assert status == 200 and bot.messages == [] and slack.calls == []


@pytest.mark.asyncio
async def test_a_message_over_max_message_length_gets_a_polite_reply_instead_of_the_bot() -> None:
    long_message = with_event(text="<@U0BOTUSER> " + "a" * 2000)
    bot = RecordingAgent()
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), bot, agent=bot) as url:
            status, _ = await post(f"{url}/webhook", long_message, {**JSON_TYPE, **signed(long_message)})
    assert status == 200 and bot.messages == []
    assert posted_texts(slack) == [(DM_CHANNEL, too_long_reply(2000))]


def test_max_message_length_is_checked() -> None:
    with pytest.raises(InvalidConfigException, match="`max_message_length` must be a whole number.*got 0"):
        VerifiedSlackInput.from_credentials(
            {"slack_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET, "max_message_length": 0}
        )


@pytest.mark.asyncio
async def test_listing_only_this_channel_installs_the_body_limit_and_strict_stores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MAX_REQUEST_BYTES_ENV, "2000")
    large = with_event(text="a" * 2000)
    agent = BrokenStoreAgent()
    with PlatformStandIn(slack_answer) as slack:
        async with serve_channel(channel_for(f"{slack.url}/api/"), agent, agent=agent) as url:
            status, answer = await post(f"{url}/webhook", large, {**JSON_TYPE, **signed(large)})
            assert status == 413 and json.loads(answer)["error"] == "payload_too_large"
            # Without strict mode the bot would have got a new, empty conversation and 200.
            status, answer = await post(f"{url}/webhook", MESSAGE_EVENT, {**JSON_TYPE, **signed(MESSAGE_EVENT)})
            assert status == 503 and json.loads(answer)["service"] == "tracker_store"
    assert agent.handled == []


@pytest.mark.asyncio
async def test_rasas_api_reaches_the_user_through_the_conversation_id() -> None:
    """What `POST /conversations/<id>/trigger_intent?output_channel=latest` does with the id."""
    with PlatformStandIn(slack_answer) as slack:
        output = channel_for(f"{slack.url}/api/").get_output_channel()
        await output.send_text_message(f"verified_slack:{USER_ID}", "Your parcel is on its way.")
    # No `slack_channel` configured: stock posts to the user's id, which Slack opens as a DM.
    assert posted_texts(slack) == [(USER_ID, "Your parcel is on its way.")]

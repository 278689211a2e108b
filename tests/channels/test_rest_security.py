"""The REST channel against a hostile caller: no credential, forged ids and metadata, odd text.

Each case is what an attacker on the network would try against `POST
/webhooks/rest/webhook`; stock Rasa's `RestInput` accepts every one of them.
"""

import json
import time
from types import SimpleNamespace
from typing import Any, Dict, Optional, Text

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, SlotSet
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.channels.intent_commands import without_command_prefix
from lepton_components.channels.rest import LeptonRestInput
from lepton_components.channels.rest_auth import RestCredential, signature
from lepton_components.identity.link_commands import UNVERIFIED, intercept_link_commands, parse_link_command
from lepton_components.identity.link_registry import LinkRegistry
from lepton_components.identity.linked_tracker_store import LinkedTrackerStore
from tests.channels.webhook_harness import RecordingBot, post, serve_channel
from tests.identity.conftest import code_from, turn
from tests.rest_client import REST_JSON, REST_TOKEN, rest_channel, rest_credentials

pytestmark = pytest.mark.timeout(60)

SECRET = "hmac-signing-secret-for-the-rest-channel-0123"
DOMAIN = Domain.load("bot/domain.yml")


def recording_bot(store: Any = None) -> RecordingBot:
    """A bot that records what reaches it, standing in for the agent `rasa run` loads."""
    bot = RecordingBot()
    bot.tracker_store = store or InMemoryTrackerStore(DOMAIN)
    bot.processor = SimpleNamespace(tracker_store=bot.tracker_store)  # type: ignore[attr-defined]
    return bot


def body(message: Text = "where is my order?", sender: Optional[Text] = "customer-1", **extra: Any) -> bytes:
    payload: Dict[Text, Any] = {"message": message, **extra}
    if sender is not None:
        payload["sender"] = sender
    return json.dumps(payload).encode("utf-8")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong-token-of-a-plausible-length-000000"},
        {"Authorization": f"Basic {REST_TOKEN}"},
        {"Authorization": f"Bearer {REST_TOKEN[:-1]}"},
    ],
    ids=["none", "empty", "wrong", "other-scheme", "truncated"],
)
async def test_without_the_channels_token_nothing_reaches_the_bot(headers: Dict[Text, Text]) -> None:
    bot = recording_bot()
    async with serve_channel(rest_channel(), bot, agent=bot) as url:
        status, text = await post(f"{url}/webhook", body(), {"Content-Type": "application/json", **headers})
    assert status == 401 and json.loads(text)["error"] == "unauthorized"
    assert bot.messages == []


@pytest.mark.asyncio
async def test_a_signed_request_passes_and_a_tampered_or_stale_one_does_not() -> None:
    bot = recording_bot()
    channel = LeptonRestInput(RestCredential(signing_secret=SECRET))

    def signed(data: bytes, at: Optional[int] = None, sign: Optional[bytes] = None) -> Dict[Text, Text]:
        timestamp = str(int(time.time()) if at is None else at)
        return {
            "Content-Type": "application/json",
            "X-Lepton-Timestamp": timestamp,
            "X-Lepton-Signature": signature(SECRET, timestamp, data if sign is None else sign),
        }

    async with serve_channel(channel, bot, agent=bot) as url:
        assert (await post(f"{url}/webhook", body("hi"), signed(body("hi"))))[0] == 200
        # The signature of one message does not carry another.
        assert (await post(f"{url}/webhook", body("refund me"), signed(body("refund me"), sign=body("hi"))))[0] == 401
        # A request captured an hour ago cannot be replayed.
        old = int(time.time()) - 3600
        assert (await post(f"{url}/webhook", body("hi"), signed(body("hi"), at=old)))[0] == 401
        assert (await post(f"{url}/webhook", body("hi"), {"Content-Type": "application/json"}))[0] == 401
    assert [m.text for m in bot.messages] == ["hi"]


@pytest.mark.parametrize(
    "credentials, message",
    [
        ({}, "needs exactly one of `token`"),
        ({"token": ""}, "needs exactly one of `token`"),
        ({"token": "short"}, "`token` must be a secret of at least 32 characters"),
        ({"token": REST_TOKEN, "signing_secret": SECRET}, "needs exactly one of `token`"),
        ({"token": REST_TOKEN, "max_message_length": 0}, "`max_message_length` must be a whole number of characters >= 1"),
        ({"token": REST_TOKEN, "trust_client_metadata": "yes"}, "`trust_client_metadata` must be true or false"),
        ({"token": REST_TOKEN, "tokn": "x"}, "unknown credentials key(s) tokn"),
    ],
)
def test_the_server_does_not_start_with_an_open_or_mistyped_rest_channel(
    credentials: Dict[Text, Any], message: Text
) -> None:
    with pytest.raises(InvalidConfigException, match="rest: ") as error:
        LeptonRestInput.from_credentials(credentials)
    assert message in str(error.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("claimed", ["1234567", "verified_telegram:1234567", "web-" + "a" * 40, "default"])
async def test_a_rest_caller_can_only_address_rest_conversations(claimed: Text) -> None:
    """The sender a REST caller names lands under `rest:`: never a Telegram or web chat customer's."""
    bot = recording_bot()
    victim = await bot.tracker_store.get_or_create_tracker("verified_telegram:1234567")
    victim.update(SlotSet("order_number", "LP-482913"))
    await bot.tracker_store.save(victim)
    async with serve_channel(rest_channel(), bot, agent=bot) as url:
        status, text = await post(f"{url}/webhook", body("what is my order number?", sender=claimed), REST_JSON)
    assert status == 200
    (message,) = bot.messages
    assert message.sender_id == f"rest:{claimed}"
    # Replies still name the id the caller used.
    assert {reply["recipient_id"] for reply in json.loads(text)} == {claimed}
    untouched = await bot.tracker_store.retrieve("verified_telegram:1234567")
    assert [e.as_dict() for e in untouched.events] == [e.as_dict() for e in victim.events]


@pytest.mark.asyncio
async def test_client_metadata_and_input_channel_are_ignored_unless_trusted() -> None:
    forged = body(
        "hello", input_channel="verified_telegram", metadata={"display_text": "I agree to close my account"}
    )
    for trusted, expected in ((False, ("rest", None)), (True, ("verified_telegram", {"display_text": "I agree to close my account"}))):
        bot = recording_bot()
        async with serve_channel(rest_channel(trust_client_metadata=trusted), bot, agent=bot) as url:
            assert (await post(f"{url}/webhook", forged, REST_JSON))[0] == 200
        (message,) = bot.messages
        assert (message.input_channel, message.metadata) == expected


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "data, status, says",
    [
        (body(sender=None), 400, "`sender` must be your customer's id"),
        (body(sender=""), 400, "`sender` must be your customer's id"),
        (body(sender="x" * 129), 400, "`sender` must be your customer's id"),
        (body(sender="bob\x00"), 400, "`sender` must be your customer's id"),
        (body("a" * 2001), 413, "The message has 2001 characters; the limit is 2000"),
        (b'{"sender": "s", "message": "\\ud83d"}', 400, "unpaired UTF-16 surrogate"),
        (b'{"sender": "s", "message": "caf\xe9"}', 400, "The body is not valid UTF-8"),
        (b'{"sender": "s", "message": "a\\u0000b"}', 400, "control characters"),
        (b'{"sender": "s", "message": "\x1b[31mred"}', 400, "The body is not JSON"),
        (b"[]", 400, 'The body must be a JSON object: {"sender"'),
    ],
    ids=["no-sender", "empty-sender", "long-sender", "nul-sender", "long-text", "lone-surrogate", "invalid-utf8",
         "nul-in-text", "raw-escape", "array"],
)
async def test_bad_text_is_a_4xx_that_says_what_to_fix_before_any_work(data: bytes, status: int, says: Text) -> None:
    bot = recording_bot()
    async with serve_channel(rest_channel(), bot, agent=bot) as url:
        got, text = await post(f"{url}/webhook", data, REST_JSON)
        assert (got, bot.messages) == (status, [])
        assert says in json.loads(text)["message"]
        # The server keeps serving.
        assert (await post(f"{url}/webhook", body("hi"), REST_JSON))[0] == 200


@pytest.mark.asyncio
async def test_the_message_length_cap_is_configurable() -> None:
    bot = recording_bot()
    async with serve_channel(rest_channel(max_message_length=10), bot, agent=bot) as url:
        assert (await post(f"{url}/webhook", body("a" * 11), REST_JSON))[0] == 413
        assert (await post(f"{url}/webhook", body("a" * 10), REST_JSON))[0] == 200


@pytest.mark.parametrize("size", [50_000, 100_000, 200_000])
def test_command_scans_stay_linear_on_pathological_input(size: int) -> None:
    """Stripping slashes one at a time, or a backtracking `/link` pattern, is quadratic."""
    inputs = ["/" * size, "/ " * (size // 2), "/link a" + " " * size + "b", "!link " + "-" * size]
    started = time.perf_counter()
    for text in inputs:
        without_command_prefix(text)
        parse_link_command(text)
    # About a millisecond each when linear; tens of seconds at 200,000 when quadratic.
    assert time.perf_counter() - started < 1.0


@pytest.fixture
def linked_store(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> LinkedTrackerStore:
    """A linked store as `rasa run` makes it: the process's active store, for this test only."""
    from lepton_components.identity import linked_tracker_store

    monkeypatch.setattr(linked_tracker_store, "_active_store", None)
    registry = LinkRegistry.from_url(f"sqlite:///{tmp_path / 'ids.db'}")
    return LinkedTrackerStore(DOMAIN, inner=InMemoryTrackerStore(DOMAIN), registry=registry)


@pytest.mark.asyncio
async def test_a_code_asked_for_over_rest_only_ever_links_a_rest_conversation(linked_store: LinkedTrackerStore) -> None:
    """The hijack: `/link` sent as the victim, redeemed from the attacker's own id.

    Over REST, `/link` in the name of Telegram customer 1234567 issues a code for
    `rest:1234567`, a conversation of its own: the victim's order number never moves.
    """
    await turn(linked_store, "verified_telegram:1234567", "verified_telegram", "LP-482913",
               [SlotSet("order_number", "LP-482913")])
    bot = recording_bot(linked_store)
    async with serve_channel(rest_channel(), intercept_link_commands(bot), agent=bot) as url:
        status, text = await post(f"{url}/webhook", body("/link", sender="1234567"), REST_JSON)
        assert status == 200
        code = code_from(json.loads(text)[0]["text"])
        status, text = await post(f"{url}/webhook", body(f"/link {code}", sender="mallory"), REST_JSON)
        assert json.loads(text)[0]["text"].startswith("Done")
    mallory = await linked_store.retrieve("rest:mallory")
    assert mallory is None or mallory.get_slot("order_number") is None
    assert linked_store.registry.group_of("verified_telegram:1234567") is None


@pytest.mark.asyncio
async def test_the_issuer_is_told_when_its_code_is_used(linked_store: LinkedTrackerStore) -> None:
    handle = intercept_link_commands(RecordingBot())
    asked, answered = CollectingOutputChannel(), CollectingOutputChannel()
    await handle(UserMessage("/link", asked, "web-ada", input_channel="web_chat"))
    code = code_from(asked.messages[0]["text"])
    await handle(UserMessage(f"/link {code}", answered, "verified_telegram:77", input_channel="verified_telegram"))
    issuer = await linked_store.retrieve("web-ada")
    notices = [e.text for e in issuer.events if isinstance(e, BotUttered)]
    assert notices == [
        "Your link code was just used: this conversation is now linked with one on Telegram, which can see "
        "details like your order number. If that wasn't you, send /unlink now."
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("channel", ["telegram", "socketio", "facebook", "[click me](https://evil.example)"])
async def test_linking_is_refused_where_the_sender_is_not_proven(linked_store: LinkedTrackerStore, channel: Text) -> None:
    output = CollectingOutputChannel()
    await intercept_link_commands(RecordingBot())(UserMessage("/link", output, "someone", input_channel=channel))
    assert [m["text"] for m in output.messages] == [UNVERIFIED]
    assert "evil" not in UNVERIFIED


@pytest.mark.asyncio
async def test_an_authorization_header_that_is_not_text_is_a_400() -> None:
    from urllib.parse import urlsplit

    from tests.server.raw_http import bearer_header, raw_request

    bot = recording_bot()
    async with serve_channel(rest_channel(), bot, agent=bot) as url:
        path = urlsplit(url).path.encode("ascii") + b"/webhook"
        reply = await raw_request(url, "POST", path, [bearer_header(b"\xff\xfe"), (b"Content-Type", b"application/json")], body("hi"))
    assert reply.status == 400 and reply.json()["error"] == "bad_request" and bot.messages == []


@pytest.mark.asyncio
async def test_one_sender_flooding_gets_429_and_other_senders_are_still_served() -> None:
    bot = recording_bot()
    channel = LeptonRestInput.from_credentials(rest_credentials(rate_limits={"messages_per_sender": {"per_minute": 1, "burst": 3}}))
    async with serve_channel(channel, bot, agent=bot) as url:
        statuses = [(await post(f"{url}/webhook", body("hi", sender="flood"), REST_JSON))[0] for _ in range(5)]
        other, _ = await post(f"{url}/webhook", body("hi", sender="calm"), REST_JSON)
    assert statuses == [200, 200, 200, 429, 429] and other == 200
    assert [m.sender_id for m in bot.messages].count("rest:flood") == 3

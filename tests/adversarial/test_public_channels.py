"""The adversarial suite: every public channel, the same attacks, the same promises.

For each channel (REST, web chat, Telegram, Messenger, Slack) and each attack, the answer
is a 4xx or a normal reply (never a 5xx), no other conversation changes, and no request
holds the event loop, which serves every conversation of the replica, for 100 ms or more.
docs/hardening.md has the threat model and the side-by-side table with stock Rasa.
"""

import asyncio
import json
import socket
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, List, Text
from urllib.parse import unquote_plus

import pytest
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet, UserUttered
from rasa.shared.exceptions import ConnectionException

from tests.adversarial.channels import CHANNELS, PublicChannel, Served, platform_id_for
from tests.channels.web_chat_bot import ScriptedAgent

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

BY_NAME = {channel.name: channel for channel in CHANNELS}
ALL = pytest.mark.parametrize("channel", CHANNELS, ids=[channel.name for channel in CHANNELS])
MAX_LOOP_BLOCK_S = 0.1
DOMAIN = Domain.load("bot/domain.yml")
# Someone else's conversation on each channel, with an order number in it.
VICTIMS = ["verified_telegram:1234567", "verified_facebook:1234567", "verified_slack:U01234567", "rest:1234567",
           "web-" + "a" * 40]


class LoopWatch:
    """The longest stretch the event loop went without running a 5 ms ticker."""

    def __init__(self) -> None:
        self.longest = 0.0

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            self.longest = max(self.longest, loop.time() - before - 0.005)

    @asynccontextmanager
    async def watching(self) -> AsyncIterator["LoopWatch"]:
        ticker = asyncio.ensure_future(self._tick())
        await asyncio.sleep(0.01)
        try:
            yield self
        finally:
            ticker.cancel()


async def agent_with_victims() -> ScriptedAgent:
    agent = ScriptedAgent(InMemoryTrackerStore(DOMAIN))
    for victim in VICTIMS:
        tracker = await agent.tracker_store.get_or_create_tracker(victim)
        tracker.update(UserUttered("my order is LP-482913", input_channel=victim.split(":")[0]))
        tracker.update(SlotSet("order_number", "LP-482913"))
        await agent.tracker_store.save(tracker)
    return agent


async def snapshot(agent: ScriptedAgent) -> Dict[Text, List[Dict[Text, Any]]]:
    conversations = {}
    for sender in await agent.tracker_store.keys():
        tracker = await agent.tracker_store.retrieve(sender)
        conversations[sender] = [event.as_dict() for event in tracker.events]
    return conversations


async def assert_only_changed(agent: ScriptedAgent, before: Dict[Text, Any], allowed: List[Text]) -> None:
    after = await snapshot(agent)
    for sender, events in before.items():
        if not any(sender.startswith(prefix) for prefix in allowed):
            assert after.get(sender) == events, f"{sender} changed"


def handled_or_refused(status: int) -> bool:
    return 200 <= status < 300 or 400 <= status < 500


@ALL
async def test_without_credentials_nothing_reaches_any_conversation(channel: PublicChannel) -> None:
    agent = await agent_with_victims()
    before = await snapshot(agent)
    async with channel.serve(agent) as served, LoopWatch().watching() as loop:
        claimed = VICTIMS if channel.name == "rest" else [platform_id_for(channel)]
        for victim in claimed:
            status, _ = await channel.send_forged(served, "what is my order number?", victim)
            assert status in (401, 403), (victim, status)
    assert agent.received == []
    await assert_only_changed(agent, before, allowed=[])
    assert loop.longest < MAX_LOOP_BLOCK_S


@ALL
async def test_an_authenticated_client_reaches_only_its_own_channels_conversations(channel: PublicChannel) -> None:
    """The platform id of another channel's customer, sent through this channel, opens a conversation of its own."""
    agent = await agent_with_victims()
    before = await snapshot(agent)
    async with channel.serve(agent) as served:
        status, _ = await channel.send_text(served, "what is my order number?", platform_id_for(channel))
        assert status == 200
        if channel.name == "rest":
            for claimed in VICTIMS:  # the REST backend names any id it likes
                assert (await channel.send_text(served, "hi", claimed))[0] == 200
        await asyncio.sleep(0)  # Slack may still be finishing the turn
    own = channel.conversation_of("")  # this channel's prefix
    assert agent.received and all(message.sender_id.startswith(own) for message in agent.received)
    await assert_only_changed(agent, before, allowed=[own])


@ALL
@pytest.mark.parametrize(
    "text",
    ["a" * 100_000, "/" * 100_000, "/link " + " " * 50_000 + "x", "\u202e" * 60_000, "🙂" * 40_000],
    ids=["100k-letters", "100k-slashes", "link-backtracking", "bidi", "emoji"],
)
async def test_huge_and_pathological_texts_cost_nothing(channel: PublicChannel, text: Text) -> None:
    agent = await agent_with_victims()
    before = await snapshot(agent)
    async with channel.serve(agent) as served, LoopWatch().watching() as loop:
        status, _ = await channel.send_text(served, text, platform_id_for(channel))
    assert status == channel.polite_status
    assert agent.received == [], "the bot was given the text"
    await assert_only_changed(agent, before, allowed=[])
    assert loop.longest < MAX_LOOP_BLOCK_S, f"the event loop was held for {loop.longest * 1000:.0f} ms"


def _with_text(channel: PublicChannel, raw_text: bytes) -> bytes:
    """The channel's genuine body with `raw_text` spliced in as the JSON string's bytes."""
    body = channel.body_for("PLACEHOLDER", platform_id_for(channel))
    return body.replace(b'"PLACEHOLDER"', b'"' + raw_text + b'"')


@ALL
@pytest.mark.parametrize(
    "raw_text",
    [b"caf\xe9", b"\xf4\x90\x80\x80", b"\\ud83d", b"\\udc00 alone", b"nul \\u0000 byte", b"bell \\u0007", b"\x1b[31m"],
    ids=["latin-1", "above-unicode", "lone-high-surrogate", "lone-low-surrogate", "nul", "control", "raw-escape"],
)
async def test_invalid_text_is_refused_with_a_4xx_or_ignored_never_a_5xx(channel: PublicChannel, raw_text: bytes) -> None:
    agent = await agent_with_victims()
    before = await snapshot(agent)
    async with channel.serve(agent) as served, LoopWatch().watching() as loop:
        status, text = await channel.send_raw(served, _with_text(channel, raw_text))
        assert handled_or_refused(status), (status, text)
        # ... and the channel still serves.
        assert (await channel.send_text(served, "hello", platform_id_for(channel)))[0] == 200
    for message in agent.received:
        message.text.encode("utf-8")  # nothing unencodable reached the bot
        assert "\x00" not in message.text
    await assert_only_changed(agent, before, allowed=[channel.conversation_of(platform_id_for(channel))])
    assert loop.longest < MAX_LOOP_BLOCK_S


@ALL
async def test_a_replayed_request_touches_no_other_conversation(channel: PublicChannel) -> None:
    agent = await agent_with_victims()
    before = await snapshot(agent)
    body = channel.body_for("where is my parcel?", platform_id_for(channel))
    async with channel.serve(agent) as served:
        first, _ = await channel.send_raw(served, body)
        again, _ = await channel.send_raw(served, body)
    assert first == 200 and handled_or_refused(again)
    own = channel.conversation_of(platform_id_for(channel))
    await assert_only_changed(agent, before, allowed=[own])
    if channel.name in ("web_chat", "verified_facebook"):  # both carry a message id
        assert [m.text for m in agent.received] == ["where is my parcel?"], "a retry was processed twice"


@ALL
async def test_a_flood_from_one_sender_is_cut_off_before_any_work(channel: PublicChannel) -> None:
    """One sender may send a burst of messages (10; 30 for a REST backend); the rest never reach the bot."""
    agent = await agent_with_victims()
    async with channel.serve(agent, rate_limited=True) as served:
        statuses = [
            (await channel.send_text(served, f"message {n}", platform_id_for(channel)))[0]
            for n in range(channel.burst + 2)
        ]
        if channel.platform_answer is not None:
            await asyncio.sleep(0.2)  # Slack acknowledges before its turn ends
    assert len(agent.received) == channel.burst
    assert statuses[: channel.burst] == [200] * channel.burst
    assert set(statuses[channel.burst:]) == ({200} if channel.platform_answer else {429})
    if served.platform is not None:  # the customer is told to slow down, on the platform
        sent = [unquote_plus(call.body.decode("utf-8", "replace")) for call in served.platform.calls]
        assert any("faster than I can read" in body for body in sent)


class DatabaseDown(InMemoryTrackerStore):
    """PostgreSQL refusing connections, as Lepton's strict SQL store reports it."""

    async def retrieve(self, sender_id: Text) -> Any:
        raise ConnectionException("PostgreSQL at 127.0.0.1:5432 refused the connection")

    async def retrieve_full_tracker(self, conversation_id: Text) -> Any:
        raise ConnectionException("PostgreSQL at 127.0.0.1:5432 refused the connection")

    async def save(self, tracker: Any) -> None:
        raise ConnectionException("PostgreSQL at 127.0.0.1:5432 refused the connection")


def redis_down() -> Any:
    """The atomic Redis lock store pointed at a port on 127.0.0.1 where nothing listens."""
    from lepton_components.stores.atomic_redis_lock_store import AtomicRedisLockStore

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return AtomicRedisLockStore(host="127.0.0.1", port=port)


@ALL
@pytest.mark.parametrize("outage", ["postgresql", "redis"])
async def test_an_outage_is_a_retryable_503_on_every_channel(channel: PublicChannel, outage: Text) -> None:
    """The platform (or the website) must resend: a `200` here would lose the message."""
    if outage == "postgresql":
        agent = ScriptedAgent(DatabaseDown(Domain.empty()))
    else:
        agent = ScriptedAgent(InMemoryTrackerStore(Domain.empty()), lock_store=redis_down())
    async with channel.serve(agent) as served, LoopWatch().watching() as loop:
        status, text = await channel.send_text(served, "where is my parcel?", platform_id_for(channel))
    assert status == 503, text
    if channel.name in ("rest", "web_chat"):
        assert json.loads(text)["error"] == "service_unavailable"
    assert agent.handled == 0
    assert loop.longest < MAX_LOOP_BLOCK_S

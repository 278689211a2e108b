"""Thumbs up/down in the web chat: POST /feedback, stored in the conversation and counted."""

import json
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Optional, Text, Tuple

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import SlotSet

from lepton_components.operators.analytics.turn_log import turns
from lepton_components.operators.console import OperatorConsoleInput
from tests.channels.web_chat_bot import ScriptedAgent, web_chat_channel
from tests.channels.webhook_harness import TIMEOUT_S, serve_channel, serve_channels
from tests.monitoring.scrape import sample
from tests.operators.access_harness import ADMIN_PASSWORD, ConsoleBrowser, database_file, settings

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

SHOP = "https://shop.example.com"


class Chat:
    """One widget: a session, its messages and its ratings."""

    def __init__(self, http: aiohttp.ClientSession, base: Text, origin: Optional[Text] = None) -> None:
        self.http, self.base, self.origin, self.token = http, base.rstrip("/") + "/", origin, None

    async def call(self, method: Text, path: Text, body: Any = None, raw: Optional[bytes] = None,
                   token: Optional[Text] = None, origin: Optional[Text] = None) -> Tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token or self.token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        if origin or self.origin:
            headers["Origin"] = origin or self.origin
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.http.request(method, self.base + path, data=data, headers=headers) as reply:
            text = await reply.text()
            return reply.status, (json.loads(text) if text else None)

    async def start(self) -> "Chat":
        status, body = await self.call("POST", "sessions")
        assert status == 201, body
        self.token = body["session"]
        return self

    async def say(self, text: Text, message_id: Text) -> Dict[Text, Any]:
        status, body = await self.call("POST", "messages", {"text": text, "id": message_id})
        assert status == 200, body
        return body

    async def rate(self, message: Any, rating: Any, **options: Any) -> Tuple[int, Any]:
        return await self.call("POST", "feedback", {"message": message, "rating": rating}, **options)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
        yield session


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Tuple[ScriptedAgent, Text]]:
    agent = ScriptedAgent()
    channel = web_chat_channel(allowed_origins=[SHOP], rate_limits={"requests_per_session": {"per_minute": 60, "burst": 8}})
    async with serve_channel(channel, agent.handle_message, agent=agent) as base:
        yield agent, base


async def feedback_events(agent: ScriptedAgent, sender: Text) -> list:
    tracker = await agent.tracker_store.retrieve_full_tracker(sender)
    return [event for event in tracker.events if isinstance(event, SlotSet) and event.key == "customer_feedback"]


def sender_of(agent: ScriptedAgent) -> Text:
    (sender,) = {message.sender_id for message in agent.received}
    return sender


async def test_a_rating_is_stored_in_the_conversation_and_counted(served, http) -> None:
    agent, base = served
    chat = await Chat(http, base, origin=SHOP).start()
    await chat.say("hello", "m-1")
    assert await chat.rate("m-1", "down") == (200, {"message": "m-1", "rating": "down"})
    (event,) = await feedback_events(agent, sender_of(agent))
    assert event.value["rating"] == "down" and event.value["message"] == "m-1" and event.value["at"] > 0
    async with http.get(base.split("/webhooks")[0] + "/metrics") as reply:
        exposition = await reply.text()
    assert sample(exposition, "lepton_feedback_total", rating="down") == 1
    assert sample(exposition, "lepton_feedback_total", rating="up") == 0


async def test_only_answers_of_this_conversation_can_be_rated(served, http) -> None:
    agent, base = served
    ada, bob = await Chat(http, base).start(), await Chat(http, base).start()
    await ada.say("hello", "ada-1")
    status, body = await bob.rate("ada-1", "up")
    assert status == 404 and "no bot answer to the message 'ada-1'" in body["message"]
    status, _ = await ada.rate("never-sent", "up")
    assert status == 404
    assert await feedback_events(agent, sender_of(agent)) == []


async def test_bad_ratings_are_refused_with_what_to_send(served, http) -> None:
    _, base = served
    chat = await Chat(http, base).start()
    await chat.say("hello", "m-1")
    for body, problem in [
        ({"message": "m-1", "rating": "meh"}, "`rating` must be \"up\" or \"down\""),
        ({"message": "m-1"}, "exactly `message` and `rating`"),
        ({"message": "m-1", "rating": "up", "text": "x"}, "exactly `message` and `rating`"),
        ({"message": "m 1<script>", "rating": "up"}, "`message` must be the id"),
        ({"message": 7, "rating": "up"}, "`message` must be the id"),
    ]:
        status, reply = await chat.call("POST", "feedback", body)
        assert status == 400 and problem in reply["message"], (body, reply)
    status, reply = await chat.call("POST", "feedback", raw=b"{not json")
    assert status == 400 and reply["error"] == "bad_request"
    status, reply = await chat.call("POST", "feedback", raw=b'{"message": "' + b"a" * 2000 + b'", "rating": "up"}')
    assert status == 413


async def test_the_session_origin_and_limit_guard_it_like_the_other_routes(served, http) -> None:
    _, base = served
    chat = await Chat(http, base).start()
    await chat.say("hello", "m-1")
    anonymous = Chat(http, base)
    status, body = await anonymous.rate("m-1", "up")
    assert status == 401 and "POST /sessions" in body["message"]
    status, body = await chat.rate("m-1", "up", origin="https://evil.example")
    assert status == 403
    statuses = [(await chat.rate("m-1", "up"))[0] for _ in range(10)]
    assert 429 in statuses and statuses[0] == 200


async def test_with_the_console_the_rating_marks_the_turn_for_review(tmp_path: Path, http) -> None:
    agent = ScriptedAgent(tracker_store=SQLTrackerStore(dialect="sqlite", db=str(database_file(tmp_path))))
    console = OperatorConsoleInput(settings())
    async with serve_channels([web_chat_channel(), console], agent.handle_message, agent=agent) as server:
        await console.console.state()
        chat = await Chat(http, f"{server}/webhooks/web_chat").start()
        await chat.say("where is my parcel", "m-1")
        await chat.say("hello", "m-2")
        assert (await chat.rate("m-1", "down"))[0] == 200
        engine = sa.create_engine(f"sqlite:///{database_file(tmp_path)}")
        with engine.connect() as connection:
            marked = connection.execute(sa.select(turns.c.message_id, turns.c.feedback).order_by(turns.c.id)).all()
        assert [tuple(row) for row in marked] == [("m-1", "down"), ("m-2", None)]
        admin = ConsoleBrowser(server)
        await admin.login("admin", ADMIN_PASSWORD)
        page = await admin.get("/review?flag=negative_feedback")
        assert page.status == 200 and "where is my parcel" in page.text

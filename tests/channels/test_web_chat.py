"""WebChatInput over HTTP: sessions, replies, history, retries, limits, origins, pushed messages."""

import asyncio
import json
from typing import Any, AsyncIterator, Dict, Optional, Text, Tuple

import aiohttp
import pytest
import pytest_asyncio
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.exceptions import ConnectionException, InvalidConfigException

from lepton_components.channels.web_chat import WebChatInput, WebChatSettings
from lepton_components.channels.web_chat.sessions import sender_id_for
from tests.channels.web_chat_bot import GREETING, GREETING_BUTTONS, ORDER_REPLY, ScriptedAgent
from tests.channels.webhook_harness import TIMEOUT_S, serve_channel

pytestmark = pytest.mark.timeout(30)


class Client:
    """A browser's view of the channel: one session token, JSON in and out."""

    def __init__(self, http: aiohttp.ClientSession, base: Text, origin: Optional[Text] = None) -> None:
        self.http, self.base, self.origin = http, base.rstrip("/") + "/", origin
        self.token: Optional[Text] = None

    def headers(self, token: Optional[Text] = None) -> Dict[Text, Text]:
        headers = {"Origin": self.origin} if self.origin else {}
        token = token or self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def call(self, method: Text, path: Text, body: Any = None, raw: Optional[bytes] = None,
                   token: Optional[Text] = None) -> Tuple[int, Any, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.http.request(method, self.base + path, data=data, headers=self.headers(token)) as reply:
            text = await reply.text()
            return reply.status, (json.loads(text) if text else None), reply.headers

    async def start(self) -> "Client":
        status, body, _ = await self.call("POST", "sessions")
        assert status == 201
        self.token = body["session"]
        return self

    async def say(self, text: Text, **extra: Any) -> Tuple[int, Any]:
        status, body, _ = await self.call("POST", "messages", {"text": text, **extra})
        return status, body


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Tuple[WebChatInput, ScriptedAgent, Text]]:
    channel = WebChatInput(WebChatSettings(allowed_origins=["https://shop.example.com"], max_message_length=200))
    agent = ScriptedAgent()
    async with serve_channel(channel, agent.handle_message, agent=agent) as base:
        yield channel, agent, base


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
        yield session


@pytest.mark.asyncio
async def test_a_conversation_gets_replies_and_its_history_back(served, http) -> None:
    _, agent, base = served
    client = await Client(http, base).start()

    assert await client.say("hi") == (200, {"messages": [{"sender": "bot", "text": GREETING, "buttons": GREETING_BUTTONS}]})
    # A quick reply: the bot gets the payload, the history shows what the customer clicked.
    status, body = await client.say("Where is my order?", payload="/order_status")
    assert (status, body) == (200, {"messages": [{"sender": "bot", "text": ORDER_REPLY}]})
    assert agent.received[-1].text == "/order_status"
    assert agent.received[-1].input_channel == "web_chat"

    status, history, _ = await client.call("GET", "history")
    assert status == 200
    assert history["messages"] == [
        {"sender": "user", "text": "hi"},
        {"sender": "bot", "text": GREETING, "buttons": GREETING_BUTTONS},
        {"sender": "user", "text": "Where is my order?"},
        {"sender": "bot", "text": ORDER_REPLY},
    ]


@pytest.mark.asyncio
async def test_sessions_are_unguessable_and_separate(served, http) -> None:
    _, agent, base = served
    ada, bob = await Client(http, base).start(), await Client(http, base).start()
    assert ada.token != bob.token and len(ada.token) == 43
    await ada.say("my email is ada@example.com")

    _, bob_history, _ = await bob.call("GET", "history")
    assert bob_history == {"messages": []}
    # The sender id (what logs and the tracker store show) does not open the conversation.
    ada_sender = agent.received[0].sender_id
    assert ada_sender == sender_id_for(ada.token) and ada.token not in ada_sender
    status, body, _ = await bob.call("GET", "history", token=ada_sender)
    assert status == 401 and "session token" in body["message"]


@pytest.mark.asyncio
@pytest.mark.parametrize("path,method", [("history", "GET"), ("messages", "POST"), ("events", "GET")])
async def test_requests_without_a_session_token_are_refused(served, http, path, method) -> None:
    _, agent, base = served
    client = Client(http, base)
    status, body, _ = await client.call(method, path, {"text": "hi"} if method == "POST" else None)
    assert status == 401 and "POST /sessions" in body["message"]
    assert agent.received == []


@pytest.mark.asyncio
async def test_a_retried_message_is_processed_once(served, http) -> None:
    _, agent, base = served
    client = await Client(http, base).start()
    first = await client.say("hello again", id="msg-1")
    retry = await client.say("hello again", id="msg-1")
    assert first == retry == (200, {"messages": [{"sender": "bot", "text": "You said: hello again"}]})
    assert [m.text for m in agent.received] == ["hello again"]
    # Concurrent copies (the browser retried while the first was still in flight).
    replies = await asyncio.gather(*(client.say("are you there?", id="msg-2") for _ in range(3)))
    assert {json.dumps(r) for r in replies} == {json.dumps((200, {"messages": [{"sender": "bot", "text": "You said: are you there?"}]}))}
    assert [m.text for m in agent.received] == ["hello again", "are you there?"]
    _, history, _ = await client.call("GET", "history")
    assert [m["text"] for m in history["messages"] if m["sender"] == "user"] == ["hello again", "are you there?"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "raw,status,fragment",
    [
        (b"{not json", 400, "must be JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (json.dumps({"text": ""}).encode(), 400, "non-empty"),
        (json.dumps({"text": 42}).encode(), 400, "non-empty string"),
        (json.dumps({"text": "x" * 201}).encode(), 413, "limit is 200"),
        (json.dumps({"text": "x" * 1_000_000}).encode(), 413, "too large"),
        (json.dumps({"text": "hi", "id": "x" * 65}).encode(), 400, "`id`"),
        (json.dumps({"text": "hi", "payload": 3}).encode(), 400, "`payload`"),
        (b"\xff\xfe\x00garbage", 400, "must be JSON"),
    ],
)
async def test_bad_messages_get_a_clear_4xx_and_the_server_keeps_serving(served, http, raw, status, fragment) -> None:
    _, agent, base = served
    client = await Client(http, base).start()
    got_status, body, _ = await client.call("POST", "messages", raw=raw)
    assert got_status == status and fragment in body["message"]
    assert agent.received == []
    assert await client.say("still there?") == (200, {"messages": [{"sender": "bot", "text": "You said: still there?"}]})


@pytest.mark.asyncio
async def test_unicode_and_control_characters_pass_through_intact(served, http) -> None:
    _, agent, base = served
    client = await Client(http, base).start()
    text = "مرحبا 👋 order\u0007 #LP-123456"
    status, body = await client.say(text)
    assert status == 200 and body["messages"][0]["text"] == f"You said: {text}"


@pytest.mark.asyncio
async def test_other_sites_are_refused_unless_allowed(served, http) -> None:
    _, agent, base = served
    stranger = Client(http, base, origin="https://evil.example.net")
    status, body, headers = await stranger.call("POST", "sessions")
    assert status == 403 and "allowed_origins" in body["message"]
    assert "Access-Control-Allow-Origin" not in headers

    shop = await Client(http, base, origin="https://shop.example.com").start()
    status, _, headers = await shop.call("OPTIONS", "messages")
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    status, body, headers = await shop.call("POST", "messages", {"text": "hi"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://shop.example.com"

    # A stolen token is no use from another site's page either.
    status, _, _ = await stranger.call("POST", "messages", {"text": "hi"}, token=shop.token)
    assert status == 403
    assert len(agent.received) == 1

    # The bot's own pages (the demo page) are always allowed.
    own = Client(http, base, origin=base.split("/webhooks")[0])
    status, _, _ = await own.call("POST", "sessions")
    assert status == 201


@pytest.mark.asyncio
async def test_no_model_loaded_means_503_not_silence(served, http) -> None:
    _, agent, base = served
    client = await Client(http, base).start()
    agent.ready = False
    status, body = await client.say("hi")
    assert status == 503 and body["error"] == "no_model_loaded"
    assert agent.received == []


class BrokenTrackerStore(InMemoryTrackerStore):
    async def retrieve_full_tracker(self, conversation_id: Text) -> Any:
        raise ConnectionException("PostgreSQL at 127.0.0.1:5432 refused the connection")


@pytest.mark.asyncio
async def test_tracker_store_outage_is_an_explicit_503(http) -> None:
    channel = WebChatInput()
    agent = ScriptedAgent(BrokenTrackerStore(Domain.empty()))
    async with serve_channel(channel, agent.handle_message, agent=agent) as base:
        client = await Client(http, base).start()
        status, body, _ = await client.call("GET", "history")
    assert status == 503 and body["error"] == "service_unavailable" and body["retry_after_seconds"] > 0


@pytest.mark.asyncio
async def test_messages_pushed_outside_a_request_reach_the_open_stream(served, http) -> None:
    channel, _, base = served
    client = await Client(http, base).start()
    sender_id = sender_id_for(client.token)
    async with http.get(client.base + "events", headers=client.headers()) as stream:
        assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
        assert (await stream.content.readuntil(b"\n\n")).startswith(b": connected")
        # What Rasa's HTTP API does for `POST /conversations/<id>/trigger_intent?output_channel=web_chat`.
        output = channel.get_output_channel()
        await output.send_text_with_buttons(sender_id, "Your parcel has shipped!", [{"title": "Track it", "payload": "/track"}])
        event = (await asyncio.wait_for(stream.content.readuntil(b"\n\n"), TIMEOUT_S)).decode()
    assert event.startswith("event: message\n")
    assert json.loads(event.split("data: ", 1)[1]) == {
        "sender": "bot", "text": "Your parcel has shipped!", "buttons": [{"title": "Track it", "payload": "/track"}]
    }


@pytest.mark.asyncio
async def test_widget_files_and_demo_page_are_served(http) -> None:
    channel = WebChatInput(WebChatSettings(title='Shop <script>alert("x")</script>'))
    agent = ScriptedAgent()
    async with serve_channel(channel, agent.handle_message, agent=agent) as base:
        async with http.get(base + "/widget.js") as script:
            assert script.headers["Content-Type"].startswith("application/javascript")
            assert "attachShadow" in await script.text()
        async with http.get(base + "/demo") as page:
            html = await page.text()
            assert "Content-Security-Policy" in page.headers
    assert '<script src="widget.js"' in html
    assert "<script>alert" not in html and "Shop &lt;script&gt;" in html


@pytest.mark.parametrize(
    "credentials,fragment",
    [
        ({"allowed_origin": ["https://a.example"]}, "unknown key(s) allowed_origin"),
        ({"allowed_origins": "https://a.example"}, "list of origins"),
        ({"allowed_origins": ["https://a.example/chat"]}, "no path"),
        ({"max_message_length": 0}, "max_message_length"),
        ({"history_limit": "all"}, "history_limit"),
    ],
)
def test_bad_credentials_fail_at_start_up_with_the_fix(credentials, fragment) -> None:
    with pytest.raises(InvalidConfigException, match=None) as raised:
        WebChatInput.from_credentials(credentials)
    assert fragment in str(raised.value)


@pytest.mark.asyncio
async def test_customers_cannot_force_intents_or_slots(served, http) -> None:
    _, agent, base = served
    client = await Client(http, base).start()
    # Typed commands lose their slashes, however spaced: NLU reads them as words.
    await client.say('/order_status{"order_number": "LP-000001"}')
    assert agent.received[-1].text == 'order_status{"order_number": "LP-000001"}'
    await client.say('/ \u3000/order_status{"order_number": "LP-000001"}')
    assert agent.received[-1].text == 'order_status{"order_number": "LP-000001"}'
    # A payload the bot never offered is the customer's text, not an intent.
    await client.say("Refund me", payload='/refund{"amount": 1000}')
    assert agent.received[-1].text == "Refund me"
    # The bot's own quick replies still work.
    await client.say("hi")
    await client.say("Return an item", payload="/return_item")
    assert agent.received[-1].text == "/return_item"
    # ... but only while they are the latest offer.
    await client.say("Return an item", payload="/return_item")
    assert agent.received[-1].text == "Return an item"

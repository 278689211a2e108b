"""WebChatInput over HTTP: sessions, replies, history, retries, limits, origins, pushed messages."""

import asyncio
import json
from typing import Any, AsyncIterator, Dict, Optional, Text, Tuple

import aiohttp
import pytest
import pytest_asyncio
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.exceptions import ConnectionException, InvalidConfigException

from lepton_components.channels.web_chat import WebChatInput, WebChatSettings
from tests.channels.web_chat_bot import (
    GREETING,
    GREETING_BUTTONS,
    ORDER_REPLY,
    WEB_CHAT_SECRET,
    ScriptedAgent,
    web_chat_channel,
    web_chat_settings,
)
from tests.channels.webhook_harness import TIMEOUT_S, serve_channel

pytestmark = pytest.mark.timeout(30)


class Client:
    """A browser's view of the channel: one session token, JSON in and out."""

    def __init__(self, http: aiohttp.ClientSession, base: Text, origin: Optional[Text] = None) -> None:
        self.http, self.base, self.origin = http, base.rstrip("/") + "/", origin
        self.token: Optional[Text] = None

    def headers(self, token: Optional[Text] = None, **extra: Text) -> Dict[Text, Text]:
        headers = {"Origin": self.origin} if self.origin else {}
        token = token or self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return {**headers, **extra}

    async def call(self, method: Text, path: Text, body: Any = None, raw: Optional[bytes] = None,
                   token: Optional[Text] = None, headers: Optional[Dict[Text, Text]] = None) -> Tuple[int, Any, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.http.request(method, self.base + path, data=data,
                                     headers=self.headers(token, **(headers or {}))) as reply:
            text = await reply.text()
            return reply.status, (json.loads(text) if text else None), reply.headers

    async def start(self) -> "Client":
        status, body, _ = await self.call("POST", "sessions")
        assert status == 201, body
        self.token = body["session"]
        return self

    async def say(self, text: Text, **extra: Any) -> Tuple[int, Any]:
        status, body, _ = await self.call("POST", "messages", {"text": text, **extra})
        return status, body


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Tuple[WebChatInput, ScriptedAgent, Text]]:
    channel = web_chat_channel(allowed_origins=["https://shop.example.com"], max_message_length=200)
    agent = ScriptedAgent()
    async with serve_channel(channel, agent.handle_message, agent=agent) as base:
        yield channel, agent, base


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
        yield session


def sender_of(agent: ScriptedAgent) -> Text:
    senders = {message.sender_id for message in agent.received}
    assert len(senders) == 1, senders
    return senders.pop()


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
async def test_sessions_are_issued_by_the_server_and_separate(served, http) -> None:
    _, agent, base = served
    ada, bob = await Client(http, base).start(), await Client(http, base).start()
    assert ada.token != bob.token
    await ada.say("my email is ada@example.com")
    ada_sender = sender_of(agent)
    assert ada_sender.startswith("web-") and ada_sender not in ada.token

    _, bob_history, _ = await bob.call("GET", "history")
    assert bob_history == {"messages": []}
    # The sender id (what logs and the tracker store show) does not open the conversation.
    status, body, headers = await bob.call("GET", "history", token=ada_sender)
    assert status == 401 and "POST /sessions" in body["message"] and headers["WWW-Authenticate"].startswith("Bearer")


def _flip_last_character(token: Text) -> Text:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


@pytest.mark.asyncio
async def test_tokens_the_server_did_not_sign_are_refused(served, http) -> None:
    import secrets

    import jwt

    _, agent, base = served
    client = await Client(http, base).start()
    header, claims, _ = client.token.split(".")
    other_secret = jwt.encode(jwt.decode(client.token, options={"verify_signature": False}), "x" * 40,
                              algorithm="HS256")
    unsigned = jwt.encode(jwt.decode(client.token, options={"verify_signature": False}), None, algorithm="none")
    forged = [
        # What the first version accepted: any 43 characters of base64url.
        secrets.token_urlsafe(32),
        _flip_last_character(client.token),
        f"{header}.{claims}.",
        unsigned,
        other_secret,
    ]
    for token in forged:
        for method, path, body in [("GET", "history", None), ("POST", "messages", {"text": "hi"}),
                                   ("GET", "events", None), ("POST", "sessions/refresh", None)]:
            status, reply, _ = await client.call(method, path, body, token=token)
            assert status == 401, (token, path)
            assert "POST /sessions" in reply["message"], reply
    assert agent.received == []
    assert (await client.say("hi"))[0] == 200


@pytest.mark.asyncio
@pytest.mark.parametrize("path,method", [("history", "GET"), ("messages", "POST"), ("events", "GET"),
                                         ("sessions/refresh", "POST"), ("sessions", "DELETE")])
async def test_requests_without_a_session_token_are_refused(served, http, path, method) -> None:
    _, agent, base = served
    client = Client(http, base)
    status, body, _ = await client.call(method, path, {"text": "hi"} if path == "messages" else None)
    assert status == 401 and "POST /sessions" in body["message"]
    assert agent.received == []


@pytest.mark.asyncio
async def test_non_utf8_and_oversized_authorization_headers_get_401(served) -> None:
    _, agent, base = served
    host, port = base.split("//")[1].split("/")[0].split(":")
    path = "/" + base.split("//")[1].split("/", 1)[1] + "/history"
    for value in (b"Bearer \xff\xfe\xc3(", b"Bearer " + b"a." * 2000 + b"a", b"\xe9\xe9 \x80"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + value +
                     b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), TIMEOUT_S)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b'"error":"invalid_session"' in answer.replace(b" ", b"")


# Lifetime, rotation, revocation -------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def clocked() -> AsyncIterator[Tuple[Clock, ScriptedAgent, Text]]:
    clock = Clock()
    channel = WebChatInput(
        web_chat_settings(session_idle_timeout_minutes=10, session_max_lifetime_minutes=30), clock=clock
    )
    agent = ScriptedAgent()
    async with serve_channel(channel, agent.handle_message, agent=agent) as base:
        yield clock, agent, base


@pytest.mark.asyncio
async def test_an_idle_session_expires(clocked, http) -> None:
    clock, agent, base = clocked
    client = Client(http, base)
    status, issued, _ = await client.call("POST", "sessions")
    assert status == 201 and issued["expires_in"] == 600 and issued["refresh_in"] == 300
    client.token = issued["session"]
    assert (await client.say("hello"))[0] == 200

    clock.now += 601
    for method, path, body in [("GET", "history", None), ("POST", "messages", {"text": "again"}),
                               ("POST", "sessions/refresh", None), ("GET", "events", None)]:
        status, reply, _ = await client.call(method, path, body)
        assert status == 401 and reply["error"] == "session_expired" and "POST /sessions" in reply["message"]
    assert [m.text for m in agent.received] == ["hello"]


@pytest.mark.asyncio
async def test_the_widget_renews_its_token_and_keeps_the_conversation(clocked, http) -> None:
    clock, agent, base = clocked
    client = await Client(http, base).start()
    await client.say("first")
    clock.now += 400  # past `refresh_in`, before expiry
    old_token = client.token
    status, renewed, _ = await client.call("POST", "sessions/refresh")
    assert status == 200 and renewed["session"] != old_token and renewed["expires_in"] == 600
    client.token = renewed["session"]

    clock.now += 400  # the old token has expired, the renewed one has not
    assert (await client.call("GET", "history", token=old_token))[0] == 401
    assert (await client.say("second"))[0] == 200
    status, history, _ = await client.call("GET", "history")
    assert [m["text"] for m in history["messages"] if m["sender"] == "user"] == ["first", "second"]
    assert len({m.sender_id for m in agent.received}) == 1


@pytest.mark.asyncio
async def test_renewing_never_extends_a_session_past_its_maximum_lifetime(clocked, http) -> None:
    clock, agent, base = clocked
    client = await Client(http, base).start()
    answers = []
    for _ in range(4):  # every 8 minutes: at 8, 16, 24 and 32 minutes (the maximum is 30)
        clock.now += 8 * 60
        status, renewed, _ = await client.call("POST", "sessions/refresh")
        answers.append((status, renewed.get("refresh_in", renewed.get("error"))))
        client.token = renewed.get("session", client.token)
    # At 24 minutes the renewed token ends at 30 and says there is no point renewing it.
    assert answers == [(200, 300), (200, 300), (200, None), (401, "session_expired")]


async def read_event(stream: aiohttp.ClientResponse) -> Text:
    return (await asyncio.wait_for(stream.content.readuntil(b"\n\n"), TIMEOUT_S)).decode()


@pytest.mark.asyncio
async def test_a_revoked_session_is_refused_on_every_replica(http) -> None:
    """DELETE /sessions on one replica; another replica sharing the stores refuses the token too."""
    tracker_store, lock_store = InMemoryTrackerStore(Domain.empty()), None
    first, second = ScriptedAgent(tracker_store), ScriptedAgent(tracker_store)
    second.lock_store = first.lock_store
    async with serve_channel(web_chat_channel(), first.handle_message, agent=first) as base_a, serve_channel(
        web_chat_channel(), second.handle_message, agent=second
    ) as base_b:
        customer = await Client(http, base_a).start()
        assert (await customer.say("hello"))[0] == 200
        on_b = Client(http, base_b)
        on_b.token = customer.token
        assert (await on_b.call("GET", "history"))[0] == 200
        async with http.get(on_b.base + "events", headers=on_b.headers()) as stream_b, http.get(
            customer.base + "events", headers=customer.headers()
        ) as stream_a:
            assert (await read_event(stream_a)).startswith(": connected")
            assert (await read_event(stream_b)).startswith(": connected")
            status, _, _ = await customer.call("DELETE", "sessions")
            assert status == 204
            # The replica that revoked closes its streams at once.
            closed = await read_event(stream_a)
            assert closed.startswith("event: closed") and '"revoked"' in closed

        for method, path, body in [("GET", "history", None), ("POST", "messages", {"text": "still me"}),
                                   ("POST", "sessions/refresh", None), ("GET", "events", None)]:
            status, reply, _ = await on_b.call(method, path, body)
            assert status == 401 and reply["error"] == "session_revoked" and "POST /sessions" in reply["message"], path
        assert [m.text for m in first.received + second.received] == ["hello"]
        # A new session is a new conversation and works.
        fresh = await Client(http, base_b).start()
        assert (await fresh.say("hi again"))[0] == 200
        assert second.received[-1].sender_id != first.received[0].sender_id


@pytest.mark.asyncio
async def test_a_session_can_be_ended_before_its_first_message(served, http) -> None:
    _, agent, base = served
    client = await Client(http, base).start()
    assert (await client.call("DELETE", "sessions"))[0] == 204
    status, body = await client.say("hello?")
    assert status == 401 and body["error"] == "session_revoked"
    assert agent.received == []


# Exactly-once turns ------------------------------------------------------------------


SLOW = {"text": "A considered answer.", "delay": 1.0}


async def give_up_early(base: Text, token: Text, body: Dict[Text, Any]) -> None:
    """A browser whose connection drops while the bot is still thinking."""
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as impatient:
        with pytest.raises(asyncio.TimeoutError):
            async with impatient.post(base.rstrip("/") + "/messages", json=body,
                                      headers={"Authorization": f"Bearer {token}"}) as reply:
                await reply.read()


async def user_texts(tracker_store: Any, sender_id: Text) -> list:
    tracker = await tracker_store.retrieve_full_tracker(sender_id)
    return [event.text for event in tracker.events if isinstance(event, UserUttered)]


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
async def test_a_retry_after_the_client_disconnected_mid_turn_is_processed_once(served, http) -> None:
    _, agent, base = served
    agent.scripted["slow question"] = SLOW
    client = await Client(http, base).start()
    body = {"text": "slow question", "id": "dropped-1"}
    await give_up_early(base, client.token, body)
    # The turn goes on without its client; the retry gets its replies.
    status, retry = await client.say(**body)
    assert (status, retry) == (200, {"messages": [{"sender": "bot", "text": "A considered answer."}]})
    assert [m.text for m in agent.received] == ["slow question"]
    assert await user_texts(agent.tracker_store, sender_of(agent)) == ["slow question"]


@pytest.mark.asyncio
async def test_a_retry_on_another_replica_is_processed_once(http) -> None:
    """Two replicas share the tracker store and the lock store, nothing else."""
    tracker_store = InMemoryTrackerStore(Domain.empty())
    first, second = ScriptedAgent(tracker_store), ScriptedAgent(tracker_store)
    second.lock_store = first.lock_store
    for agent in (first, second):
        agent.scripted["slow question"] = SLOW
    async with serve_channel(web_chat_channel(), first.handle_message, agent=first) as base_a, serve_channel(
        web_chat_channel(), second.handle_message, agent=second
    ) as base_b:
        client = await Client(http, base_a).start()
        on_b = Client(http, base_b)
        on_b.token = client.token
        # Dropped on A while the bot thinks; retried on B while A's turn still runs
        # (B waits for the conversation lock), then once more on B after it finished.
        await give_up_early(base_a, client.token, {"text": "slow question", "id": "m-1"})
        assert first.handled == 0
        status, retry = await on_b.say("slow question", id="m-1")
        assert (status, retry) == (200, {"messages": [{"sender": "bot", "text": "A considered answer."}]})
        assert (await on_b.say("slow question", id="m-1")) == (status, retry)
        assert [m.text for m in first.received] == ["slow question"] and second.received == []
        assert await user_texts(tracker_store, sender_of(first)) == ["slow question"]


@pytest.mark.asyncio
async def test_retried_messages_are_counted_once_by_the_monitoring(served, http) -> None:
    _, agent, base = served
    client = await Client(http, base).start()
    agent.scripted["slow question"] = SLOW
    await give_up_early(base, client.token, {"text": "slow question", "id": "counted-1"})
    await client.say("slow question", id="counted-1")
    await client.say("slow question", id="counted-1")
    async with http.get(base.split("/webhooks")[0] + "/metrics") as metrics:
        text = await metrics.text()
    assert 'lepton_messages_total{channel="web_chat"} 1.0' in text


# Limits ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_session_holds_at_most_three_event_streams(served, http) -> None:
    channel, _, base = served
    client = await Client(http, base).start()
    streams = []
    for _ in range(3):
        stream = await http.get(client.base + "events", headers=client.headers())
        assert stream.status == 200 and (await read_event(stream)).startswith(": connected")
        streams.append(stream)
    fourth = await http.get(client.base + "events", headers=client.headers())
    try:
        assert fourth.status == 200 and (await read_event(fourth)).startswith(": connected")
        # The oldest is told why it ends, and ends.
        closed = await read_event(streams[0])
        assert closed == 'event: closed\ndata: {"reason": "replaced"}\n\n'
        assert await asyncio.wait_for(streams[0].content.read(), TIMEOUT_S) == b""
        sender = next(iter(channel._push._streams))
        assert channel._push.open_streams(sender) == 3
    finally:
        for stream in streams + [fourth]:
            stream.close()


@pytest.mark.asyncio
async def test_too_many_messages_from_one_session_get_429(http) -> None:
    channel = web_chat_channel(rate_limits={"messages_per_session": {"per_minute": 1, "burst": 2}})
    agent = ScriptedAgent()
    async with serve_channel(channel, agent.handle_message, agent=agent) as base:
        client, other = await Client(http, base).start(), await Client(http, base).start()
        assert (await client.say("one"))[0] == 200 and (await client.say("two"))[0] == 200
        status, body, headers = await client.call("POST", "messages", {"text": "three"})
        assert status == 429 and body["error"] == "rate_limited" and body["limit"] == "messages_per_session"
        assert "rate_limits.messages_per_session" in body["message"]
        assert 1 <= int(headers["Retry-After"]) <= 60 and body["retry_after_seconds"] == int(headers["Retry-After"])
        # Another session is not affected.
        assert (await other.say("hello"))[0] == 200
    assert [m.text for m in agent.received] == ["one", "two", "hello"]


@pytest.mark.asyncio
async def test_too_many_messages_or_sessions_from_one_address_get_429(http) -> None:
    channel = web_chat_channel(rate_limits={"messages_per_ip": {"per_minute": 1, "burst": 3},
                                            "sessions_per_ip": {"per_minute": 1, "burst": 3}})
    agent = ScriptedAgent()
    async with serve_channel(channel, agent.handle_message, agent=agent) as base:
        ada, bob = await Client(http, base).start(), await Client(http, base).start()
        assert [(await c.say("x"))[0] for c in (ada, bob, ada)] == [200, 200, 200]
        status, body, headers = await bob.call("POST", "messages", {"text": "y"})
        assert status == 429 and body["limit"] == "messages_per_ip" and "Retry-After" in headers
        await Client(http, base).start()
        # A made-up X-Forwarded-For is not believed without `trusted_proxies`.
        status, body, _ = await Client(http, base).call("POST", "sessions", headers={"X-Forwarded-For": "203.0.113.9"})
        assert status == 429 and body["limit"] == "sessions_per_ip"


@pytest.mark.asyncio
async def test_a_trusted_proxy_names_the_client_but_the_client_cannot(http) -> None:
    channel = web_chat_channel(trusted_proxies=["127.0.0.0/8"],
                               rate_limits={"sessions_per_ip": {"per_minute": 1, "burst": 1}})
    agent = ScriptedAgent()
    async with serve_channel(channel, agent.handle_message, agent=agent) as base:
        client = Client(http, base)

        async def new_session(forwarded_for: Text) -> int:
            return (await client.call("POST", "sessions", headers={"X-Forwarded-For": forwarded_for}))[0]

        assert await new_session("198.51.100.1") == 201
        assert await new_session("198.51.100.2") == 201
        assert await new_session("198.51.100.1") == 429
        # The proxy appends the address it saw; what the client wrote before it is ignored.
        assert await new_session("10.9.9.9, 198.51.100.2") == 429
        assert await new_session("198.51.100.3, 127.0.0.1") == 201


# Bad input ---------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "raw,status,fragment",
    [
        (b"{not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (json.dumps({"text": ""}).encode(), 400, "non-empty"),
        (json.dumps({"text": 42}).encode(), 400, "non-empty string"),
        (json.dumps({"text": "x" * 201}).encode(), 413, "limit is 200"),
        (json.dumps({"text": "x" * 1_000_000}).encode(), 413, "too large"),
        (json.dumps({"text": "hi", "id": "x" * 65}).encode(), 400, "`id`"),
        (json.dumps({"text": "hi", "id": "naïve id"}).encode(), 400, "`id`"),
        (json.dumps({"text": "hi", "payload": 3}).encode(), 400, "`payload`"),
        (b"\xff\xfe\x00garbage", 400, "UTF-8"),
        ('{"text": "caf\u00e9"}'.encode("utf-16"), 400, "UTF-8"),
        (b'{"text": "caf\xe9"}', 400, "UTF-8"),
        (b'{"text": "broken \\ud83d emoji"}', 400, "surrogate"),
        (b'{"text": "hi", "payload": "\\udc00"}', 400, "surrogate"),
        (json.dumps({"text": "bell\u0007"}).encode(), 400, "control characters"),
        (json.dumps({"text": "nul\u0000byte"}).encode(), 400, "control characters"),
        pytest.param(b"[" * 2500 + b"]" * 2500, 400, "not JSON", id="nested-2500-deep"),
    ],
)
async def test_bad_messages_get_a_clear_4xx_and_the_server_keeps_serving(served, http, raw, status, fragment) -> None:
    _, agent, base = served
    client = await Client(http, base).start()
    got_status, body, _ = await client.call("POST", "messages", raw=raw)
    assert got_status == status and fragment in body["message"], body
    assert agent.received == []
    assert await client.say("still there?") == (200, {"messages": [{"sender": "bot", "text": "You said: still there?"}]})


@pytest.mark.asyncio
async def test_unicode_passes_through_intact(served, http) -> None:
    _, agent, base = served
    client = await Client(http, base).start()
    text = "مرحبا 👋 order\t#LP-123456 \u202eright-to-left\u202c"
    status, body = await client.say(text)
    assert status == 200 and body["messages"][0]["text"] == f"You said: {text}"


@pytest.mark.asyncio
async def test_history_shows_a_display_text_only_on_the_web_chats_own_events(served, http) -> None:
    """Another channel's client (or an API caller) could put any `display_text` in metadata."""
    _, agent, base = served
    client = await Client(http, base).start()
    await client.say("hello")
    sender_id = sender_of(agent)
    tracker = await agent.tracker_store.retrieve(sender_id)
    tracker.update(UserUttered("/order_status", input_channel="rest",
                               metadata={"display_text": "I agree to pay $500"}))
    await agent.tracker_store.save(tracker)
    _, history, _ = await client.call("GET", "history")
    assert [m["text"] for m in history["messages"] if m["sender"] == "user"] == ["hello", "/order_status"]


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
    assert (await Client(http, base, origin="http://[").call("POST", "sessions"))[0] == 403

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
    channel = web_chat_channel()
    agent = ScriptedAgent(BrokenTrackerStore(Domain.empty()))
    async with serve_channel(channel, agent.handle_message, agent=agent) as base:
        client = await Client(http, base).start()
        for method, path, body in [("GET", "history", None), ("POST", "messages", {"text": "hi"}),
                                   ("POST", "sessions/refresh", None)]:
            status, reply, _ = await client.call(method, path, body)
            assert status == 503 and reply["error"] == "service_unavailable" and reply["retry_after_seconds"] > 0


@pytest.mark.asyncio
async def test_messages_pushed_outside_a_request_reach_the_open_stream(served, http) -> None:
    channel, agent, base = served
    client = await Client(http, base).start()
    await client.say("hello")
    sender_id = sender_of(agent)
    async with http.get(client.base + "events", headers=client.headers()) as stream:
        assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
        assert (await read_event(stream)).startswith(": connected")
        # What Rasa's HTTP API does for `POST /conversations/<id>/trigger_intent?output_channel=web_chat`.
        output = channel.get_output_channel()
        await output.send_text_with_buttons(sender_id, "Your parcel has shipped!", [{"title": "Track it", "payload": "/track"}])
        event = await read_event(stream)
    assert event.startswith("event: message\n")
    assert json.loads(event.split("data: ", 1)[1]) == {
        "sender": "bot", "text": "Your parcel has shipped!", "buttons": [{"title": "Track it", "payload": "/track"}]
    }


@pytest.mark.asyncio
async def test_widget_files_and_demo_page_are_served(http) -> None:
    channel = web_chat_channel(title='Shop <script>alert("x")</script>')
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
        ({"session_secret": None}, "`session_secret` is missing"),
        ({"session_secret": ""}, "LEPTON_WEB_CHAT_SECRET"),
        ({"session_secret": "too-short"}, "at least 32 characters"),
        ({"session_secret": 12345678901234567890123456789012345}, "at least 32 characters"),
        ({"session_idle_timeout_minutes": 0}, "session_idle_timeout_minutes"),
        ({"session_idle_timeout_minutes": 100, "session_max_lifetime_minutes": 50}, "must not exceed"),
        ({"max_event_streams_per_session": 0}, "max_event_streams_per_session"),
        ({"rate_limits": {"messages_per_minute": 5}}, "unknown `rate_limits` key(s) messages_per_minute"),
        ({"rate_limits": {"messages_per_session": {"per_minute": -1, "burst": 5}}}, "per_minute` must be a number > 0"),
        ({"rate_limits": {"messages_per_session": {"per_minute": 5, "burst": 0.5}}}, "burst` must be a whole number"),
        ({"rate_limits": {"messages_per_session": 5}}, "mapping with `per_minute` and `burst`"),
        ({"rate_limits": "strict"}, "`rate_limits` must be a mapping"),
        ({"trusted_proxies": "10.0.0.1"}, "list of addresses or networks"),
        ({"trusted_proxies": ["proxy.internal"]}, "not an IP address or network"),
    ],
)
def test_bad_credentials_fail_at_start_up_with_the_fix(credentials, fragment) -> None:
    with pytest.raises(InvalidConfigException) as raised:
        WebChatInput.from_credentials({"session_secret": WEB_CHAT_SECRET, **credentials})
    assert fragment in str(raised.value)


def test_good_credentials_and_no_limit() -> None:
    channel = WebChatInput.from_credentials({
        "session_secret": WEB_CHAT_SECRET, "rate_limits": {"messages_per_ip": None},
        "trusted_proxies": ["10.0.0.0/8", "::1"], "session_idle_timeout_minutes": 0.5,
    })
    assert channel.settings.limits["messages_per_ip"] is None
    assert channel.settings.limits["messages_per_session"].burst == 10
    assert WebChatSettings is type(channel.settings)


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

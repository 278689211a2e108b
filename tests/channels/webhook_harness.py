"""Everything a webhook test needs, on 127.0.0.1 only: a stand-in for the chat platform's API,
the channel served by a real Sanic server, and a bot that records and replies."""

import asyncio
import json
import socket
import threading
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, AsyncIterator, Callable, Dict, List, Mapping, Optional, Text, Tuple
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Sanic

TIMEOUT_S = 5.0
BUTTONS = [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]
# What a customer could type to set an intent and an entity of their choosing.
FORCED_INTENT = '/order_status{"order_number": "LP-000001"}'


@dataclass
class RecordedCall:
    """One request the bot made to the platform API."""

    method: Text
    path: Text
    query: Dict[Text, List[Text]]
    headers: Dict[Text, Text]
    body: bytes

    def form(self) -> Dict[Text, Text]:
        return {key: values[-1] for key, values in parse_qs(self.body.decode("utf-8")).items()}

    def json(self) -> Any:
        return json.loads(self.body)


class PlatformStandIn:
    """Records what the bot sends to a platform API and answers with `answer(path)`.

    It serves from its own thread so it answers even while the bot's event loop is
    blocked by a synchronous client (fbmessenger posts with `requests`).
    """

    def __init__(self, answer: Callable[[Text], Dict[Text, Any]]) -> None:
        self.calls: List[RecordedCall] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                stand_in.calls.append(
                    RecordedCall(self.command, parts.path, parse_qs(parts.query), dict(self.headers), body)
                )
                reply = json.dumps(answer(parts.path)).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "PlatformStandIn":
        # A short poll interval keeps shutdown() from adding half a second to every test.
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls_to(self, path_suffix: Text) -> List[RecordedCall]:
        return [call for call in self.calls if call.path.endswith(path_suffix)]


class RecordingBot:
    """An `on_new_message` that records each message and replies with text, then with buttons.

    It keeps the conversation in a real tracker store, as Rasa's processor does, so it can
    also stand in for the agent (`serve_channel(..., agent=bot)`): channels read the
    buttons awaiting a reply from there.
    """

    def __init__(self) -> None:
        from rasa.core.tracker_store import InMemoryTrackerStore
        from rasa.shared.core.domain import Domain

        self.messages: List[UserMessage] = []
        # Messages fully handled: replies sent and the tracker saved.
        self.handled = 0
        self.tracker_store = InMemoryTrackerStore(Domain.empty())

    def is_ready(self) -> bool:
        return True

    async def __call__(self, message: UserMessage) -> None:
        from rasa.shared.core.events import BotUttered, UserUttered

        self.messages.append(message)
        channel = message.output_channel
        await channel.send_text_message(message.sender_id, f"You said: {message.text}")
        await channel.send_text_with_buttons(message.sender_id, "Did that help?", [dict(b) for b in BUTTONS])
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(UserUttered(message.text))
        tracker.update(BotUttered(f"You said: {message.text}"))
        tracker.update(BotUttered("Did that help?", data={"buttons": [dict(b) for b in BUTTONS]}))
        await self.tracker_store.save(tracker)
        self.handled += 1


@asynccontextmanager
async def serve_channel(
    channel: InputChannel, on_new_message: Callable[[UserMessage], Any], agent: Any = None
) -> AsyncIterator[Text]:
    """Serves the channel's blueprint where `rasa run` would mount it; yields that base URL.

    `agent` becomes `app.ctx.agent`, where `rasa run` keeps the loaded Agent.
    """
    app = Sanic(f"lepton_test_{uuid.uuid4().hex}")
    app.ctx.agent = agent
    # The prefix Rasa's `channel.register` computes for the default `/webhooks/` route.
    prefix = urljoin("/webhooks/", channel.url_prefix())
    app.blueprint(channel.blueprint(on_new_message), url_prefix=prefix)
    async with serve_app(app) as url:
        yield f"{url}{prefix}"


@asynccontextmanager
async def serve_app(app: Sanic) -> AsyncIterator[Text]:
    """Serves a built Sanic app (e.g. Rasa's `create_app`) on 127.0.0.1; yields its base URL."""
    # Outside test mode Sanic 21.12 rewrites its HTTP parser in place at each start-up
    # and cannot do it twice in one process (KeyError 'http1_request_header').
    test_mode, Sanic.test_mode = Sanic.test_mode, True
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        # Already listening on return; routes and listeners are finalised by startup().
        server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
        try:
            await server.startup()
            await server.before_start()
            await server.after_start()
            yield f"http://127.0.0.1:{port}"
            await server.before_stop()
        finally:
            await server.close()
        await server.after_stop()
    finally:
        sock.close()
        Sanic.test_mode = test_mode


async def post(url: Text, body: bytes, headers: Optional[Mapping[Text, Text]] = None) -> Tuple[int, Text]:
    """POSTs raw bytes (signatures cover the exact body) and returns status and text."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(url, data=body, headers=dict(headers or {})) as reply:
            return reply.status, await reply.text()


async def get(url: Text, params: Optional[Mapping[Text, Text]] = None) -> Tuple[int, Text]:
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url, params=dict(params or {})) as reply:
            return reply.status, await reply.text()


async def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
    """For channels that hand the message to a background task and answer at once (Slack)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def serve_channels(
    channels: List[InputChannel], on_new_message: Callable[[UserMessage], Any], agent: Any = None
) -> AsyncIterator[Text]:
    """Serves several channels on one app, as `rasa run` does for a credentials.yml listing
    them all; yields the server's base URL (each channel is under `/webhooks/<name>`)."""
    app = Sanic(f"lepton_test_{uuid.uuid4().hex}")
    app.ctx.agent = agent
    # Where `rasa run` keeps them; Rasa's API finds output channels there.
    app.ctx.input_channels = list(channels)
    for channel in channels:
        app.blueprint(channel.blueprint(on_new_message), url_prefix=urljoin("/webhooks/", channel.url_prefix()))
    async with serve_app(app) as url:
        yield url


class RecordingAgent(RecordingBot):
    """A RecordingBot that can also be `app.ctx.agent` on a server with Lepton's extensions:
    strict mode rewraps `agent.tracker_store` and the processor's, which Rasa's `Agent`
    always has (None here: the bot itself plays the processor)."""

    processor: Any = None


class FailingBot(RecordingAgent):
    """A RecordingAgent that raises `errors[n]` for its n-th message (None: handle it), then
    handles every later one: an outage that ends, as the platform's redelivery finds it."""

    def __init__(self, *errors: Optional[BaseException]) -> None:
        super().__init__()
        self.errors = list(errors)
        # Every message it was given, failed ones included.
        self.attempts: List[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.attempts.append(message)
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        await super().__call__(message)


def _outage_errors() -> Dict[Text, Tuple[BaseException, int]]:
    from rasa.core.lock_store import LockError

    from lepton_components.stores.atomic_redis_lock_store import LockStoreUnavailable
    from lepton_components.stores.strict_tracker_store import TrackerStoreUnavailable

    return {
        "tracker-store-down": (TrackerStoreUnavailable("The SQL tracker store at 10.1.2.3:5432 cannot be used."), 503),
        "lock-store-down": (LockStoreUnavailable("Cannot reach the Redis lock store at 10.1.2.3:6379."), 503),
        "conversation-busy": (LockError("Could not acquire the conversation lock in time."), 503),
        "bug": (ValueError("bug in a custom action"), 500),
    }


# A failed turn, by name: the error the bot raises and the status the platform must see
# (503 for a backing-service outage, 500 for anything else), so that it delivers again.
TURN_FAILURES: Dict[Text, Tuple[BaseException, int]] = _outage_errors()


class BrokenStoreAgent:
    """A loaded agent whose conversation database is down, behind the `FailSafeTrackerStore`
    Rasa's `Agent` always wraps stores in. Also the bot: like `Agent.handle_message` it loads
    the conversation first. Without strict mode the wrapper hands back a new, empty one."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
        from rasa.shared.core.domain import Domain

        from lepton_components.stores.strict_tracker_store import TrackerStoreUnavailable

        down = TrackerStoreUnavailable("The SQL tracker store at 10.1.2.3:5432 cannot be used.")

        class DownStore(InMemoryTrackerStore):
            async def retrieve(self, sender_id: Text) -> Any:
                raise down

            async def save(self, tracker: Any) -> None:
                raise down

        self.tracker_store = FailSafeTrackerStore(DownStore(Domain.empty()))
        self.processor = SimpleNamespace(tracker_store=self.tracker_store)
        self.handled: List[UserMessage] = []

    def is_ready(self) -> bool:
        return True

    async def __call__(self, message: UserMessage) -> None:
        await self.processor.tracker_store.get_or_create_tracker(message.sender_id)
        self.handled.append(message)

"""The web chat channel: the widget's script, a demo page and the JSON routes it talks to.

Enabled by a `credentials.yml` entry::

    lepton_components.channels.web_chat.WebChatInput:
      # Pages on other sites that embed the widget; the bot's own pages always may.
      allowed_origins: ["https://shop.example.com"]

Embedding it in any page is one line::

    <script src="https://bot.example.com/webhooks/web_chat/widget.js" defer></script>

Routes (under `/webhooks/web_chat/`): `GET /` health, `GET /widget.js`, `GET /widget.css`,
`GET /demo` (a page with the widget open), `POST /sessions` (a new session token),
`GET /history`, `POST /messages` and `GET /events` (server-sent events for messages
pushed outside a request); the last three need `Authorization: Bearer <session token>`.
Plain REST plus server-sent events rather than socket.io: every request is
independent, so any replica serves any session, and retries are safe (`replies.py`).
"""

import asyncio
import html
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Tuple
from urllib.parse import urlsplit

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.shared.exceptions import InvalidConfigException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.channels.intent_commands import is_intent_command, without_command_prefix
from lepton_components.channels.numbered_choices import buttons_awaiting_reply
from lepton_components.channels.web_chat.output import CHANNEL_NAME, WebChatPushOutput, WebChatReplyOutput
from lepton_components.channels.web_chat.push import PushRegistry
from lepton_components.channels.web_chat.replies import RecentReplies, Replies
from lepton_components.channels.web_chat.sessions import bearer_token, new_session_token, sender_id_for
from lepton_components.channels.web_chat.transcript import DISPLAY_TEXT_KEY, bot_message, transcript
from lepton_components.identity.link_commands import handle_link_command
from lepton_components.server.failures import agent_ready, error_response, failure_response, no_model_response
from lepton_components.server.extensions import install_server_extensions

logger = logging.getLogger(__name__)

CREDENTIALS_KEY = "lepton_components.channels.web_chat.WebChatInput"
STATIC_FILES = {
    "widget.js": "application/javascript; charset=utf-8",
    "widget.css": "text/css; charset=utf-8",
    "demo.html": "text/html; charset=utf-8",
}
# Seconds between keep-alive comments on an idle event stream, so proxies keep it open.
HEARTBEAT_SECONDS = 15.0
MAX_MESSAGE_ID_LENGTH = 64
# JSON framing and escapes on top of the text itself (a \uXXXX escape is 6 bytes).
BODY_BYTES_PER_CHARACTER = 6
BODY_OVERHEAD_BYTES = 4096


@dataclass
class WebChatSettings:
    """The channel's `credentials.yml` keys, checked at start-up."""

    allowed_origins: List[Text] = field(default_factory=list)
    max_message_length: int = 2000
    history_limit: int = 200
    title: Text = "Support"
    allow_typed_commands: bool = False

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "WebChatSettings":
        credentials = dict(credentials or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(credentials) - known)
        if unknown:
            raise InvalidConfigException(
                f"The web_chat channel got unknown key(s) {', '.join(unknown)} in credentials.yml. "
                f"Known keys: {', '.join(sorted(known))}."
            )
        settings = cls(**credentials)
        settings._check()
        return settings

    def _check(self) -> None:
        if not isinstance(self.allowed_origins, list) or not all(
            isinstance(origin, str) and _is_origin(origin) for origin in self.allowed_origins
        ):
            raise InvalidConfigException(
                f"web_chat: `allowed_origins` must be a list of origins such as "
                f'["https://shop.example.com"] (scheme, host and optional port; no path), '
                f"got {self.allowed_origins!r}."
            )
        for key in ("max_message_length", "history_limit"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfigException(
                    f"web_chat: `{key}` must be a whole number >= 1, got {value!r}. "
                    f"Example: `{key}: {WebChatSettings.__dataclass_fields__[key].default}`."
                )
        if not isinstance(self.allow_typed_commands, bool):
            raise InvalidConfigException(
                f"web_chat: `allow_typed_commands` must be true or false, got {self.allow_typed_commands!r}."
            )
        if not isinstance(self.title, str) or not self.title.strip():
            raise InvalidConfigException(f"web_chat: `title` must be a non-empty text, got {self.title!r}.")


def _is_origin(value: Text) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.path in ("", "/") and not (
        parts.query or parts.fragment
    )


def _load_static_files() -> Dict[Text, bytes]:
    folder = resources.files("lepton_components.channels.web_chat") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_FILES}


class WebChatInput(InputChannel):
    """The bot's own web chat: sessions, history, quick replies, pushed messages."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "WebChatInput":
        return cls(WebChatSettings.from_credentials(credentials))

    def __init__(self, settings: Optional[WebChatSettings] = None) -> None:
        self.settings = settings or WebChatSettings()
        self._allowed_origins = {origin.rstrip("/") for origin in self.settings.allowed_origins}
        self._static = _load_static_files()
        self._push = PushRegistry()
        self._replies = RecentReplies()

    def get_output_channel(self) -> OutputChannel:
        """Where Rasa's HTTP API sends messages for `?output_channel=web_chat`."""
        return WebChatPushOutput(self._push)

    # Origins -------------------------------------------------------------------------

    def _origin_allowed(self, request: Request) -> bool:
        """Requests from the bot's own pages, from listed origins, or without an Origin."""
        origin = request.headers.get("Origin")
        if origin is None:
            # Not sent by a browser script (curl, a server-side integration): the session
            # token is what protects a conversation, not the origin.
            return True
        origin = origin.rstrip("/")
        return origin in self._allowed_origins or urlsplit(origin).netloc == request.host

    def _with_cors(self, request: Request, reply: HTTPResponse) -> HTTPResponse:
        origin = request.headers.get("Origin")
        if origin and self._origin_allowed(request):
            reply.headers["Access-Control-Allow-Origin"] = origin
            reply.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            reply.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            reply.headers["Access-Control-Max-Age"] = "600"
        reply.headers["Vary"] = "Origin"
        reply.headers["X-Content-Type-Options"] = "nosniff"
        reply.headers["Cache-Control"] = "no-store"
        return reply

    def _refused_origin(self, request: Request) -> HTTPResponse:
        origin = request.headers.get("Origin")
        logger.warning(f"web_chat refused a request from origin {origin!r} (not in allowed_origins).")
        return self._with_cors(
            request,
            _error(
                403,
                f"The origin {origin} may not use this chat. Add it to `allowed_origins` of "
                f"{CREDENTIALS_KEY} in credentials.yml.",
            ),
        )

    # Messages ------------------------------------------------------------------------

    def _read_message(self, request: Request) -> Tuple[Optional[Dict[Text, Any]], Optional[HTTPResponse]]:
        """The posted message, or an error reply that says what is wrong with it."""
        limit = self.settings.max_message_length
        if len(request.body) > limit * BODY_BYTES_PER_CHARACTER + BODY_OVERHEAD_BYTES:
            return None, _error(413, f"The request is too large; messages are limited to {limit} characters.")
        try:
            body = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None, _error(400, 'The body must be JSON such as {"text": "hello", "id": "<uuid>"}.')
        if not isinstance(body, dict):
            return None, _error(400, 'The body must be a JSON object such as {"text": "hello"}.')
        text, payload, message_id = body.get("text"), body.get("payload"), body.get("id")
        if not isinstance(text, str) or not text.strip():
            return None, _error(400, "`text` must be a non-empty string.")
        if len(text) > limit:
            return None, _error(413, f"The message has {len(text)} characters; the limit is {limit}.")
        if payload is not None and (not isinstance(payload, str) or not payload.strip() or len(payload) > limit):
            return None, _error(400, f"`payload` must be a non-empty string of at most {limit} characters.")
        if message_id is not None and (
            not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH
        ):
            return None, _error(400, f"`id` must be a string of 1 to {MAX_MESSAGE_ID_LENGTH} characters.")
        return {"text": text.strip(), "payload": payload, "id": message_id or uuid.uuid4().hex}, None

    async def _text_for_bot(self, store: Any, sender_id: Text, message: Dict[Text, Any]) -> Text:
        """What the bot receives: a button's payload only if the bot offered that button.

        Rasa reads any text starting with `/` as an intent with entities
        (`/order_status{"order_number": "x"}`), which would let a customer skip NLU and
        set slots at will. Payloads are therefore accepted only from the buttons of the
        bot's latest message, and typed text loses its leading slashes unless
        `allow_typed_commands` is set.
        """
        payload = message["payload"]
        if payload is not None and store is not None:
            offered = buttons_awaiting_reply(await store.retrieve(sender_id))
            if any(button.get("payload") == payload for button in offered):
                return payload
            logger.info("web_chat: a payload the bot did not offer was sent as the customer's text.")
        text = message["text"]
        if self.settings.allow_typed_commands or not is_intent_command(text):
            return text
        # A text of nothing but slashes becomes empty; Rasa then predicts no intent.
        return without_command_prefix(text)

    async def _handle(
        self,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        store: Any,
        sender_id: Text,
        message: Dict[Text, Any],
    ) -> Replies:
        # `/link` and `/unlink` are answered here and never reach the bot (docs/identity.md).
        link_reply = await handle_link_command(message["text"], sender_id, CHANNEL_NAME)
        if link_reply is not None:
            return [{"sender": "bot", "text": link_reply}]
        collector = WebChatReplyOutput()
        text = await self._text_for_bot(store, sender_id, message)
        metadata = {DISPLAY_TEXT_KEY: message["text"]} if text != message["text"] else None
        await on_new_message(
            UserMessage(
                text, collector, sender_id, input_channel=CHANNEL_NAME, message_id=message["id"], metadata=metadata
            )
        )
        return [bot_message(reply) for reply in collector.messages]

    # Routes --------------------------------------------------------------------------

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        web_chat = Blueprint("lepton_web_chat", __name__)
        # Store outages fail requests with 503 instead of starting empty conversations
        # (lepton_components/server/strict_mode.py); once per app, whichever channel asks.
        web_chat.listener("before_server_start")(install_server_extensions)
        channel = self

        def static(name: Text) -> HTTPResponse:
            reply = response.raw(channel._static[name], content_type=STATIC_FILES[name])
            reply.headers["X-Content-Type-Options"] = "nosniff"
            reply.headers["Cache-Control"] = "no-cache"
            return reply

        @web_chat.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @web_chat.route("/widget.js", methods=["GET"])
        async def widget_script(request: Request) -> HTTPResponse:
            return static("widget.js")

        @web_chat.route("/widget.css", methods=["GET"])
        async def widget_style(request: Request) -> HTTPResponse:
            return static("widget.css")

        @web_chat.route("/demo", methods=["GET"])
        async def demo(request: Request) -> HTTPResponse:
            page = channel._static["demo.html"].replace(
                b"__LEPTON_TITLE__", html.escape(channel.settings.title).encode("utf-8")
            )
            reply = response.raw(page, content_type=STATIC_FILES["demo.html"])
            reply.headers["X-Content-Type-Options"] = "nosniff"
            reply.headers["Content-Security-Policy"] = (
                "default-src 'self'; img-src 'self' https: data:; object-src 'none'; "
                "base-uri 'none'; frame-ancestors 'self'"
            )
            return reply

        # Browsers ask before a cross-origin request with an Authorization header.
        @web_chat.route("/sessions", methods=["OPTIONS"], name="sessions_preflight")
        @web_chat.route("/history", methods=["OPTIONS"], name="history_preflight")
        @web_chat.route("/messages", methods=["OPTIONS"], name="messages_preflight")
        @web_chat.route("/events", methods=["OPTIONS"], name="events_preflight")
        async def preflight(request: Request) -> HTTPResponse:
            if not channel._origin_allowed(request):
                return channel._refused_origin(request)
            return channel._with_cors(request, response.empty())

        @web_chat.route("/sessions", methods=["POST"])
        async def new_session(request: Request) -> HTTPResponse:
            if not channel._origin_allowed(request):
                return channel._refused_origin(request)
            return channel._with_cors(request, response.json({"session": new_session_token()}, status=201))

        @web_chat.route("/history", methods=["GET"])
        async def history(request: Request) -> HTTPResponse:
            sender_id, refusal = channel._authorise(request)
            if refusal:
                return refusal
            store = _tracker_store(request)
            if store is None:
                return channel._with_cors(request, no_model_response())
            try:
                tracker = await store.retrieve_full_tracker(sender_id)
            except Exception as error:
                return channel._with_cors(request, failure_response(error, "a web chat history request"))
            events = tracker.events if tracker is not None else []
            messages = transcript(events, channel.settings.history_limit)
            return channel._with_cors(request, response.json({"messages": messages}))

        @web_chat.route("/messages", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            sender_id, refusal = channel._authorise(request)
            if refusal:
                return refusal
            message, invalid = channel._read_message(request)
            if invalid:
                return channel._with_cors(request, invalid)
            if not agent_ready(request):
                return channel._with_cors(request, no_model_response())
            store = _tracker_store(request)
            try:
                replies = await channel._replies.once(
                    sender_id, message["id"], lambda: channel._handle(on_new_message, store, sender_id, message)
                )
            except Exception as error:
                return channel._with_cors(request, failure_response(error, "a web chat message"))
            return channel._with_cors(request, response.json({"messages": replies}))

        @web_chat.route("/events", methods=["GET"])
        async def events(request: Request) -> Optional[HTTPResponse]:
            sender_id, refusal = channel._authorise(request)
            if refusal:
                return refusal
            stream = await request.respond(
                headers=channel._with_cors(request, response.empty()).headers,
                content_type="text/event-stream",
            )
            queue = channel._push.open(sender_id)
            try:
                await stream.send(": connected\n\n")
                while True:
                    try:
                        pushed = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                    except asyncio.TimeoutError:
                        await stream.send(f": {int(time.time())}\n\n")
                        continue
                    await stream.send(f"event: message\ndata: {json.dumps(pushed)}\n\n")
            finally:
                channel._push.close(sender_id, queue)
            return None

        return web_chat

    def _authorise(self, request: Request) -> Tuple[Text, Optional[HTTPResponse]]:
        """The conversation of the request's session token, or the reply refusing it."""
        if not self._origin_allowed(request):
            return "", self._refused_origin(request)
        token = bearer_token(request)
        if token is None:
            return "", self._with_cors(
                request,
                _error(401, "Missing or malformed session token: POST /sessions for one, then send it as "
                            "`Authorization: Bearer <token>`."),
            )
        return sender_id_for(token), None


# The error codes of `lepton_components.server.failures`, by status.
ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 413: "payload_too_large"}


def _error(status: int, message: Text) -> HTTPResponse:
    return error_response(status, ERROR_CODES[status], message)


def _tracker_store(request: Request) -> Any:
    """The loaded agent's tracker store, where the conversations are."""
    return getattr(getattr(request.app.ctx, "agent", None), "tracker_store", None)

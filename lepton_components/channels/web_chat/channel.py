"""The web chat channel: the widget's script, a demo page and the JSON routes it talks to.

Enabled by a `credentials.yml` entry::

    lepton_components.channels.web_chat.WebChatInput:
      session_secret: ${LEPTON_WEB_CHAT_SECRET}   # signs sessions; required, >= 32 characters
      # Pages on other sites that embed the widget; the bot's own pages always may.
      allowed_origins: ["https://shop.example.com"]

Embedding it in any page is one line::

    <script src="https://bot.example.com/webhooks/web_chat/widget.js" defer></script>

Routes (under `/webhooks/web_chat/`): `GET /` health, `GET /widget.js`, `GET /widget.css`,
`GET /demo` (a page with the widget open), `POST /sessions` (a new session, signed by the
server), and with `Authorization: Bearer <session token>`: `POST /sessions/refresh` (a
fresh token for the same conversation), `DELETE /sessions` (end the session),
`GET /history`, `POST /messages`, `GET /events` (server-sent events for messages
pushed outside a request) and `POST /feedback` (thumbs up/down on an answer,
`feedback.py`).
Plain REST plus server-sent events rather than socket.io: every request is independent,
so any replica serves any session, and retries are safe (`turns.py`). Every route that
does work is rate limited (`rate_limits.py`).
"""

import asyncio
import html
import json
import logging
import time
import uuid
from functools import partial
from importlib import resources
from typing import Any, Awaitable, Callable, Dict, Optional, Text, Tuple
from urllib.parse import urlsplit

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.channels.message_text import text_problem
from lepton_components.strict_json import InvalidJson, decode_json
from lepton_components.channels.web_chat.client_address import ClientAddresses
from lepton_components.channels.web_chat.feedback import BadFeedback, read_feedback, store_feedback
from lepton_components.channels.web_chat.output import CHANNEL_NAME, WebChatPushOutput
from lepton_components.channels.web_chat.push import EXPIRED, REVOKED, PushRegistry, Stream, StreamClosed
from lepton_components.channels.rate_limits import Limited, RateLimiter
from lepton_components.channels.web_chat.rate_limits import (
    MESSAGES_PER_IP,
    MESSAGES_PER_SESSION,
    REQUESTS_PER_SESSION,
    SESSIONS_PER_IP,
)
from lepton_components.channels.web_chat.replies import RecentTurns, log_if_failed_unseen
from lepton_components.channels.web_chat.revocation import check_not_revoked, refuse_if_revoked, revoke
from lepton_components.channels.web_chat.sessions import (
    INVALID,
    Session,
    SessionIssuer,
    SessionRefused,
    bearer_token,
)
from lepton_components.channels.web_chat.settings import CREDENTIALS_KEY, WebChatSettings
from lepton_components.channels.web_chat.transcript import transcript
from lepton_components.channels.web_chat.turns import NoModelLoaded, WidgetMessage, run_turn
from lepton_components.monitoring.metrics import metrics_of
from lepton_components.server.extensions import install_server_extensions
from lepton_components.server.failures import agent_ready, error_response, failure_response, no_model_response

logger = logging.getLogger(__name__)

STATIC_FILES = {
    "widget.js": "application/javascript; charset=utf-8",
    "widget.css": "text/css; charset=utf-8",
    "demo.html": "text/html; charset=utf-8",
}
# Seconds between keep-alive comments on an idle event stream, so proxies keep it open.
HEARTBEAT_SECONDS = 15.0
# Seconds between checks of an open stream's conversation for a revocation made on
# another replica (one made here closes the stream at once).
REVOCATION_CHECK_SECONDS = 60.0
MAX_MESSAGE_ID_LENGTH = 64
# JSON framing and escapes on top of the text itself (a \uXXXX escape is 6 bytes).
BODY_BYTES_PER_CHARACTER = 6
BODY_OVERHEAD_BYTES = 4096
# What each rate limit counts, for the 429 message.
LIMIT_SUBJECTS = {
    MESSAGES_PER_SESSION: "messages per session",
    MESSAGES_PER_IP: "messages per client address",
    SESSIONS_PER_IP: "session requests per client address",
    REQUESTS_PER_SESSION: "requests per session",
}

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


def _load_static_files() -> Dict[Text, bytes]:
    folder = resources.files("lepton_components.channels.web_chat") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_FILES}


class WebChatInput(InputChannel):
    """The bot's own web chat: signed sessions, history, quick replies, pushed messages."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "WebChatInput":
        return cls(WebChatSettings.from_credentials(credentials))

    def __init__(self, settings: Optional[WebChatSettings] = None, clock: Callable[[], float] = time.time) -> None:
        # No settings means no secret, which `WebChatSettings` refuses with the fix.
        self.settings = settings if settings is not None else WebChatSettings()
        self._allowed_origins = {origin.rstrip("/") for origin in self.settings.allowed_origins}
        self._static = _load_static_files()
        self._push = PushRegistry(self.settings.max_event_streams_per_session)
        self._turns = RecentTurns()
        self.sessions = SessionIssuer(
            self.settings.session_secret or "", self.settings.idle_timeout_s, self.settings.max_lifetime_s, clock
        )
        self._limits = RateLimiter(self.settings.limits)
        self._addresses = ClientAddresses(self.settings.proxy_networks)

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
        if origin in self._allowed_origins:
            return True
        try:
            return urlsplit(origin).netloc == request.host
        except ValueError:  # not a URL at all, e.g. "http://["
            return False

    def _with_cors(self, request: Request, reply: HTTPResponse) -> HTTPResponse:
        origin = request.headers.get("Origin")
        if origin and self._origin_allowed(request):
            reply.headers["Access-Control-Allow-Origin"] = origin
            reply.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            reply.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            reply.headers["Access-Control-Expose-Headers"] = "Retry-After"
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
            error_response(
                403,
                "forbidden",
                f"The origin {origin} may not use this chat. Add it to `allowed_origins` of "
                f"{CREDENTIALS_KEY} in credentials.yml.",
            ),
        )

    # Sessions and limits --------------------------------------------------------------

    def _unauthorised(self, request: Request, refused: SessionRefused) -> HTTPResponse:
        reply = error_response(401, refused.code, refused.message)
        reply.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{refused.code}"'
        return self._with_cors(request, reply)

    def _authorise(self, request: Request) -> Tuple[Optional[Session], Optional[HTTPResponse]]:
        """The request's verified session, or the reply refusing it."""
        if not self._origin_allowed(request):
            return None, self._refused_origin(request)
        token = bearer_token(request)
        if token is None:
            return None, self._unauthorised(
                request,
                SessionRefused(
                    INVALID,
                    "Missing or malformed session token: POST /sessions for one, then send it as "
                    "`Authorization: Bearer <token>`.",
                ),
            )
        try:
            return self.sessions.verify(token), None
        except SessionRefused as refused:
            return None, self._unauthorised(request, refused)

    def _session_within_limit(self, request: Request, limit: Text) -> Tuple[Optional[Session], Optional[HTTPResponse]]:
        """The request's session if its token is good and `limit` allows one more request."""
        session, refusal = self._authorise(request)
        if refusal:
            return None, refusal
        return session, self._limited(request, limit, session.sender_id)

    async def _live_store(self, request: Request, session: Session, what: Text) -> Tuple[Any, Optional[HTTPResponse]]:
        """The tracker store, once it says the session was not revoked; else the refusal."""
        store = _tracker_store(request)
        if store is None:
            return None, self._with_cors(request, no_model_response())
        try:
            await check_not_revoked(store, session.sender_id)
        except SessionRefused as refused:
            return None, self._unauthorised(request, refused)
        except Exception as error:
            return None, self._with_cors(request, failure_response(error, what))
        return store, None

    def _limited(self, request: Request, name: Text, key: Text) -> Optional[HTTPResponse]:
        """The 429 reply if this request exceeds the limit `name` for `key`, else None."""
        limited: Optional[Limited] = self._limits.check(name, key)
        if limited is None:
            return None
        logger.info(f"web_chat: rate limit `{name}` refused a request (retry after {limited.retry_after_s} s).")
        body = {
            "error": "rate_limited",
            "message": (
                f"Too many {LIMIT_SUBJECTS[name]}: {limited.limit.burst} at once, then "
                f"{limited.limit.per_minute:g} a minute (`rate_limits.{name}` of {CREDENTIALS_KEY} in "
                f"credentials.yml). Retry after {limited.retry_after_s} s."
            ),
            "limit": name,
            "retry_after_seconds": limited.retry_after_s,
        }
        reply = response.json(body, status=429, headers={"Retry-After": str(limited.retry_after_s)})
        return self._with_cors(request, reply)

    def _client(self, request: Request) -> Text:
        return self._addresses.of(request)

    # Messages ------------------------------------------------------------------------

    def _read_message(self, request: Request) -> Tuple[Optional[WidgetMessage], Optional[HTTPResponse]]:
        """The posted message, or an error reply that says what is wrong with it."""
        limit = self.settings.max_message_length
        if len(request.body) > limit * BODY_BYTES_PER_CHARACTER + BODY_OVERHEAD_BYTES:
            return None, _error(413, f"The request is too large; messages are limited to {limit} characters.")
        try:
            body = decode_json(request.body)
        except InvalidJson as error:
            return None, _error(400, f'{error} Send JSON such as {{"text": "hello", "id": "<uuid>"}}.')
        if not isinstance(body, dict):
            return None, _error(400, 'The body must be a JSON object such as {"text": "hello"}.')
        text, payload, message_id = body.get("text"), body.get("payload"), body.get("id")
        if not isinstance(text, str) or not text.strip():
            return None, _error(400, "`text` must be a non-empty string.")
        if len(text) > limit:
            return None, _error(413, f"The message has {len(text)} characters; the limit is {limit}.")
        problem = text_problem(text)
        if problem is not None:
            return None, _error(400, f"`text`: {problem}")
        if payload is not None and (
            not isinstance(payload, str) or not payload.strip() or len(payload) > limit or text_problem(payload)
        ):
            return None, _error(
                400, f"`payload` must be a non-empty string of at most {limit} printable characters."
            )
        if message_id is not None and (
            not isinstance(message_id, str)
            or not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH
            or not all(character.isascii() and (character.isalnum() or character in "-_.:") for character in message_id)
        ):
            return None, _error(
                400,
                f"`id` must be 1 to {MAX_MESSAGE_ID_LENGTH} characters of A-Z, a-z, 0-9, '-', '_', '.' or ':' "
                "(the widget sends a UUID).",
            )
        return WidgetMessage(text.strip(), payload, message_id or uuid.uuid4().hex), None

    async def _reply_to(self, request: Request, session: Session, message: WidgetMessage) -> HTTPResponse:
        agent = request.app.ctx.agent
        allow_typed_commands = self.settings.allow_typed_commands
        task = self._turns.start(
            session.sender_id, message.id, lambda: run_turn(agent, session.sender_id, message, allow_typed_commands)
        )
        try:
            replies = await asyncio.shield(task)
        except asyncio.CancelledError:
            # The client went away (Sanic cancels the handler); the turn goes on.
            task.add_done_callback(partial(log_if_failed_unseen, refusals=(SessionRefused, NoModelLoaded)))
            raise
        except SessionRefused as refused:
            return self._unauthorised(request, refused)
        except NoModelLoaded:
            return self._with_cors(request, no_model_response())
        except Exception as error:
            return self._with_cors(request, failure_response(error, "a web chat message"))
        return self._with_cors(request, response.json({"messages": replies}))

    # Event streams -------------------------------------------------------------------

    async def _stream_events(self, request: Request, session: Session, store: Any) -> None:
        """Sends pushed messages until the client leaves or the stream is closed here."""
        stream_reply = await request.respond(
            headers=self._with_cors(request, response.empty()).headers,
            content_type="text/event-stream",
        )
        stream = self._push.open(session.sender_id)
        loop = asyncio.get_running_loop()
        next_check = loop.time() + REVOCATION_CHECK_SECONDS
        try:
            await stream_reply.send(": connected\n\n")
            while True:
                remaining = session.expires_at - self.sessions.clock()
                if remaining <= 0:
                    stream.close(EXPIRED)
                try:
                    pushed = await stream.next(min(HEARTBEAT_SECONDS, max(remaining, 0.01)))
                except StreamClosed as closed:
                    await stream_reply.send(f"event: closed\ndata: {json.dumps({'reason': closed.reason})}\n\n")
                    return
                if pushed is not None:
                    await stream_reply.send(f"event: message\ndata: {json.dumps(pushed)}\n\n")
                    continue
                if loop.time() >= next_check:
                    next_check = loop.time() + REVOCATION_CHECK_SECONDS
                    await self._close_if_revoked(store, session, stream)
                await stream_reply.send(f": {int(time.time())}\n\n")
        finally:
            self._push.close(session.sender_id, stream)

    @staticmethod
    async def _close_if_revoked(store: Any, session: Session, stream: Stream) -> None:
        try:
            await check_not_revoked(store, session.sender_id)
        except SessionRefused:
            stream.close(REVOKED)
        except Exception as error:
            # The store is down: keep the stream (it carries no conversation data
            # by itself); the next request on this session will fail visibly.
            logger.warning(f"web_chat: could not check an open stream's session for revocation: {error!r}")

    # Routes --------------------------------------------------------------------------

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """The widget's routes.

        `on_new_message` is not called: Rasa's is `agent.handle_message`, which takes
        the conversation lock and calls the processor, and the web chat must check for
        an earlier attempt of the same message inside that lock (`turns.py`), so it
        takes the lock and calls the processor itself.
        """
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
        @web_chat.route("/sessions/refresh", methods=["OPTIONS"], name="refresh_preflight")
        @web_chat.route("/history", methods=["OPTIONS"], name="history_preflight")
        @web_chat.route("/messages", methods=["OPTIONS"], name="messages_preflight")
        @web_chat.route("/events", methods=["OPTIONS"], name="events_preflight")
        @web_chat.route("/feedback", methods=["OPTIONS"], name="feedback_preflight")
        async def preflight(request: Request) -> HTTPResponse:
            if not channel._origin_allowed(request):
                return channel._refused_origin(request)
            return channel._with_cors(request, response.empty())

        @web_chat.route("/sessions", methods=["POST"])
        async def new_session(request: Request) -> HTTPResponse:
            if not channel._origin_allowed(request):
                return channel._refused_origin(request)
            limited = channel._limited(request, SESSIONS_PER_IP, channel._client(request))
            if limited:
                return limited
            issued = channel.sessions.new_session()
            return channel._with_cors(request, response.json(issued.as_json(), status=201))

        @web_chat.route("/sessions/refresh", methods=["POST"])
        async def refresh_session(request: Request) -> HTTPResponse:
            if not channel._origin_allowed(request):
                return channel._refused_origin(request)
            limited = channel._limited(request, SESSIONS_PER_IP, channel._client(request))
            if limited:
                return limited
            session, refusal = channel._session_within_limit(request, REQUESTS_PER_SESSION)
            if refusal:
                return refusal
            store, refusal = await channel._live_store(request, session, "a web chat session refresh")
            if refusal:
                return refusal
            return channel._with_cors(request, response.json(channel.sessions.renew(session).as_json()))

        @web_chat.route("/sessions", methods=["DELETE"])
        async def end_session(request: Request) -> HTTPResponse:
            session, refusal = channel._session_within_limit(request, REQUESTS_PER_SESSION)
            if refusal:
                return refusal
            agent = getattr(request.app.ctx, "agent", None)
            store, locks = _tracker_store(request), getattr(agent, "lock_store", None)
            if store is None or locks is None:
                return channel._with_cors(request, no_model_response())
            try:
                await asyncio.shield(revoke(store, locks, session.sender_id, reason="ended by the customer"))
            except Exception as error:
                return channel._with_cors(request, failure_response(error, "ending a web chat session"))
            channel._push.close_all(session.sender_id, REVOKED)
            return channel._with_cors(request, response.empty())

        @web_chat.route("/history", methods=["GET"])
        async def history(request: Request) -> HTTPResponse:
            session, refusal = channel._session_within_limit(request, REQUESTS_PER_SESSION)
            if refusal:
                return refusal
            store = _tracker_store(request)
            if store is None:
                return channel._with_cors(request, no_model_response())
            try:
                tracker = await store.retrieve_full_tracker(session.sender_id)
                events = list(tracker.events) if tracker is not None else []
                refuse_if_revoked(events)
            except SessionRefused as refused:
                return channel._unauthorised(request, refused)
            except Exception as error:
                return channel._with_cors(request, failure_response(error, "a web chat history request"))
            messages = transcript(events, channel.settings.history_limit)
            return channel._with_cors(request, response.json({"messages": messages}))

        @web_chat.route("/messages", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not channel._origin_allowed(request):
                return channel._refused_origin(request)
            limited = channel._limited(request, MESSAGES_PER_IP, channel._client(request))
            if limited:
                return limited
            session, refusal = channel._session_within_limit(request, MESSAGES_PER_SESSION)
            if refusal:
                return refusal
            message, invalid = channel._read_message(request)
            if invalid:
                return channel._with_cors(request, invalid)
            if not agent_ready(request):
                return channel._with_cors(request, no_model_response())
            return await channel._reply_to(request, session, message)

        @web_chat.route("/events", methods=["GET"])
        async def events(request: Request) -> Optional[HTTPResponse]:
            session, refusal = channel._session_within_limit(request, REQUESTS_PER_SESSION)
            if refusal:
                return refusal
            store, refusal = await channel._live_store(request, session, "a web chat event stream")
            if refusal:
                return refusal
            await channel._stream_events(request, session, store)
            return None

        @web_chat.route("/feedback", methods=["POST"])
        async def feedback(request: Request) -> HTTPResponse:
            if not channel._origin_allowed(request):
                return channel._refused_origin(request)
            session, refusal = channel._session_within_limit(request, REQUESTS_PER_SESSION)
            if refusal:
                return refusal
            try:
                rating = read_feedback(request.body)
            except BadFeedback as bad:
                return channel._with_cors(request, _error(bad.status, str(bad)))
            return await channel._store_feedback(request, session, rating)

        return web_chat

    async def _store_feedback(self, request: Request, session: Session, rating: Any) -> HTTPResponse:
        agent = getattr(request.app.ctx, "agent", None)
        store, locks = _tracker_store(request), getattr(agent, "lock_store", None)
        if store is None or locks is None:
            return self._with_cors(request, no_model_response())
        try:
            # Shielded: a client that leaves must not cancel a write under the lock.
            found, at = await asyncio.shield(store_feedback(store, locks, session.sender_id, rating))
        except SessionRefused as refused:
            return self._unauthorised(request, refused)
        except Exception as error:
            return self._with_cors(request, failure_response(error, "a web chat rating"))
        if not found:
            return self._with_cors(
                request,
                error_response(
                    404,
                    "not_found",
                    f"This conversation has no bot answer to the message {rating.message!r}: rate an answer "
                    "by the `id` of the message it replied to.",
                ),
            )
        metrics = metrics_of(request.app)
        if metrics is not None:
            metrics.count_feedback(rating.rating)
        await _record_on_turn_log(request, session.sender_id, rating.message, rating.rating, at)
        return self._with_cors(request, response.json({"message": rating.message, "rating": rating.rating}))


async def _record_on_turn_log(request: Request, sender_id: Text, message_id: Text, rating: Text, at: float) -> None:
    """Copies the rating to the operator console's turn log, if the console is installed."""
    from lepton_components.operators.analytics.feedback import record_feedback

    try:
        await record_feedback(request.app, sender_id, message_id, rating, at)
    except Exception:
        # The rating is in the conversation already; only the console's copy is missing.
        logger.exception("web_chat: a rating was stored but could not be copied to the operator console's turn log.")


# The error codes of `lepton_components.server.failures`, by status.
ERROR_CODES = {400: "bad_request", 403: "forbidden", 413: "payload_too_large"}


def _error(status: int, message: Text) -> HTTPResponse:
    return error_response(status, ERROR_CODES[status], message)


def _tracker_store(request: Request) -> Any:
    """The loaded agent's tracker store, where the conversations are."""
    return getattr(getattr(request.app.ctx, "agent", None), "tracker_store", None)

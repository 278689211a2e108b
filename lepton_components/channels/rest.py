"""Rasa's REST channel for a trusted backend, with failures answered as failures.

Rasa 3.6's `RestInput` takes any request from anyone, keys the conversation by the
`sender` the caller names, and catches every exception while handling a message,
logs it and answers `200 []` (`rasa/core/channels/rest.py` L160-181). So anyone who
can reach the port can post as any customer of any channel and read the replies, and
a website cannot tell "the bot has nothing to say" from "nothing was processed".

`LeptonRestInput` keeps the URL (`POST /webhooks/rest/webhook`), the request and the
reply JSON, but

* every request must prove it comes from the website's backend: a bearer `token` or
  an HMAC `signing_secret` (`rest_auth.py`); 401 otherwise;
* conversations live under `rest:<sender>` (`sender_namespace.py`), so a REST caller
  can never address a web chat, Telegram, Messenger or Slack conversation; `sender`
  is required (Rasa makes a missing one `"default"`, one conversation for everybody);
* the client's `input_channel` and `metadata` are ignored unless
  `trust_client_metadata: true`;
* the text is checked before any work: over `max_message_length` characters is 413,
  invalid UTF-8, lone surrogates and control characters are 400; more than
  `rate_limits.messages_per_sender` (60 a minute, bursts of 30) from one sender is 429;
* failures answer `503` + `Retry-After` when the conversation database or Redis cannot
  be used, with a JSON body naming the service (`lepton_components.server.outages`),
  or when no model is loaded; `500` with a JSON error for any other failure.

It also serves `GET /webhooks/rest/ready`: 200 once a model is loaded, else 503 (Rasa's
`/` answers 200 even with no model), for load balancers and orchestrators.

A message starting with `/` is passed on as `/intent{...}` only when it is the payload
of a button the bot just offered (`lepton_components.channels.intent_commands`);
`allow_intent_commands: true` lets trusted clients send any intent.

Listing it in `credentials.yml` also switches on the server extensions (strict stores,
metrics, hardening) for the whole server::

    lepton_components.channels.rest.LeptonRestInput:
      token: ${LEPTON_REST_TOKEN}      # or signing_secret: ${LEPTON_REST_SIGNING_SECRET}
      max_message_length: 2000
      trust_client_metadata: false
      allow_intent_commands: false
"""

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, Text, Tuple, Union

from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from rasa.core.channels.rest import QueueOutputChannel, RestInput
from rasa.shared.exceptions import InvalidConfigException
from rasa.utils.endpoints import bool_arg
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.channels.intent_commands import (
    LoadedTrackerStore,
    guard_customer_commands,
    pop_allow_intent_commands,
)
from lepton_components.channels.message_text import DEFAULT_MAX_MESSAGE_LENGTH, pop_max_message_length, text_problem
from lepton_components.channels.rate_limits import (
    MESSAGES_PER_SENDER,
    Limited,
    RateLimit,
    RateLimiter,
    parse_rate_limits,
)
from lepton_components.channels.rest_auth import MIN_SECRET_LENGTH, RestCredential
from lepton_components.channels.conversation_ids import conversation_id, describe
from lepton_components.channels.sender_namespace import namespaced_message
from lepton_components.channels.webhook_body import BadWebhookBody, json_object
from lepton_components.server.extensions import install_server_extensions
from lepton_components.server.failures import agent_ready, error_response, failure_response, no_model_response
from lepton_components.server.strict_mode import ensure_strict_agent

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]

CHANNEL_NAME = "rest"
CREDENTIALS_KEY = "lepton_components.channels.rest.LeptonRestInput"
MAX_SENDER_LENGTH = 128
# What a trusted client may name as its `input_channel`.
_CHANNEL_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
_KNOWN_KEYS = (
    "token", "signing_secret", "max_message_length", "trust_client_metadata", "allow_intent_commands", "rate_limits"
)
# Looser than a messaging app's per-customer limit: a backend may replay a conversation
# quickly (a load test, a migration), and one REST sender is still one customer.
_LIMITS = {MESSAGES_PER_SENDER: RateLimit(per_minute=60, burst=30)}
_LIMITS_EXAMPLE = "rate_limits:\n  messages_per_sender: {per_minute: 60, burst: 30}   # null: no limit"
_EXAMPLE = f"{CREDENTIALS_KEY}:\n  token: ${{LEPTON_REST_TOKEN}}"

_SHAPE = '{"sender": "<your customer\'s id>", "message": "<text>"}'

_DONE = object()


@dataclass(frozen=True)
class RestRequest:
    """A checked request: who wrote, what, and through which channel."""

    sender_id: Text
    text: Text
    input_channel: Text
    metadata: Optional[Dict[Text, Any]]


def _bad_request(reason: Text) -> HTTPResponse:
    return error_response(400, "bad_request", reason)


def _secret(credentials: Dict[Text, Any], key: Text) -> Optional[Text]:
    value = credentials.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value.strip()) < MIN_SECRET_LENGTH:
        raise InvalidConfigException(
            f"rest: `{key}` must be a secret of at least {MIN_SECRET_LENGTH} characters. Generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` (`make serve` writes one to "
            f".lepton-rest-token), e.g.\n{_EXAMPLE}"
        )
    return value.strip()


def credential_from(credentials: Dict[Text, Any]) -> RestCredential:
    """The channel's one credential; none, or both, stops the server with the fix."""
    token, signing_secret = _secret(credentials, "token"), _secret(credentials, "signing_secret")
    if (token is None) == (signing_secret is None):
        raise InvalidConfigException(
            "rest: the REST channel lets its caller post as any customer, so it needs exactly one of "
            "`token` (callers send `Authorization: Bearer <token>`) or `signing_secret` (callers sign each "
            f"request, docs/hardening.md) in credentials.yml, e.g.\n{_EXAMPLE}\nRemove the channel if "
            "nothing but the web chat and messaging apps should reach the bot."
        )
    return RestCredential(token=token, signing_secret=signing_secret)


class LeptonRestInput(RestInput):
    """`RestInput` on the same URL for an authenticated backend, with honest failures."""

    @classmethod
    def name(cls) -> Text:
        """`rest`, so the channel keeps Rasa's `/webhooks/rest/` URLs."""
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "LeptonRestInput":
        credentials = dict(credentials or {})
        allow = pop_allow_intent_commands("rest", credentials, f"{CREDENTIALS_KEY}:")
        trust = credentials.get("trust_client_metadata", False)
        if not isinstance(trust, bool):
            raise InvalidConfigException(f"rest: `trust_client_metadata` must be true or false, got {trust!r}.")
        max_message_length = pop_max_message_length("rest", credentials, f"{CREDENTIALS_KEY}:")
        unknown = sorted(set(credentials) - set(_KNOWN_KEYS))
        if unknown:
            raise InvalidConfigException(
                f"rest: unknown credentials key(s) {', '.join(unknown)}. Known keys: {', '.join(_KNOWN_KEYS)}."
            )
        return cls(
            credential_from(credentials),
            max_message_length=max_message_length,
            trust_client_metadata=trust,
            allow_intent_commands=allow,
            rate_limits=parse_rate_limits("rest", credentials.get("rate_limits"), _LIMITS, _LIMITS_EXAMPLE),
        )

    def __init__(
        self,
        credential: RestCredential,
        max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
        trust_client_metadata: bool = False,
        allow_intent_commands: bool = False,
        rate_limits: Optional[Mapping[Text, Optional[RateLimit]]] = None,
    ) -> None:
        self.credential = credential
        self._limits = RateLimiter(_LIMITS if rate_limits is None else rate_limits)
        self.max_message_length = max_message_length
        self.trust_client_metadata = trust_client_metadata
        self.allow_intent_commands = allow_intent_commands

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Rasa's REST routes and `/ready`, plus the listener that installs the server extensions."""
        webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)
        tracker_store = LoadedTrackerStore()
        webhook.listener("before_server_start")(tracker_store.remember_app)
        on_new_message = guard_customer_commands(on_new_message, tracker_store, self.allow_intent_commands)
        # Runs before Rasa loads the agent and before any request is accepted.
        webhook.listener("before_server_start")(install_server_extensions)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/ready", methods=["GET"])
        async def ready(request: Request) -> HTTPResponse:
            if not agent_ready(request):
                return no_model_response()
            return response.json({"status": "ready"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> Optional[HTTPResponse]:
            refusal = self.credential.refusal(request)
            if refusal is not None:
                logger.warning(f"rest: refused a request from {request.ip} without the channel's credential.")
                return refusal
            checked, invalid = self._read(request)
            if invalid is not None:
                return invalid
            assert checked is not None
            limited = self._limits.check(MESSAGES_PER_SENDER, checked.sender_id)
            if limited is not None:
                return _rate_limited(limited)
            if not agent_ready(request):
                return no_model_response()
            # `PUT /model` may have swapped the agent since the middleware ran.
            ensure_strict_agent(request.app)
            if bool_arg(request, "stream", default=False):
                return await self._stream(request, on_new_message, checked)

            collector = CollectingOutputChannel()
            try:
                await on_new_message(self._message(checked, collector))
            except Exception as error:
                return failure_response(error, _described(checked.sender_id))
            return response.json(collector.messages)

        return webhook

    def _read(self, request: Request) -> Tuple[Optional[RestRequest], Optional[HTTPResponse]]:
        """The checked request, or the 4xx answer saying what to change."""
        try:
            body = json_object(request.body or b"", _SHAPE)
        except BadWebhookBody as error:
            return None, _bad_request(str(error))
        if not isinstance(body.get("message"), str):
            return None, _bad_request(f"`message` must be a string: send {_SHAPE}.")
        sender, text = body.get("sender"), body["message"]
        if not isinstance(sender, str) or not 0 < len(sender) <= MAX_SENDER_LENGTH or text_problem(sender):
            return None, _bad_request(
                f"`sender` must be your customer's id: a string of 1 to {MAX_SENDER_LENGTH} printable characters."
            )
        if len(text) > self.max_message_length:
            return None, error_response(
                413,
                "payload_too_large",
                f"The message has {len(text)} characters; the limit is {self.max_message_length} "
                f"(`max_message_length` of {CREDENTIALS_KEY}).",
            )
        problem = text_problem(text)
        if problem is not None:
            return None, _bad_request(f"`message`: {problem}")
        input_channel, metadata = CHANNEL_NAME, None
        if self.trust_client_metadata:
            input_channel, metadata = body.get("input_channel") or CHANNEL_NAME, body.get("metadata")
            if not isinstance(input_channel, str) or not _CHANNEL_NAME_PATTERN.fullmatch(input_channel):
                return None, _bad_request("`input_channel` must be a channel name such as `rest` or `web_chat`.")
            if metadata is not None and not isinstance(metadata, dict):
                return None, _bad_request("`metadata` must be a JSON object.")
        return RestRequest(sender, text, input_channel, metadata), None

    def _message(self, checked: RestRequest, output: OutputChannel) -> UserMessage:
        message = UserMessage(
            checked.text, output, checked.sender_id, input_channel=checked.input_channel, metadata=checked.metadata
        )
        namespaced = namespaced_message(CHANNEL_NAME, message)
        # A trusted client may say which of its own channels the customer used.
        namespaced.input_channel = checked.input_channel
        return namespaced

    async def _stream(self, request: Request, on_new_message: OnNewMessage, checked: RestRequest) -> Optional[HTTPResponse]:
        """Stream bot messages as JSON lines, as Rasa does.

        The status is only sent with the first bot message, so a failure before it is
        still a proper 503/500. A failure after it can only end the stream with a last
        line `{"error": ...}`; Rasa's version waited for the response timeout instead.
        """
        queue: "asyncio.Queue[Union[Dict[Text, Any], object]]" = asyncio.Queue()

        async def handle() -> None:
            try:
                await on_new_message(self._message(checked, QueueOutputChannel(queue)))
            finally:
                await queue.put(_DONE)

        task = asyncio.ensure_future(handle())
        first = await queue.get()
        if first is _DONE:
            await asyncio.wait([task])
            if task.exception() is not None:
                return failure_response(task.exception(), _described(checked.sender_id))  # type: ignore[arg-type]

        stream = await request.respond(content_type="text/event-stream")
        item = first
        while item is not _DONE:
            await stream.send(json.dumps(item) + "\n")
            item = await queue.get()
        await asyncio.wait([task])
        error = task.exception()
        if error is not None:
            failure = failure_response(error, _described(checked.sender_id))
            await stream.send(json.dumps({"status": failure.status, **json.loads(failure.body)}) + "\n")
        await stream.eof()
        return None


def _rate_limited(limited: Limited) -> HTTPResponse:
    message = (
        f"Too many messages from this sender: {limited.limit.burst} at once, then {limited.limit.per_minute:g} a "
        f"minute (`rate_limits.{limited.name}` of {CREDENTIALS_KEY}). Retry after {limited.retry_after_s} s."
    )
    reply = error_response(429, "rate_limited", message)
    reply.headers["Retry-After"] = str(limited.retry_after_s)
    return reply


def _described(sender: Text) -> Text:
    return f"a REST message from {describe(conversation_id(CHANNEL_NAME, sender))}"

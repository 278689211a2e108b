"""Rasa's REST channel, with failures answered as failures.

Rasa 3.6's `RestInput` catches every exception while handling a message, logs it and
answers `200 []` (`rasa/core/channels/rest.py` L160-181): a website cannot tell "the
bot has nothing to say" from "nothing was processed". With `?stream=true` an error
even leaves the response open until the server's response timeout (an hour).

`LeptonRestInput` keeps the URL (`POST /webhooks/rest/webhook`), the request and the
reply JSON, but answers

* `503` + `Retry-After` when the conversation database or Redis cannot be used, with a
  JSON body naming the service (`lepton_components.server.outages`), or when no model
  is loaded;
* `500` with a JSON error for any other failure, `400` for a body that is not a JSON
  object with a text `message`.

It also serves `GET /webhooks/rest/ready`: 200 once a model is loaded, else 503 (Rasa's
`/` answers 200 even with no model), for load balancers and orchestrators.

A message starting with `/` is passed on as `/intent{...}` only when it is the payload
of a button the bot just offered (`lepton_components.channels.intent_commands`);
`allow_intent_commands: true` lets trusted clients send any intent.

Listing it in `credentials.yml` also switches on `lepton_components.server.strict_mode`
for the whole server, so tracker store errors reach this channel instead of being
swallowed by Rasa's `FailSafeTrackerStore`::

    lepton_components.channels.rest.LeptonRestInput:
      allow_intent_commands: false   # the default
"""

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text, Union

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import QueueOutputChannel, RestInput
from rasa.utils.endpoints import bool_arg
from sanic import Blueprint, response
from sanic.exceptions import InvalidUsage
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.channels.intent_commands import (
    LoadedTrackerStore,
    guard_customer_commands,
    pop_allow_intent_commands,
)
from lepton_components.server.failures import agent_ready, error_response, failure_response, no_model_response
from lepton_components.server.extensions import install_server_extensions
from lepton_components.server.strict_mode import ensure_strict_agent

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]

_DONE = object()


def _described(sender_id: Optional[Text]) -> Text:
    return f"a REST message from sender {sender_id!r}"


def _bad_request(reason: Text) -> HTTPResponse:
    return error_response(400, "bad_request", reason)


class LeptonRestInput(RestInput):
    """`RestInput` on the same URL that answers 503/500 instead of `200 []` on failures."""

    @classmethod
    def name(cls) -> Text:
        """`rest`, so the channel keeps Rasa's `/webhooks/rest/` URLs."""
        return "rest"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "LeptonRestInput":
        credentials = dict(credentials or {})
        allow = pop_allow_intent_commands(
            "rest", credentials, "lepton_components.channels.rest.LeptonRestInput:"
        )
        if credentials:
            logger.warning(f"rest: ignoring unknown credentials key(s) {', '.join(sorted(credentials))}.")
        return cls(allow_intent_commands=allow)

    def __init__(self, allow_intent_commands: bool = False) -> None:
        self.allow_intent_commands = allow_intent_commands

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Rasa's REST routes and `/ready`, plus the listener that switches on strict mode."""
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
            try:
                body = request.json if request.body else None
            except InvalidUsage:  # not JSON; Sanic would answer with an HTML page
                body = None
            if not isinstance(body, dict) or not isinstance(body.get("message"), str):
                return _bad_request('Send a JSON object like {"sender": "<conversation id>", "message": "<text>"}.')
            if not isinstance(body.get("sender", ""), str) or not isinstance(body.get("metadata") or {}, dict):
                return _bad_request("`sender` must be a string and `metadata` a JSON object.")
            if not agent_ready(request):
                return no_model_response()
            # `PUT /model` may have swapped the agent since the middleware ran.
            ensure_strict_agent(request.app)
            sender_id = await self._extract_sender(request)
            text = self._extract_message(request)
            input_channel = self._extract_input_channel(request)
            metadata = self.get_metadata(request)
            if bool_arg(request, "stream", default=False):
                return await self._stream(request, on_new_message, text, sender_id, input_channel, metadata)

            collector = CollectingOutputChannel()
            message = UserMessage(text, collector, sender_id, input_channel=input_channel, metadata=metadata)
            try:
                await on_new_message(message)
            except Exception as error:
                return failure_response(error, _described(sender_id))
            return response.json(collector.messages)

        return webhook

    async def _stream(
        self,
        request: Request,
        on_new_message: OnNewMessage,
        text: Text,
        sender_id: Optional[Text],
        input_channel: Text,
        metadata: Optional[Dict[Text, Any]],
    ) -> Optional[HTTPResponse]:
        """Stream bot messages as JSON lines, as Rasa does.

        The status is only sent with the first bot message, so a failure before it is
        still a proper 503/500. A failure after it can only end the stream with a last
        line `{"error": ...}`; Rasa's version waited for the response timeout instead.
        """
        queue: "asyncio.Queue[Union[Dict[Text, Any], object]]" = asyncio.Queue()

        async def handle() -> None:
            message = UserMessage(
                text, QueueOutputChannel(queue), sender_id, input_channel=input_channel, metadata=metadata
            )
            try:
                await on_new_message(message)
            finally:
                await queue.put(_DONE)

        task = asyncio.ensure_future(handle())
        first = await queue.get()
        if first is _DONE:
            await asyncio.wait([task])
            if task.exception() is not None:
                return failure_response(task.exception(), _described(sender_id))  # type: ignore[arg-type]

        stream = await request.respond(content_type="text/event-stream")
        item = first
        while item is not _DONE:
            await stream.send(json.dumps(item) + "\n")
            item = await queue.get()
        await asyncio.wait([task])
        error = task.exception()
        if error is not None:
            failure = failure_response(error, _described(sender_id))
            await stream.send(json.dumps({"status": failure.status, **json.loads(failure.body)}) + "\n")
        await stream.eof()
        return None
